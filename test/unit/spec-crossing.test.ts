/**
 * Every method crossed with every feature of the spec, explicitly (issue 12's independent check):
 * guarded (fixed) criteria, weight bounds, scales, instance weights, absent (NaN) scores, invalid
 * rows, constant "drop" and out-of-scale scores, each under every advantage, on simd, scalar and
 * js. simd == scalar bit for bit everywhere. The spec's methods (focal in both scopes,
 * weighted-mean, gdpo, sa-mrpo) are checked against the float64 oracle (test/support/oracle.ts),
 * score() and scoreOne; the aggregators, which the oracle does not implement, against the js
 * backend (their own error bounds are in test/unit/aggregators-backends.test.ts). Seeded: a
 * failure names its method, feature, advantage and seed.
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import type { AdvantageMode, Criterion, Engine, EngineOptions, Method, ScoreOptions, ScoreResult } from "../../src/types.js";
import { oracleScore, oracleScoreOne, resolveConfig, type OracleState } from "../support/oracle.js";
import { int, pick, prng, randomScores, randomSizes, type Rng } from "../support/prng.js";
import { advTol, TOL } from "../support/tolerance.js";

const f32 = Math.fround;
const BACKENDS = ["simd", "scalar", "js"] as const;
const ADVANTAGES: AdvantageMode[] = ["grpo", "dr-grpo", "rloo", "none"];
const SPEC_METHODS: Method[] = ["focal", "weighted-mean", "gdpo", "sa-mrpo"];
const AGGREGATORS: Method[] = [
  "weighted-sum", "min", "power-mean", "soft-min", "cvar", "points-ratio", "all-or-nothing", "gated",
  "hierarchical", "pow3r", "dvao", "mo-grpo",
];
const FEATURES = ["plain", "fixed", "bounds", "scales", "instance", "absent", "invalid", "drop", "out-of-scale"] as const;
type Feature = (typeof FEATURES)[number];
const FIELDS = ["rewards", "direct", "advantages", "weights", "saturation"] as const;
const SEEDS = 2;

interface Call { scores: Float32Array; sizes: number[]; so: ScoreOptions }
interface Case { where: string; opts: Omit<EngineOptions, "backend">; criteria: Criterion[]; calls: Call[] }

/** Scores outside their criterion's scale, by up to half its width either side (clamped by the method). */
function pushOutOfScale(r: Rng, scores: Float32Array, criteria: Criterion[]): void {
  const K = criteria.length;
  for (let i = 0; i < scores.length; i++) {
    if (Number.isNaN(scores[i]) || r() > 0.25) continue;
    const [lo, hi] = criteria[i % K].scale ?? [0, 1];
    scores[i] = r() < 0.5 ? lo - (hi - lo) * (0.01 + r() * 0.5) : hi + (hi - lo) * (0.01 + r() * 0.5);
  }
}

/** One cell: a small seeded case where the feature is on and the others are at their defaults. */
function makeCase(method: Method, scope: "group" | "stream", feature: Feature, advantage: AdvantageMode, seed: number): Case {
  const r = prng(seed);
  const K = int(r, 2, 9);
  const criteria: Criterion[] = [];
  for (let k = 0; k < K; k++) {
    const c: { -readonly [P in keyof Criterion]: Criterion[P] } = { id: `c${k}` };
    // plain: positive weights only (no penalty, so nothing is guarded by default)
    c.weight = feature !== "plain" && r() < 0.25 ? -f32(0.25 + r() * 2) : f32(0.25 + r() * 2);
    if (feature === "fixed") c.fixed = k % 2 === 0; // guarded and free criteria side by side
    if (feature === "scales" || feature === "out-of-scale") c.scale = pick(r, [[1, 10], [-5, 5], [0, 100], [0.5, 2]] as const);
    criteria.push(c);
  }
  const opts: Case["opts"] = { rubric: criteria, method, scope, advantage, gamma: pick(r, [0.5, 2, 3]) };
  if (feature === "bounds") {
    opts.minWeight = f32((0.2 + r() * 0.6) / K);
    opts.maxWeight = f32(Math.min(1, (1.5 + r()) / K));
  }
  if (feature === "drop") opts.constant = "drop";
  const calls: Call[] = [];
  for (let t = 0; t < (scope === "stream" || method === "pow3r" ? 3 : 1); t++) {
    const n = int(r, 4, 48);
    const sizes = randomSizes(r, n, pick(r, [2, 4, 8]));
    // grid scores (many ties and constant criteria) for drop; randomScores keeps 3% of rows all absent
    const scores = randomScores(r, n, criteria, feature === "absent" ? 0.3 : 0, feature === "drop" || r() < 0.3);
    if (feature === "drop") {
      // one criterion constant within every group, present or not
      const k = int(r, 0, K - 1);
      for (let g = 0, start = 0; g < sizes.length; start += sizes[g++]) {
        const x = scores[start * K + k];
        for (let i = start; i < start + sizes[g]; i++) scores[i * K + k] = x;
      }
    }
    if (feature === "out-of-scale") pushOutOfScale(r, scores, criteria);
    const so: ScoreOptions = {};
    if (feature === "invalid") so.valid = Array.from({ length: n }, () => r() >= 0.3);
    if (feature === "instance") so.weights = Array.from({ length: sizes.length * K }, () => (r() < 0.15 ? 0 : f32(0.25 + r() * 3)));
    calls.push({ scores, sizes, so });
  }
  return { where: `${method} ${scope} ${feature} ${advantage} seed ${seed}`, opts, criteria, calls };
}

const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

function bitwise(where: string, a: ScoreResult, b: ScoreResult): void {
  for (const f of FIELDS) {
    const x = u32(a[f]), y = u32(b[f]);
    expect(y.length, `${where}: scalar ${f} length`).toBe(x.length);
    let bad = -1;
    for (let i = 0; i < x.length && bad < 0; i++) if (x[i] !== y[i]) bad = i;
    expect(bad, `${where}: simd vs scalar ${f}[${bad}]: ${a[f][bad]} vs ${b[f][bad]}`).toBe(-1);
  }
}

function near(where: string, got: ArrayLike<number>, want: ArrayLike<number>, tol: (i: number) => number): void {
  expect(got.length, `${where} length`).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    const x = got[i], y = want[i];
    if (Number.isNaN(x) || Number.isNaN(y)) {
      expect(Number.isNaN(x) && Number.isNaN(y), `${where}[${i}]: ${x} vs ${y}`).toBe(true);
      continue;
    }
    if (!(Math.abs(x - y) <= tol(i))) expect.fail(`${where}[${i}]: ${x} vs ${y} (|d| = ${Math.abs(x - y).toExponential(2)} > ${tol(i).toExponential(2)})`);
  }
}

/** The share of present scores of unmasked rows outside their scale, counted here from the input. */
function fracOutOfScale(c: Case, call: Call): number {
  const K = c.criteria.length;
  let present = 0, outside = 0;
  for (let i = 0; i < call.scores.length; i++) {
    const x = call.scores[i];
    if (Number.isNaN(x) || (call.so.valid && !call.so.valid[Math.floor(i / K)])) continue;
    const [lo, hi] = c.criteria[i % K].scale ?? [0, 1];
    present++;
    if (x < lo || x > hi) outside++;
  }
  return present > 0 ? outside / present : 0;
}

async function runCase(c: Case, oracle: boolean): Promise<void> {
  const engines: Engine[] = await Promise.all(BACKENDS.map((b) => createEngine({ ...c.opts, backend: b } as EngineOptions)));
  const cfg = { ...c.opts, criteria: c.criteria };
  let state: OracleState | undefined;
  for (let t = 0; t < c.calls.length; t++) {
    const call = c.calls[t];
    const where = `${c.where} call ${t}`;
    const [simd, scalar, js] = engines.map((e) => e.score(call.scores, call.sizes, call.so));
    bitwise(where, simd, scalar);
    const frac = fracOutOfScale(c, call);
    for (const [b, out] of [simd, scalar, js].entries()) {
      expect(out.metrics["focal/frac_out_of_scale"], `${where} ${BACKENDS[b]} focal/frac_out_of_scale`).toBeCloseTo(frac, 12);
    }
    if (!oracle) {
      // the aggregators: js (float64) against simd on what has no method-specific error growth
      for (const f of ["direct", "weights", "saturation"] as const) near(`${where} js ${f}`, js[f], simd[f], () => TOL);
      continue;
    }
    const o = oracleScore({ ...cfg, scores: call.scores, groupSizes: call.sizes, valid: call.so.valid, weights: call.so.weights, state });
    state = o.state;
    for (const [b, out] of [simd, js].entries()) {
      const name = b === 0 ? "simd" : "js";
      for (const f of FIELDS) near(`${where} ${name} ${f} vs oracle`, out[f], o[f], (i) => (f === "advantages" ? advTol(c.opts, o, i) : TOL));
    }
    // scoreOne after the call: rows that have a present criterion (else no reward to compare)
    const K = c.criteria.length, rc = resolveConfig(cfg);
    for (let i = 0; i < call.scores.length / K; i += 5) {
      const row = call.scores.slice(i * K, i * K + K);
      if (!Array.from(row).some((x, k) => !Number.isNaN(x) && rc.absW[k] > 0)) continue;
      const want = oracleScoreOne(cfg, Array.from(row), state);
      const got = engines.map((e) => e.scoreOne(row));
      expect(Object.is(got[0], got[1]), `${where} scoreOne(row ${i}): simd ${got[0]} scalar ${got[1]}`).toBe(true);
      near(`${where} scoreOne(row ${i}) simd, js vs oracle`, [got[0], got[2]], [want, want], () => TOL);
    }
  }
}

/** The cells of one method: every feature that applies to it, under every advantage. */
async function runMethod(method: Method, oracle: boolean): Promise<number> {
  let cells = 0;
  const scopes = method === "focal" ? (["group", "stream"] as const) : (["group"] as const);
  for (const scope of scopes) {
    for (const feature of FEATURES) {
      // constant "drop" and instance weights are group-scope options; drop is focal's
      if (scope === "stream" && (feature === "drop" || feature === "instance")) continue;
      if (feature === "drop" && method !== "focal") continue;
      for (const [a, advantage] of ADVANTAGES.entries()) {
        for (let s = 0; s < SEEDS; s++) {
          await runCase(makeCase(method, scope, feature, advantage, 12_000 + 1000 * FEATURES.indexOf(feature) + 100 * a + s), oracle);
          cells++;
        }
      }
    }
  }
  return cells;
}

describe("methods x features x advantages on every backend", () => {
  it.each(SPEC_METHODS)("%s against the float64 oracle", async (method) => {
    expect(await runMethod(method, true)).toBeGreaterThan(0);
  }, 120_000);

  it.each(AGGREGATORS)("%s: simd == scalar, js close", async (method) => {
    expect(await runMethod(method, false)).toBeGreaterThan(0);
  }, 120_000);

  it("out-of-scale \"error\" refuses the same call on every backend, and a clean one passes", async () => {
    for (const method of [...SPEC_METHODS, ...AGGREGATORS]) {
      const c = makeCase(method, "group", "out-of-scale", "grpo", 99);
      const call = c.calls[0];
      for (const backend of BACKENDS) {
        const e = await createEngine({ ...c.opts, outOfScale: "error", backend } as EngineOptions);
        if (fracOutOfScale(c, call) > 0) expect(() => e.score(call.scores, call.sizes, call.so), `${method} ${backend}`).toThrow(/outside its scale/);
        const clean = Float32Array.from(call.scores, (x, i) => {
          const [lo, hi] = c.criteria[i % c.criteria.length].scale ?? [0, 1];
          return Math.min(Math.max(x, lo), hi);
        });
        expect(() => e.score(clean, call.sizes, call.so), `${method} ${backend} clean`).not.toThrow();
      }
    }
  });
});
