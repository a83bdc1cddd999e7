// Entry point: hash routes #/jobs, #/jobs/<id>, #/new; sign-in when no key is stored.

import { ApiError, get, getKey, itemsOf, request, setKey } from "./api.js";
import { badge, h, progressCell, stageLabel, TERMINAL, when } from "./dom.js";
import { renderJob } from "./job.js";
import { renderForm } from "./form.js";
import { loadCatalog } from "./catalog.js";

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

function renderList() {
  const body = h("tbody", { id: "jobs-body" });
  const error = h("div", { class: "error-box" });
  const table = h("table", { class: "data", id: "jobs-table" },
    h("thead", {}, h("tr", {}, ["Name", "Status", "Stage", "Progress", "Created", "Id"].map((t) => h("th", {}, t)))),
    body);
  const empty = h("p", { class: "muted", id: "jobs-empty", hidden: true }, "No jobs yet. ",
    h("a", { href: "#/new" }, "Submit one."));
  view.replaceChildren(h("section", { class: "card" },
    h("div", { class: "controls" }, h("h1", {}, "Jobs"), h("a", { class: "button", href: "#/new" }, "New job")),
    error, table, empty));
  let timer = null;
  let stopped = false;
  async function refresh() {
    try {
      const jobs = itemsOf(await get("/jobs?limit=100"));
      error.textContent = "";
      body.replaceChildren(...jobs.map((j) => h("tr", { "data-job-id": j.id },
        h("td", {}, h("a", { href: `#/jobs/${j.id}` }, j.name || j.id)),
        h("td", {}, badge(j.status, j.outcome)),
        h("td", {}, stageLabel(j)),
        h("td", {}, progressCell(j)),
        h("td", {}, when(j.created_at)),
        h("td", { class: "muted arch" }, String(j.id)))));
      empty.hidden = jobs.length > 0;
      const active = jobs.some((j) => !TERMINAL.has(j.status));
      if (!stopped) timer = setTimeout(refresh, active ? 2000 : 8000);
    } catch (e) {
      error.textContent = String(e.message || e);
      if (!stopped) timer = setTimeout(refresh, 5000);
    }
  }
  refresh();
  return () => { stopped = true; clearTimeout(timer); };
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
  }
  else cleanup = renderList();
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
window.addEventListener("hashchange", route);
route();
