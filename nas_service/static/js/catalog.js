// The catalog (GET /api/v1/catalog): every name a job spec may use, by kind. The dashboard lists
// no such names itself; it reads them here, once per page load.

import { get } from "./api.js";
import { applyJobStates } from "./dom.js";

let pending = null;

export function loadCatalog() {
  if (!pending) {
    pending = get("/catalog").then((c) => {
      applyJobStates(c.job || {});
      return c.kinds;
    }).catch((e) => { pending = null; throw e; });
  }
  return pending;
}

export function entries(catalog, kind) {
  return (catalog && catalog[kind] && catalog[kind].entries) || [];
}

export function names(catalog, kind, filter = () => true) {
  return entries(catalog, kind).filter(filter).map((e) => e.name);
}

export function entry(catalog, kind, name) {
  return entries(catalog, kind).find((e) => e.name === name) || null;
}

// Objective labels that say which split an accuracy is measured on, from the catalog.
export function objectiveLabels(catalog) {
  return Object.fromEntries(entries(catalog, "objective").map((e) => [e.name, e.label || e.name]));
}
