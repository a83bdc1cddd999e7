// Architecture view of one subnet, drawn from the candidate's `arch` dict (and, for a space
// with a view of its own such as vit, the options of the job's space spec).
//
// Dimension names are paths: "resolution", "s2.depth", "s2.b3.kernel", "l1.width". A path
// segment of letters and a number ("s2", "b3", "l1") is a numbered part; the last segment is
// the dimension. A part's "depth" says how many of its numbered sub-parts are in use: blocks of
// a stage (mbv3), layers of the network (mlp). Parts past the depth are drawn as unused.

import { h } from "./dom.js";
import { num } from "./format.js";

const PART = /^([a-z]+)(\d+)$/i;
// Readable names for numbered parts; any other prefix is shown as it is.
const PART_NAMES = { s: "stage", b: "block", l: "layer" };

function partName(prefix) {
  return PART_NAMES[prefix] || prefix;
}

function node() {
  return { params: {}, parts: new Map() };  // parts: prefix -> Map(index -> node)
}

export function archTree(arch) {
  const root = node();
  for (const [key, value] of Object.entries(arch || {})) {
    const segs = key.split(".");
    const leaf = segs.pop();
    let cur = root;
    let ok = true;
    for (const seg of segs) {
      const m = PART.exec(seg);
      if (!m) { ok = false; break; }
      const [, prefix, idx] = m;
      if (!cur.parts.has(prefix)) cur.parts.set(prefix, new Map());
      const group = cur.parts.get(prefix);
      const i = Number(idx);
      if (!group.has(i)) group.set(i, node());
      cur = group.get(i);
    }
    if (ok) cur.params[leaf] = value;
    else root.params[key] = value;
  }
  return root;
}

function sorted(group) {
  return [...group.entries()].sort((a, b) => a[0] - b[0]);
}

function chips(params, skip = []) {
  return Object.entries(params).filter(([k]) => !skip.includes(k)).map(([k, v]) =>
    h("span", { class: "chip", "data-dim": k }, `${k} `, h("strong", {}, typeof v === "number" ? num(v) : String(v))));
}

// The largest choice of a dimension kind: from the space's choices when known, else the arch.
function maxOf(kind, choices, values) {
  const c = choices && choices[kind];
  const all = (Array.isArray(c) ? c : []).concat(values).filter((v) => typeof v === "number");
  return all.length ? Math.max(...all) : 1;
}

function valuesOf(tree, leaf) {
  const out = [];
  const walk = (n) => {
    if (typeof n.params[leaf] === "number") out.push(n.params[leaf]);
    for (const g of n.parts.values()) for (const c of g.values()) walk(c);
  };
  walk(tree);
  return out;
}

// A k x k grid of cells: the kernel drawn at its size.
function kernelGlyph(k) {
  const size = Math.max(1, Math.min(15, Math.round(k)));
  const grid = h("span", { class: "kernel-glyph", style: `grid-template-columns:repeat(${size},1fr);width:${size * 5}px;height:${size * 5}px`,
    "aria-hidden": "true" });
  for (let i = 0; i < size * size; i += 1) grid.appendChild(h("span"));
  return grid;
}

function leafBox(prefix, index, n, active, scale) {
  const entries = Object.entries(n.params);
  const attrs = { class: `arch-${partName(prefix)} ${active ? "active" : "inactive"}`,
    "data-active": String(active), "data-index": index };
  for (const [k, v] of entries) attrs[`data-${k}`] = String(v);
  const parts = [];
  if (typeof n.params.kernel === "number") parts.push(h("div", { class: "glyph-row" }, kernelGlyph(n.params.kernel)));
  for (const [k, v] of entries) {
    if (typeof v !== "number" || k === "kernel") continue;
    const frac = Math.max(0.05, v / (scale[k] || v || 1));
    parts.push(h("div", { class: "dim-bar", "data-dim": k, title: `${k} ${v}` },
      h("span", { style: `width:${(frac * 100).toFixed(1)}%` })));
  }
  const label = entries.map(([k, v]) => `${k} ${typeof v === "number" ? num(v) : v}`).join(" · ");
  return h("div", attrs,
    h("div", { class: "arch-box-title" }, `${partName(prefix)} ${index}`), ...parts,
    h("div", { class: "arch-box-label" }, label),
    active ? null : h("div", { class: "muted arch-unused" }, "not used"));
}

// One numbered part that holds sub-parts (a stage of blocks): its own dims, then the sub-parts
// in a row, those past its depth drawn as unused.
function groupRow(prefix, index, n, parentActive, scale) {
  const depth = typeof n.params.depth === "number" ? n.params.depth : null;
  const subs = [...n.parts.entries()];
  const rows = subs.map(([subPrefix, group]) => {
    const items = sorted(group);
    const used = depth === null ? items.length : Math.min(depth, items.length);
    return h("div", { class: "arch-row" }, items.map(([i, child]) =>
      child.parts.size ? groupRow(subPrefix, i, child, parentActive && i <= used, scale)
        : leafBox(subPrefix, i, child, parentActive && i <= used, scale)));
  });
  const total = subs.length === 1 ? subs[0][1].size : null;
  const head = h("div", { class: "arch-group-head" },
    h("strong", {}, `${partName(prefix)} ${index}`),
    depth !== null ? h("span", { class: "chip", "data-dim": "depth" }, "depth ",
      h("strong", {}, String(depth)), total !== null ? ` of ${total}` : "") : null,
    ...chips(n.params, ["depth"]));
  const attrs = { class: `arch-${partName(prefix)} arch-group`, "data-index": index,
    "data-active": String(parentActive) };
  if (depth !== null) attrs["data-depth"] = String(depth);
  return h("div", attrs, head, ...rows);
}

// The generic view: any arch whose dimension names are paths (mbv3, mlp, and a space that has
// no view of its own).
export function treeView(arch, { space, choices } = {}) {
  const tree = archTree(arch);
  const scale = {};
  for (const leaf of new Set(Object.keys(arch || {}).map((k) => k.split(".").pop()))) {
    scale[leaf] = maxOf(leaf, choices, valuesOf(tree, leaf));
  }
  const depth = typeof tree.params.depth === "number" ? tree.params.depth : null;
  const body = [];
  for (const [prefix, group] of tree.parts) {
    const items = sorted(group);
    const used = depth === null ? items.length : Math.min(depth, items.length);
    const list = items.map(([i, n]) => (n.parts.size ? groupRow(prefix, i, n, true, scale)
      : leafBox(prefix, i, n, i <= used, scale)));
    const counted = items.filter(([i]) => i <= used).length;
    body.push(h("div", { class: `arch-parts arch-${partName(prefix)}s`, "data-part": partName(prefix) },
      h("div", { class: "muted" }, `${items.length} ${partName(prefix)}s`,
        depth !== null && !items[0][1].parts.size ? `, ${counted} in use` : ""),
      h("div", { class: items[0][1].parts.size ? "arch-stack" : "arch-row" }, list)));
  }
  const blocks = [];
  const countActive = (n, prefixPath, active) => {
    for (const [p, g] of n.parts) {
      const d = typeof n.params.depth === "number" ? n.params.depth : Infinity;
      for (const [i, c] of g) {
        const on = active && i <= d;
        if (!c.parts.size) blocks.push(on);
        else countActive(c, `${prefixPath}${p}${i}.`, on);
      }
    }
  };
  countActive(tree, "", true);
  const inUse = blocks.filter(Boolean).length;
  return h("div", { class: "arch-view", id: "arch-view", "data-space": space || "",
    "data-units": String(blocks.length), "data-units-active": String(inUse) },
    h("div", { class: "arch-head" }, space ? h("span", { class: "chip" }, "space ", h("strong", {}, space)) : null,
      ...chips(tree.params),
      h("span", { class: "muted" }, `${inUse} of ${blocks.length} units in use`)),
    ...body);
}

// ----- the job's space spec ----------------------------------------------------------------

// The space options a job states: {options, known(name)}. A full spec the server reports for
// the job (`space_spec`, the space as fitted to the dataset) wins; otherwise the submitted spec
// holds only what the user set, and the server fits the rest to the dataset, so those are not
// known here (never guessed from the space's defaults, which a fit replaces).
export function spaceSpecOf(job) {
  const full = job && job.space_spec && typeof job.space_spec === "object" ? job.space_spec : null;
  const given = job && job.spec && job.spec.space && typeof job.spec.space === "object" ? job.spec.space : {};
  const src = full || given;
  const options = src.options && typeof src.options === "object" ? { ...src.options } : {};
  return { id: src.id || (job && job.space_id) || null, options, complete: Boolean(full) };
}

function listOf(v) {
  return Array.isArray(v) ? v.filter((x) => typeof x === "number") : [];
}

// ----- vit: token grid, embedding, transformer blocks ---------------------------------------

const VIT_LAYER = /^l(\d+)\.(heads|mlp_ratio)$/;

function vitLayers(arch) {
  const layers = new Map();
  for (const [k, v] of Object.entries(arch || {})) {
    const m = VIT_LAYER.exec(k);
    if (!m) continue;
    const j = Number(m[1]);
    if (!layers.has(j)) layers.set(j, {});
    layers.get(j)[m[2]] = v;
  }
  return [...layers.entries()].sort((a, b) => a[0] - b[0]);
}

function isVitArch(arch) {
  return Boolean(arch) && ["resolution", "depth", "embed"].every((k) => typeof arch[k] === "number")
    && vitLayers(arch).length > 0;
}

// A row of n small cells out of `of` (heads of a block: one cell per head).
function cells(n, of, cls) {
  const row = h("span", { class: `cells ${cls}`, "aria-hidden": "true" });
  for (let i = 0; i < Math.max(n, of); i += 1) row.appendChild(h("span", { class: i < n ? "on" : "off" }));
  return row;
}

function bar(dim, value, max, title) {
  const frac = Math.max(0.05, Math.min(1, value / (max || value || 1)));
  return h("div", { class: "dim-bar", "data-dim": dim, title },
    h("span", { style: `width:${(frac * 100).toFixed(1)}%` }));
}

function fact(label, value, attrs = {}) {
  return h("span", { class: "chip", ...attrs }, `${label} `, h("strong", {}, value));
}

// The token grid: the image side at the resolution, cut into patches of the stride
// (patch_size, times the stem's stride when there is a stem). Drawn as a g x g grid when small.
function tokenGrid(resolution, opts, known) {
  const patch = opts.patch_size;
  const stem = opts.stem_channels;
  const stemStride = opts.stem_stride;
  const stemKnown = known("stem_channels") && (stem === 0 || known("stem_stride"));
  const box = h("div", { class: "vit-input", id: "vit-input" });
  box.appendChild(h("div", { class: "vit-step" }, h("div", { class: "arch-box-title" }, "input"),
    h("div", { class: "arch-box-label" }, `${num(resolution)} × ${num(resolution)} px`)));
  if (stemKnown) {
    box.appendChild(h("div", { class: "vit-step", "data-stem": String(stem) },
      h("div", { class: "arch-box-title" }, "stem"),
      h("div", { class: "arch-box-label" }, stem ? `conv 3×3, ${num(stem)} ch, stride ${stemStride}` : "none")));
  } else {
    box.appendChild(h("div", { class: "vit-step muted" }, h("div", { class: "arch-box-title" }, "stem"),
      h("div", { class: "arch-box-label" }, "set from the data")));
  }
  if (!known("patch_size") || !stemKnown) {
    box.appendChild(h("div", { class: "vit-step muted", id: "vit-grid", "data-grid": "" },
      h("div", { class: "arch-box-title" }, "patches"),
      h("div", { class: "arch-box-label" },
        known("patch_size") ? `patch ${patch}×${patch}; the token grid depends on the stem, set from the data`
          : "patch size set from the data (not in the job's spec)")));
    return box;
  }
  const stride = patch * (stem ? stemStride : 1);
  const grid = Math.floor(resolution / stride);
  const cls = known("pool") ? opts.pool === "cls" : null;
  const tokens = grid * grid + (cls ? 1 : 0);
  const attrs = { class: "vit-step", id: "vit-grid", "data-grid": String(grid), "data-patch": String(patch),
    "data-stride": String(stride) };
  if (cls !== null) attrs["data-tokens"] = String(tokens);
  const glyph = grid > 0 && grid <= 16 ? kernelGlyph(grid) : null;
  if (glyph) glyph.classList.add("token-grid");
  box.appendChild(h("div", attrs,
    h("div", { class: "arch-box-title" }, `patches ${patch}×${patch}${stride !== patch ? ` (stride ${stride} px)` : ""}`),
    glyph ? h("div", { class: "glyph-row" }, glyph) : null,
    h("div", { class: "arch-box-label" }, `${grid} × ${grid} tokens`,
      cls === null ? " (class token: set from the data)" : cls ? " + class token" : "",
      cls === null ? "" : ` = ${num(tokens)}`)));
  return box;
}

function vitBlock(j, layer, active, ctx) {
  const { embed, headDim, maxHeads, maxRatio } = ctx;
  const heads = layer.heads;
  const ratio = layer.mlp_ratio;
  const attrs = { class: `arch-layer vit-block ${active ? "active" : "inactive"}`, "data-index": j,
    "data-active": String(active) };
  if (typeof heads === "number") attrs["data-heads"] = String(heads);
  if (typeof ratio === "number") attrs["data-mlp_ratio"] = String(ratio);
  const attn = typeof heads === "number"
    ? `${heads} head${heads === 1 ? "" : "s"}${typeof headDim === "number" ? ` × ${headDim} = ${num(heads * headDim)}` : ""}`
    : "heads —";
  const mlp = typeof ratio === "number" ? `MLP ×${num(ratio)} → ${num(ratio * embed)} units` : "MLP —";
  return h("div", attrs,
    h("div", { class: "arch-box-title" }, `layer ${j}`),
    h("div", { class: "vit-part", "data-dim": "heads" }, h("span", { class: "muted" }, "attention "),
      typeof heads === "number" ? cells(heads, maxHeads, "head-cells") : null),
    h("div", { class: "arch-box-label vit-heads" }, attn),
    typeof ratio === "number" ? bar("mlp_ratio", ratio, maxRatio, `MLP ratio ${ratio}`) : null,
    h("div", { class: "arch-box-label vit-mlp" }, mlp),
    active ? null : h("div", { class: "muted arch-unused" }, "not used"));
}

// spec: spaceSpecOf(job). Layers are the arch's l{j}.* dims; those past `depth` are unused.
export function vitView(arch, { space, spec } = {}) {
  const opts = (spec && spec.options) || {};
  const known = (name) => Boolean(spec && spec.complete) || Object.prototype.hasOwnProperty.call(opts, name);
  const { resolution, depth, embed } = arch;
  const layers = vitLayers(arch);
  const used = layers.filter(([j]) => j <= depth).length;
  const embedMax = Math.max(embed, ...listOf(opts.embed_dims));
  const ctx = {
    embed,
    headDim: known("head_dim") ? opts.head_dim : null,
    maxHeads: Math.max(...layers.map(([, l]) => l.heads).filter((v) => typeof v === "number"), ...listOf(opts.heads)),
    maxRatio: Math.max(...layers.map(([, l]) => l.mlp_ratio).filter((v) => typeof v === "number"), ...listOf(opts.mlp_ratios)),
  };
  const unknown = ["patch_size", "stem_channels", "head_dim", "pool", "num_classes"].filter((k) => !known(k));
  const classes = known("num_classes") ? opts.num_classes : null;
  const head = h("div", { class: "arch-head" },
    space ? fact("space", space) : null,
    fact("resolution", num(resolution), { "data-dim": "resolution" }),
    fact("depth", `${depth}`, { "data-dim": "depth" }), h("span", { class: "muted" }, `of ${layers.length}`),
    fact("embed", num(embed), { "data-dim": "embed" }),
    h("span", { class: "muted" }, `${used} of ${layers.length} layers in use`));
  const embedding = h("div", { class: "vit-embed", id: "vit-embed", "data-embed": String(embed) },
    h("div", { class: "arch-box-title" }, "embedding width (every layer's residual stream)"),
    bar("embed", embed, embedMax, `embed ${embed} of at most ${embedMax}`),
    h("div", { class: "arch-box-label" }, `${num(embed)}${embedMax > embed ? ` of at most ${num(embedMax)}` : ""}`));
  const blocks = h("div", { class: "arch-parts arch-layers", "data-part": "layer" },
    h("div", { class: "muted" }, `${layers.length} layers, ${used} in use`),
    h("div", { class: "arch-row" }, layers.map(([j, l]) => vitBlock(j, l, j <= depth, ctx))));
  const out = h("div", { class: "vit-step vit-out", id: "vit-out" },
    h("div", { class: "arch-box-title" }, "classifier"),
    h("div", { class: "arch-box-label" },
      known("pool") ? (opts.pool === "cls" ? "class token" : "mean of the tokens") : "pooling set from the data",
      " → LayerNorm → linear", classes !== null ? ` (${num(classes)} classes)` : ""));
  return h("div", { class: "arch-view vit-view", id: "arch-view", "data-space": space || "", "data-layout": "vit",
    "data-units": String(layers.length), "data-units-active": String(used) },
  head, tokenGrid(resolution, opts, known), embedding, blocks, out,
  unknown.length && !(spec && spec.complete)
    ? h("div", { class: "muted", id: "vit-fitted" }, `Not in the job's spec, so set from the dataset when the job ran: ${unknown.join(", ")}.`)
    : null);
}

// Spaces with a view of their own; an arch that does not look like the space's (a renamed
// dimension) falls back to the generic view rather than drawing nonsense.
const VIEWS = { vit: { accepts: isVitArch, view: vitView } };

// The view for one arch. choices: {kind: [choices]} of the job's space (for bar scales);
// space: the job's space id (shown, and set as data-space); spec: spaceSpecOf(job).
export function archView(arch, { space, choices, spec } = {}) {
  const own = VIEWS[space];
  if (own && own.accepts(arch)) return own.view(arch, { space, choices, spec });
  return treeView(arch, { space, choices });
}
