// Every candidate of a job in a table (filter, sort by any column, pages), and the details of
// one candidate: its figures, its architecture and its downloads.

import { downloadSubnet } from "./api.js";
import { archView } from "./arch.js";
import { h } from "./dom.js";
import { isNum, num } from "./format.js";

const PAGE_SIZES = [10, 25, 50, 100];

// Catalog facts the table and the details need: objectives [{name, label, unit, direction}],
// formats [{name, suffix}].
export class CandidateTable {
  constructor({ valueOf, onSelect }) {
    this.valueOf = valueOf;
    this.onSelect = onSelect;
    this.objectives = [];
    this.all = [];
    this.selected = null;
    this.sortKey = "id";
    this.sortDir = "asc";
    this.page = 0;
    this.pageSize = 25;
    this.complete = true;
    this.source = h("select", { id: "cand-source", "aria-label": "source" });
    this.feasible = h("select", { id: "cand-feasible", "aria-label": "feasible" },
      h("option", { value: "" }, "feasible and not"), h("option", { value: "yes" }, "feasible only"),
      h("option", { value: "no" }, "infeasible only"));
    this.device = h("select", { id: "cand-device", "aria-label": "device" });
    this.frontOnly = h("input", { type: "checkbox", id: "cand-front" });
    this.search = h("input", { type: "search", id: "cand-search", placeholder: "arch contains…",
      "aria-label": "arch contains" });
    this.size = h("select", { id: "cand-page-size", "aria-label": "rows per page" },
      PAGE_SIZES.map((n) => h("option", { value: n, selected: n === this.pageSize }, `${n} rows`)));
    this.prev = h("button", { type: "button", class: "secondary small", id: "cand-prev" }, "‹ Previous");
    this.next = h("button", { type: "button", class: "secondary small", id: "cand-next" }, "Next ›");
    this.info = h("span", { class: "muted", id: "cand-info" });
    this.head = h("tr");
    this.body = h("tbody", { id: "cand-body" });
    this.empty = h("p", { class: "chart-empty", id: "cand-empty", hidden: true });
    for (const c of [this.source, this.feasible, this.device, this.frontOnly]) {
      c.addEventListener("change", () => { this.page = 0; this.draw(); });
    }
    this.search.addEventListener("input", () => { this.page = 0; this.draw(); });
    this.size.addEventListener("change", () => { this.pageSize = Number(this.size.value); this.page = 0; this.draw(); });
    this.prev.addEventListener("click", () => { this.page -= 1; this.draw(); });
    this.next.addEventListener("click", () => { this.page += 1; this.draw(); });
    this.element = h("section", { class: "card", id: "candidates" },
      h("h2", {}, "All candidates"),
      h("div", { class: "controls" }, this.source, this.feasible, this.device,
        h("label", {}, this.frontOnly, " on the front only"), this.search),
      h("div", { class: "table-wrap" },
        h("table", { class: "data sortable", id: "candidates-table" }, h("thead", {}, this.head), this.body)),
      this.empty,
      h("div", { class: "controls pager" }, this.prev, this.next, this.info, this.size));
  }

  // The columns: id, arch, every objective of the catalog, held-out accuracy, source, device,
  // feasible, front.
  columns() {
    const objs = this.objectives.map((o) => ({
      key: o.name, label: o.label || o.name, unit: o.unit, num: true,
      value: (c) => this.valueOf(c, o.name).value,
      text: (c) => {
        const v = this.valueOf(c, o.name);
        return isNum(v.value) ? `${num(v.value)}${v.predicted ? " (pred.)" : ""}` : "—";
      },
    }));
    return [
      { key: "id", label: "#", num: true, value: (c) => c.id, text: (c) => String(c.id) },
      { key: "arch_short", label: "arch", value: (c) => c.arch_short || "", text: (c) => c.arch_short || "", cls: "arch" },
      ...objs,
      { key: "test_accuracy", label: "accuracy (test, held out)", num: true,
        value: (c) => (isNum(c.test_accuracy) ? c.test_accuracy : null), text: (c) => num(c.test_accuracy) },
      { key: "source", label: "source", value: (c) => c.source || "", text: (c) => c.source || "" },
      { key: "device", label: "device", value: (c) => c.device || "", text: (c) => c.device || "" },
      { key: "feasible", label: "feasible", value: (c) => (c.feasible === false ? 0 : 1), text: (c) => (c.feasible === false ? "no" : "yes") },
      { key: "is_pareto", label: "front", value: (c) => (c.is_pareto ? 1 : 0), text: (c) => (c.is_pareto ? "✓" : "") },
    ];
  }

  setObjectives(objectives) {
    this.objectives = objectives;
  }

  setData(all, { complete = true } = {}) {
    this.all = all;
    this.complete = complete;
    fillSelect(this.source, "every source", [...new Set(all.map((c) => c.source).filter(Boolean))].sort());
    fillSelect(this.device, "every device", [...new Set(all.map((c) => c.device).filter(Boolean))].sort());
    this.device.hidden = this.device.options.length <= 2;
    this.draw();
  }

  setSelected(id) {
    this.selected = id;
    for (const tr of this.body.children) tr.classList.toggle("selected", String(tr.dataset.candidateId) === String(id));
  }

  filtered() {
    const text = this.search.value.trim().toLowerCase();
    return this.all.filter((c) => (!this.source.value || c.source === this.source.value)
      && (!this.feasible.value || (this.feasible.value === "yes") === (c.feasible !== false))
      && (!this.device.value || c.device === this.device.value)
      && (!this.frontOnly.checked || c.is_pareto === true)
      && (!text || (c.arch_short || "").toLowerCase().includes(text)));
  }

  sortBy(key) {
    if (this.sortKey === key) this.sortDir = this.sortDir === "asc" ? "desc" : "asc";
    else {
      this.sortKey = key;
      const o = this.objectives.find((x) => x.name === key);
      this.sortDir = o && o.direction === "max" ? "desc" : "asc";  // best first
    }
    this.page = 0;
    this.draw();
  }

  draw() {
    const cols = this.columns();
    this.head.replaceChildren(...cols.map((col) => {
      const sorted = this.sortKey === col.key;
      const b = h("button", { type: "button", class: "sort", "data-sort": col.key },
        col.label, col.unit && !col.label.includes(col.unit) ? h("span", { class: "muted" }, ` (${col.unit})`) : "",
        h("span", { class: "sort-mark", "aria-hidden": "true" }, sorted ? (this.sortDir === "asc" ? " ▲" : " ▼") : ""));
      b.addEventListener("click", () => this.sortBy(col.key));
      return h("th", { "aria-sort": sorted ? (this.sortDir === "asc" ? "ascending" : "descending") : "none",
        class: col.num ? "num" : "" }, b);
    }));
    const col = cols.find((c) => c.key === this.sortKey) || cols[0];
    const dir = this.sortDir === "asc" ? 1 : -1;
    const rows = this.filtered().sort((a, b) => {
      const va = col.value(a);
      const vb = col.value(b);
      const na = va === null || va === undefined || va === "";
      const nb = vb === null || vb === undefined || vb === "";
      if (na || nb) return na === nb ? a.id - b.id : na ? 1 : -1;  // missing values last
      const d = typeof va === "number" && typeof vb === "number" ? va - vb : String(va).localeCompare(String(vb));
      return d * dir || a.id - b.id;
    });
    const pages = Math.max(1, Math.ceil(rows.length / this.pageSize));
    this.page = Math.max(0, Math.min(this.page, pages - 1));
    const start = this.page * this.pageSize;
    const shown = rows.slice(start, start + this.pageSize);
    this.body.replaceChildren(...shown.map((c) => {
      const tr = h("tr", { "data-candidate-id": c.id, tabindex: 0, class: String(c.id) === String(this.selected) ? "selected" : "" },
        cols.map((cc) => h("td", { class: [cc.num ? "num" : "", cc.cls || ""].join(" ").trim(), "data-col": cc.key }, cc.text(c))));
      tr.addEventListener("click", () => this.onSelect(c.id));
      tr.addEventListener("keydown", (ev) => { if (ev.key === "Enter") this.onSelect(c.id); });
      return tr;
    }));
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
    const total = this.all.length;
    this.empty.hidden = rows.length > 0;
    this.empty.textContent = total === 0 ? "No candidates yet." : "No candidate matches these filters.";
    this.info.textContent = rows.length
      ? `${num(start + 1)}–${num(start + shown.length)} of ${num(rows.length)}`
        + (rows.length !== total ? ` (${num(total)} in all)` : "") + ` · page ${this.page + 1} of ${pages}`
        + (this.complete ? "" : " · more candidates than the page loads")
      : "";
  }
}

function fillSelect(select, allText, values) {
  const current = select.value;
  select.replaceChildren(h("option", { value: "" }, allText), ...values.map((v) => h("option", { value: v }, v)));
  if (values.includes(current)) select.value = current;
}

// Download buttons for one candidate, one per export format of the catalog.
export function downloadButtons(c, formats) {
  const status = h("span", { class: "muted download-status" });
  const buttons = formats.map((f) => {
    const b = h("button", { type: "button", class: "small secondary", "data-format": f.name,
      "data-candidate": c.id, title: f.summary || "" }, f.name);
    b.addEventListener("click", async () => {
      b.disabled = true;
      status.textContent = "preparing…";
      try {
        const name = await downloadSubnet(c.id, f.name, (s) => { status.textContent = `exporting, retry in ${s}s…`; }, f.suffix);
        status.textContent = `saved ${name}`;
      } catch (e) {
        status.textContent = `failed: ${e.message || e}`;
      } finally {
        b.disabled = false;
      }
    });
    return b;
  });
  return [h("div", { class: "actions" }, buttons), status];
}

// The details of one candidate: figures, architecture, downloads.
export function candidateDetails(c, { objectives, formats, valueOf, space, choices, spec, onClose }) {
  const rows = [];
  for (const o of objectives) {
    const v = valueOf(c, o.name);
    const text = isNum(v.value) ? `${num(v.value)}${o.unit ? ` ${o.unit}` : ""}${v.predicted ? " (predicted)" : ""}` : "—";
    rows.push([o.label || o.name, text, o.name]);
  }
  rows.push(["accuracy (test, held out)", num(c.test_accuracy), "test_accuracy"]);
  for (const o of objectives) {
    const p = c[`predicted_${o.name}`];
    if (isNum(p)) rows.push([`predicted ${o.label || o.name}`, num(p), `predicted_${o.name}`]);
  }
  rows.push(["source", c.source || "—", "source"], ["device", c.device || "—", "device"],
    ["feasible", c.feasible === false ? "no" : "yes", "feasible"], ["on the front", c.is_pareto ? "yes" : "no", "is_pareto"]);
  const close = h("button", { type: "button", class: "secondary small", id: "details-close" }, "Close");
  close.addEventListener("click", onClose);
  return h("section", { class: "card details", id: "candidate-details", "data-candidate-id": c.id },
    h("div", { class: "controls" }, h("h2", {}, `Candidate #${c.id}`), h("code", { class: "arch" }, c.arch_short || ""), close),
    h("div", { class: "details-grid" },
      h("dl", { class: "kv", id: "details-figures" },
        rows.flatMap(([k, v, key]) => [h("dt", {}, k), h("dd", { "data-key": key }, v)])),
      h("div", {}, h("h3", {}, "Downloads"), ...downloadButtons(c, formats))),
    h("h3", {}, "Architecture"),
    archView(c.arch, { space, choices, spec }),
    h("details", {}, h("summary", {}, "arch JSON"), h("pre", { class: "arch-json" }, JSON.stringify(c.arch, null, 1))));
}
