/**
 * Minimal inline-SVG charts for the reports: line charts (with optional bands and markers) and
 * horizontal grouped bar charts. Output is plain SVG markup, no script, no external resource.
 * Every chart is `<svg class="chart" data-chart=ID data-marks=N>`, N = number of drawn data marks.
 */

/** Okabe-Ito palette (colour-blind safe), most distinguishable first; yellow last (low contrast). */
export const PALETTE = ["#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#000000", "#F0E442"];
/** Dash patterns, so series stay distinct in grey-scale print and for more series than colours. */
export const DASHES = ["", "7 3", "2 3", "9 3 2 3"];
const MARKERS = ["circle", "square", "triangle", "diamond"] as const;

export interface SeriesStyle {
  color: string;
  dash: string;
  marker: (typeof MARKERS)[number];
}

/**
 * Style i: colour, dash and marker all change with i (the dash every step, shifted once per round
 * of dashes, so that i and i + 4, say dark and light blue, differ in dash too): two series differ
 * in more than colour, and lines that cover each other stay apart in grey-scale print.
 */
export function style(i: number): SeriesStyle {
  return {
    color: PALETTE[i % PALETTE.length]!,
    dash: DASHES[(i + Math.floor(i / DASHES.length)) % DASHES.length]!,
    marker: MARKERS[i % MARKERS.length]!,
  };
}

export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) {
    const d = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= d;
    hi += d;
  }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const out: number[] = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return out;
}

export function fmtTick(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(4)}`;
}

export interface LineSeries {
  name: string;
  /** [x, y] pairs; non-finite y breaks the line. */
  points: ReadonlyArray<readonly [number, number]>;
  /** Optional band [x, lo, hi] drawn under the line (e.g. min-max over seeds). */
  band?: ReadonlyArray<readonly [number, number, number]>;
  /** Style index (default: position in the list). */
  styleIndex?: number;
  /**
   * Markers at the points: true (every point), false (none), "sparse" (about 8 along the line,
   * staggered per series so that lines lying on each other still show each one's markers).
   * Default: every point when there are few, else sparse.
   */
  markers?: boolean | "sparse";
}

export interface LineChartOptions {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: readonly LineSeries[];
  yDomain?: readonly [number, number];
  xDomain?: readonly [number, number];
  width?: number;
  height?: number;
  /** Horizontal reference lines: [y, label]. */
  refs?: ReadonlyArray<readonly [number, string]>;
  /** Legend entries per column (legend sits under the plot). */
  legendColumns?: number;
  /** Only integer x ticks (e.g. step indices). */
  integerX?: boolean;
}

const FONT = `font-family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"`;

function markerSvg(kind: SeriesStyle["marker"], x: number, y: number, color: string, r = 3.2, cls = ""): string {
  const X = x.toFixed(1);
  const Y = y.toFixed(1);
  const c = cls ? ` class="${cls}"` : "";
  switch (kind) {
    case "circle":
      return `<circle${c} cx="${X}" cy="${Y}" r="${r}" fill="${color}"/>`;
    case "square":
      return `<rect${c} x="${(x - r).toFixed(1)}" y="${(y - r).toFixed(1)}" width="${2 * r}" height="${2 * r}" fill="${color}"/>`;
    case "triangle":
      return `<path${c} d="M${X},${(y - r - 0.6).toFixed(1)}L${(x + r + 0.6).toFixed(1)},${(y + r).toFixed(1)}L${(x - r - 0.6).toFixed(1)},${(y + r).toFixed(1)}Z" fill="${color}"/>`;
    default:
      return `<path${c} d="M${X},${(y - r - 0.8).toFixed(1)}L${(x + r + 0.8).toFixed(1)},${Y}L${X},${(y + r + 0.8).toFixed(1)}L${(x - r - 0.8).toFixed(1)},${Y}Z" fill="${color}"/>`;
  }
}

function legend(
  items: ReadonlyArray<{ name: string; st: SeriesStyle; kind: "line" | "bar"; marker?: boolean }>,
  x0: number,
  y0: number,
  width: number,
  columns: number,
): { svg: string; height: number } {
  const colW = width / columns;
  let svg = "";
  items.forEach((it, i) => {
    const x = x0 + (i % columns) * colW;
    const y = y0 + Math.floor(i / columns) * 18;
    if (it.kind === "line") {
      svg += `<line x1="${x}" y1="${y}" x2="${x + 26}" y2="${y}" stroke="${it.st.color}" stroke-width="2.5"${it.st.dash ? ` stroke-dasharray="${it.st.dash}"` : ""}/>`;
      if (it.marker) svg += markerSvg(it.st.marker, x + 13, y, it.st.color, 2.8);
    } else {
      svg += `<rect x="${x}" y="${y - 6}" width="18" height="12" fill="${it.st.color}"/>`;
    }
    const maxChars = Math.max(8, Math.floor((colW - 36) / 6.4));
    const label = it.name.length > maxChars ? `${it.name.slice(0, maxChars - 1)}…` : it.name;
    svg += `<text x="${x + 32}" y="${y + 4}" font-size="12" fill="#222">${esc(label)}<title>${esc(it.name)}</title></text>`;
  });
  return { svg, height: Math.ceil(items.length / columns) * 18 };
}

/** As many legend columns (up to 3) as fit the longest name. */
function legendCols(names: readonly string[], width: number): number {
  const longest = Math.max(4, ...names.map((n) => n.length));
  return Math.max(1, Math.min(3, names.length, Math.floor(width / (longest * 6.4 + 40))));
}

/**
 * Ticks with one at each end of the axis [lo, hi]: a nice tick too close to an added end (less
 * than 0.4 steps) gives way to it, so labels do not overlap.
 */
function withEnds(ticks: readonly number[], lo: number, hi: number, integer: boolean): number[] {
  const inside = ticks.filter((v) => v >= lo - 1e-12 && v <= hi + 1e-12);
  const step = inside.length > 1 ? inside[1]! - inside[0]! : hi - lo;
  const near = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(step));
  let out = inside.slice();
  const ends = integer ? [Math.ceil(lo), Math.floor(hi)] : [lo, hi];
  for (const e of ends) {
    if (out.some((v) => near(v, e))) continue;
    out = out.filter((v) => Math.abs(v - e) >= 0.4 * step);
    out.push(e);
  }
  return out.sort((a, b) => a - b);
}

/** A line chart with axes, grid, axis labels (with units), legend and optional bands and reference lines. */
export function lineChart(o: LineChartOptions): string {
  const W = o.width ?? 620;
  const plotH = o.height ?? 260;
  const m = { l: 62, r: 16, t: 34, b: 46 };
  const pw = W - m.l - m.r;
  let xmin = Infinity, xmax = -Infinity, ymin = Infinity, ymax = -Infinity;
  for (const s of o.series) {
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) continue;
      xmin = Math.min(xmin, x); xmax = Math.max(xmax, x);
      ymin = Math.min(ymin, y); ymax = Math.max(ymax, y);
    }
    for (const [x, lo, hi] of s.band ?? []) {
      if (!Number.isFinite(lo) || !Number.isFinite(hi)) continue;
      xmin = Math.min(xmin, x); xmax = Math.max(xmax, x);
      ymin = Math.min(ymin, lo); ymax = Math.max(ymax, hi);
    }
  }
  if (!Number.isFinite(xmin)) { xmin = 0; xmax = 1; ymin = 0; ymax = 1; }
  if (o.xDomain) [xmin, xmax] = o.xDomain;
  if (o.yDomain) [ymin, ymax] = o.yDomain;
  let xt = niceTicks(xmin, xmax, 6);
  if (o.integerX) {
    if (xmax - xmin < 2) { xmin = Math.floor(xmin) - 0.5; xmax = Math.ceil(xmax) + 0.5; }
    xt = xt.filter((v) => Number.isInteger(v));
    if (xt.length === 0) xt = [Math.round((xmin + xmax) / 2)];
  }
  let yt = niceTicks(ymin, ymax, 5);
  // A domain from the data ends on the tick step outside it, so both ends carry a round tick.
  const outward = (t: number[], lo: number, hi: number): [number, number, number[]] => {
    if (t.length < 2) return [lo, hi, t];
    const step = t[1]! - t[0]!;
    const a = Math.floor(lo / step + 1e-9) * step, b = Math.ceil(hi / step - 1e-9) * step;
    const out: number[] = [];
    for (let v = a; v <= b + step * 1e-9; v += step) out.push(Math.abs(v) < step * 1e-9 ? 0 : +v.toPrecision(12));
    return [Math.min(lo, a), Math.max(hi, b), out];
  };
  if (!o.xDomain) [xmin, xmax, xt] = outward(xt, xmin, xmax);
  if (!o.yDomain) [ymin, ymax, yt] = outward(yt, ymin, ymax);
  if (xmax === xmin) { xmin -= 0.5; xmax += 0.5; }
  if (ymax === ymin) { ymin -= 0.5; ymax += 0.5; }
  xt = withEnds(xt, xmin, xmax, o.integerX === true);
  yt = withEnds(yt, ymin, ymax, false);
  const X = (x: number): number => m.l + ((x - xmin) / (xmax - xmin)) * pw;
  const Y = (y: number): number => m.t + plotH - ((y - ymin) / (ymax - ymin)) * plotH;
  let body = "";
  for (const v of yt) {
    if (v < ymin - 1e-12 || v > ymax + 1e-12) continue;
    body += `<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(v).toFixed(1)}" y2="${Y(v).toFixed(1)}" stroke="#ddd"/>`;
    body += `<text x="${m.l - 6}" y="${(Y(v) + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#333">${fmtTick(v)}</text>`;
  }
  for (const v of xt) {
    if (v < xmin - 1e-12 || v > xmax + 1e-12) continue;
    body += `<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${m.t + plotH}" y2="${m.t + plotH + 4}" stroke="#333"/>`;
    body += `<text x="${X(v).toFixed(1)}" y="${m.t + plotH + 17}" font-size="11" text-anchor="middle" fill="#333">${fmtTick(v)}</text>`;
  }
  body += `<line x1="${m.l}" x2="${m.l + pw}" y1="${m.t + plotH}" y2="${m.t + plotH}" stroke="#333"/>`;
  body += `<line x1="${m.l}" x2="${m.l}" y1="${m.t}" y2="${m.t + plotH}" stroke="#333"/>`;
  for (const [y, label] of o.refs ?? []) {
    if (y < ymin || y > ymax) continue;
    body += `<line x1="${m.l}" x2="${m.l + pw}" y1="${Y(y).toFixed(1)}" y2="${Y(y).toFixed(1)}" stroke="#555" stroke-dasharray="3 3"/>`;
    body += `<text x="${m.l + pw - 4}" y="${(Y(y) - 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#555">${esc(label)}</text>`;
  }
  let marks = 0;
  const items: Array<{ name: string; st: SeriesStyle; kind: "line"; marker: boolean }> = [];
  o.series.forEach((s, idx) => {
    const st = style(s.styleIndex ?? idx);
    const markers = s.markers ?? (s.points.length <= 12 ? true : "sparse");
    items.push({ name: s.name, st, kind: "line", marker: markers !== false });
    if (s.band && s.band.length > 1) {
      const pts = s.band.filter(([, lo, hi]) => Number.isFinite(lo) && Number.isFinite(hi));
      if (pts.length > 1) {
        const up = pts.map(([x, , hi]) => `${X(x).toFixed(1)},${Y(hi).toFixed(1)}`);
        const dn = pts.map(([x, lo]) => `${X(x).toFixed(1)},${Y(lo).toFixed(1)}`).reverse();
        body += `<path class="band" d="M${up.join("L")}L${dn.join("L")}Z" fill="${st.color}" fill-opacity="0.15" stroke="none"/>`;
      }
    }
    let d = "";
    let pen = false;
    let n = 0;
    for (const [x, y] of s.points) {
      if (!Number.isFinite(y)) { pen = false; continue; }
      d += `${pen ? "L" : "M"}${X(x).toFixed(1)},${Y(y).toFixed(1)}`;
      pen = true;
      n++;
    }
    if (n > 0) {
      marks += n;
      body += `<path class="series" data-name="${esc(s.name)}" d="${d}" fill="none" stroke="${st.color}" stroke-width="2" stroke-linejoin="round"${st.dash ? ` stroke-dasharray="${st.dash}"` : ""}><title>${esc(s.name)}</title></path>`;
      if (markers === true) {
        for (const [x, y] of s.points) if (Number.isFinite(y)) body += markerSvg(st.marker, X(x), Y(y), st.color, 3.2, "mark");
      } else if (markers === "sparse") {
        // About 8 markers, each series shifted by a share of the gap: coinciding lines show all of theirs.
        const gap = Math.max(1, Math.floor(s.points.length / 8));
        const shift = Math.floor(((idx % 4) * gap) / 4);
        for (let j = shift; j < s.points.length; j += gap) {
          const [x, y] = s.points[j]!;
          if (Number.isFinite(y)) body += markerSvg(st.marker, X(x), Y(y), st.color, 3.2, "mark");
        }
      }
    }
  });
  const cols = o.legendColumns ?? legendCols(o.series.map((x) => x.name), pw);
  const lg = legend(items, m.l, m.t + plotH + m.b, pw, cols);
  const H = m.t + plotH + m.b + lg.height + 6;
  return chartSvg(o.id, o.title, marks, W, H, m.l,
    body +
    `<text x="${m.l + pw / 2}" y="${m.t + plotH + 34}" font-size="12" text-anchor="middle" fill="#222">${esc(o.xLabel)}</text>` +
    `<text transform="translate(16 ${m.t + plotH / 2}) rotate(-90)" font-size="12" text-anchor="middle" fill="#222">${esc(o.yLabel)}</text>` +
    lg.svg);
}

export interface BarChartOptions {
  id: string;
  title: string;
  /** Label of the value axis, with units. */
  xLabel: string;
  /** Row labels (one group of bars per row). */
  categories: readonly string[];
  series: ReadonlyArray<{ name: string; values: readonly number[]; styleIndex?: number }>;
  xDomain?: readonly [number, number];
  width?: number;
  /** Reference value drawn as a vertical dashed line, with its label. */
  ref?: readonly [number, string];
}

/** Horizontal grouped bars: one row per category, one bar per series. NaN = no bar. */
export function barChart(o: BarChartOptions): string {
  const W = o.width ?? 620;
  const labelW = Math.min(260, 12 + 6.2 * Math.max(4, ...o.categories.map((c) => Math.min(c.length, 40))));
  const m = { l: labelW, r: 20, t: 34, b: 44 };
  const pw = W - m.l - m.r;
  const S = o.series.length;
  const barH = 9;
  const rowH = S * barH + 8;
  const plotH = rowH * o.categories.length;
  let lo = 0, hi = -Infinity;
  for (const s of o.series) for (const v of s.values) if (Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  if (!Number.isFinite(hi)) hi = 1;
  if (o.xDomain) [lo, hi] = o.xDomain;
  const ticks = niceTicks(lo, hi, 5);
  if (!o.xDomain) { lo = Math.min(lo, ticks[0]!); hi = Math.max(hi, ticks[ticks.length - 1]!); }
  if (hi === lo) hi = lo + 1;
  const X = (x: number): number => m.l + ((x - lo) / (hi - lo)) * pw;
  let body = "";
  for (const v of ticks) {
    if (v < lo - 1e-12 || v > hi + 1e-12) continue;
    body += `<line x1="${X(v).toFixed(1)}" x2="${X(v).toFixed(1)}" y1="${m.t}" y2="${m.t + plotH}" stroke="#ddd"/>`;
    body += `<text x="${X(v).toFixed(1)}" y="${m.t + plotH + 16}" font-size="11" text-anchor="middle" fill="#333">${fmtTick(v)}</text>`;
  }
  let marks = 0;
  o.categories.forEach((c, r) => {
    const y0 = m.t + r * rowH + 4;
    const label = c.length > 40 ? `${c.slice(0, 39)}…` : c;
    body += `<text x="${m.l - 6}" y="${(y0 + (S * barH) / 2 + 4).toFixed(1)}" font-size="11" text-anchor="end" fill="#222">${esc(label)}<title>${esc(c)}</title></text>`;
    o.series.forEach((s, j) => {
      const v = s.values[r]!;
      if (!Number.isFinite(v)) return;
      const st = style(s.styleIndex ?? j);
      const x0 = X(Math.max(lo, Math.min(0, v)));
      const x1 = X(Math.min(hi, Math.max(0, v)));
      marks++;
      body += `<rect class="bar" x="${x0.toFixed(1)}" y="${(y0 + j * barH).toFixed(1)}" width="${Math.max(0.8, x1 - x0).toFixed(1)}" height="${barH - 1}" fill="${st.color}"><title>${esc(`${s.name} · ${c}: ${+v.toPrecision(4)}`)}</title></rect>`;
    });
  });
  body += `<line x1="${X(Math.max(lo, 0)).toFixed(1)}" x2="${X(Math.max(lo, 0)).toFixed(1)}" y1="${m.t}" y2="${m.t + plotH}" stroke="#333"/>`;
  if (o.ref && o.ref[0] >= lo && o.ref[0] <= hi) {
    body += `<line x1="${X(o.ref[0]).toFixed(1)}" x2="${X(o.ref[0]).toFixed(1)}" y1="${m.t - 4}" y2="${m.t + plotH}" stroke="#555" stroke-dasharray="3 3"/>`;
    body += `<text x="${(X(o.ref[0]) + 4).toFixed(1)}" y="${m.t - 6}" font-size="11" fill="#555">${esc(o.ref[1])}</text>`;
  }
  const lg = legend(o.series.map((s, j) => ({ name: s.name, st: style(s.styleIndex ?? j), kind: "bar" as const })), 12, m.t + plotH + m.b, W - 24, legendCols(o.series.map((x) => x.name), W - 24));
  const H = m.t + plotH + m.b + lg.height + 6;
  return chartSvg(o.id, o.title, marks, W, H, 12,
    body +
    `<text x="${m.l + pw / 2}" y="${m.t + plotH + 32}" font-size="12" text-anchor="middle" fill="#222">${esc(o.xLabel)}</text>` +
    lg.svg);
}

/** The frame every chart shares: an accessible svg with a title, a white background and a heading. */
function chartSvg(id: string, title: string, marks: number, W: number, H: number, titleX: number, inner: string): string {
  return (
    `<svg class="chart" data-chart="${esc(id)}" data-marks="${marks}" role="img" aria-labelledby="${esc(id)}-t" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" xmlns="http://www.w3.org/2000/svg" ${FONT}>` +
    `<title id="${esc(id)}-t">${esc(title)}</title>` +
    `<rect width="${W}" height="${H}" fill="#fff"/>` +
    `<text x="${titleX}" y="20" font-size="14" font-weight="600" fill="#111">${esc(title)}</text>` +
    inner +
    `</svg>`
  );
}
