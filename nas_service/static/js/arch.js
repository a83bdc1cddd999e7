// Architecture view of one subnet, drawn from the candidate's `arch` dict and nothing else.
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

// The view for one arch. choices: {kind: [choices]} of the job's space (for bar scales);
// space: the job's space id (shown, and set as data-space).
export function archView(arch, { space, choices } = {}) {
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
