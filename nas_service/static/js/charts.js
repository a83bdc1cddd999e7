// Small SVG charts: scatter (Pareto front), overlay (several fronts), lines (curves,
// hypervolume), histogram. Values that are missing (null, undefined, NaN) are never drawn: a
// gap is shown instead, and the caller is told how many points were left out.

import { isNum, num } from "./format.js";

export { isNum };

const SVG_NS = "http://www.w3.org/2000/svg";
const BASE = { top: 16, right: 18, bottom: 46 };
const CHAR_PX = 6.6;  // width of a tick digit at the tick font size (11px), a little generous

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

// A number for a tooltip or a table: exact, with separators.
export const fmt = (v) => num(v);

function extent(values, extra = []) {
  const all = values.concat(extra.filter(isNum));
  if (all.length === 0) return [0, 1];
  let lo = Math.min(...all);
  let hi = Math.max(...all);
  if (lo === hi) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.05;
    lo -= pad;
    hi += pad;
  }
  const pad = (hi - lo) * 0.06;
  return [lo - pad, hi + pad];
}

// Tick labels with separators and as many decimals as the step needs, so that close ticks
// never print the same text.
export function tickLabels(values, step) {
  const a = Math.max(...values.map(Math.abs));
  if (a !== 0 && (a >= 1e12 || a < 1e-4)) {
    for (let d = 1; d <= 8; d += 1) {
      const out = values.map((t) => t.toExponential(d));
      if (new Set(out).size === out.length) return out;
    }
  }
  let decimals = Math.max(0, Math.min(10, -Math.floor(Math.log10(step) + 1e-9)));
  for (; decimals <= 12; decimals += 1) {
    const out = values.map((t) => num(Math.abs(t) < step * 1e-9 ? 0 : t, decimals));
    if (new Set(out).size === out.length) return out;
  }
  return values.map((t) => String(t));
}

export function ticks(lo, hi, count = 5) {
  const span = hi - lo;
  if (!(span > 0)) return [lo];
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Number(t.toPrecision(12)));
  return out;
}

// Axes, grid and titles. The left margin fits the widest y tick label, and the y title sits
// left of it, so the two never overlap.
function frame(svg, width, height, xs, ys, xLabel, yLabel) {
  const yt = ticks(ys[0], ys[1]);
  const yLabels = tickLabels(yt, yt.length > 1 ? yt[1] - yt[0] : 1);
  const widest = Math.max(1, ...yLabels.map((s) => s.length)) * CHAR_PX;
  const left = Math.ceil(widest + 30);
  const M = { ...BASE, left };
  const w = width - M.left - M.right;
  const h = height - M.top - M.bottom;
  const sx = (v) => M.left + ((v - xs[0]) / (xs[1] - xs[0])) * w;
  const sy = (v) => M.top + h - ((v - ys[0]) / (ys[1] - ys[0])) * h;
  const axes = el("g", { class: "axes" }, svg);
  const xt = ticks(xs[0], xs[1], Math.max(2, Math.min(6, Math.floor(w / 90))));
  const xLabels = tickLabels(xt, xt.length > 1 ? xt[1] - xt[0] : 1);
  xt.forEach((t, i) => {
    el("line", { x1: sx(t), x2: sx(t), y1: M.top, y2: M.top + h, class: "grid" }, axes);
    el("text", { x: sx(t), y: M.top + h + 16, "text-anchor": "middle", class: "tick x-tick" }, axes)
      .textContent = xLabels[i];
  });
  yt.forEach((t, i) => {
    el("line", { x1: M.left, x2: M.left + w, y1: sy(t), y2: sy(t), class: "grid" }, axes);
    el("text", { x: M.left - 6, y: sy(t) + 4, "text-anchor": "end", class: "tick y-tick" }, axes)
      .textContent = yLabels[i];
  });
  el("rect", { x: M.left, y: M.top, width: w, height: h, class: "plot-border" }, axes);
  el("text", { x: M.left + w / 2, y: height - 8, "text-anchor": "middle", class: "axis-label x-title" }, axes)
    .textContent = xLabel;
  const yx = 13;
  const yl = el("text", { x: yx, y: M.top + h / 2, "text-anchor": "middle", class: "axis-label y-title",
    transform: `rotate(-90 ${yx} ${M.top + h / 2})` }, axes);
  yl.textContent = yLabel;
  return { sx, sy, w, h, M };
}

function newSvg(container, width, height, label) {
  container.replaceChildren();
  const svg = el("svg", { viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
    "aria-label": label, preserveAspectRatio: "xMidYMid meet" });
  container.appendChild(svg);
  return svg;
}

function empty(container, message) {
  container.replaceChildren();
  const p = document.createElement("p");
  p.className = "chart-empty";
  p.textContent = message;
  container.appendChild(p);
}

function tooltipFor(container) {
  let tip = container.querySelector(".tooltip");
  if (!tip) {
    tip = document.createElement("div");
    tip.className = "tooltip";
    tip.hidden = true;
    container.appendChild(tip);
  }
  return tip;
}

function attachTip(container, svg, width, shape, p, cx, cy, tip) {
  const show = () => {
    tip.replaceChildren();
    const head = document.createElement("strong");
    head.textContent = p.title;
    tip.appendChild(head);
    const table = document.createElement("table");
    for (const [k, v] of p.rows || []) {
      const tr = table.insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    }
    tip.appendChild(table);
    tip.hidden = false;
    const box = container.getBoundingClientRect();
    const sbox = svg.getBoundingClientRect();
    const scale = sbox.width / width;
    tip.style.left = `${Math.max(0, Math.min(cx * scale + 12, box.width - 250))}px`;
    tip.style.top = `${cy * scale + 12}px`;
  };
  shape.addEventListener("mouseenter", show);
  shape.addEventListener("focus", show);
  shape.addEventListener("mouseleave", () => { tip.hidden = true; });
  shape.addEventListener("blur", () => { tip.hidden = true; });
}

function clickable(shape, p, onSelect) {
  if (!onSelect) return;
  shape.setAttribute("role", "button");
  shape.addEventListener("click", () => onSelect(p));
  shape.addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); onSelect(p); }
  });
}

// A staircase through front members sorted by x.
function staircase(front, sx, sy) {
  let d = `M${sx(front[0].x)},${sy(front[0].y)}`;
  for (const p of front.slice(1)) d += ` H${sx(p.x)} V${sy(p.y)}`;
  return d;
}

// points: [{id, x, y, feasible, source: "predicted"|"measured", pareto, title, rows: [[k, v]]}]
// bounds: {x: number|null, y: number|null} draw constraint lines.
// onSelect(point): called when a point is clicked (or Enter on a focused point).
// selected: the id of the point drawn as selected.
// Returns {drawn, omitted}.
export function scatter(container, points, opts) {
  const { xLabel, yLabel, bounds = {}, width = 640, height = 380, onSelect, selected } = opts;
  const usable = points.filter((p) => isNum(p.x) && isNum(p.y));
  const omitted = points.length - usable.length;
  if (usable.length === 0) {
    empty(container, points.length ? `No point has both ${xLabel} and ${yLabel} yet.` : (opts.emptyText || "No candidates yet."));
    return { drawn: 0, omitted };
  }
  const svg = newSvg(container, width, height, `${yLabel} against ${xLabel}`);
  svg.classList.add("scatter");
  const xs = extent(usable.map((p) => p.x), [bounds.x]);
  const ys = extent(usable.map((p) => p.y), [bounds.y]);
  const { sx, sy, w, h, M } = frame(svg, width, height, xs, ys, xLabel, yLabel);

  const cons = el("g", { class: "constraints" }, svg);
  if (isNum(bounds.x)) {
    el("line", { x1: sx(bounds.x), x2: sx(bounds.x), y1: M.top, y2: M.top + h,
      class: "constraint", "data-axis": "x" }, cons);
  }
  if (isNum(bounds.y)) {
    el("line", { x1: M.left, x2: M.left + w, y1: sy(bounds.y), y2: sy(bounds.y),
      class: "constraint", "data-axis": "y" }, cons);
  }

  const front = usable.filter((p) => p.pareto).sort((a, b) => a.x - b.x);
  if (front.length > 1) el("path", { d: staircase(front, sx, sy), class: "front-line" }, svg);

  const tip = tooltipFor(container);
  const layer = el("g", { class: "points" }, svg);
  // Draw dominated first so the front sits on top.
  const ordered = usable.slice().sort((a, b) => Number(!!a.pareto) - Number(!!b.pareto));
  for (const p of ordered) {
    const cls = ["point", p.feasible === false ? "infeasible" : "feasible",
      p.source === "predicted" ? "predicted" : "measured", p.pareto ? "pareto" : "dominated"];
    if (selected !== undefined && selected !== null && String(p.id) === String(selected)) cls.push("selected");
    const cx = sx(p.x);
    const cy = sy(p.y);
    const r = p.pareto ? 6 : 4.5;
    const shape = p.source === "predicted"
      ? el("path", { d: `M${cx},${cy - r} L${cx + r},${cy} L${cx},${cy + r} L${cx - r},${cy} Z` }, layer)
      : el("circle", { cx, cy, r }, layer);
    shape.setAttribute("class", cls.join(" "));
    shape.setAttribute("tabindex", "0");
    if (p.id !== undefined) shape.setAttribute("data-id", String(p.id));
    attachTip(container, svg, width, shape, p, cx, cy, tip);
    clickable(shape, p, onSelect);
  }
  container.appendChild(tip);
  return { drawn: usable.length, omitted };
}

// Several fronts on one plot, one colour per series: [{name, key, points: [{id, x, y, title,
// rows}]}]. Each series' points are joined by a staircase in x order.
export function overlay(container, series, opts) {
  const { xLabel, yLabel, width = 900, height = 460, onSelect } = opts;
  const all = series.flatMap((s) => s.points.filter((p) => isNum(p.x) && isNum(p.y)));
  if (all.length === 0) {
    empty(container, opts.emptyText || `No front has both ${xLabel} and ${yLabel}.`);
    return 0;
  }
  const svg = newSvg(container, width, height, `${yLabel} against ${xLabel}, ${series.length} fronts`);
  svg.classList.add("overlay");
  const xs = extent(all.map((p) => p.x));
  const ys = extent(all.map((p) => p.y));
  const { sx, sy } = frame(svg, width, height, xs, ys, xLabel, yLabel);
  const tip = tooltipFor(container);
  series.forEach((s, i) => {
    const pts = s.points.filter((p) => isNum(p.x) && isNum(p.y)).sort((a, b) => a.x - b.x);
    const g = el("g", { class: `front-series s${i % 6}`, "data-series": s.key || s.name }, svg);
    if (pts.length > 1) el("path", { d: staircase(pts, sx, sy), class: `series s${i % 6}` }, g);
    for (const p of pts) {
      const cx = sx(p.x);
      const cy = sy(p.y);
      const dot = el("circle", { cx, cy, r: 5, class: `point overlay-point s${i % 6}`, tabindex: 0 }, g);
      if (p.id !== undefined) dot.setAttribute("data-id", String(p.id));
      attachTip(container, svg, width, dot, p, cx, cy, tip);
      clickable(dot, p, onSelect);
    }
  });
  container.appendChild(tip);
  return all.length;
}

// series: [{name, points: [{x, y}]}]; a missing y breaks the line rather than dropping to 0.
export function lines(container, series, opts) {
  const { xLabel, yLabel, width = 640, height = 260 } = opts;
  const all = series.flatMap((s) => s.points.filter((p) => isNum(p.x) && isNum(p.y)));
  if (all.length === 0) {
    empty(container, opts.emptyText || "No data yet.");
    return 0;
  }
  const svg = newSvg(container, width, height + 18, `${yLabel} against ${xLabel}`);
  const xs = extent(all.map((p) => p.x));
  const ys = extent(all.map((p) => p.y));
  const g = el("g", { transform: "translate(0 18)" }, svg);
  const { sx, sy, M } = frame(g, width, height, xs, ys, xLabel, yLabel);
  const legend = el("g", { class: "legend" }, svg);
  let lx = M.left;
  series.forEach((s, i) => {
    let d = "";
    let pen = false;
    for (const p of s.points) {
      if (!isNum(p.x) || !isNum(p.y)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${sx(p.x)},${sy(p.y)} `;
      pen = true;
    }
    el("path", { d, class: `series s${i % 6}`, "data-name": s.name }, g);
    const single = s.points.filter((p) => isNum(p.x) && isNum(p.y));
    if (single.length === 1) {
      el("circle", { cx: sx(single[0].x), cy: sy(single[0].y), r: 3, class: `dot s${i % 6}` }, g);
    }
    el("rect", { x: lx, y: 3, width: 10, height: 10, class: `swatch s${i % 6}` }, legend);
    el("text", { x: lx + 14, y: 12, class: "legend-text" }, legend).textContent = s.name;
    lx += 24 + String(s.name).length * CHAR_PX;
  });
  return all.length;
}

// bins: [{lo, hi, count}]. Nothing is drawn (an empty state instead) when no bin has a count
// or the bins span no range.
export function histogram(container, bins, opts) {
  const { xLabel, width = 640, height = 240 } = opts;
  const good = bins.filter((b) => isNum(b.lo) && isNum(b.hi) && isNum(b.count));
  const lo = good.length ? Math.min(...good.map((b) => b.lo)) : 0;
  const hi = good.length ? Math.max(...good.map((b) => b.hi)) : 0;
  if (good.length === 0 || !good.some((b) => b.count > 0) || !(hi > lo)) {
    empty(container, opts.emptyText || "No samples yet.");
    return 0;
  }
  const svg = newSvg(container, width, height, `histogram of ${xLabel}`);
  const ys = [0, Math.max(1, ...good.map((b) => b.count)) * 1.08];
  const { sx, sy } = frame(svg, width, height, [lo, hi], ys, xLabel, "count");
  for (const b of good) {
    const x0 = sx(b.lo);
    const x1 = Math.max(sx(b.hi) - 1, x0 + 1);
    const bar = el("rect", { x: x0, y: sy(b.count), width: x1 - x0, height: sy(0) - sy(b.count), class: "bar" }, svg);
    el("title", {}, bar).textContent = `${num(b.lo)} – ${num(b.hi)}: ${num(b.count)}`;
  }
  return good.length;
}

// Turn raw samples into equal-width bins.
export function binValues(values, count = 20) {
  const v = values.filter(isNum);
  if (v.length === 0) return [];
  let lo = Math.min(...v);
  let hi = Math.max(...v);
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  const width = (hi - lo) / count;
  const bins = Array.from({ length: count }, (_, i) => ({ lo: lo + i * width, hi: lo + (i + 1) * width, count: 0 }));
  for (const x of v) bins[Math.min(count - 1, Math.floor((x - lo) / width))].count += 1;
  return bins;
}
