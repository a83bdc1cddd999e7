// Submit-job form. The API is the validator: its 422 errors [{field, reason}] are shown next to
// the matching inputs (field paths such as "search.objectives[1].bound").

import { ApiError, del, get, getAll, itemsOf, post, request } from "./api.js";
import { entries, loadCatalog, names } from "./catalog.js";
import { confirmDialog, h } from "./dom.js";

// Objective names and their directions: filled from the catalog before the form is drawn.
let OBJECTIVES = [];
let DIRECTIONS = {};

function field(label, path, input, hint) {
  input.dataset.field = path;
  input.id = `f-${path.replace(/[^a-z0-9]+/gi, "-")}`;
  return h("div", {},
    h("label", { for: input.id }, label),
    input,
    hint ? h("div", { class: "muted" }, hint) : null,
    h("div", { class: "field-error", "data-error-for": path }));
}

function select(options, value) {
  return h("select", {}, options.map((o) => {
    const [v, text] = Array.isArray(o) ? o : [o, o];
    return h("option", { value: v, selected: v === value }, text);
  }));
}

function objectiveRow(list, index, init = {}) {
  const name = select(OBJECTIVES, init.name || "accuracy");
  const direction = select(["max", "min"], init.direction || DIRECTIONS[init.name || "accuracy"]);
  name.addEventListener("change", () => { direction.value = DIRECTIONS[name.value]; });
  const bound = h("input", { type: "text", inputmode: "decimal", placeholder: "bound (optional)",
    value: init.bound ?? "" });
  const remove = h("button", { type: "button", class: "secondary small" }, "Remove");
  const row = h("div", { class: "objective-row", "data-objective": "" },
    field("Objective", `search.objectives[${index}].name`, name),
    field("Direction", `search.objectives[${index}].direction`, direction),
    field("Bound", `search.objectives[${index}].bound`, bound),
    h("div", {}, h("label", {}, "\u00a0"), remove));
  remove.addEventListener("click", () => { row.remove(); renumber(list); });
  row.read = () => {
    const o = { name: name.value, direction: direction.value };
    const b = bound.value.trim();
    // Send what was typed; the API says whether it is a number, so the message is the API's.
    if (b !== "") o.bound = Number.isNaN(Number(b)) ? b : Number(b);
    return o;
  };
  return row;
}

function renumber(list) {
  [...list.children].forEach((row, i) => {
    for (const node of row.querySelectorAll("[data-field], [data-error-for]")) {
      for (const attr of ["data-field", "data-error-for"]) {
        const v = node.getAttribute(attr);
        if (v) node.setAttribute(attr, v.replace(/objectives\[\d+\]/, `objectives[${i}]`));
      }
    }
  });
}

function parseJson(text, fallback) {
  const t = text.trim();
  if (!t) return fallback;
  try { return JSON.parse(t); } catch (_) { return undefined; }
}

// "body.search.objectives.1.bound" and "search.objectives[1].bound" name the same input.
export function normalizeField(path) {
  return String(path || "")
    .replace(/^body[.[]?/, "")
    .replace(/\[(\d+)\]/g, ".$1")
    .replace(/^\./, "");
}

function showErrors(form, errors, general) {
  for (const n of form.querySelectorAll(".invalid")) n.classList.remove("invalid");
  for (const n of form.querySelectorAll("[data-error-for]")) n.textContent = "";
  general.textContent = "";
  const targets = new Map();
  for (const n of form.querySelectorAll("[data-error-for]")) targets.set(normalizeField(n.dataset.errorFor), n);
  const unplaced = [];
  for (const e of errors) {
    let key = normalizeField(e.field);
    // Fall back to the closest enclosing field ("search.objectives.1" -> its name input).
    while (key && !targets.has(key)) {
      if (targets.has(`${key}.name`)) { key = `${key}.name`; break; }
      key = key.includes(".") ? key.slice(0, key.lastIndexOf(".")) : "";
    }
    const slot = key ? targets.get(key) : null;
    if (!slot) { unplaced.push(`${e.field || "request"}: ${e.reason}`); continue; }
    slot.textContent = slot.textContent ? `${slot.textContent}; ${e.reason}` : e.reason;
    const input = form.querySelector(`[data-field="${slot.dataset.errorFor}"]`);
    if (input) input.classList.add("invalid");
  }
  if (unplaced.length) general.textContent = unplaced.join("\n");
}

export async function renderForm(view) {
  const catalog = await loadCatalog();
  OBJECTIVES = names(catalog, "objective");
  DIRECTIONS = Object.fromEntries(entries(catalog, "objective").map((e) => [e.name, e.direction]));
  const general = h("div", { class: "error-box", id: "form-error" });
  const name = h("input", { type: "text", placeholder: "my search" });
  const space = select(names(catalog, "space"), "mlp");
  const spaceOptions = h("textarea", { rows: 2, cols: 40, placeholder: "{}" });
  // The options of the chosen space, from GET /search-spaces (every space lists its own).
  const spaceHint = h("span", { id: "space-options-hint" }, "e.g. {\"resolutions\": [8]}");
  let spaceInfo = [];
  const showSpaceHint = () => {
    const s = spaceInfo.find((x) => x.id === space.value);
    if (!s || !s.default_spec) return;
    const bound = new Set(s.data_bound || []);
    const keys = Object.keys(s.default_spec).filter((k) => k !== "id" && !bound.has(k));
    spaceHint.textContent = `${s.id} options: ${keys.join(", ") || "none"}`
      + (bound.size ? `; set from the data: ${[...bound].join(", ")}` : "")
      + "; any left out is fitted to the dataset or kept at its default";
  };
  space.addEventListener("change", showSpaceHint);
  getAll("/search-spaces").then(({ items }) => { spaceInfo = items; showSpaceHint(); }).catch(() => {});
  const dataset = select(names(catalog, "dataset", (e) => e.builtin), "digits");
  // Uploaded datasets: picked from this key's list, or uploaded here (formats from the catalog).
  const datasetId = h("select", { id: "dataset-id" }, h("option", { value: "" }, "— none: use the built-in dataset —"));
  const uploadFormats = entries(catalog, "dataset").filter((e) => !e.builtin && e.suffix);
  const file = h("input", { type: "file", id: "dataset-file", accept: uploadFormats.map((e) => e.suffix).join(",") });
  const uploadName = h("input", { type: "text", id: "dataset-name", placeholder: "name (default: the file name)" });
  const uploadButton = h("button", { type: "button", class: "secondary small", id: "upload-dataset" }, "Upload");
  const uploadNote = h("div", { class: "muted", id: "upload-status", "aria-live": "polite" });
  const uploadError = h("div", { class: "field-error", "data-error-for": "upload" });
  const describe = (d) => {
    const info = d.info || {};
    const facts = Object.entries(info).filter(([, v]) => ["number", "string"].includes(typeof v)
      || (Array.isArray(v) && v.every((x) => typeof x === "number")))
      .slice(0, 5).map(([k, v]) => `${k} ${Array.isArray(v) ? v.join("×") : typeof v === "number" ? v.toLocaleString() : v}`);
    return `${d.name} (${d.format}${facts.length ? `; ${facts.join(", ")}` : ""})`;
  };
  // This key's uploaded datasets, each with a delete button (refused by the server, with the
  // jobs named, while a job uses it).
  const datasetList = h("ul", { class: "datasets", id: "datasets-list" });
  const datasetsEmpty = h("p", { class: "muted", id: "datasets-empty" }, "No uploaded datasets yet.");
  const syncEmpty = () => { datasetsEmpty.hidden = datasetList.children.length > 0; };
  const deleteDataset = async (d, item, button, reason) => {
    const ok = await confirmDialog({ title: "Delete this dataset?",
      message: `“${d.name}” and its stored file are removed for good. Jobs that use it must be deleted first.`,
      confirm: "Delete dataset", cancel: "Keep it" });
    if (!ok) return;
    button.disabled = true;
    reason.textContent = "";
    try {
      await del(`/datasets/${encodeURIComponent(d.id)}`);
      item.remove();
      const option = [...datasetId.options].find((o) => o.value === String(d.id));
      if (option) {
        if (datasetId.value === option.value) datasetId.value = "";
        option.remove();
      }
      syncEmpty();
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        item.remove();
        syncEmpty();
        return;
      }
      reason.textContent = e instanceof ApiError ? `Not deleted: ${e.reasons.join("; ")}` : String(e.message || e);
      reason.dataset.code = (e instanceof ApiError && e.code) || "error";
      button.disabled = false;
    }
  };
  const addDataset = (d) => {
    if ([...datasetId.options].some((o) => o.value === String(d.id))) return;
    datasetId.appendChild(h("option", { value: d.id }, describe(d)));
    const button = h("button", { type: "button", class: "danger secondary small delete-dataset",
      "data-dataset-id": d.id, "aria-label": `delete dataset ${d.name}` }, "Delete");
    const reason = h("div", { class: "field-error dataset-error", "aria-live": "polite" });
    const item = h("li", { "data-dataset-id": d.id }, h("span", {}, describe(d)), " ", button, reason);
    button.addEventListener("click", () => deleteDataset(d, item, button, reason));
    datasetList.appendChild(item);
    syncEmpty();
  };
  getAll("/datasets").then(({ items }) => items.forEach(addDataset)).catch(() => {});
  uploadButton.addEventListener("click", async () => {
    uploadError.textContent = "";
    if (!file.files.length) {
      uploadError.textContent = `choose a file first (${uploadFormats.map((e) => `${e.suffix}: ${e.name}`).join(", ")})`;
      return;
    }
    const data = new FormData();
    data.append("file", file.files[0]);
    if (uploadName.value.trim()) data.append("name", uploadName.value.trim());
    uploadButton.disabled = true;
    uploadNote.textContent = `uploading ${file.files[0].name} (${file.files[0].size.toLocaleString()} bytes)…`;
    try {
      const d = await request("POST", "/datasets", { body: data });
      addDataset(d);
      datasetId.value = String(d.id);
      uploadNote.textContent = `uploaded: ${describe(d)}; the job will use it`;
      uploadNote.dataset.datasetId = d.id;
    } catch (e) {
      uploadNote.textContent = "";
      uploadError.textContent = e instanceof ApiError && e.fieldErrors.length
        ? e.fieldErrors.map((x) => `${x.field}: ${x.reason}`).join("; ") : String(e.message || e);
    } finally {
      uploadButton.disabled = false;
    }
  });
  const datasetOptions = h("textarea", { rows: 2, cols: 40, placeholder: "{}" });
  const preset = select(names(catalog, "training_preset"), "tiny");
  const epochs = h("input", { type: "text", inputmode: "decimal", value: "1" });
  const sampler = select(names(catalog, "sampler"), "complexity-aware");
  const algorithm = select(names(catalog, "searcher"), "evolution");
  const searchOptions = h("textarea", { rows: 2, cols: 40, placeholder: "{}" });
  const budget = h("input", { type: "text", inputmode: "numeric", value: "40" });
  const devices = h("input", { type: "text", value: "cpu" });
  const deviceHint = h("span", { id: "device-hint" }, "registered: cpu");
  const seed = h("input", { type: "text", inputmode: "numeric", value: "0" });
  const supernetFrom = h("input", { type: "text", placeholder: "job id (optional)" });
  const objectives = h("div", { id: "objectives" });
  objectives.append(objectiveRow(objectives, 0, { name: "accuracy" }),
    objectiveRow(objectives, 1, { name: "flops" }));
  const add = h("button", { type: "button", class: "secondary small", id: "add-objective" }, "Add objective");
  add.addEventListener("click", () => objectives.append(objectiveRow(objectives, objectives.children.length,
    { name: OBJECTIVES.find((o) => ![...objectives.querySelectorAll("select")].some((s) => s.value === o)) })));
  const submit = h("button", { type: "submit", id: "submit-job" }, "Submit job");

  const form = h("form", { class: "card job-form", id: "job-form", novalidate: true },
    h("h1", {}, "New search job"), general,
    h("div", { class: "row" }, field("Name", "name", name), field("Seed", "seed", seed)),
    h("h2", {}, "Search space"),
    h("div", { class: "row" }, field("Space", "space.id", space),
      field("Space options (JSON)", "space.options", spaceOptions, spaceHint)),
    h("h2", {}, "Dataset"),
    h("div", { class: "row" }, field("Built-in dataset", "dataset.name", dataset),
      field("or an uploaded dataset", "dataset.id", datasetId)),
    h("div", { class: "row upload-row" },
      h("div", {}, h("label", { for: "dataset-file" }, "Upload a dataset"), file,
        h("div", { class: "muted" }, uploadFormats.map((e) => `${e.suffix}: ${e.summary}`).join(" · "))),
      h("div", {}, h("label", { for: "dataset-name" }, "Its name"), uploadName),
      h("div", {}, h("label", {}, "\u00a0"), uploadButton, uploadNote, uploadError)),
    h("div", { class: "datasets-box" }, h("label", { for: "datasets-list" }, "Your uploaded datasets"),
      datasetList, datasetsEmpty),
    h("div", { class: "row" },
      field("Dataset options (JSON)", "dataset.options", datasetOptions,
        "e.g. {\"val_fraction\": 0.25}")),
    h("h2", {}, "Training"),
    h("div", { class: "row" }, field("Preset", "training.preset", preset),
      field("Epochs scale", "training.epochs_scale", epochs), field("Sampler", "training.sampler", sampler),
      field("Reuse supernet of job", "supernet_from", supernetFrom)),
    h("h2", {}, "Search"),
    h("div", { class: "row" }, field("Algorithm", "search.algorithm", algorithm),
      field("Budget", "search.budget", budget),
      field("Devices (comma separated)", "devices", devices, deviceHint),
      field("Search options (JSON)", "search.options", searchOptions,
        "the algorithm's options, e.g. {\"mutation_rate\": 1.5} (see /api/v1/catalog)")),
    h("div", { class: "field-error", "data-error-for": "search.objectives" }),
    objectives, add, h("hr"), submit);

  get("/devices").then((page) => {
    const names = itemsOf(page).map((d) => d.name).filter(Boolean);
    if (names.length) deviceHint.textContent = `registered: ${names.join(", ")}`;
  }).catch(() => {});

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const options = parseJson(spaceOptions.value, {});
    const dataOptions = parseJson(datasetOptions.value, {});
    const algoOptions = parseJson(searchOptions.value, {});
    const notJson = [[options, "space.options"], [dataOptions, "dataset.options"],
      [algoOptions, "search.options"]]
      .filter(([v]) => v === undefined).map(([, f]) => ({ field: f, reason: "not valid JSON" }));
    if (notJson.length) {
      showErrors(form, notJson, general);
      return;
    }
    const num = (s) => (s.trim() === "" || Number.isNaN(Number(s)) ? s.trim() : Number(s));
    const spec = {
      space: { id: space.value, options },
      dataset: { ...(datasetId.value ? { id: datasetId.value } : { name: dataset.value }),
        options: dataOptions },
      training: { preset: preset.value, epochs_scale: num(epochs.value), sampler: sampler.value },
      search: { algorithm: algorithm.value, budget: num(budget.value), options: algoOptions,
        objectives: [...objectives.children].map((row) => row.read()) },
      devices: devices.value.split(",").map((d) => d.trim()).filter(Boolean),
      seed: num(seed.value),
    };
    if (name.value.trim()) spec.name = name.value.trim();
    if (supernetFrom.value.trim()) spec.supernet_from = supernetFrom.value.trim();
    submit.disabled = true;
    try {
      const job = await post("/jobs", spec);
      location.hash = `#/jobs/${job.id}`;
    } catch (e) {
      if (e instanceof ApiError && e.fieldErrors.length) showErrors(form, e.fieldErrors, general);
      else {
        showErrors(form, [], general);
        general.textContent = String(e.message || e);
      }
    } finally {
      submit.disabled = false;
    }
  });
  // The catalog arrives asynchronously: draw only if the user is still on the form.
  if (location.hash === "#/new") view.replaceChildren(form);
  return null;
}
