/**
 * The issue-3 aggregators on random batches: simd == scalar BIT for bit on every output, and the
 * float64 `js` backend within a tolerance of simd (1e-6 on rewards, weights, saturation, direct;
 * advantages with the error propagation of test/unit/backends.test.ts). Seeded: a failure names its seed.
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import type { AdvantageMode, Criterion, Engine, EngineOptions, Method, ScoreOptions, ScoreResult } from "../../src/types.js";
import { int, pick, prng, randomScores, randomSizes, zeroWeights } from "../support/prng.js";

const f32 = Math.fround;

const METHODS: Method[] = [
  "weighted-sum", "min", "power-mean", "soft-min", "cvar", "points-ratio", "all-or-nothing", "gated",
  "hierarchical", "pow3r", "dvao", "mo-grpo",
];
const FIELDS = ["rewards", "direct", "advantages", "weights", "saturation"] as const;
const TOL = 1e-6;

interface Call { scores: Float32Array; sizes: number[]; so: ScoreOptions }
interface Case { seed: number; opts: Omit<EngineOptions, "backend">; calls: Call[] }

function randomCase(seed: number, method: Method, maxN: number): Case {
  const r = prng(seed);
  const K = int(r, 1, 24);
  const criteria: Criterion[] = [];
  // A draw of weight 0 (refused in a rubric) becomes a 0 in every group's instance weights.
  const zeroed: number[] = [];
  for (let k = 0; k < K; k++) {
    const c: { -readonly [P in keyof Criterion]: Criterion[P] } = { id: `c${k}` };
    const t = r();
    if (t < 0.15) c.weight = -f32(0.25 + r() * 3);
    else if (t < 0.22) zeroed.push(k);
    else if (t < 0.6) c.weight = f32(0.25 + r() * 3);
    if (r() < 0.1) c.polarity = "penalty";
    if (r() < 0.25) c.scale = pick(r, [[1, 10], [-5, 5], [0, 100]] as const);
    if (r() < 0.25) c.required = true;
    criteria.push(c);
  }
  if (zeroed.length === K) zeroed.shift();
  const advantage: AdvantageMode = pick(r, ["grpo", "dr-grpo", "rloo", "none"] as const);
  const opts: Case["opts"] = { rubric: criteria, method, advantage };
  opts.power = pick(r, [-Infinity, -4, -1, -0.5, 0, 0.5, 1, 2, 3, Infinity]);
  opts.temperature = pick(r, [0.02, 0.1, 0.5, 2]);
  opts.alpha = pick(r, [0.25, 0.5, 0.8, 1]);
  opts.threshold = pick(r, [0, 0.5, 0.75, 1]);
  if (r() < 0.4) opts.fGrpo = pick(r, [0, 0.5, 1, 2]);
  if (r() < 0.3) opts.minWeight = f32(r() * 0.1);
  if (r() < 0.3) opts.maxWeight = f32(0.2 + r() * 0.7);
  if (r() < 0.5) opts.decay = f32(0.5 + r() * 0.49);
  const grid = r() < 0.5;
  const pNaN = pick(r, [0, 0, 0.1, 0.3]);
  const pInvalid = pick(r, [0, 0.05, 0.2]);
  const instance = r() < 0.3;
  const calls: Call[] = [];
  for (let t = 0, nCalls = method === "pow3r" ? 3 : 1; t < nCalls; t++) {
    const target = r() < 0.2 ? int(r, 1, 8) : int(r, 1, maxN);
    const sizes = randomSizes(r, target, pick(r, [1, 2, 3, 8, 16]));
    const n = target;
    const scores = randomScores(r, n, criteria, pNaN, grid);
    const so: ScoreOptions = {};
    if (pInvalid > 0) so.valid = Array.from({ length: n }, () => (r() < pInvalid ? 0 : 1));
    if (instance) so.weights = Array.from({ length: sizes.length * K }, () => (r() < 0.15 ? 0 : f32(0.25 + r() * 3)));
    so.weights = zeroWeights(so.weights, criteria, zeroed, sizes.length);
    calls.push({ scores, sizes, so });
  }
  return { seed, opts, calls };
}

const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/**
 * Tolerance on a reward: TOL (relative for weighted-sum: an unnormalized sum), and for
 * mo-grpo (a sum of z-scores) TOL (2 + 1.5 |z|max) / (min sigma + advEps) over its group, as for
 * gdpo in test/unit/backends.test.ts; |z| <= sqrt(m - 1) <= 4 with groups of <= 16 rows.
 */
function rewardTol(c: Case, call: Call, js: ScoreResult): number[] {
  const method = c.opts.method;
  const n = js.rewards.length;
  // an unnormalized sum of up to 24 weights of up to 3.25: relative
  if (method === "weighted-sum") return Array.from(js.rewards, (x) => TOL * (1 + Math.abs(x)));
  if (method !== "mo-grpo") return new Array(n).fill(TOL);
  const K = (c.opts.rubric as Criterion[]).length;
  const out: number[] = [];
  const u = (i: number, k: number) => {
    const cr = (c.opts.rubric as Criterion[])[k];
    const [lo, hi] = cr.scale ?? [0, 1];
    const x = call.scores[i * K + k];
    return Number.isNaN(x) ? NaN : Math.min(Math.max((x - lo) / (hi - lo), 0), 1);
  };
  for (let g = 0, start = 0; g < call.sizes.length; start += call.sizes[g++]) {
    let minSd = Infinity;
    for (let k = 0; k < K; k++) {
      const xs: number[] = [];
      for (let i = start; i < start + call.sizes[g]; i++) if (!Number.isNaN(js.direct[i]) && !Number.isNaN(u(i, k))) xs.push(u(i, k));
      if (xs.length < 2) continue;
      const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
      const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (xs.length - 1));
      minSd = Math.min(minSd, sd);
    }
    const tol = minSd === Infinity ? TOL : TOL + (TOL * (2 + 1.5 * 4)) / (minSd + 1e-6);
    for (let i = 0; i < call.sizes[g]; i++) out.push(tol);
  }
  return out;
}

/** Advantage tolerance from the reward tolerance dr: grpo's (2 + 1.5 |A|) dr / (std + advEps). */
function advTol(c: Case, call: Call, js: ScoreResult, dr: number[]): number[] {
  const adv = c.opts.advantage ?? "grpo";
  const out: number[] = [];
  for (let g = 0, start = 0; g < call.sizes.length; start += call.sizes[g++]) {
    const idx: number[] = [];
    for (let i = start; i < start + call.sizes[g]; i++) if (!Number.isNaN(js.direct[i])) idx.push(i);
    const drMax = Math.max(TOL, ...idx.map((i) => dr[i]));
    let std = 0;
    if (idx.length > 1) {
      const mean = idx.reduce((s, i) => s + js.rewards[i], 0) / idx.length;
      std = Math.sqrt(idx.reduce((s, i) => s + (js.rewards[i] - mean) ** 2, 0) / (idx.length - 1));
    }
    for (let i = start; i < start + call.sizes[g]; i++) {
      out.push(adv === "grpo" ? TOL + (drMax * (2 + 1.5 * Math.abs(js.advantages[i]))) / (std + 1e-6) : 2 * drMax + TOL);
    }
  }
  return out;
}

async function runCase(c: Case): Promise<void> {
  const engines: Engine[] = await Promise.all((["simd", "scalar", "js"] as const).map((b) => createEngine({ ...c.opts, backend: b })));
  for (let t = 0; t < c.calls.length; t++) {
    const call = c.calls[t];
    const [simd, scalar, js] = engines.map((e) => e.score(call.scores, call.sizes, call.so));
    const where = `seed ${c.seed} ${c.opts.method} call ${t}`;
    for (const f of FIELDS) {
      const a = u32(simd[f]), b = u32(scalar[f]);
      let bad = -1;
      for (let i = 0; i < a.length && bad < 0; i++) if (a[i] !== b[i]) bad = i;
      expect(bad, `${where}: simd vs scalar ${f}[${bad}]: ${simd[f][bad]} vs ${scalar[f][bad]}`).toBe(-1);
    }
    const dr = rewardTol(c, call, js);
    const da = advTol(c, call, js, dr);
    for (const f of FIELDS) {
      for (let i = 0; i < simd[f].length; i++) {
        const x = js[f][i], y = simd[f][i];
        if (Number.isNaN(x) || Number.isNaN(y)) {
          expect(Number.isNaN(x) && Number.isNaN(y), `${where} ${f}[${i}]: js ${x} vs simd ${y}`).toBe(true);
          continue;
        }
        const tol = f === "rewards" ? dr[i] : f === "advantages" ? da[i] : TOL;
        if (!(Math.abs(x - y) <= tol)) {
          expect.fail(`${where} ${f}[${i}]: js ${x} vs simd ${y} (> ${tol.toExponential(2)}); ${JSON.stringify({ ...c.opts, rubric: undefined })}`);
        }
      }
    }
    // scoreOne: a group of one (pow3r: the state's weights), same bits on simd and scalar, js close
    const K = (c.opts.rubric as Criterion[]).length;
    for (let j = 0; j < Math.min(3, call.sizes.length); j++) {
      const row = Array.from(call.scores.subarray(j * K, j * K + K));
      const [a, b, x] = engines.map((e) => e.scoreOne(row));
      expect(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)), `${where} scoreOne(${j}) simd ${a} scalar ${b}`).toBe(true);
      if (!Number.isNaN(a)) expect(Math.abs(a - x) <= 1e-5, `${where} scoreOne(${j}) simd ${a} js ${x}`).toBe(true);
    }
  }
  // the pow3r state travels in the snapshot, bit for bit on the wasm builds
  if (c.opts.method === "pow3r") {
    const [s0, s1] = [engines[0].snapshot(), engines[1].snapshot()];
    expect(Array.from(s0), `seed ${c.seed} pow3r snapshot simd vs scalar`).toEqual(Array.from(s1));
  }
}

describe("aggregators: backends agree on random batches", () => {
  it("simd == scalar bitwise, js within tolerance: 12 methods x 12 seeded cases", async () => {
    for (const [m, method] of METHODS.entries()) {
      for (let s = 0; s < 12; s++) await runCase(randomCase(20000 + m * 100 + s, method, s < 3 ? 1500 : 200));
    }
  });

  it("fGrpo with the existing methods (focal, weighted-mean, gdpo)", async () => {
    for (const [m, method] of (["focal", "weighted-mean", "gdpo"] as const).entries()) {
      for (let s = 0; s < 6; s++) {
        const c = randomCase(30000 + m * 100 + s, method, 300);
        c.opts.fGrpo = [0, 1, 2][s % 3];
        if (method === "gdpo") c.opts.advantage = "grpo";
        await runCase(c);
      }
    }
  });
});
