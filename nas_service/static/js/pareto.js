// Pareto panel: scatter of two chosen objectives, front table with downloads, hypervolume.

import { downloadSubnet, getWithEtag, get, itemsOf } from "./api.js";
import { loadCatalog, names, objectiveLabels } from "./catalog.js";
import { fmt, isNum, lines, scatter } from "./charts.js";
import { h } from "./dom.js";

// Objectives, their labels (accuracies say which split they were measured on: val selected
// the front, test is held out) and the download formats come from the catalog.
let ALL_OBJECTIVES = [];
let LABELS = {};
let FORMATS = [];
let loaded = null;
export function ensureCatalog() {
  if (!loaded) {
    loaded = loadCatalog().then((catalog) => {
      ALL_OBJECTIVES = names(catalog, "objective");
      LABELS = objectiveLabels(catalog);
      FORMATS = names(catalog, "export");
    }).catch((e) => { loaded = null; throw e; });
  }
  return loaded;
}

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
    this.xSel = h("select", { id: "pareto-x" });
    this.ySel = h("select", { id: "pareto-y" });
    this.showAll = h("input", { type: "checkbox", id: "pareto-all", checked: true });
    this.plot = h("div", { class: "chart", id: "pareto-plot" });
    this.note = h("div", { class: "muted", id: "pareto-note" });
    this.table = h("tbody", { id: "pareto-body" });
    this.hv = h("div", { class: "chart", id: "hv-plot" });
    this.outcome = h("div", { class: "warning-box", id: "pareto-outcome", hidden: true });
    for (const s of [this.xSel, this.ySel, this.showAll]) s.addEventListener("change", () => this.draw());
    this.element = h("div", {},
      h("section", { class: "card" }, h("h2", {}, "Pareto front"),
        h("div", { class: "controls" },
          h("label", { for: "pareto-x" }, "x "), this.xSel,
          h("label", { for: "pareto-y" }, "y "), this.ySel,
          h("label", {}, this.showAll, " all candidates")),
        this.outcome, legend(), this.plot, this.note),
      h("div", { class: "grid2" },
        h("section", { class: "card" }, h("h2", {}, "Hypervolume"), this.hv),
        h("section", { class: "card" }, h("h2", {}, "Front"),
          h("div", { style: "max-height:320px;overflow:auto" },
            h("table", { class: "data", id: "pareto-table" },
              h("thead", {}, h("tr", {}, ["#", "arch", "objectives", "accuracy (test)", "source", "download"].map((t) => h("th", {}, t)))),
              this.table)))));
  }

  setJob(job) {
    const spec = (job && job.spec) || {};
    const objs = (spec.search && spec.search.objectives) || [];
    if (objs.length && this.objectives.length === 0) {
      this.objectives = objs;
      const names = objs.map((o) => o.name).concat(ALL_OBJECTIVES.filter((n) => !objs.some((o) => o.name === n)));
      this.xSel.replaceChildren(...names.map((n) => h("option", { value: n }, LABELS[n] || n)));
      this.ySel.replaceChildren(...names.map((n) => h("option", { value: n }, LABELS[n] || n)));
      const cost = names.find((n) => n !== "accuracy") || names[0];
      this.xSel.value = cost;
      this.ySel.value = names.includes("accuracy") ? "accuracy" : names[1] || names[0];
    }
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
      this.all = itemsOf(await get(`/jobs/${this.jobId}/candidates?limit=500`));
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
        rows: ALL_OBJECTIVES.map((n) => [LABELS[n], fmtVal(valueOf(c, n))])
          .concat([["accuracy (test, held out)", testAcc(c)]])
          .concat([["source", c.source || "?"], ["feasible", c.feasible === false ? "no" : "yes"], ["id", String(c.id)]]),
      };
    });
    const { drawn, omitted } = scatter(this.plot, points, {
      xLabel: LABELS[xName] || xName, yLabel: LABELS[yName] || yName,
      bounds: { x: this.bounds(xName), y: this.bounds(yName) }, width: 900, height: 460,
    });
    this.note.textContent = `${drawn} point${drawn === 1 ? "" : "s"} drawn`
      + (omitted ? `; ${omitted} without a value for ${xName} or ${yName} not shown` : "")
      + (this.front.length ? `; ${this.front.length} on the front` : "");
    this.drawTable();
    this.drawOutcome();
    lines(this.hv, hypervolumeSeries(this.data, this.job),
      { xLabel: "evaluations", yLabel: "hypervolume", height: 220, emptyText: "No hypervolume yet." });
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
        const figures = ALL_OBJECTIVES.filter((n) => isNum(m[n])).map((n) => `${LABELS[n]}=${fmt(m[n])}`);
        items.push(h("li", {}, `${device}: #${c.id} ${c.arch_short || ""} — ${figures.join(", ")}`
          + ` (violation ${fmt(c.violation)}, ${c.source})`));
      }
    }
    this.outcome.replaceChildren(
      h("strong", {}, "No feasible subnet. "), o.message || "",
      items.length ? h("div", {}, "Closest candidates:") : "",
      items.length ? h("ul", { id: "outcome-closest" }, ...items) : "");
    this.outcome.hidden = false;
  }

  drawTable() {
    const names = this.objectives.length ? this.objectives.map((o) => o.name) : ["accuracy", "flops"];
    this.table.replaceChildren(...this.front.map((c) => {
      const status = h("span", { class: "muted download-status" });
      const buttons = FORMATS.map((f) => {
        const b = h("button", { type: "button", class: "small secondary", "data-format": f,
          "data-candidate": c.id }, f);
        b.addEventListener("click", async () => {
          b.disabled = true;
          status.textContent = "preparing…";
          try {
            const name = await downloadSubnet(c.id, f, (s) => { status.textContent = `exporting, retry in ${s}s…`; });
            status.textContent = `saved ${name}`;
          } catch (e) {
            status.textContent = `failed: ${e.message || e}`;
          } finally {
            b.disabled = false;
          }
        });
        return b;
      });
      return h("tr", { "data-candidate-id": c.id },
        h("td", {}, String(c.id)),
        h("td", { class: "arch" }, c.arch_short || ""),
        h("td", {}, names.map((n) => `${LABELS[n] || n}=${fmtVal(valueOf(c, n))}`).join("  ")),
        h("td", { class: "test-accuracy" }, testAcc(c)),
        h("td", {}, c.source || ""),
        h("td", {}, h("div", { class: "actions" }, buttons), status));
    }));
  }
}

function testAcc(c) {
  return isNum(c.test_accuracy) ? fmt(c.test_accuracy) : "—";
}

function fmtVal({ value, predicted }) {
  if (!isNum(value)) return "—";
  return `${fmt(value)}${predicted ? " (pred.)" : ""}`;
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
