// Fetch wrapper for /api/v1: Bearer key from sessionStorage, problem+json errors, ETags.

const PREFIX = "/api/v1";
const KEY_NAME = "nas.apiKey";

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

export function getKey() {
  return sessionStorage.getItem(KEY_NAME);
}

export function setKey(key) {
  if (key) sessionStorage.setItem(KEY_NAME, key);
  else sessionStorage.removeItem(KEY_NAME);
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
export async function request(method, path, { body, headers = {}, raw = false, quiet = false } = {}) {
  const h = { Accept: "application/json", ...headers };
  const key = getKey();
  if (key) h.Authorization = `Bearer ${key}`;
  const init = { method, headers: h };
  if (body !== undefined) {
    h["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(PREFIX + path, init);
  if (response.status === 401) {
    const problem = await problemOf(response);
    if (!quiet) document.dispatchEvent(new CustomEvent("nas:unauthorized", { detail: problem }));
    throw new ApiError(401, problem);
  }
  if (!response.ok && response.status !== 304) throw new ApiError(response.status, await problemOf(response));
  if (raw) return response;
  if (response.status === 204 || response.status === 304) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path) => request("GET", path);
export const post = (path, body) => request("POST", path, { body });

// A paginated answer ({items: [...]}) or a bare list, as a list.
export function itemsOf(page) {
  if (Array.isArray(page)) return page;
  if (page && typeof page === "object") {
    for (const k of ["items", "data", "results"]) if (Array.isArray(page[k])) return page[k];
  }
  return [];
}

export function nextCursorOf(page) {
  if (!page || typeof page !== "object" || Array.isArray(page)) return null;
  return page.next_cursor || page.next || null;
}

// GET with If-None-Match; returns {changed, data, etag}.
export async function getWithEtag(path, etag) {
  const headers = etag ? { "If-None-Match": etag } : {};
  const response = await request("GET", path, { headers, raw: true });
  if (response.status === 304) return { changed: false, data: null, etag };
  return { changed: true, data: await response.json(), etag: response.headers.get("ETag") };
}

// Download an exported subnet; the server answers 202 + Retry-After while it is being made.
export async function downloadSubnet(candidateId, format, onWaiting) {
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
      || `subnet-${candidateId}.${{ weights: "pt", torchscript: "ts.pt", onnx: "onnx" }[format] || format}`;
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
