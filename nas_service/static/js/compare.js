// Compare jobs: their Pareto fronts overlaid on one plot (any two objectives of the catalog),
// and a table of each front's size and best values (hypervolumes are left out: each job's
// has its own reference point, so they do not compare). Route: #/compare?jobs=<id>,<id>,...

import { ApiError, get } from "./api.js";
import { entries, loadCatalog } from "./catalog.js";
import { overlay } from "./charts.js";
import { badge, h } from "./dom.js";
import { isNum, num } from "./format.js";
import { valueOf } from "./pareto.js";

export function compareIds(hash) {
  const q = hash.includes("?") ? hash.slice(hash.indexOf("?") + 1) : "";
  const raw = new URLSearchParams(q).get("jobs") || "";
  return [...new Set(raw.split(",").map((s) => s.trim()).filter(Boolean))];
}

export function renderCompare(view, ids) {
  let stopped = false;
  const xSel = h("select", { id: "compare-x", "aria-label": "x" });
  const ySel = h("select", { id: "compare-y", "aria-label": "y" });
  const plot = h("div", { class: "chart", id: "compare-plot" });
  const body = h("tbody", { id: "compare-body" });
  const head = h("tr");
  const error = h("div", { class: "error-box", id: "compare-error" });
  const jobsLine = h("div", { class: "controls", id: "compare-jobs" });
  view.replaceChildren(h("section", { class: "card" },
    h("div", { class: "controls" }, h("h1", {}, "Compare fronts"), h("a", { href: "#/jobs" }, "‹ jobs")),
    jobsLine, error,
    h("div", { class: "controls" }, h("label", { for: "compare-x" }, "x "), xSel, h("label", { for: "compare-y" }, "y "), ySel),
    plot),
  h("section", { class: "card" }, h("h2", {}, "Fronts"),
    h("div", { class: "table-wrap" }, h("table", { class: "data", id: "compare-table" }, h("thead", {}, head), body))));

  if (ids.length < 2) {
    plot.replaceChildren(h("p", { class: "chart-empty", id: "compare-empty" },
      "Pick two or more jobs in the job list to compare their fronts."));
  }

  (async () => {
    const catalog = await loadCatalog();
    const objectives = entries(catalog, "objective");
    const label = (n) => {
      const o = objectives.find((x) => x.name === n) || { name: n };
      return o.unit && !(o.label || "").includes(o.unit) ? `${o.label || n} (${o.unit})` : o.label || n;
    };
    const loaded = await Promise.all(ids.map(async (id) => {
      try {
        const [job, pareto] = await Promise.all([get(`/jobs/${encodeURIComponent(id)}`), get(`/jobs/${encodeURIComponent(id)}/pareto`)]);
        return { id, job, front: (pareto && pareto.front) || [] };
      } catch (e) {
        return { id, missing: e instanceof ApiError && (e.status === 404 || e.status === 422), error: e };
      }
    }));
    if (stopped) return;
    const found = loaded.filter((j) => j.job);
    const lost = loaded.filter((j) => !j.job);
    error.textContent = lost.map((j) => (j.missing ? `No job ${j.id} for this key.` : `Could not load ${j.id}: ${j.error.message || j.error}`)).join(" ");
    jobsLine.replaceChildren(...found.map((j, i) => h("span", { class: `chip series-chip s${i % 6}`, "data-job-id": j.id },
      h("span", { class: `swatch-dot s${i % 6}` }), j.job.name || j.id, " ", badge(j.job.status, j.job.outcome),
      found.length > 2 ? h("a", { href: `#/compare?jobs=${found.filter((x) => x !== j).map((x) => x.id).join(",")}`,
        title: "leave this job out", class: "remove" }, " ×") : "")));
    // Objectives the jobs searched over first, then the rest of the catalog's.
    const searched = [];
    for (const j of found) for (const o of (j.job.spec && j.job.spec.search && j.job.spec.search.objectives) || []) {
      if (!searched.includes(o.name)) searched.push(o.name);
    }
    const names = searched.concat(objectives.map((o) => o.name).filter((n) => !searched.includes(n)));
    for (const sel of [xSel, ySel]) sel.replaceChildren(...names.map((n) => h("option", { value: n }, label(n))));
    const dir = (n) => (objectives.find((o) => o.name === n) || {}).direction;
    ySel.value = names.find((n) => dir(n) === "max") || names[0];
    xSel.value = names.find((n) => n !== ySel.value && dir(n) === "min") || names.find((n) => n !== ySel.value) || names[0];

    function draw() {
      const x = xSel.value;
      const y = ySel.value;
      const series = found.map((j) => ({
        name: j.job.name || j.id, key: j.id,
        points: j.front.map((c) => ({ id: c.id, x: valueOf(c, x).value, y: valueOf(c, y).value,
          title: `${j.job.name || j.id}: ${c.arch_short || `#${c.id}`}`,
          rows: names.map((n) => [label(n), num(valueOf(c, n).value)]) })),
      }));
      if (found.length >= 1 && ids.length >= 2) {
        overlay(plot, series, { xLabel: label(x), yLabel: label(y),
          emptyText: found.length ? `No front has both ${label(x)} and ${label(y)}.` : "No job to compare.",
          onSelect: (p) => { const j = found.find((f) => f.front.some((c) => c.id === p.id)); if (j) location.hash = `#/jobs/${j.id}`; } });
      }
      head.replaceChildren(...["job", "space", "status", "on the front", ...names.map((n) => `best ${label(n)}`)]
        .map((t) => h("th", {}, t)));
      body.replaceChildren(...found.map((j, i) => {
        const best = names.map((n) => {
          const vals = j.front.map((c) => valueOf(c, n).value).filter(isNum);
          if (!vals.length) return "—";
          return num(dir(n) === "max" ? Math.max(...vals) : Math.min(...vals));
        });
        return h("tr", { "data-job-id": j.id },
          h("td", {}, h("span", { class: `swatch-dot s${i % 6}` }), h("a", { href: `#/jobs/${j.id}` }, j.job.name || j.id)),
          h("td", {}, j.job.space_id || ""), h("td", {}, badge(j.job.status, j.job.outcome)),
          h("td", { class: "num", "data-col": "front" }, String(j.front.length)),
          ...best.map((b, k) => h("td", { class: "num", "data-col": names[k] }, b)));
      }));
    }
    xSel.addEventListener("change", draw);
    ySel.addEventListener("change", draw);
    draw();
  })().catch((e) => {
    if (!(e instanceof ApiError && e.status === 401)) error.textContent = String(e.message || e);
  });
  return () => { stopped = true; };
}
