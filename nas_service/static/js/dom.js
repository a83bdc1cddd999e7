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

// A bar for a fraction in [0, 1]; an unknown fraction (NaN, null) draws an indeterminate bar
// without a number rather than a made-up one.
export function progressBar(fraction, label) {
  const known = Number.isFinite(fraction);
  const pct = known ? Math.max(0, Math.min(1, fraction)) * 100 : 0;
  const attrs = { class: `progress${known ? "" : " indeterminate"}`, role: "progressbar",
    "aria-valuemin": "0", "aria-valuemax": "100", "aria-label": label || "progress" };
  if (known) attrs["aria-valuenow"] = pct.toFixed(0);
  const bar = h("span", attrs, h("span", { style: known ? `width:${pct.toFixed(1)}%` : "" }));
  return h("span", { class: "progress-cell" }, bar, " ", known ? `${pct.toFixed(0)}%` : "");
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

// (done, total) pairs a stage may report, in order of preference. A training report's
// epoch/epochs counts one phase only, so it is not a pair for the whole stage (see below).
const PAIRS = [["global_epoch", "total_epochs"], ["generation", "generations"],
  ["evaluated", "budget"], ["done", "total"], ["done", "of"], ["step", "steps"]];

const num = (v) => typeof v === "number" && Number.isFinite(v);

// Progress of the job's current stage in [0, 1], or NaN when the API gives nothing usable.
export function stageFraction(job) {
  const p = job.progress;
  if (typeof p === "number") return p > 1 ? p / 100 : p;
  if (p && typeof p === "object") {
    for (const k of ["stage_fraction", "fraction", "percent"]) {
      if (num(p[k])) return Math.min(1, p[k] > 1 ? p[k] / 100 : p[k]);
    }
    if (job.stage === "training" || p.stage === "training") return trainingProgress(job).fraction;
    for (const [a, b] of PAIRS) {
      if (num(p[a]) && num(p[b]) && p[b] > 0) return Math.min(1, p[a] / p[b]);
    }
  }
  return NaN;
}

// Training across all its phases. The runner reports the phase (phase, phase_index) and the
// epoch within it (epoch of epochs). The whole schedule is known when it also reports
// global_epoch of total_epochs (or the number of phases); without those, the fraction is
// unknown (null) rather than the current phase's, which would read 100% after phase 1.
// rows: the job's epoch metrics (GET /jobs/{id}/metrics), for the phases already trained.
export function trainingProgress(job, rows = []) {
  const p = job.progress && typeof job.progress === "object" ? job.progress : {};
  const phases = new Map();  // phase_index -> {name, epochs, done}
  for (const r of rows) {
    const m = r.metrics || {};
    const i = num(m.phase_index) ? m.phase_index : null;
    if (i === null) continue;
    const ph = phases.get(i) || { index: i, name: r.phase, epochs: m.epochs, done: 0 };
    ph.done = Math.max(ph.done, r.epoch || 0);
    if (num(m.epochs)) ph.epochs = m.epochs;
    phases.set(i, ph);
  }
  const inTraining = job.status === "running" && job.stage === "training";
  if (inTraining && num(p.phase_index)) {
    const ph = phases.get(p.phase_index) || { index: p.phase_index, name: p.phase, epochs: p.epochs, done: 0 };
    if (num(p.epoch)) ph.done = Math.max(ph.done, p.epoch);
    if (num(p.epochs)) ph.epochs = p.epochs;
    phases.set(p.phase_index, ph);
  }
  const list = [...phases.values()].sort((a, b) => a.index - b.index);
  const trainedEpochs = list.reduce((s, ph) => s + (ph.done || 0), 0);
  const stages = STAGES;
  const past = job.stage && stages.indexOf(job.stage) > stages.indexOf("training");
  const finished = job.status === "succeeded" || (past && job.stage !== "training") || p.skipped === true;
  let fraction = null;
  let text = "";
  const totalPhases = [p.phases, p.total_phases, p.num_phases].find(num);
  if (finished) {
    fraction = 1;
    text = p.skipped ? "skipped: the supernet of another job is reused"
      : list.length ? `${list.length} phase${list.length === 1 ? "" : "s"}, ${trainedEpochs} epoch${trainedEpochs === 1 ? "" : "s"} trained`
        : "done";
  } else if (num(p.global_epoch) && num(p.total_epochs) && p.total_epochs > 0) {
    fraction = Math.min(1, p.global_epoch / p.total_epochs);
    text = `epoch ${p.global_epoch} of ${p.total_epochs}`;
  } else if (num(totalPhases) && num(p.phase_index) && num(p.epoch) && num(p.epochs) && p.epochs > 0) {
    fraction = Math.min(1, (p.phase_index + p.epoch / p.epochs) / totalPhases);
    text = `phase ${p.phase_index + 1} of ${totalPhases}`;
  } else if (num(p.phase_index)) {
    text = `phase ${p.phase_index + 1}${p.phase ? ` (${p.phase})` : ""}, epoch ${p.epoch ?? 0} of ${p.epochs ?? "?"}`
      + ` in this phase; ${trainedEpochs} epoch${trainedEpochs === 1 ? "" : "s"} trained so far`;
  } else if (inTraining) {
    text = "starting";
  }
  if (inTraining && num(p.phase_index) && text && !text.startsWith("phase ")) {
    text += ` · phase ${p.phase_index + 1}${p.phase ? ` (${p.phase})` : ""}`;
  }
  return { fraction, text, phases: list };
}

// The whole job in [0, 1]: the catalog's stages in order, each an equal share, the current
// one by its own fraction (0 when unknown). NaN for a job that has not started.
export function overallFraction(job) {
  if (job.status === "succeeded") return 1;
  if (!job.stage || !STAGES.length) return job.status === "running" ? 0 : NaN;
  const i = STAGES.indexOf(job.stage);
  if (i < 0) return NaN;
  const f = stageFraction(job);
  return (i + (num(f) ? f : 0)) / STAGES.length;
}

// Kept for callers that want the current stage only.
export const jobFraction = (job) => (job.status === "succeeded" ? 1 : stageFraction(job));

// What the stage column says: a queued (or retried) job's last stage is history, not progress;
// a finished job has no stage.
export function stageLabel(job) {
  if (job.status === "running") {
    if (!job.stage) return "starting";
    const i = STAGES.indexOf(job.stage);
    return i >= 0 ? `${job.stage} (${i + 1} of ${STAGES.length})` : job.stage;
  }
  if (job.status === "queued") return job.attempt > 0 ? "waiting (will resume)" : "waiting";
  if (job.status === "succeeded") return "done";
  return job.stage ? `stopped in ${job.stage}` : "—";
}

export function progressCell(job) {
  if (job.status === "running" || job.status === "succeeded") return progressBar(overallFraction(job));
  return h("span", { class: "muted" }, "—");
}

// A modal confirmation (a <dialog>): resolves true when the user confirms.
export function confirmDialog({ title, message, confirm = "Confirm", cancel = "Keep", danger = true }) {
  return new Promise((resolve) => {
    const yes = h("button", { type: "button", class: danger ? "danger" : "", id: "confirm-yes" }, confirm);
    const no = h("button", { type: "button", class: "secondary", id: "confirm-no" }, cancel);
    const dialog = h("dialog", { class: "confirm", id: "confirm-dialog", "aria-labelledby": "confirm-title" },
      h("h2", { id: "confirm-title" }, title), h("p", {}, message), h("div", { class: "actions" }, no, yes));
    const done = (v) => { dialog.close(); dialog.remove(); resolve(v); };
    yes.addEventListener("click", () => done(true));
    no.addEventListener("click", () => done(false));
    dialog.addEventListener("cancel", (ev) => { ev.preventDefault(); done(false); });
    document.body.appendChild(dialog);
    dialog.showModal();
    no.focus();
  });
}

// A one-off note for the next page drawn (e.g. "Deleted …" on the job list after a delete).
let flashText = "";
export function setFlash(text) {
  flashText = text || "";
}
export function takeFlash() {
  const t = flashText;
  flashText = "";
  return t;
}
