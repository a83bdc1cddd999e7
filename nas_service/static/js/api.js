// Fetch wrapper for /api/v1: Bearer key kept in localStorage (shared by every tab of this
// origin; signing out in one tab signs out all), problem+json errors, ETags, cursor paging.

const PREFIX = "/api/v1";
const KEY_NAME = "nas.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  // Seconds the server asks to wait before trying again (Retry-After), or null.
  get retryAfter() {
    const v = Number(this.headers && this.headers.get ? this.headers.get("Retry-After") : NaN);
    return Number.isFinite(v) && v >= 0 ? v : null;
  }

  // The problem's stable code ("job_running", "in_use", ...), or "".
  get code() {
    return typeof this.problem.code === "string" ? this.problem.code : "";
  }

  // Every reason the problem gives: its detail and each errors[].reason not already in it.
  get reasons() {
    const out = [this.message];
    for (const e of this.fieldErrors) if (e && e.reason && !out.includes(e.reason)) out.push(e.reason);
    return out.filter(Boolean);
  }

  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

function store() {
  try {
    return window.localStorage;
  } catch (_) {
    return window.sessionStorage;  // storage disabled for this origin: this tab only
  }
}

export function getKey() {
  return store().getItem(KEY_NAME);
}

export function setKey(key) {
  if (key) store().setItem(KEY_NAME, key);
  else store().removeItem(KEY_NAME);
  // An older page version kept the key per tab: never leave a copy behind there.
  try { sessionStorage.removeItem(KEY_NAME); } catch (_) { /* no storage */ }
}

// Calls fn(newKey) when another tab signs in or out.
export function onKeyChange(fn) {
  window.addEventListener("storage", (ev) => {
    if (ev.key === KEY_NAME || ev.key === null) fn(getKey());
  });
}

async function problemOf(response) {
  try {
    const body = await response.json();
    if (body && typeof body === "object") return body;
  } catch (_) {
    // Not JSON: fall through to a stand-in built from the status line.
  }
  return { status: response.status, title: response.statusText || "error" };
}

// quiet: a 401 is the caller's business (sign-in) rather than a reason to sign out.
// body: a plain object is sent as JSON; a FormData as multipart (the browser sets the boundary).
export async function request(method, path, { body, headers = {}, raw = false, quiet = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  const init = { method, headers: h };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    h["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(PREFIX + path, init);
  if (response.status === 401) {
    const problem = await problemOf(response);
    if (!quiet) document.dispatchEvent(new CustomEvent("nas:unauthorized", { detail: problem }));
    throw new ApiError(401, problem);
  }
  if (!response.ok && response.status !== 304) {
    const error = new ApiError(response.status, await problemOf(response));
    error.headers = response.headers;
    throw error;
  }
  if (raw) return response;
  if (response.status === 204 || response.status === 304) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, { body });
export const del = (path) => request("DELETE", path);

const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

// DELETE that waits out a job_running answer (409 + Retry-After: the server has requested the
// job's cancel and deletes it once it has stopped). onWaiting(seconds, attempt) is told of each
// wait; gives up after `tries` answers (the last ApiError is thrown) or when stillWanted()
// turns false (returns false). Returns true once deleted.
export async function deleteWhenStopped(path, { onWaiting, tries = 30, stillWanted = () => true } = {}) {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await del(path);
      return true;
    } catch (e) {
      const waiting = e instanceof ApiError && e.status === 409 && e.code === "job_running";
      if (!waiting || attempt >= tries) throw e;
      const wait = Math.min(Math.max(e.retryAfter ?? 2, 0.2), 30);
      if (onWaiting) onWaiting(wait, attempt);
      await sleep(wait);
      if (!stillWanted()) return false;
    }
  }
}

// A paginated answer ({items: [...]}) or a bare list, as a list.
export function itemsOf(page) {
  if (Array.isArray(page)) return page;
  if (page && typeof page === "object") {
    for (const k of ["items", "data", "results"]) if (Array.isArray(page[k])) return page[k];
  }
  return [];
}

// The query string that fetches the page after `page`, or null at the end. The API pages by
// an opaque `next_cursor` (?cursor=); the older `next_offset` / `next_after` are read too.
export function nextQueryOf(page) {
  if (!page || typeof page !== "object" || Array.isArray(page)) return null;
  if (typeof page.next_cursor === "string" && page.next_cursor) return { cursor: page.next_cursor };
  if (Number.isFinite(page.next_offset)) return { offset: String(page.next_offset) };
  return null;
}

export function nextCursorOf(page) {
  const q = nextQueryOf(page);
  return q && q.cursor ? q.cursor : null;
}

export function withQuery(path, params) {
  const [base, qs] = path.split("?");
  const q = new URLSearchParams(qs || "");
  for (const [k, v] of Object.entries(params || {})) {
    if (v === undefined || v === null) q.delete(k);
    else q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `${base}?${s}` : base;
}

// Every item of a paged list: follows next_cursor until the end (at most maxPages pages).
// Returns {items, complete}: complete is false when it stopped at maxPages.
export async function getAll(path, { maxPages = 50 } = {}) {
  let items = [];
  let url = path;
  for (let i = 0; i < maxPages; i += 1) {
    const page = await get(url);
    items = items.concat(itemsOf(page));
    const next = nextQueryOf(page);
    if (!next) return { items, complete: true };
    url = withQuery(path, next);
  }
  return { items, complete: false };
}

// GET with If-None-Match; returns {changed, data, etag}.
export async function getWithEtag(path, etag) {
  const headers = etag ? { "If-None-Match": etag } : {};
  const response = await request("GET", path, { headers, raw: true });
  if (response.status === 304) return { changed: false, data: null, etag };
  return { changed: true, data: await response.json(), etag: response.headers.get("ETag") };
}

// Download an exported subnet; the server answers 202 + Retry-After while it is being made.
export async function downloadSubnet(candidateId, format, onWaiting, suffix) {
  const path = `/candidates/${encodeURIComponent(candidateId)}/subnet?format=${encodeURIComponent(format)}`;
  for (let attempt = 0; attempt < 600; attempt += 1) {
    const response = await request("GET", path, { raw: true, headers: { Accept: "*/*" } });
    if (response.status === 202) {
      const wait = Math.min(Math.max(Number(response.headers.get("Retry-After")) || 1, 0.2), 10);
      if (onWaiting) onWaiting(wait);
      await new Promise((r) => setTimeout(r, wait * 1000));
      continue;
    }
    const blob = await response.blob();
    const name = filenameOf(response.headers.get("Content-Disposition"))
      || `subnet-${candidateId}.${suffix || format}`;
    const url = URL.createObjectURL(blob);
    const a = document.createElement("a");
    a.href = url;
    a.download = name;
    document.body.appendChild(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
    return name;
  }
  throw new Error("the export is taking too long; try again later");
}

function filenameOf(disposition) {
  if (!disposition) return null;
  const m = /filename="?([^";]+)"?/i.exec(disposition);
  return m ? m[1].split(/[\\/]/).pop() : null;
}

// Follows an append-only list (events, epoch metrics) across polls: each poll asks from the
// last cursor the server gave (the page it ended on, again) and keeps only rows not seen yet,
// by key. `after(lastKey)` adds the older API's ?after= as well; a server that pages by
// cursor ignores it, one that does not ignores the cursor.
export class Tail {
  constructor(path, keyOf, afterParam) {
    this.path = path;
    this.keyOf = keyOf;
    this.afterParam = afterParam;
    this.cursor = null;
    this.seen = new Set();
    this.last = null;
  }

  async poll({ maxPages = 20 } = {}) {
    const fresh = [];
    for (let i = 0; i < maxPages; i += 1) {
      const params = { cursor: this.cursor };
      if (this.afterParam && this.last !== null) params[this.afterParam] = this.last;
      const page = await get(withQuery(this.path, params));
      for (const item of itemsOf(page)) {
        const k = this.keyOf(item);
        if (this.seen.has(k)) continue;
        this.seen.add(k);
        fresh.push(item);
        if (typeof k === "number" && (this.last === null || k > this.last)) this.last = k;
      }
      const next = nextCursorOf(page);
      if (!next || next === this.cursor) break;
      this.cursor = next;
    }
    return fresh;
  }
}
