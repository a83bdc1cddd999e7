// Tiny DOM builder: h("div", {class: "x", onclick: fn}, child, "text", ...).

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

export function badge(status, outcome) {
  // A job that finished without a feasible subnet is not shown as a plain green success.
  if (status === "succeeded" && outcome && outcome.code === "no_feasible_subnet") {
    return h("span", { class: "badge cancelled", "data-status": status, title: outcome.message || "" },
      "succeeded: no feasible subnet");
  }
  return h("span", { class: `badge ${status || ""}`, "data-status": status || "" }, status || "?");
}

export function progressBar(fraction) {
  const pct = Number.isFinite(fraction) ? Math.max(0, Math.min(1, fraction)) * 100 : 0;
  const bar = h("span", { class: "progress", role: "progressbar", "aria-valuenow": pct.toFixed(0),
    "aria-valuemin": "0", "aria-valuemax": "100" }, h("span", { style: `width:${pct.toFixed(1)}%` }));
  return h("span", {}, bar, " ", Number.isFinite(fraction) ? `${pct.toFixed(0)}%` : "");
}

export function when(ts) {
  if (!ts) return "—";
  const d = new Date(ts);
  return Number.isNaN(d.getTime()) ? String(ts) : d.toLocaleString();
}

// Filled from the catalog (GET /api/v1/catalog, "job") before any page is drawn.
export const TERMINAL = new Set();
export const STAGES = [];

export function applyJobStates(job) {
  TERMINAL.clear();
  for (const s of job.terminal || []) TERMINAL.add(s);
  STAGES.splice(0, STAGES.length, ...(job.stages || []));
}

// (done, total) pairs a stage may report, in order of preference.
const PAIRS = [["global_epoch", "total_epochs"], ["epoch", "epochs"], ["generation", "generations"],
  ["evaluated", "budget"], ["done", "total"], ["done", "of"], ["step", "steps"]];

// Progress of the job's current stage in [0, 1], or NaN when the API gives nothing usable.
export function jobFraction(job) {
  if (job.status === "succeeded") return 1;
  const p = job.progress;
  if (typeof p === "number") return p > 1 ? p / 100 : p;
  if (p && typeof p === "object") {
    for (const k of ["stage_fraction", "fraction", "percent"]) {
      if (typeof p[k] === "number") return Math.min(1, p[k] > 1 ? p[k] / 100 : p[k]);
    }
    for (const [a, b] of PAIRS) {
      if (typeof p[a] === "number" && typeof p[b] === "number" && p[b] > 0) return Math.min(1, p[a] / p[b]);
    }
  }
  return NaN;
}

// What the stage column says: a queued (or retried) job's last stage is history, not progress.
export function stageLabel(job) {
  if (job.status === "running") return job.stage || "starting";
  if (job.status === "queued") return job.attempt > 0 ? "waiting (will resume)" : "waiting";
  if (job.status === "succeeded") return "done";
  return job.stage ? `stopped in ${job.stage}` : "—";
}

export function progressCell(job) {
  if (job.status === "running" || job.status === "succeeded") return progressBar(jobFraction(job));
  return h("span", { class: "muted" }, "—");
}
