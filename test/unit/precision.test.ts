/**
 * The spec's precision contract: rewards and weights within 1e-6 (absolute) of a float64 evaluation
 * (the independent oracle, test/support/oracle.ts) for tau >= 1e-3, gamma <= 16, any eps, K <= 256,
 * on every backend, simd and scalar bit for bit. Small tau amplifies the rounding of d_i by 1/tau,
 * large gamma that of the saturation, so the cases sit at those edges; gamma 40 checks that weights
 * which differ by many orders of magnitude stay apart (no exp clamp collapsing them). The stream
 * scope's state carries across calls, so its cases score a sequence of calls against the oracle's.
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import type { BackendName, Criterion, EngineOptions, ScoreOptions } from "../../src/types.js";
import { oracleScore } from "../support/oracle.js";
import { int, pick, prng, randomSizes } from "../support/prng.js";

const f32 = Math.fround;
const TOL = 1e-6;
const BACKENDS: BackendName[] = ["simd", "scalar", "js"];

interface Case {
  label: string;
  opts: Omit<EngineOptions, "backend">;
  criteria: Criterion[];
  scores: Float32Array;
  sizes: number[];
  so: ScoreOptions;
}

/** A focal group-scope batch at the contract's edges: tau near 1e-3, gamma up to 16, eps down to 0. */
function edgeCase(seed: number, gammaMax = 16): Case {
  const r = prng(seed);
  const K = pick(r, [1, 2, 3, 5, 16, 16, 17, 33, 64, 256]);
  const criteria: Criterion[] = [];
  for (let k = 0; k < K; k++) {
    const c: { -readonly [P in keyof Criterion]: Criterion[P] } = { id: `c${k}` };
    // Weights that float32 cannot hold exactly (0.1, 1/3...) as users write them.
    if (r() < 0.6) c.weight = pick(r, [0.1, 0.3, 1 / 3, 2.7, 1, 5]) * (r() < 0.15 ? -1 : 1);
    if (r() < 0.1) c.polarity = "penalty";
    if (r() < 0.3) c.scale = pick(r, [[1, 10], [-5, 5], [0, 100], [0.5, 2], [0, 7]] as const);
    if (r() < 0.1) c.fixed = r() < 0.5;
    criteria.push(c);
  }
  const gamma = r() < 0.5 ? pick(r, [1, 2, 3, 5, 8, 12, 16].filter((g) => g <= gammaMax)) : f32(r() * gammaMax);
  const opts: Case["opts"] = {
    rubric: criteria, method: "focal", scope: "group", advantage: "none",
    gamma, eps: pick(r, [0, 0.001, 0.01, 0.05, 0.5]), tau: pick(r, [1e-3, 1e-3, 1e-3, 2e-3, 0.01, 0.1]),
  };
  if (r() < 0.2) opts.minWeight = f32(0.2 / K);
  if (r() < 0.2) opts.mix = 0.7;
  const n = int(r, 16, 600);
  const sizes = randomSizes(r, n, pick(r, [2, 4, 16, 16, 64]));
  // Saturated profiles (near the top of each scale), continuous, some holes.
  const pNaN = pick(r, [0, 0, 0.05]);
  const profile = Array.from({ length: K }, () => pick(r, [0.99, 0.9, 0.6, 0.2]));
  const scores = new Float32Array(n * K);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < K; k++) {
      if (r() < pNaN) { scores[i * K + k] = NaN; continue; }
      const [lo, hi] = criteria[k].scale ?? [0, 1];
      const u = Math.min(1.02, Math.max(-0.02, profile[k] + (r() - 0.5) * 0.2));
      scores[i * K + k] = lo + u * (hi - lo);
    }
  }
  return { label: `seed ${seed} K=${K}`, opts, criteria, scores, sizes, so: {} };
}

const u32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

/** Scores a case on every backend; checks simd == scalar bitwise and rewards/weights against the oracle. Returns the worst error. */
async function check(c: Case): Promise<number> {
  const label = `${c.label} ${JSON.stringify({ ...c.opts, rubric: undefined })}`;
  const o = oracleScore({ ...c.opts, criteria: c.criteria, scores: c.scores, groupSizes: c.sizes });
  let worst = 0;
  const bits: Record<string, Uint32Array> = {};
  for (const backend of BACKENDS) {
    const e = await createEngine({ ...c.opts, backend } as EngineOptions);
    const res = e.score(c.scores, c.sizes, c.so);
    for (const f of ["rewards", "weights"] as const) {
      const got = res[f], want = o[f];
      for (let i = 0; i < want.length; i++) {
        const err = Math.abs(got[i] - want[i]);
        if (!(err <= TOL)) expect.fail(`${label} ${backend} ${f}[${i}]: ${got[i]} vs float64 ${want[i]} (|d| = ${err.toExponential(2)})`);
        worst = Math.max(worst, err);
      }
      if (backend === "simd") bits[f] = Uint32Array.from(u32(got));
      if (backend === "scalar") expect(Array.from(u32(got)), `${label}: simd vs scalar ${f}`).toEqual(Array.from(bits[f]));
    }
  }
  return worst;
}

describe("precision contract (spec): within 1e-6 of float64", () => {
  it("tau 1e-3 .. 0.1, gamma up to 16, eps 0 .. 0.5, K up to 256, on every backend (80 seeded cases)", async () => {
    let worst = 0;
    for (let s = 1; s <= 80; s++) worst = Math.max(worst, await check(edgeCase(31_000 + s)));
    if (process.env.FOCAL_TEST_VERBOSE) console.log(`worst |d| ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(TOL);
  }, 120_000);

  it("gamma 40 (past the contract): rows {a: 1, b: 0.99} twice give w_a = 0.00068, not 0.5", async () => {
    const criteria: Criterion[] = [{ id: "a" }, { id: "b" }];
    const c: Case = { label: "gamma 40 two rows", opts: { rubric: criteria, gamma: 40 }, criteria, scores: Float32Array.from([1, 0.99, 1, 0.99]), sizes: [2], so: {} };
    const o = oracleScore({ ...c.opts, criteria, scores: c.scores, groupSizes: c.sizes });
    expect(o.weights[0]).toBeCloseTo(0.00068, 5);
    await check(c);
  });

  it("gamma 40 on random batches: weights apart by many orders of magnitude stay apart", async () => {
    for (let s = 1; s <= 20; s++) {
      const c = edgeCase(32_000 + s, 16);
      c.opts.gamma = 40;
      await check(c);
    }
  }, 120_000);
});

describe("precision contract (spec), stream scope: within 1e-6 of float64 across calls", () => {
  it("sequences of 12 calls at gamma up to 16, tau down to 1e-3, eps down to 0, on every backend (24 seeded cases)", async () => {
    let worst = 0;
    for (let seed = 1; seed <= 24; seed++) {
      const r = prng(33_000 + seed);
      const K = pick(r, [2, 3, 5, 16, 33]);
      const criteria: Criterion[] = Array.from({ length: K }, (_, k) => ({ id: `c${k}`, weight: pick(r, [0.1, 1 / 3, 1, 2.7]) }));
      const opts: Omit<EngineOptions, "backend"> = {
        rubric: criteria, method: "focal", scope: "stream", advantage: "none",
        gamma: pick(r, [3, 8, 16]), eps: pick(r, [0, 0.01, 0.05]), tau: pick(r, [1e-3, 0.01, 1]), decay: pick(r, [0.5, 0.9, 0.99]),
      };
      // Saturated profiles: little headroom, where gamma amplifies the rounding of the estimate most.
      const profile = Array.from({ length: K }, () => pick(r, [0.99, 0.9, 0.6]));
      const calls = Array.from({ length: 12 }, () => {
        const n = int(r, 32, 700);
        const scores = new Float32Array(n * K);
        for (let i = 0; i < n * K; i++) scores[i] = Math.min(1, Math.max(0, profile[i % K] + (r() - 0.5) * 0.2));
        return { scores, sizes: randomSizes(r, n, 16) };
      });
      const engines = await Promise.all(BACKENDS.map((backend) => createEngine({ ...opts, backend } as EngineOptions)));
      let state: Parameters<typeof oracleScore>[0]["state"];
      for (const [j, c] of calls.entries()) {
        const o = oracleScore({ ...opts, criteria, scores: c.scores, groupSizes: c.sizes, state });
        state = o.state;
        const bits: Record<string, number[]> = {};
        for (const [b, e] of engines.entries()) {
          const res = e.score(c.scores, c.sizes);
          for (const f of ["rewards", "weights"] as const) {
            for (let i = 0; i < o[f].length; i++) {
              const err = Math.abs(res[f][i] - o[f][i]);
              if (!(err <= TOL)) expect.fail(`seed ${seed} call ${j} ${BACKENDS[b]} ${f}[${i}]: ${res[f][i]} vs float64 ${o[f][i]} (|d| = ${err.toExponential(2)})`);
              worst = Math.max(worst, err);
            }
            if (BACKENDS[b] === "simd") bits[f] = Array.from(u32(res[f]));
            if (BACKENDS[b] === "scalar") expect(Array.from(u32(res[f])), `seed ${seed} call ${j}: simd vs scalar ${f}`).toEqual(bits[f]);
          }
        }
      }
    }
    if (process.env.FOCAL_TEST_VERBOSE) console.log(`stream worst |d| ${worst.toExponential(2)}`);
    expect(worst).toBeLessThanOrEqual(TOL);
  }, 120_000);
});
