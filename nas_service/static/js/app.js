// Entry point: hash routes #/jobs, #/jobs/<id>, #/new, #/compare?jobs=a,b; sign-in when no
// key is stored. The key is shared by every tab; signing in or out in one tab does it in all.

import { ApiError, get, getKey, itemsOf, nextCursorOf, onKeyChange, request, setKey, withQuery } from "./api.js";
import { badge, h, progressCell, stageLabel, takeFlash, TERMINAL, when } from "./dom.js";
import { renderJob } from "./job.js";
import { renderForm } from "./form.js";
import { loadCatalog } from "./catalog.js";
import { compareIds, renderCompare } from "./compare.js";

const view = document.getElementById("view");
let cleanup = null;

function renderLogin(message) {
  document.getElementById("nav").hidden = true;
  const error = h("div", { class: "error-box", id: "login-error" }, message || "");
  const input = h("input", { type: "password", id: "api-key", name: "api-key", autocomplete: "off",
    placeholder: "API key", required: true });
  const form = h("form", { class: "card login", id: "login-form" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Paste an API key (create one with ", h("code", {}, "nas keys create"), ")."),
    input, error, h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setKey(input.value.trim());
    try {
      await request("GET", "/jobs?limit=1", { quiet: true });
      if (!location.hash || location.hash === "#/login") location.hash = "#/jobs";
      else route();
    } catch (e) {
      setKey(null);
      error.textContent = e instanceof ApiError && e.status === 401 ? "That key was not accepted." : String(e.message || e);
    }
  });
  view.replaceChildren(form);
  input.focus();
  return null;
}

const PAGE = 50;

function renderList() {
  const body = h("tbody", { id: "jobs-body" });
  const error = h("div", { class: "error-box" });
  const flash = takeFlash();
  const note = h("div", { class: "flash", id: "flash", role: "status", hidden: !flash }, flash);
  const picked = new Set();
  const compare = h("a", { class: "button disabled", id: "compare-jobs", href: "#/jobs", "aria-disabled": "true" },
    "Compare fronts");
  const more = h("button", { type: "button", class: "secondary", id: "jobs-more", hidden: true }, "Load more");
  const table = h("table", { class: "data", id: "jobs-table" },
    h("thead", {}, h("tr", {}, ["", "Name", "Status", "Stage", "Progress", "Created", "Id"].map((t) => h("th", {}, t)))),
    body);
  const empty = h("div", { class: "empty-state", id: "jobs-empty", hidden: true },
    h("p", {}, "No jobs yet."), h("a", { class: "button", href: "#/new" }, "Submit your first job"));
  view.replaceChildren(h("section", { class: "card" },
    h("div", { class: "controls" }, h("h1", {}, "Jobs"), h("a", { class: "button", href: "#/new" }, "New job"), compare,
      h("span", { class: "muted", id: "compare-hint" }, "tick two or more jobs to compare their fronts")),
    note, error, h("div", { class: "table-wrap" }, table), empty, more));
  let timer = null;
  let stopped = false;
  let pages = 1;
  let nextCursor = null;

  function updateCompare() {
    const ids = [...picked];
    const ok = ids.length >= 2;
    compare.classList.toggle("disabled", !ok);
    compare.setAttribute("aria-disabled", String(!ok));
    compare.href = ok ? `#/compare?jobs=${ids.join(",")}` : "#/jobs";
    compare.textContent = ok ? `Compare fronts (${ids.length})` : "Compare fronts";
  }
  compare.addEventListener("click", (ev) => { if (picked.size < 2) ev.preventDefault(); });

  async function load() {
    let jobs = [];
    let cursor = null;
    for (let i = 0; i < pages; i += 1) {
      const page = await get(withQuery(`/jobs?limit=${PAGE}`, { cursor }));
      jobs = jobs.concat(itemsOf(page));
      cursor = nextCursorOf(page);
      if (!cursor) break;
    }
    nextCursor = cursor;
    return jobs;
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const jobs = await load();
      if (stopped) return;
      error.textContent = "";
      body.replaceChildren(...jobs.map((j) => {
        const box = h("input", { type: "checkbox", class: "compare-pick", "data-job-id": j.id,
          "aria-label": `compare ${j.name || j.id}`, checked: picked.has(String(j.id)) });
        box.addEventListener("change", () => {
          if (box.checked) picked.add(String(j.id)); else picked.delete(String(j.id));
          updateCompare();
        });
        return h("tr", { "data-job-id": j.id },
          h("td", {}, box),
          h("td", {}, h("a", { href: `#/jobs/${j.id}` }, j.name || j.id)),
          h("td", {}, badge(j.status, j.outcome)),
          h("td", { class: "stage" }, stageLabel(j)),
          h("td", {}, progressCell(j)),
          h("td", {}, when(j.created_at)),
          h("td", { class: "muted arch" }, String(j.id)));
      }));
      empty.hidden = jobs.length > 0;
      more.hidden = !nextCursor;
      const active = jobs.some((j) => !TERMINAL.has(j.status));
      if (!stopped) timer = setTimeout(refresh, active ? 2000 : 8000);
    } catch (e) {
      if (e instanceof ApiError && e.status === 401) return;
      error.textContent = String(e.message || e);
      if (!stopped) timer = setTimeout(refresh, 5000);
    }
  }
  more.addEventListener("click", () => { pages += 1; refresh(); });
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
}

function renderNotFound(hash) {
  view.replaceChildren(h("section", { class: "card empty-state", id: "page-not-found" },
    h("h1", {}, "Page not found"), h("p", {}, "Nothing lives at ", h("code", {}, hash), "."),
    h("a", { class: "button", href: "#/jobs" }, "Back to the jobs")));
  return null;
}

async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  if (!getKey()) {
    cleanup = renderLogin();
    return;
  }
  try {
    await loadCatalog();  // job states, stages and every list a page shows
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;  // nas:unauthorized signs out
    view.replaceChildren(h("div", { class: "error-box" }, `Could not load the catalog: ${e.message || e}`));
    return;
  }
  document.getElementById("nav").hidden = false;
  const hash = location.hash || "#/jobs";
  const jobMatch = /^#\/jobs\/([^/]+)$/.exec(hash);
  if (jobMatch) cleanup = renderJob(view, decodeURIComponent(jobMatch[1]));
  else if (hash === "#/new") {
    renderForm(view).catch((e) => {
      view.replaceChildren(h("div", { class: "error-box" }, `Could not load the catalog: ${e.message || e}`));
    });
  } else if (hash === "#/compare" || hash.startsWith("#/compare?")) cleanup = renderCompare(view, compareIds(hash));
  else if (hash === "#/jobs" || hash === "#/" || hash === "#") cleanup = renderList();
  else cleanup = renderNotFound(hash);
}

document.getElementById("sign-out").addEventListener("click", () => {
  setKey(null);
  location.hash = "#/jobs";
  route();
});
document.addEventListener("nas:unauthorized", () => {
  setKey(null);
  if (cleanup) cleanup();
  cleanup = renderLogin("Your key was rejected; sign in again.");
});
// Another tab signed in or out: follow it.
onKeyChange((key) => {
  if (!key) {
    if (cleanup) cleanup();
    cleanup = renderLogin("Signed out (in another tab).");
  } else route();
});
window.addEventListener("hashchange", route);
route();
