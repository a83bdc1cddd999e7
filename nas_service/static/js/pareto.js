// Pareto panel: scatter of two chosen objectives (click a point for its details), the front
// with downloads, hypervolume, and the table of every candidate.

import { get, getAll, getWithEtag, itemsOf } from "./api.js";
import { entries, loadCatalog } from "./catalog.js";
import { spaceSpecOf } from "./arch.js";
import { CandidateTable, candidateDetails, downloadButtons } from "./candidates.js";
import { lines, scatter } from "./charts.js";
import { h } from "./dom.js";
import { isNum, num } from "./format.js";

// Objectives (name, label, unit, direction), their labels (accuracies say which split they
// were measured on: val selected the front, test is held out) and the download formats come
// from the catalog.
let OBJECTIVES = [];
let ALL_OBJECTIVES = [];
let LABELS = {};
let FORMATS = [];
let loaded = null;
export function ensureCatalog() {
  if (!loaded) {
    loaded = loadCatalog().then((catalog) => {
      OBJECTIVES = entries(catalog, "objective");
      ALL_OBJECTIVES = OBJECTIVES.map((e) => e.name);
      LABELS = Object.fromEntries(OBJECTIVES.map((e) => [e.name, e.label || e.name]));
      FORMATS = entries(catalog, "export");
    }).catch((e) => { loaded = null; throw e; });
  }
  return loaded;
}

export function objectiveEntries() {
  return OBJECTIVES;
}

// The choices of each dimension kind of a space (GET /search-spaces), to scale drawings.
const spaceChoices = new Map();
export function choicesOf(spaceId) {
  if (!spaceChoices.has(spaceId)) {
    spaceChoices.set(spaceId, get("/search-spaces").then((page) => {
      const s = itemsOf(page).find((x) => x.id === spaceId);
      return Object.fromEntries(Object.entries((s && s.dims_by_kind) || {}).map(([k, v]) => [k, v.choices || []]));
    }).catch(() => ({})));
  }
  return spaceChoices.get(spaceId);
}

const unitOf = (name) => (OBJECTIVES.find((o) => o.name === name) || {}).unit || "";
const labelWithUnit = (name) => {
  const u = unitOf(name);
  const l = LABELS[name] || name;
  return u && !l.includes(u) ? `${l} (${u})` : l;
};

// A candidate's value for an objective: measured when there is one, else the prediction.
// Returns {value, predicted}; value is null when neither exists (never a stand-in zero).
// FLOPs and parameters are counted analytically, so they are never "predicted".
const EXACT = new Set(["flops", "params"]);

export function valueOf(c, name) {
  const objs = c.objectives && typeof c.objectives === "object" ? c.objectives : {};
  if (c.source !== "predicted" || EXACT.has(name)) {
    if (isNum(c[name])) return { value: c[name], predicted: false };
    if (isNum(objs[name])) return { value: objs[name], predicted: false };
  }
  for (const v of [c[`predicted_${name}`], c[name], objs[name], objs[`predicted_${name}`]]) {
    if (isNum(v)) return { value: v, predicted: true };
  }
  return { value: null, predicted: false };
}

function frontOf(data) {
  if (!data) return [];
  for (const k of ["front", "points", "candidates"]) if (Array.isArray(data[k])) return data[k];
  return itemsOf(data);
}

// Hypervolume history as one series per source (the searched front, then the re-measured one).
// A point without an evaluation count sits at the last known count rather than at 0.
export function hypervolumeSeries(data, job) {
  const raw = (data && (data.hypervolume_history || data.history || data.pareto_history))
    || (job && job.pareto_history) || [];
  const bySource = new Map();
  let lastX = 0;
  raw.forEach((p, i) => {
    const rec = isNum(p) ? { hypervolume: p } : p;
    const x = [rec.evaluations, rec.n, rec.step, rec.generation].find(isNum);
    lastX = isNum(x) ? x : Math.max(lastX, i);
    const y = [rec.hypervolume, rec.hv, rec.value].find(isNum);
    const name = rec.source || "hypervolume";
    if (!bySource.has(name)) bySource.set(name, []);
    bySource.get(name).push({ x: lastX, y: isNum(y) ? y : null });
  });
  return [...bySource].map(([name, points]) => ({ name, points }));
}

export class ParetoPanel {
  constructor(jobId) {
    this.jobId = jobId;
    this.etag = null;
    this.front = [];
    this.all = [];
    this.data = null;
    this.objectives = [];
    this.selectedId = null;
    this.xSel = h("select", { id: "pareto-x" });
    this.ySel = h("select", { id: "pareto-y" });
    this.showAll = h("input", { type: "checkbox", id: "pareto-all", checked: true });
    this.plot = h("div", { class: "chart", id: "pareto-plot" });
    this.note = h("div", { class: "muted", id: "pareto-note" });
    this.table = h("tbody", { id: "pareto-body" });
    this.tableHead = h("tr");
    this.hv = h("div", { class: "chart", id: "hv-plot" });
    this.outcome = h("div", { class: "warning-box", id: "pareto-outcome", hidden: true });
    this.details = h("div", { id: "details-slot" });
    this.candidates = new CandidateTable({ valueOf, onSelect: (id) => this.select(id) });
    for (const s of [this.xSel, this.ySel, this.showAll]) s.addEventListener("change", () => this.draw());
    this.element = h("div", {},
      h("section", { class: "card" }, h("h2", {}, "Pareto front"),
        h("div", { class: "controls" },
          h("label", { for: "pareto-x" }, "x "), this.xSel,
          h("label", { for: "pareto-y" }, "y "), this.ySel,
          h("label", {}, this.showAll, " all candidates"),
          h("span", { class: "muted" }, "click a point for its details")),
        this.outcome, legend(), this.plot, this.note),
      this.details,
      h("div", { class: "grid2" },
        h("section", { class: "card" }, h("h2", {}, "Hypervolume"), this.hv),
        h("section", { class: "card" }, h("h2", {}, "Front"),
          h("div", { class: "table-wrap" },
            h("table", { class: "data", id: "pareto-table" }, h("thead", {}, this.tableHead), this.table)))),
      this.candidates.element);
  }

  setJob(job) {
    const spec = (job && job.spec) || {};
    const objs = (spec.search && spec.search.objectives) || [];
    if (objs.length && this.objectives.length === 0) {
      this.objectives = objs;
      const names = objs.map((o) => o.name).concat(ALL_OBJECTIVES.filter((n) => !objs.some((o) => o.name === n)));
      this.xSel.replaceChildren(...names.map((n) => h("option", { value: n }, labelWithUnit(n))));
      this.ySel.replaceChildren(...names.map((n) => h("option", { value: n }, labelWithUnit(n))));
      // The first minimised objective across, the first maximised one up.
      const dir = (n) => (objs.find((o) => o.name === n) || OBJECTIVES.find((o) => o.name === n) || {}).direction;
      const y = names.find((n) => dir(n) === "max") || names[0];
      const x = names.find((n) => n !== y && dir(n) === "min") || names.find((n) => n !== y) || names[0];
      this.xSel.value = x;
      this.ySel.value = y;
      this.candidates.setObjectives(names.map((n) => OBJECTIVES.find((o) => o.name === n) || { name: n }));
    }
    if (job && job.space_id) this.spaceId = job.space_id;
    this.job = job;
  }

  async refresh() {
    await ensureCatalog();
    const { changed, data, etag } = await getWithEtag(`/jobs/${this.jobId}/pareto`, this.etag);
    if (!changed) return false;
    this.etag = etag;
    this.data = data;
    this.front = frontOf(data);
    if (this.objectives.length === 0 && data && Array.isArray(data.objectives)) {
      this.setJob({ spec: { search: { objectives: data.objectives } } });
    }
    try {
      const { items, complete } = await getAll(`/jobs/${this.jobId}/candidates?limit=500`, { maxPages: 20 });
      this.all = items;
      this.complete = complete;
    } catch (_) {
      this.all = [];
    }
    this.draw();
    return true;
  }

  bounds(name) {
    const o = this.objectives.find((x) => x.name === name);
    return o && isNum(o.bound) ? o.bound : null;
  }

  candidate(id) {
    return this.all.find((c) => String(c.id) === String(id)) || this.front.find((c) => String(c.id) === String(id));
  }

  async select(id, { scroll = true } = {}) {
    const c = this.candidate(id);
    if (!c) return;
    this.selectedId = c.id;
    const choices = this.spaceId ? await choicesOf(this.spaceId) : {};
    if (this.selectedId !== c.id) return;  // another one was chosen meanwhile
    const names = [...this.xSel.options].map((o) => o.value);
    const objectives = names.map((n) => OBJECTIVES.find((o) => o.name === n) || { name: n });
    this.details.replaceChildren(candidateDetails(c, { objectives, formats: FORMATS, valueOf,
      space: this.spaceId, choices, spec: spaceSpecOf(this.job), onClose: () => this.unselect() }));
    this.candidates.setSelected(c.id);
    for (const p of this.plot.querySelectorAll(".point")) p.classList.toggle("selected", p.dataset.id === String(c.id));
    for (const tr of this.table.children) tr.classList.toggle("selected", tr.dataset.candidateId === String(c.id));
    if (scroll) this.details.scrollIntoView({ block: "nearest" });
  }

  unselect() {
    this.selectedId = null;
    this.details.replaceChildren();
    this.candidates.setSelected(null);
    for (const p of this.plot.querySelectorAll(".point.selected")) p.classList.remove("selected");
    for (const tr of this.table.querySelectorAll("tr.selected")) tr.classList.remove("selected");
  }

  draw() {
    if (!this.xSel.value) this.setJob({ spec: { search: { objectives: [{ name: "accuracy" }, { name: "flops" }] } } });
    const xName = this.xSel.value;
    const yName = this.ySel.value;
    const frontIds = new Set(this.front.map((c) => c.id));
    const source = this.showAll.checked && this.all.length ? this.all : this.front;
    const points = source.map((c) => {
      const x = valueOf(c, xName);
      const y = valueOf(c, yName);
      const predicted = x.predicted || y.predicted;
      return {
        id: c.id, x: x.value, y: y.value, feasible: c.feasible !== false,
        source: predicted ? "predicted" : "measured", pareto: frontIds.has(c.id) || c.is_pareto === true,
        title: c.arch_short || `candidate ${c.id}`,
        rows: ALL_OBJECTIVES.map((n) => [LABELS[n], fmtVal(valueOf(c, n), unitOf(n))])
          .concat([["accuracy (test, held out)", testAcc(c)]])
          .concat([["source", c.source || "?"], ["feasible", c.feasible === false ? "no" : "yes"], ["id", String(c.id)]]),
      };
    });
    const { drawn, omitted } = scatter(this.plot, points, {
      xLabel: labelWithUnit(xName), yLabel: labelWithUnit(yName),
      bounds: { x: this.bounds(xName), y: this.bounds(yName) }, width: 900, height: 460,
      onSelect: (p) => this.select(p.id), selected: this.selectedId,
    });
    this.note.textContent = `${drawn} point${drawn === 1 ? "" : "s"} drawn`
      + (omitted ? `; ${omitted} without a value for ${xName} or ${yName} not shown` : "")
      + (this.front.length ? `; ${this.front.length} on the front` : "");
    this.drawTable(xName);
    this.drawOutcome();
    this.candidates.setData(this.all.length ? this.all : this.front, { complete: this.complete !== false });
    lines(this.hv, hypervolumeSeries(this.data, this.job),
      { xLabel: "evaluations", yLabel: "hypervolume", height: 220, emptyText: "No hypervolume yet." });
    if (this.selectedId !== null) {
      const c = this.candidate(this.selectedId);
      if (c) this.select(c.id, { scroll: false });
    }
  }

  // A finished job without a feasible subnet says why, with the closest candidates.
  drawOutcome() {
    const o = this.data && this.data.outcome;
    if (!o || o.code !== "no_feasible_subnet") {
      this.outcome.hidden = true;
      this.outcome.replaceChildren();
      return;
    }
    const items = [];
    for (const [device, part] of Object.entries(o.devices || {})) {
      for (const c of (part && part.closest) || []) {
        const m = c.metrics || {};
        const figures = ALL_OBJECTIVES.filter((n) => isNum(m[n])).map((n) => `${LABELS[n]}=${num(m[n])}`);
        items.push(h("li", {}, `${device}: #${c.id} ${c.arch_short || ""} — ${figures.join(", ")}`
          + ` (violation ${num(c.violation)}, ${c.source})`));
      }
    }
    this.outcome.replaceChildren(
      h("strong", {}, "No feasible subnet. "), o.message || "",
      items.length ? h("div", {}, "Closest candidates:") : "",
      items.length ? h("ul", { id: "outcome-closest" }, ...items) : "");
    this.outcome.hidden = false;
  }

  // The front, sorted by the x objective (best first), with downloads.
  drawTable(xName) {
    const names = this.objectives.length ? this.objectives.map((o) => o.name) : ["accuracy", "flops"];
    this.tableHead.replaceChildren(...["#", "arch", ...names.map(labelWithUnit), "accuracy (test)", "source", "download"]
      .map((t) => h("th", {}, t)));
    const dir = (OBJECTIVES.find((o) => o.name === xName) || {}).direction === "max" ? -1 : 1;
    const sorted = this.front.slice().sort((a, b) => {
      const va = valueOf(a, xName).value;
      const vb = valueOf(b, xName).value;
      if (!isNum(va) || !isNum(vb)) return isNum(va) ? -1 : isNum(vb) ? 1 : a.id - b.id;
      return (va - vb) * dir || a.id - b.id;
    });
    if (!sorted.length) {
      this.table.replaceChildren(h("tr", {}, h("td", { colspan: names.length + 5, class: "muted", id: "front-empty" },
        this.job && this.job.status === "succeeded" ? "The front is empty." : "No front yet.")));
      return;
    }
    this.table.replaceChildren(...sorted.map((c) => {
      const tr = h("tr", { "data-candidate-id": c.id, class: String(c.id) === String(this.selectedId) ? "selected" : "" },
        h("td", {}, h("button", { type: "button", class: "link-button", "data-details": c.id }, String(c.id))),
        h("td", { class: "arch" }, c.arch_short || ""),
        ...names.map((n) => h("td", { class: "num", "data-col": n }, fmtVal(valueOf(c, n)))),
        h("td", { class: "test-accuracy num" }, testAcc(c)),
        h("td", {}, c.source || ""),
        h("td", {}, ...downloadButtons(c, FORMATS)));
      tr.querySelector("[data-details]").addEventListener("click", () => this.select(c.id));
      return tr;
    }));
  }
}

function testAcc(c) {
  return isNum(c.test_accuracy) ? num(c.test_accuracy) : "—";
}

function fmtVal({ value, predicted }, unit) {
  if (!isNum(value)) return "—";
  return `${num(value)}${unit ? ` ${unit}` : ""}${predicted ? " (pred.)" : ""}`;
}

function legend() {
  const mark = (cls, shape) => {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("width", "14");
    svg.setAttribute("height", "14");
    const n = document.createElementNS("http://www.w3.org/2000/svg", shape === "d" ? "path" : "circle");
    if (shape === "d") n.setAttribute("d", "M7,1 L13,7 L7,13 L1,7 Z");
    else { n.setAttribute("cx", "7"); n.setAttribute("cy", "7"); n.setAttribute("r", "5"); }
    n.setAttribute("class", `point ${cls}`);
    svg.appendChild(n);
    return svg;
  };
  return h("div", { class: "legend-html" },
    h("span", {}, mark("feasible measured pareto", "c"), " measured, on front"),
    h("span", {}, mark("feasible measured dominated", "c"), " measured, dominated"),
    h("span", {}, mark("feasible predicted", "d"), " predicted"),
    h("span", {}, mark("infeasible measured", "c"), " infeasible"),
    h("span", {}, h("span", { style: "color:var(--bad)" }, "- - -"), " constraint"));
}
