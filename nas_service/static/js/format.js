// Numbers as people read them: integers exact with thousands separators (109,056), other
// values with the decimals their size needs, never rounded to a few significant digits.

export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

const formatters = new Map();
function formatter(decimals) {
  if (!formatters.has(decimals)) {
    formatters.set(decimals, new Intl.NumberFormat(undefined, { maximumFractionDigits: decimals }));
  }
  return formatters.get(decimals);
}

// How many decimals a non-integer shows: four below 10 (an accuracy 0.8765), fewer as it grows.
function decimalsFor(v) {
  const a = Math.abs(v);
  if (a >= 1000) return 1;
  if (a >= 100) return 2;
  if (a >= 10) return 3;
  return 4;
}

export function num(v, decimals) {
  if (!isNum(v)) return "—";
  if (Number.isInteger(v) && decimals === undefined) return formatter(0).format(v);
  const a = Math.abs(v);
  if (decimals === undefined && a !== 0 && a < 1e-4) return v.toExponential(2);
  return formatter(decimals === undefined ? decimalsFor(v) : decimals).format(v);
}

// A value with its unit ("109,056 MACs", "3.125 ms"); the unit comes from the catalog.
export function withUnit(v, unit) {
  if (!isNum(v)) return "—";
  return unit ? `${num(v)} ${unit}` : num(v);
}

export function percent(fraction) {
  return isNum(fraction) ? `${Math.round(Math.max(0, Math.min(1, fraction)) * 100)}%` : "—";
}

export function seconds(s) {
  if (!isNum(s)) return "—";
  if (s < 60) return `${num(s, 1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s - m * 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}
