// Small SVG charts: scatter (Pareto front), lines (curves, hypervolume), histogram.
// Values that are missing (null, undefined, NaN) are never drawn: a gap is shown instead,
// and the caller is told how many points were left out.

const SVG_NS = "http://www.w3.org/2000/svg";
const MARGIN = { top: 14, right: 16, bottom: 42, left: 62 };

export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

function el(name, attrs = {}, parent = null) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (parent) parent.appendChild(node);
  return node;
}

export function fmt(v, digits = 4) {
  if (!isNum(v)) return "—";
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return Number(v.toPrecision(digits)).toString();
}

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

// A tick label with as many decimals as the tick step needs (so close ticks stay distinct).
function tickLabel(t, step) {
  const a = Math.abs(t);
  if (a !== 0 && (a >= 1e7 || a < 1e-4)) return t.toExponential(Math.max(1, Math.min(6, Math.ceil(Math.log10(a / step)))));
  const decimals = Math.max(0, Math.min(8, -Math.floor(Math.log10(step))));
  return t.toFixed(decimals);
}

function ticks(lo, hi, count = 5) {
  const span = hi - lo;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => span / s <= count) || raw;
  const out = [];
  for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(t);
  return out;
}

function frame(svg, width, height, xs, ys, xLabel, yLabel) {
  const w = width - MARGIN.left - MARGIN.right;
  const h = height - MARGIN.top - MARGIN.bottom;
  const sx = (v) => MARGIN.left + ((v - xs[0]) / (xs[1] - xs[0])) * w;
  const sy = (v) => MARGIN.top + h - ((v - ys[0]) / (ys[1] - ys[0])) * h;
  const axes = el("g", { class: "axes" }, svg);
  const xt = ticks(xs[0], xs[1]);
  for (const t of xt) {
    el("line", { x1: sx(t), x2: sx(t), y1: MARGIN.top, y2: MARGIN.top + h, class: "grid" }, axes);
    el("text", { x: sx(t), y: MARGIN.top + h + 16, "text-anchor": "middle", class: "tick" }, axes)
      .textContent = tickLabel(t, xt.length > 1 ? xt[1] - xt[0] : 1);
  }
  const yt = ticks(ys[0], ys[1]);
  for (const t of yt) {
    el("line", { x1: MARGIN.left, x2: MARGIN.left + w, y1: sy(t), y2: sy(t), class: "grid" }, axes);
    el("text", { x: MARGIN.left - 6, y: sy(t) + 4, "text-anchor": "end", class: "tick" }, axes)
      .textContent = tickLabel(t, yt.length > 1 ? yt[1] - yt[0] : 1);
  }
  el("rect", { x: MARGIN.left, y: MARGIN.top, width: w, height: h, class: "plot-border" }, axes);
  el("text", { x: MARGIN.left + w / 2, y: height - 6, "text-anchor": "middle", class: "axis-label" }, axes)
    .textContent = xLabel;
  const yl = el("text", { x: 14, y: MARGIN.top + h / 2, "text-anchor": "middle", class: "axis-label",
    transform: `rotate(-90 14 ${MARGIN.top + h / 2})` }, axes);
  yl.textContent = yLabel;
  return { sx, sy, w, h };
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

// points: [{x, y, feasible, source: "predicted"|"measured", pareto, title, rows: [[k, v]]}]
// bounds: {x: number|null, y: number|null} draw constraint lines.
// Returns {drawn, omitted}.
export function scatter(container, points, opts) {
  const { xLabel, yLabel, bounds = {}, width = 640, height = 380 } = opts;
  const usable = points.filter((p) => isNum(p.x) && isNum(p.y));
  const omitted = points.length - usable.length;
  if (usable.length === 0) {
    empty(container, points.length ? `No point has both ${xLabel} and ${yLabel} yet.` : "No candidates yet.");
    return { drawn: 0, omitted };
  }
  const svg = newSvg(container, width, height, `${yLabel} against ${xLabel}`);
  svg.classList.add("scatter");
  const xs = extent(usable.map((p) => p.x), [bounds.x]);
  const ys = extent(usable.map((p) => p.y), [bounds.y]);
  const { sx, sy, w, h } = frame(svg, width, height, xs, ys, xLabel, yLabel);

  const cons = el("g", { class: "constraints" }, svg);
  if (isNum(bounds.x)) {
    el("line", { x1: sx(bounds.x), x2: sx(bounds.x), y1: MARGIN.top, y2: MARGIN.top + h,
      class: "constraint", "data-axis": "x" }, cons);
  }
  if (isNum(bounds.y)) {
    el("line", { x1: MARGIN.left, x2: MARGIN.left + w, y1: sy(bounds.y), y2: sy(bounds.y),
      class: "constraint", "data-axis": "y" }, cons);
  }

  // Front line: Pareto members in x order, as a staircase.
  const front = usable.filter((p) => p.pareto).sort((a, b) => a.x - b.x);
  if (front.length > 1) {
    let d = `M${sx(front[0].x)},${sy(front[0].y)}`;
    for (const p of front.slice(1)) d += ` H${sx(p.x)} V${sy(p.y)}`;
    el("path", { d, class: "front-line" }, svg);
  }

  const tip = tooltipFor(container);
  const layer = el("g", { class: "points" }, svg);
  // Draw dominated first so the front sits on top.
  const ordered = usable.slice().sort((a, b) => Number(!!a.pareto) - Number(!!b.pareto));
  for (const p of ordered) {
    const cls = ["point", p.feasible === false ? "infeasible" : "feasible",
      p.source === "predicted" ? "predicted" : "measured", p.pareto ? "pareto" : "dominated"];
    const cx = sx(p.x);
    const cy = sy(p.y);
    const r = p.pareto ? 6 : 4.5;
    const shape = p.source === "predicted"
      ? el("path", { d: `M${cx},${cy - r} L${cx + r},${cy} L${cx},${cy + r} L${cx - r},${cy} Z` }, layer)
      : el("circle", { cx, cy, r }, layer);
    shape.setAttribute("class", cls.join(" "));
    shape.setAttribute("tabindex", "0");
    if (p.id !== undefined) shape.setAttribute("data-id", String(p.id));
    const show = () => {
      tip.replaceChildren();
      const head = document.createElement("strong");
      head.textContent = p.title;
      tip.appendChild(head);
      const table = document.createElement("table");
      for (const [k, v] of p.rows) {
        const tr = table.insertRow();
        tr.insertCell().textContent = k;
        tr.insertCell().textContent = v;
      }
      tip.appendChild(table);
      tip.hidden = false;
      const box = container.getBoundingClientRect();
      const sbox = svg.getBoundingClientRect();
      const scale = sbox.width / width;
      tip.style.left = `${Math.min(cx * scale + 12, box.width - 240)}px`;
      tip.style.top = `${cy * scale + 12}px`;
    };
    shape.addEventListener("mouseenter", show);
    shape.addEventListener("focus", show);
    shape.addEventListener("mouseleave", () => { tip.hidden = true; });
    shape.addEventListener("blur", () => { tip.hidden = true; });
  }
  container.appendChild(tip);
  return { drawn: usable.length, omitted };
}

// series: [{name, points: [{x, y}]}]; a missing y breaks the line rather than dropping to 0.
export function lines(container, series, opts) {
  const { xLabel, yLabel, width = 640, height = 260 } = opts;
  const all = series.flatMap((s) => s.points.filter((p) => isNum(p.x) && isNum(p.y)));
  if (all.length === 0) {
    empty(container, opts.emptyText || "No data yet.");
    return 0;
  }
  const svg = newSvg(container, width, height, `${yLabel} against ${xLabel}`);
  const xs = extent(all.map((p) => p.x));
  const ys = extent(all.map((p) => p.y));
  const { sx, sy } = frame(svg, width, height, xs, ys, xLabel, yLabel);
  const legend = el("g", { class: "legend" }, svg);
  series.forEach((s, i) => {
    let d = "";
    let pen = false;
    for (const p of s.points) {
      if (!isNum(p.x) || !isNum(p.y)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${sx(p.x)},${sy(p.y)} `;
      pen = true;
    }
    el("path", { d, class: `series s${i % 6}`, "data-name": s.name }, svg);
    const single = s.points.filter((p) => isNum(p.x) && isNum(p.y));
    if (single.length === 1) {
      el("circle", { cx: sx(single[0].x), cy: sy(single[0].y), r: 3, class: `dot s${i % 6}` }, svg);
    }
    const lx = MARGIN.left + 8 + i * 130;
    el("rect", { x: lx, y: 2, width: 10, height: 10, class: `swatch s${i % 6}` }, legend);
    el("text", { x: lx + 14, y: 11, class: "legend-text" }, legend).textContent = s.name;
  });
  return all.length;
}

// bins: [{lo, hi, count}]
export function histogram(container, bins, opts) {
  const { xLabel, width = 640, height = 240 } = opts;
  const good = bins.filter((b) => isNum(b.lo) && isNum(b.hi) && isNum(b.count));
  if (good.length === 0) {
    empty(container, opts.emptyText || "No samples yet.");
    return 0;
  }
  const svg = newSvg(container, width, height, `histogram of ${xLabel}`);
  const xs = [Math.min(...good.map((b) => b.lo)), Math.max(...good.map((b) => b.hi))];
  if (xs[0] === xs[1]) xs[1] = xs[0] + 1;
  const ys = [0, Math.max(1, ...good.map((b) => b.count)) * 1.08];
  const { sx, sy } = frame(svg, width, height, xs, ys, xLabel, "count");
  for (const b of good) {
    const x0 = sx(b.lo);
    const x1 = Math.max(sx(b.hi) - 1, x0 + 1);
    const bar = el("rect", { x: x0, y: sy(b.count), width: x1 - x0, height: sy(0) - sy(b.count), class: "bar" }, svg);
    el("title", {}, bar).textContent = `${fmt(b.lo)} – ${fmt(b.hi)}: ${b.count}`;
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
