// Job page: header with status and actions, Pareto panel, training curves, sampled-FLOPs
// histogram, event log. Polls without reloading and stops once the job has ended.

import { ApiError, deleteWhenStopped, get, post, Tail } from "./api.js";
import { binValues, histogram, isNum, lines } from "./charts.js";
import { badge, confirmDialog, h, overallFraction, progressBar, setFlash, STAGES, stageFraction, stageLabel,
  TERMINAL, trainingProgress, when } from "./dom.js";
import { num, seconds } from "./format.js";
import { ensureCatalog, ParetoPanel } from "./pareto.js";

const POLL_MS = 1500;

// Turn the latest epoch's metrics into histogram bins of sampled FLOPs, whatever form they use.
export function flopsBins(rows) {
  for (let i = rows.length - 1; i >= 0; i -= 1) {
    const m = rows[i].metrics || {};
    for (const key of ["flops_hist", "flops_histogram", "sampled_flops_hist"]) {
      const v = m[key];
      if (Array.isArray(v) && v.length && typeof v[0] === "object") return v;
      if (v && Array.isArray(v.edges) && Array.isArray(v.counts)) {
        return v.counts.map((count, j) => ({ lo: v.edges[j], hi: v.edges[j + 1], count }));
      }
    }
    for (const key of ["sampled_flops", "flops_samples"]) {
      if (Array.isArray(m[key]) && m[key].length) return binValues(m[key], 20);
    }
  }
  return [];
}

// Numbers in a metrics row, nested objects flattened to dotted keys ("losses.largest").
export function flatMetrics(m, prefix = "", out = {}) {
  for (const [k, v] of Object.entries(m || {})) {
    if (isNum(v)) out[prefix + k] = v;
    else if (v && typeof v === "object" && !Array.isArray(v) && !/hist/.test(k)) flatMetrics(v, `${prefix}${k}.`, out);
  }
  return out;
}

// Bookkeeping the trainer reports alongside the metrics (schedule position, counters, the
// process id, timings): not curves.
const NOT_CURVES = new Set(["phase_index", "epochs", "epoch", "step", "global_step", "global_epoch",
  "total_epochs", "rollbacks", "worker_pid", "seconds", "resumed_from"]);

// "losses.largest" -> group "losses", series "largest";
// "accuracy.smallest.accuracy" -> group "accuracy.accuracy", series "smallest".
export function metricGroup(key) {
  const parts = key.split(".");
  if (parts.length >= 3) return [`${parts[0]}.${parts[parts.length - 1]}`, parts.slice(1, -1).join(".")];
  if (parts.length === 2) return [parts[0], parts[1]];
  return [key, key];
}

function groupsOf(rows) {
  const groups = new Map();
  for (const r of rows) {
    for (const k of Object.keys(r.flat)) {
      if (NOT_CURVES.has(k)) continue;
      const [g] = metricGroup(k);
      if (!groups.has(g)) groups.set(g, new Set());
      groups.get(g).add(k);
    }
  }
  return [...groups.keys()].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b)).map((g) => [g, [...groups.get(g)].sort()]);
}

function rank(group) {
  if (group === "losses") return 0;
  if (/loss/.test(group)) return 2;
  if (/acc/.test(group)) return 1;
  return 3;
}

function stageText(job) {
  const p = job.progress && typeof job.progress === "object" ? job.progress : {};
  const parts = [];
  for (const [k, v] of Object.entries(p)) {
    if (k === "stage") continue;
    if (isNum(v)) parts.push(`${k} ${num(v)}`);
    else if (typeof v === "string") parts.push(`${k} ${v}`);
  }
  return parts.join(" · ");
}

export function renderJob(view, jobId) {
  const title = h("h1", { id: "job-title" }, jobId);
  const status = h("span", { id: "job-status" });
  const stage = h("span", { id: "job-stage" });
  const overall = h("span", { id: "job-overall" });
  const progress = h("span", { id: "job-progress" });
  const training = h("span", { id: "job-training" });
  const trainingText = h("span", { id: "job-training-text", class: "muted" });
  const phaseList = h("ol", { id: "job-phases", class: "phases" });
  const details = h("span", { id: "job-details", class: "muted" });
  const timings = h("dl", { class: "kv", id: "job-timings" });
  const error = h("div", { class: "error-box", id: "job-error" });
  const cancel = h("button", { type: "button", class: "danger", id: "cancel-job", disabled: true }, "Cancel");
  const retry = h("button", { type: "button", class: "secondary", id: "retry-job", disabled: true }, "Retry");
  const remove = h("button", { type: "button", class: "danger secondary", id: "delete-job", disabled: true }, "Delete");
  const removeNote = h("div", { class: "muted", id: "delete-status", "aria-live": "polite" });
  const pollNote = h("span", { class: "muted", id: "poll-state" }, "live");
  const pareto = new ParetoPanel(jobId);
  const metricSel = h("select", { id: "metric-key", "aria-label": "curve" });
  const curves = h("div", { class: "chart", id: "curves-plot" });
  const hist = h("div", { class: "chart", id: "flops-hist" });
  const events = h("ul", { id: "events" });
  const metricTail = new Tail(`/jobs/${jobId}/metrics?limit=500`, (r) => r.seq, "after");
  const eventTail = new Tail(`/jobs/${jobId}/events?limit=200`, (e) => e.id, "after");
  let metrics = [];
  let eventList = [];
  let job = null;
  let timer = null;
  let stopped = false;

  const stageRow = h("div", { class: "controls", id: "job-stage-row" },
    h("span", {}, "stage: ", stage), h("span", { class: "muted" }, "this stage "), progress, details);
  const content = h("div", { id: "job-content" },
    h("section", { class: "card" },
      h("div", { class: "controls" }, title, status, h("span", { class: "actions" }, cancel, retry, remove), pollNote),
      removeNote,
      h("div", { class: "progress-grid" },
        h("span", { class: "muted" }, "whole job"), overall,
        h("span", { class: "muted" }, "training (all phases)"), h("span", {}, training, " ", trainingText)),
      phaseList, stageRow, error, timings),
    pareto.element,
    h("div", { class: "grid2" },
      h("section", { class: "card" }, h("div", { class: "controls" }, h("h2", {}, "Training curves"), metricSel), curves),
      h("section", { class: "card" }, h("h2", {}, "Sampled FLOPs (latest epoch)"), hist)),
    h("section", { class: "card" }, h("h2", {}, "Events"), h("div", { class: "events" }, events)));
  view.replaceChildren(content);

  metricSel.addEventListener("change", drawCurves);

  async function act(button, path) {
    button.disabled = true;
    try {
      await post(path);
      error.textContent = "";
      delete error.dataset.code;
      schedule(0);
    } catch (e) {
      error.textContent = e instanceof ApiError ? e.message : String(e);
      button.disabled = false;
    }
  }
  cancel.addEventListener("click", async () => {
    const ok = await confirmDialog({
      title: "Cancel this job?",
      message: `“${(job && job.name) || jobId}” stops ${job && job.status === "running" ? "within seconds; what it trained is kept for a retry" : "before it starts"}.`,
      confirm: "Cancel job", cancel: "Keep it running" });
    if (ok) act(cancel, `/jobs/${jobId}/cancel`);
  });
  retry.addEventListener("click", () => act(retry, `/jobs/${jobId}/retry`));

  // Delete: a running job is cancelled first (the server answers 409 job_running with
  // Retry-After until it has stopped); the page says so and tries again, for a while.
  let deleting = false;
  let left = false;
  remove.addEventListener("click", async () => {
    const label = (job && job.name) || jobId;
    const running = job && job.status === "running";
    const ok = await confirmDialog({
      title: "Delete this job?",
      message: `“${label}” is removed for good: its candidates, front, metrics, events and files.`
        + (running ? " It is running: it is cancelled first and deleted once it has stopped." : ""),
      confirm: "Delete job", cancel: "Keep it" });
    if (!ok) return;
    deleting = true;
    remove.disabled = true;
    cancel.disabled = true;
    error.textContent = "";
    removeNote.textContent = "deleting…";
    try {
      const done = await deleteWhenStopped(`/jobs/${jobId}`, {
        stillWanted: () => !left,
        onWaiting: (wait, attempt) => {
          removeNote.dataset.waiting = "true";
          removeNote.textContent = `The job is running: it is being cancelled, and is deleted once it has stopped (trying again in ${num(wait)} s, attempt ${attempt}).`;
          schedule(0);  // show the cancel taking effect meanwhile
        },
      });
      if (!done) return;
      left = true;  // nothing to poll any more
      setFlash(`Deleted “${label}”.`);
      location.hash = "#/jobs";
    } catch (e) {
      delete removeNote.dataset.waiting;
      removeNote.textContent = "";
      if (e instanceof ApiError && e.status === 404) {
        left = true;
        setFlash(`“${label}” was already deleted.`);
        location.hash = "#/jobs";
        return;
      }
      error.textContent = e instanceof ApiError && e.code === "job_running"
        ? `The job is still running, so it was not deleted: cancel it, wait until it shows cancelled, then delete it. (${e.message})`
        : `Not deleted: ${e instanceof ApiError ? e.reasons.join("; ") : String(e.message || e)}`;
      error.dataset.code = (e instanceof ApiError && e.code) || "error";
    } finally {
      deleting = false;
      if (job) drawHeader();
    }
  });

  function showNotFound() {
    stopped = true;
    clearTimeout(timer);
    view.replaceChildren(h("section", { class: "card empty-state", id: "job-not-found" },
      h("h1", {}, "Job not found"),
      h("p", {}, "There is no job ", h("code", {}, jobId), " for this key: it may have been deleted, or it belongs to another key."),
      h("a", { class: "button", href: "#/jobs" }, "Back to the jobs")));
  }

  function drawHeader() {
    title.textContent = job.name || job.id;
    status.replaceChildren(badge(job.status, job.outcome));
    stage.textContent = stageLabel(job);
    overall.replaceChildren(progressBar(overallFraction(job), "whole job"));
    const tp = trainingProgress(job, metrics);
    training.replaceChildren(progressBar(tp.fraction === null ? NaN : tp.fraction, "training"));
    trainingText.textContent = tp.text;
    phaseList.replaceChildren(...tp.phases.map((ph) => h("li", { "data-phase": ph.name,
      class: ph.epochs && ph.done >= ph.epochs ? "done" : "current" },
    `${ph.name}: ${ph.done} of ${ph.epochs ?? "?"} epoch${ph.epochs === 1 ? "" : "s"}`)));
    // The current stage's bar is for a running job only: a finished job has no stage.
    stageRow.hidden = job.status !== "running";
    progress.replaceChildren(progressBar(stageFraction(job), "this stage"));
    details.textContent = job.status === "running" ? stageText(job) : "";
    if (!deleting && !error.dataset.code) error.textContent = job.error || "";
    cancel.disabled = deleting || TERMINAL.has(job.status) || job.cancel_requested === true;
    remove.disabled = deleting;
    retry.disabled = !["failed", "cancelled"].includes(job.status);
    const t = job.timings && typeof job.timings === "object" ? job.timings : {};
    const rows = [["created", when(job.created_at)], ["started", when(job.started_at)],
      ["finished", when(job.finished_at)], ["attempt", job.attempt ?? "—"], ["space", job.space_id || "—"]];
    if (isNum(job.elapsed_s)) rows.push(["elapsed", seconds(job.elapsed_s)]);
    for (const st of STAGES) if (isNum(t[st])) rows.push([`${st}`, seconds(t[st])]);
    for (const [k, v] of Object.entries(t)) if (!STAGES.includes(k) && isNum(v)) rows.push([k, seconds(v)]);
    timings.replaceChildren(...rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, String(v))]));
  }

  function drawCurves() {
    const groups = groupsOf(metrics);
    const current = metricSel.value;
    const names = groups.map(([g]) => g);
    if (names.join() !== [...metricSel.options].map((o) => o.value).join()) {
      metricSel.replaceChildren(...names.map((g) => h("option", { value: g }, g)));
      if (names.includes(current)) metricSel.value = current;
    }
    const keys = (groups.find(([g]) => g === metricSel.value) || [null, []])[1];
    const series = keys.map((k) => ({
      name: metricGroup(k)[1],
      points: metrics.map((r, i) => ({ x: (isNum(r.seq) ? r.seq : i) + 1, y: r.flat[k] ?? null })),
    }));
    lines(curves, series, { xLabel: "epoch (all phases)", yLabel: metricSel.value || "",
      emptyText: "No training metrics yet." });
    histogram(hist, flopsBins(metrics), { xLabel: "FLOPs (MACs)", emptyText: "No sampled FLOPs yet." });
  }

  function drawEvents(list) {
    events.replaceChildren(...list.slice().reverse().map((e) => h("li", { "data-kind": e.kind || "" },
      `${when(e.ts || e.created_at)}  ${e.kind || ""}`,
      e.from_status || e.to_status ? `  ${e.from_status || ""} → ${e.to_status || ""}` : "",
      e.message ? `  ${e.message}` : "")));
  }

  async function tick() {
    if (left) return;
    try {
      job = await get(`/jobs/${jobId}`);
      await ensureCatalog();  // the objective list and labels come from the catalog
      pareto.setJob(job);
      const fresh = await metricTail.poll();
      if (fresh.length) {
        metrics = metrics.concat(fresh.map((r) => ({ ...r, flat: flatMetrics(r.metrics) })))
          .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
        drawCurves();
      } else if (!curves.firstChild) {
        drawCurves();
      }
      drawHeader();
      await pareto.refresh();
      const newEvents = await eventTail.poll();
      if (newEvents.length) {
        eventList = eventList.concat(newEvents).sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
        drawEvents(eventList);
      }
      if (TERMINAL.has(job.status)) {
        stopped = true;
        pollNote.textContent = `job ${job.status}; updates stopped`;
        pollNote.dataset.stopped = "true";
        return;
      }
      pollNote.textContent = "live";
      delete pollNote.dataset.stopped;
    } catch (e) {
      if (left || (deleting && e instanceof ApiError && e.status === 404)) return;  // deleted
      if (e instanceof ApiError && (e.status === 404 || e.status === 422)) {
        showNotFound();  // an unknown (or malformed) id: nothing to poll for
        return;
      }
      if (e instanceof ApiError && e.status === 401) return;  // signed out
      pollNote.textContent = `retrying: ${e.message || e}`;
    }
    schedule(POLL_MS);
  }

  function schedule(ms) {
    clearTimeout(timer);
    if (ms === 0) stopped = false;
    if (!stopped) timer = setTimeout(tick, ms);
  }

  tick();
  return () => { stopped = true; left = true; clearTimeout(timer); };
}
