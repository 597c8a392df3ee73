// focal-reward browser example: plain ESM, no build step. Serve the repository root over HTTP
// (for example `node test/runtimes/static-server.js`) and open /examples/browser/.
import { createEngine } from "../../dist/entries/browser.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";

const DEFAULT_RUBRIC = {
  criteria: [
    { id: "accuracy", weight: 3 },
    { id: "depth", weight: 2, scale: [1, 5] },
    { id: "format", weight: 1 },
    { id: "unsafe", weight: -2 },
  ],
};
const DEFAULT_ROWS = [
  { accuracy: 0.9, depth: 2, format: 1, unsafe: 0 },
  { accuracy: 0.7, depth: 3, format: 1, unsafe: 0 },
  { accuracy: 1, depth: 1.5, format: 1, unsafe: 0 },
  { accuracy: 0.4, depth: 4, format: 0.8, unsafe: 1 },
  { accuracy: 0.8, depth: null, format: 1, unsafe: 0 },
  { accuracy: 0.6, depth: 2.5, format: 1, unsafe: 0 },
];

const state = {
  criteria: [], // [{ id, ... }] of the current rubric
  rows: DEFAULT_ROWS.map((r) => ({ ...r })), // one object per rollout: id -> raw score | null
  engine: null,
  token: 0,
  renders: 0,
};

const fmt = (x) => (Number.isFinite(x) ? x.toFixed(3) : "—");

function debounce(fn, ms) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}

function setError(id, message) {
  $(id).textContent = message;
  const field = id === "rubric-error" ? $("rubric") : $("scores-json");
  field.setAttribute("aria-invalid", message ? "true" : "false");
}

// ---------- inputs ----------

function parseRubric(text) {
  const value = JSON.parse(text);
  const criteria = Array.isArray(value) ? value : value?.criteria;
  if (!Array.isArray(criteria) || criteria.length === 0) throw new Error("expected { \"criteria\": [ ... ] } with at least one criterion");
  const ids = new Set();
  for (const c of criteria) {
    if (typeof c?.id !== "string" || c.id === "") throw new Error("every criterion needs a string id");
    if (ids.has(c.id)) throw new Error(`duplicate criterion id "${c.id}"`);
    ids.add(c.id);
  }
  return criteria;
}

function parseScores(text) {
  const value = JSON.parse(text);
  if (!Array.isArray(value)) throw new Error("expected an array of rows");
  return value.map((row, i) => {
    if (Array.isArray(row)) return Object.fromEntries(state.criteria.map((c, k) => [c.id, num(row[k])]));
    if (row && typeof row === "object") return Object.fromEntries(state.criteria.map((c) => [c.id, num(row[c.id])]));
    throw new Error(`row ${i + 1}: expected an array or an object`);
  });
}

function num(x) {
  if (x === null || x === undefined || x === "") return null;
  const n = Number(x);
  return Number.isFinite(n) ? n : null;
}

function scoresJson() {
  return `[\n${state.rows.map((r) => `  ${JSON.stringify(state.criteria.map((c) => r[c.id] ?? null))}`).join(",\n")}\n]`;
}

function renderScoresTable() {
  const table = $("scores");
  table.replaceChildren();
  const head = table.createTHead().insertRow();
  head.appendChild(th("Rollout"));
  for (const c of state.criteria) {
    const scale = c.scale ? `${c.scale[0]}–${c.scale[1]}` : "0–1";
    const isPenalty = (c.weight ?? 1) < 0 || c.polarity === "penalty";
    // Penalties are fixed by default: focal keeps their share (a rare harm must not look cheap).
    const fixed = c.fixed ?? isPenalty;
    const penalty = (isPenalty ? ", penalty" : "") + (fixed ? ", fixed" : "");
    const cell = th(c.id);
    const note = document.createElement("small");
    note.textContent = `${scale}${penalty}`;
    cell.appendChild(note);
    head.appendChild(cell);
  }
  const body = table.createTBody();
  state.rows.forEach((row, i) => {
    const tr = body.insertRow();
    tr.appendChild(th(`#${i + 1}`, "row"));
    for (const c of state.criteria) {
      const input = document.createElement("input");
      input.type = "number";
      input.step = "any";
      input.value = row[c.id] ?? "";
      input.setAttribute("aria-label", `rollout ${i + 1}, ${c.id}`);
      input.dataset.row = String(i);
      input.dataset.id = c.id;
      tr.insertCell().appendChild(input);
    }
  });
}

function th(text, scope = "col") {
  const el = document.createElement("th");
  el.scope = scope;
  el.textContent = text;
  return el;
}

function syncScoresJson() {
  if (document.activeElement !== $("scores-json")) $("scores-json").value = scoresJson();
}

// ---------- engine ----------

function engineOptions() {
  return {
    rubric: { criteria: state.criteria },
    method: $("method").value,
    advantage: $("advantage").value,
    gamma: Number($("gamma").value),
    tau: Number($("tau").value),
    eps: Number($("eps").value),
    outOfScale: $("out-of-scale").value,
  };
}

async function rebuildEngine() {
  const token = ++state.token;
  let engine;
  try {
    engine = await createEngine(engineOptions());
  } catch (e) {
    if (token !== state.token) return;
    state.engine = null;
    setError("rubric-error", e instanceof Error ? e.message : String(e));
    document.body.dataset.state = "error";
    return;
  }
  if (token !== state.token) return;
  state.engine = engine;
  setError("rubric-error", "");
  compute();
}

function compute() {
  const engine = state.engine;
  if (!engine || state.rows.length === 0) return;
  const K = state.criteria.length;
  const n = state.rows.length;
  const scores = new Float32Array(n * K);
  state.rows.forEach((row, i) => state.criteria.forEach((c, k) => (scores[i * K + k] = row[c.id] ?? NaN)));
  const t0 = performance.now();
  let result;
  try {
    result = engine.score(scores, [n]);
  } catch (e) {
    setError("scores-error", e instanceof Error ? e.message : String(e));
    document.body.dataset.state = "error";
    return;
  }
  const ms = performance.now() - t0;
  setError("scores-error", "");
  renderResults(result);
  $("scale-warning").textContent = scaleWarning(result.metrics);
  // The live region changes only with the setup, not on every keystroke.
  const status = `Backend: ${engine.backend} · ${n} rollouts × ${K} criteria · method ${engine.method}`;
  if ($("status").textContent !== status) $("status").textContent = status;
  $("timing").textContent = `· scored in ${ms < 0.1 ? "< 0.1" : ms.toFixed(2)} ms`;
  state.renders++;
  document.body.dataset.renders = String(state.renders);
  document.body.dataset.state = "ready";
}

// ---------- results ----------

/** Scores outside their criterion's scale are clamped into it; the page says so, per criterion. */
function scaleWarning(m) {
  if (!(m["focal/frac_out_of_scale"] > 0)) return "";
  const which = state.criteria
    .filter((c) => m[`focal/${c.id}/out_of_scale`] > 0)
    .map((c) => `${c.id}: ${m[`focal/${c.id}/out_of_scale`]} (scale ${(c.scale ?? [0, 1]).join("–")})`);
  return `Warning: scores outside their criterion's scale were clamped into it: ${which.join("; ")}. Fix the scale in the rubric, or choose "refuse".`;
}

function baseWeights() {
  const w = state.criteria.map((c) => Math.abs(c.weight ?? 1));
  const s = w.reduce((a, b) => a + b, 0);
  return w.map((x) => (s > 0 ? x / s : 0));
}

function renderResults(r) {
  const K = state.criteria.length;
  const base = baseWeights();
  const weights = Array.from(r.weights.subarray(0, K));
  const saturation = Array.from(r.saturation.subarray(0, K));

  const ct = $("criteria-table");
  ct.replaceChildren();
  ct.createCaption().textContent = "Per criterion";
  const h1 = ct.createTHead().insertRow();
  for (const t of ["Criterion", "Base weight", "Saturation", "Focal weight"]) h1.appendChild(th(t));
  const b1 = ct.createTBody();
  state.criteria.forEach((c, k) => {
    const tr = b1.insertRow();
    tr.appendChild(th(c.id, "row"));
    for (const x of [base[k], saturation[k], weights[k]]) tr.insertCell().textContent = fmt(x);
  });

  const rt = $("rollouts-table");
  rt.replaceChildren();
  rt.createCaption().textContent = "Per rollout";
  const h2 = rt.createTHead().insertRow();
  for (const t of ["Rollout", "Direct reward", "Focal reward", "Advantage"]) h2.appendChild(th(t));
  const b2 = rt.createTBody();
  for (let i = 0; i < r.rewards.length; i++) {
    const tr = b2.insertRow();
    tr.appendChild(th(`#${i + 1}`, "row"));
    for (const x of [r.direct[i], r.rewards[i], r.advantages[i]]) tr.insertCell().textContent = fmt(x);
  }

  drawChart({
    criteria: state.criteria.map((c) => c.id),
    saturation,
    weights,
    rollouts: Array.from(r.rewards, (_, i) => `#${i + 1}`),
    direct: Array.from(r.direct),
    rewards: Array.from(r.rewards),
  });
}

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** One grouped bar panel on a 0..1 axis. */
function panel(svg, { top, height, title, labels, series }) {
  const left = 44;
  const width = 640 - left - 12;
  const g = el("g", { class: "panel" });
  svg.appendChild(g);
  g.appendChild(el("text", { x: left, y: top + 12, "font-size": 13, "font-weight": 600, fill: "#1a1a1a" }, title));
  // legend
  let lx = left + 250;
  for (const s of series) {
    g.appendChild(el("rect", { x: lx, y: top + 2, width: 12, height: 12, fill: s.color, stroke: "#1a1a1a", "stroke-width": 0.5 }));
    g.appendChild(el("text", { x: lx + 16, y: top + 12, "font-size": 12, fill: "#1a1a1a" }, s.name));
    lx += 30 + s.name.length * 7;
  }
  const y0 = top + 22;
  const h = height - 22 - 20;
  const yOf = (v) => y0 + h - Math.max(0, Math.min(1, v)) * h;
  for (const t of [0, 0.5, 1]) {
    g.appendChild(el("line", { x1: left, x2: left + width, y1: yOf(t), y2: yOf(t), stroke: t === 0 ? "#4a4a4a" : "#d0d0d0" }));
    g.appendChild(el("text", { x: left - 6, y: yOf(t) + 4, "font-size": 11, "text-anchor": "end", fill: "#4a4a4a" }, t.toFixed(1)));
  }
  const slot = width / Math.max(1, labels.length);
  const barW = Math.max(2, Math.min(28, (slot * 0.8) / series.length));
  labels.forEach((label, i) => {
    const x0 = left + i * slot + (slot - barW * series.length) / 2;
    series.forEach((s, j) => {
      const v = s.values[i];
      const x = x0 + j * barW;
      const y = Number.isFinite(v) ? yOf(v) : yOf(0);
      const bar = el("rect", {
        x, y, width: Math.max(1, barW - 1), height: Math.max(0, yOf(0) - y), fill: s.color,
        class: "bar", "data-series": s.key, "data-label": label,
      });
      bar.appendChild(el("title", {}, `${label}, ${s.name}: ${fmt(v)}`));
      g.appendChild(bar);
      if (barW >= 20 && Number.isFinite(v)) {
        g.appendChild(el("text", { x: x + barW / 2, y: y - 3, "font-size": 9, "text-anchor": "middle", fill: "#1a1a1a" }, v.toFixed(2)));
      }
    });
    const short = label.length > 12 ? `${label.slice(0, 11)}…` : label;
    g.appendChild(el("text", { x: left + i * slot + slot / 2, y: y0 + h + 14, "font-size": 11, "text-anchor": "middle", fill: "#1a1a1a" }, short));
  });
}

function drawChart(d) {
  const svg = $("chart");
  for (const node of [...svg.childNodes]) if (node.nodeName !== "title" && node.nodeName !== "desc") node.remove();
  const css = getComputedStyle(document.documentElement);
  const color = (name) => css.getPropertyValue(name).trim();
  panel(svg, {
    top: 4, height: 200, title: "Per criterion", labels: d.criteria,
    series: [
      { key: "saturation", name: "saturation", color: color("--sat"), values: d.saturation },
      { key: "weight", name: "focal weight", color: color("--weight"), values: d.weights },
    ],
  });
  panel(svg, {
    top: 214, height: 200, title: "Per rollout", labels: d.rollouts,
    series: [
      { key: "direct", name: "direct reward", color: color("--direct"), values: d.direct },
      { key: "reward", name: "focal reward", color: color("--focal"), values: d.rewards },
    ],
  });
}

// ---------- wiring ----------

const onRubric = debounce(() => {
  let criteria;
  try {
    criteria = parseRubric($("rubric").value);
  } catch (e) {
    setError("rubric-error", `Rubric: ${e.message}`);
    document.body.dataset.state = "error";
    return;
  }
  setError("rubric-error", "");
  state.criteria = criteria;
  renderScoresTable();
  syncScoresJson();
  rebuildEngine();
}, 150);

$("rubric").addEventListener("input", onRubric);
for (const id of ["method", "advantage", "tau", "eps", "gamma", "out-of-scale"]) {
  $(id).addEventListener("input", () => {
    $("gamma-out").textContent = $("gamma").value;
    rebuildEngine();
  });
}
$("scores").addEventListener("input", (e) => {
  const t = e.target;
  if (!(t instanceof HTMLInputElement) || t.dataset.row === undefined) return;
  state.rows[Number(t.dataset.row)][t.dataset.id] = num(t.value);
  syncScoresJson();
  compute();
});
// Applied on every keystroke (parsing is cheap), so a later cell edit cannot race a pending paste.
$("scores-json").addEventListener("input", () => {
  try {
    state.rows = parseScores($("scores-json").value);
  } catch (e) {
    setError("scores-error", `Scores: ${e.message}`);
    return;
  }
  setError("scores-error", "");
  renderScoresTable();
  compute();
});
$("add-row").addEventListener("click", () => {
  const last = state.rows[state.rows.length - 1] ?? {};
  state.rows.push({ ...last });
  renderScoresTable();
  syncScoresJson();
  compute();
});
$("remove-row").addEventListener("click", () => {
  if (state.rows.length > 1) state.rows.pop();
  renderScoresTable();
  syncScoresJson();
  compute();
});

$("rubric").value = JSON.stringify(DEFAULT_RUBRIC, null, 2);
state.criteria = DEFAULT_RUBRIC.criteria;
renderScoresTable();
syncScoresJson();
rebuildEngine();
