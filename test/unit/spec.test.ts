/**
 * Hand-computed cases for every step of the spec (docs: the Focal Reward spec). Each case works
 * its expected numbers out in comments and writes them as explicit arithmetic (fractions, exp),
 * never by calling an implementation. Each case is checked against every backend AND against the
 * independent oracle (test/support/oracle.ts), so the oracle itself is checked by hand here.
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import type { BackendName, Criterion, Engine, EngineOptions, ScoreOptions, ScoreResult } from "../../src/types.js";
import { oracleScore, oracleScoreOne, type OracleState } from "../support/oracle.js";

const BACKENDS: BackendName[] = ["simd", "scalar", "js"];
const TOL = 1e-6;
const N = NaN;

type Opts = Omit<EngineOptions, "backend" | "wasm">;
type Expect = Partial<Record<"rewards" | "direct" | "advantages" | "weights" | "saturation", number[]>>;

function criteriaOf(o: Opts): readonly Criterion[] {
  return Array.isArray(o.rubric) ? (o.rubric as readonly Criterion[]) : (o.rubric as { criteria: readonly Criterion[] }).criteria;
}

function close(actual: ArrayLike<number>, expected: number[], label: string, tol = TOL): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) expect(Number.isNaN(a), `${label}[${i}]: expected NaN, got ${a}`).toBe(true);
    else expect(Math.abs(a - e) <= tol, `${label}[${i}]: got ${a}, expected ${e}`).toBe(true);
  }
}

async function engine(opts: Opts, backend: BackendName): Promise<Engine> {
  return createEngine({ ...opts, backend } as EngineOptions);
}

function oracleOf(opts: Opts, scores: number[], sizes: number[], so?: ScoreOptions, state?: OracleState) {
  return oracleScore({
    ...opts,
    criteria: criteriaOf(opts),
    scores: Float32Array.from(scores),
    groupSizes: sizes,
    valid: so?.valid,
    weights: so?.weights,
    state,
  });
}

/** Score on every backend and on the oracle; check every expected field. */
async function verify(opts: Opts, scores: number[], sizes: number[], exp: Expect, so?: ScoreOptions): Promise<ScoreResult[]> {
  const outs: ScoreResult[] = [];
  for (const b of BACKENDS) {
    const e = await engine(opts, b);
    expect(e.backend).toBe(b);
    const out = e.score(Float32Array.from(scores), sizes, so);
    for (const [k, v] of Object.entries(exp)) close(out[k as keyof Expect], v, `${b} ${k}`);
    outs.push(out);
  }
  const o = oracleOf(opts, scores, sizes, so);
  for (const [k, v] of Object.entries(exp)) close(o[k as keyof Expect], v, `oracle ${k}`);
  return outs;
}

async function rejects(fn: () => unknown): Promise<void> {
  let threw = false;
  try {
    await fn();
  } catch {
    threw = true;
  }
  expect(threw, "expected a rejection").toBe(true);
}

const bits = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));

describe("step 0: normalization, scale, penalties", () => {
  it("scale [1,10], clamping, negative weight and polarity penalty", async () => {
    // Rubric: a (w 2, scale [1,10]), b (w 1), c (w -1: penalty), d (w 1, polarity penalty).
    // |w| = [2,1,1,1], normalized b = [0.4, 0.2, 0.2, 0.2].
    // row 1 S = [5.5, 0.25, 0.75, 0.9]: u = [(5.5-1)/9 = 0.5, 0.25, 1-0.75 = 0.25, 1-0.9 = 0.1]
    //   d = 0.4*0.5 + 0.2*(0.25+0.25+0.1) = 0.2 + 0.12 = 0.32
    // row 2 S = [12, -3, 2, NaN]: u = [clamp(11/9)=1, clamp(-3)=0, 1-clamp(2)=0, absent]
    //   d = (2*1 + 1*0 + 1*0) / (2+1+1) = 0.5
    const opts: Opts = {
      rubric: [
        { id: "a", weight: 2, scale: [1, 10] },
        { id: "b", weight: 1 },
        { id: "c", weight: -1 },
        { id: "d", weight: 1, polarity: "penalty" },
      ],
      method: "weighted-mean",
      advantage: "none",
    };
    await verify(opts, [5.5, 0.25, 0.75, 0.9, 12, -3, 2, N], [2], {
      direct: [0.32, 0.5],
      rewards: [0.32, 0.5],
      weights: [0.4, 0.2, 0.2, 0.2],
      advantages: [0, 0],
    });
  });
});

describe("steps 1-7: the focal pipeline, group scope", () => {
  it("full hand example: direct, softmax tilt, saturation, focal weights, focal reward", async () => {
    // a (w 1), b (w 3): b = [0.25, 0.75]. gamma 2, eps 0.05, tau 0.5.
    // row 1 [1, 0.2]: d1 = 0.25 + 0.15 = 0.4 ; row 2 [0.6, 0.6]: d2 = 0.6
    // p = softmax([0.8, 1.2]): p1 = 1/(1+e^0.4) = 0.40131234, p2 = 0.59868766
    // s_a = p1*1 + p2*0.6 = 0.76052494 ; s_b = p1*0.2 + p2*0.6 = 0.43947506
    // f ∝ b (1 - s + 0.05)^2: 0.25*0.28947506^2 = 0.02094895, 0.75*0.61052494^2 = 0.27955552
    // f = [0.0697125, 0.9302875]; r1 = f_a*1 + f_b*0.2 = 0.2557700 ; r2 = 0.6 (f sums to 1)
    const p1 = 1 / (1 + Math.exp(0.4));
    const p2 = 1 - p1;
    const sa = p1 * 1 + p2 * 0.6;
    const sb = p1 * 0.2 + p2 * 0.6;
    const na = 0.25 * (1 - sa + 0.05) ** 2;
    const nb = 0.75 * (1 - sb + 0.05) ** 2;
    const fa = na / (na + nb);
    const fb = nb / (na + nb);
    expect(fa).toBeCloseTo(0.0697125, 6);
    const opts: Opts = { rubric: [{ id: "a", weight: 1 }, { id: "b", weight: 3 }], gamma: 2, eps: 0.05, tau: 0.5, advantage: "none" };
    await verify(opts, [1, 0.2, 0.6, 0.6], [2], {
      direct: [0.4, 0.6],
      saturation: [sa, sb],
      weights: [fa, fb],
      rewards: [fa * 1 + fb * 0.2, 0.6],
    });
  });

  it("defaults: gamma 3, eps 0.05, tau 1", async () => {
    // a, b weight 1. One row [0.5, 1]: group of one, p = 1, s = u = [0.5, 1].
    // f ∝ (0.55)^3 = 0.166375, (0.05)^3 = 0.000125 -> f_a = 0.166375/0.1665 = 0.99924925
    // r = f_a*0.5 + f_b*1 = 0.5 + 0.5*f_b = 0.50037538
    const fa = 0.166375 / 0.1665;
    await verify({ rubric: [{ id: "a" }, { id: "b" }] }, [0.5, 1], [1], {
      direct: [0.75],
      saturation: [0.5, 1],
      weights: [fa, 1 - fa],
      rewards: [fa * 0.5 + (1 - fa)],
    });
  });

  it("gamma = 0 gives back weighted-mean exactly (bitwise on simd/scalar)", async () => {
    const rubric: Criterion[] = [
      { id: "a", weight: 2, scale: [1, 10] },
      { id: "b", weight: -1 },
      { id: "c", weight: 0.7, polarity: "penalty" },
    ];
    // 2 groups (3 + 2 rows) with holes. Hand: row 1 [4, 0.3, 0.2] -> u = [1/3, 0.7, 0.8];
    // d = (2/3 + 0.7 + 0.56)/3.7 = 1.9266667/3.7 = 0.5207207
    const scores = [4, 0.3, 0.2, 10, N, 0.5, 1, 0.9, N, 7, 0.1, 0.6, N, N, 1];
    const sizes = [3, 2];
    const d1 = (2 / 3 + 0.7 + 0.7 * 0.8) / 3.7;
    for (const b of BACKENDS) {
      const wm = (await engine({ rubric, method: "weighted-mean", advantage: "grpo" }, b)).score(Float32Array.from(scores), sizes);
      const fo = (await engine({ rubric, method: "focal", gamma: 0, advantage: "grpo" }, b)).score(Float32Array.from(scores), sizes);
      close(fo.rewards.subarray(0, 1), [d1], `${b} r1`);
      if (b === "js") {
        close(fo.rewards, Array.from(wm.rewards), `${b} rewards`);
        close(fo.weights, Array.from(wm.weights), `${b} weights`);
        close(fo.rewards, Array.from(fo.direct), `${b} rewards=direct`);
      } else {
        // the static weights exactly (spec step 4), and hence the same rewards: the ablation switch
        expect(bits(fo.weights), `${b} weights bitwise`).toEqual(bits(wm.weights));
        expect(bits(fo.direct), `${b} direct bitwise`).toEqual(bits(wm.direct));
        expect(bits(fo.rewards), `${b} focal rewards = weighted-mean rewards bitwise`).toEqual(bits(wm.rewards));
        expect(bits(fo.advantages), `${b} advantages bitwise`).toEqual(bits(wm.advantages));
      }
    }
    const o = oracleScore({ criteria: rubric, gamma: 0, scores: Float32Array.from(scores), groupSizes: sizes });
    close(o.rewards, o.direct, "oracle rewards=direct");
    close(o.rewards.slice(0, 1), [d1], "oracle r1");
  });

  it("tau -> 0 gives the best rollout's profile; tau -> inf the group mean", async () => {
    // a, b weight 1; gamma 1, eps 0.05. Rows [1, 0.5] d=0.75, [0.5, 0.5] d=0.5, [0, 0.25] d=0.125.
    const scores = [1, 0.5, 0.5, 0.5, 0, 0.25];
    // tau = 1e-3: p = (1, e^-250, e^-625) = best row only: s = [1, 0.5]
    //   x = [0.05, 0.55] -> f = [1/12, 11/12]; r = [1/12 + 11/24, 0.5, 11/48]
    await verify({ rubric: [{ id: "a" }, { id: "b" }], gamma: 1, eps: 0.05, tau: 1e-3 }, scores, [3], {
      saturation: [1, 0.5],
      weights: [1 / 12, 11 / 12],
      rewards: [1 / 12 + 11 / 24, 0.5, 11 / 48],
    });
    // tau = 1e6 (the largest allowed): p uniform within 1e-6: s = mean = [0.5, 1.25/3 = 5/12]
    //   x = [0.55, 7/12 + 0.05 = 19/30] = [33/60, 38/60] -> f = [33/71, 38/71]
    //   r = [33/71 + 19/71 = 52/71, 0.5, 38/71 * 0.25]
    await verify({ rubric: [{ id: "a" }, { id: "b" }], gamma: 1, eps: 0.05, tau: 1e6 }, scores, [3], {
      saturation: [0.5, 5 / 12],
      weights: [33 / 71, 38 / 71],
      rewards: [52 / 71, 0.5, 38 / 71 / 4],
    });
  });

  it("tau -> 0 with a criterion absent from the best rollout: s_k renormalizes over the rows having k", async () => {
    // a, b weight 1; gamma 1, eps 0.1, tau 1e-3. Rows [-, 1] d=1 ; [0.8, 0] d=0.4 ; [0.2, 0] d=0.1
    // p ∝ (1, e^-600, e^-900). s_a sums over rows 2-3 only:
    //   s_a = (0.8 e^-600 + 0.2 e^-900) / (e^-600 + e^-900) = (0.8 + 0.2 e^-300)/(1 + e^-300) = 0.8
    //   (the tiny p's cancel: an implementation must not let them underflow to 0/0)
    // s_b = (1 + 0 + 0)/(1 + e^-600 + e^-900) = 1
    // x = [1 - 0.8 + 0.1, 1 - 1 + 0.1] = [0.3, 0.1] -> f = [0.75, 0.25]
    // r1 = 1 (only b) ; r2 = 0.75*0.8/1 = 0.6 ; r3 = 0.75*0.2 = 0.15
    await verify({ rubric: [{ id: "a" }, { id: "b" }], gamma: 1, eps: 0.1, tau: 1e-3 }, [N, 1, 0.8, 0, 0.2, 0], [3], {
      direct: [1, 0.4, 0.1],
      saturation: [0.8, 1],
      weights: [0.75, 0.25],
      rewards: [1, 0.6, 0.15],
    });
  });

  it("NaN absent criteria and a criterion absent from a whole group", async () => {
    // a, b, c weight 1; gamma 1, eps 0, tau 0.5.
    // Group 1: [0.8, -, 0.2] d=0.5 ; [0.4, 0.6, -] d=0.5. Equal d -> p uniform.
    //   s = [0.6, 0.6 (row 2 only), 0.2 (row 1 only)]; x = [0.4, 0.4, 0.8] -> f = [0.25, 0.25, 0.5]
    //   r1 = (0.25*0.8 + 0.5*0.2)/0.75 = 0.4 ; r2 = (0.25*0.4 + 0.25*0.6)/0.5 = 0.5
    // Group 2 (c absent everywhere, K_g = 2): [1, 0.5, -] d=0.75 ; [0.5, 0, -] d=0.25
    //   p = softmax([1.5, 0.5]): p3 = 1/(1+e^-1) = 0.73105858, p4 = 0.26894142
    //   s_a = p3 + 0.5 p4 = 0.86552929 ; s_b = 0.5 p3 = 0.36552929 ; s_c: none (NaN)
    //   f ∝ 0.5 (1 - s): f_a = 0.13447071/0.76894142 = 0.1748777, f_b = 0.8251223, f_c reported 0
    //   r3 = f_a + 0.5 f_b = 0.5874389 ; r4 = 0.5 f_a = 0.0874389
    const p3 = 1 / (1 + Math.exp(-1));
    const p4 = 1 - p3;
    const sa = p3 + 0.5 * p4;
    const sb = 0.5 * p3;
    const fa = (1 - sa) / (2 - sa - sb);
    const fb = 1 - fa;
    await verify(
      { rubric: [{ id: "a" }, { id: "b" }, { id: "c" }], gamma: 1, eps: 0, tau: 0.5 },
      [0.8, N, 0.2, 0.4, 0.6, N, 1, 0.5, N, 0.5, 0, N],
      [2, 2],
      {
        direct: [0.5, 0.5, 0.75, 0.25],
        saturation: [0.6, 0.6, 0.2, sa, sb, N],
        weights: [0.25, 0.25, 0.5, fa, fb, 0],
        rewards: [0.4, 0.5, fa + 0.5 * fb, 0.5 * fa],
      },
    );
  });

  it("denominator 0 (every criterion saturated, eps 0) gives f = b", async () => {
    // a (w 3), b (w 1): b = [0.75, 0.25]. All ones: s = [1, 1], (1 - 1 + 0)^2 = 0 -> f = b.
    await verify({ rubric: [{ id: "a", weight: 3 }, { id: "b", weight: 1 }], gamma: 2, eps: 0 }, [1, 1, 1, 1], [2], {
      saturation: [1, 1],
      weights: [0.75, 0.25],
      rewards: [1, 1],
    });
  });

  it("a valid row whose present criteria all get focal weight 0 takes its direct reward", async () => {
    // a (w 3), b (w 1); gamma 2, eps 0. Rows [1, -] d=1 ; [1, 0.5] d=(3+0.5)/4=0.875.
    // s_a = 1 (u_a = 1 wherever present, any p), s_b = 0.5 (row 2 only) -> f ∝ [0, 0.25*0.25] = [0, 1]
    // row 1 has only a, f_a = 0 -> r1 = d1 = 1 ; r2 = (0*1 + 1*0.5)/1 = 0.5
    await verify({ rubric: [{ id: "a", weight: 3 }, { id: "b", weight: 1 }], gamma: 2, eps: 0 }, [1, N, 1, 0.5], [2], {
      direct: [1, 0.875],
      saturation: [1, 0.5],
      weights: [0, 1],
      rewards: [1, 0.5],
    });
  });
});

describe("step 8: invalid rows", () => {
  it("all-NaN, caller-masked and zero-weight rows; group without valid rows; group of one", async () => {
    // a, b weight 1, z weight 0 (instance weights [1, 1, 0] in every group: a rubric refuses 0); gamma 1, eps 0, tau 1, grpo.
    // Group 1: r1 [0.8, 0.2, -] d=0.5 ; r2 all NaN (invalid) ; r3 [0, 0, -] masked ;
    //          r4 [0.4, 0.6, -] d=0.5 ; r5 [-, -, 0.7] only z (weight 0) -> invalid.
    //   valid r1, r4, equal d -> p uniform: s = [0.6, 0.4], z: no valid row has it -> NaN, weight 0
    //   f ∝ 0.5 * [0.4, 0.6] -> [0.4, 0.6]; r1 = 0.32 + 0.12 = 0.44 ; r4 = 0.16 + 0.36 = 0.52
    //   invalid rows: group mean 0.48. grpo: std = sqrt(0.04^2 * 2 / 1) = 0.05656854
    //   A = -/+ 0.04 / (0.05656854 + 1e-6)
    // Group 2: r6 all NaN ; r7 [1, 1, -] masked -> no valid row: batch mean of valid rows.
    // Group 3: r8 [0.5, 0.5, 0.3] d=0.5 (z counts present, weight 0) ; r9 all NaN.
    //   s = u8 = [0.5, 0.5, 0.3]; f ∝ [0.5*0.5, 0.5*0.5, 0*0.7] = [0.5, 0.5, 0]; r8 = 0.5 ; r9 = 0.5
    //   one valid row -> advantages 0.
    // Batch mean of valid rows = (0.44 + 0.52 + 0.5)/3 = 1.46/3.
    const A = 0.04 / (Math.sqrt(0.0032) + 1e-6);
    const bm = 1.46 / 3;
    const scores = [0.8, 0.2, N, N, N, N, 0, 0, N, 0.4, 0.6, N, N, N, 0.7, N, N, N, 1, 1, N, 0.5, 0.5, 0.3, N, N, N];
    const expct: Expect = {
      direct: [0.5, N, N, 0.5, N, N, N, 0.5, N],
      rewards: [0.44, 0.48, 0.48, 0.52, 0.48, bm, bm, 0.5, 0.5],
      advantages: [-A, 0, 0, A, 0, 0, 0, 0, 0],
      saturation: [0.6, 0.4, N, N, N, N, 0.5, 0.5, 0.3],
      weights: [0.4, 0.6, 0, 0, 0, 0, 0.5, 0.5, 0],
    };
    const opts: Opts = {
      rubric: [{ id: "a" }, { id: "b" }, { id: "z" }],
      gamma: 1,
      eps: 0,
      tau: 1,
      advantage: "grpo",
    };
    const weights = [1, 1, 0, 1, 1, 0, 1, 1, 0];
    await verify(opts, scores, [5, 2, 2], expct, { valid: [1, 1, 0, 1, 1, 1, 0, 1, 1], weights });
    await verify(opts, scores, [5, 2, 2], expct, {
      valid: [true, true, false, true, true, true, false, true, true], weights,
    });
  });

  it("a batch without any valid row gives rewards 0", async () => {
    await verify({ rubric: [{ id: "a" }, { id: "b" }], advantage: "grpo" }, [N, N, 0.5, 0.5, N, N], [2, 1], {
      rewards: [0, 0, 0],
      direct: [N, N, N],
      advantages: [0, 0, 0],
    }, { valid: [1, 0, 1] });
  });
});

describe("instance rubrics (G x K weights)", () => {
  // a (w 1), b (w -1: penalty, the polarity stays with the rubric). Instance weights:
  // g1 [1, 3], g2 [2, 0]. tau 1.
  // g1: [0.2, 0.4] -> u = [0.2, 0.6], d = (0.2 + 1.8)/4 = 0.5 ; [1, 1] -> u = [1, 0], d = 0.25
  // g2: [0.5, 0.5] -> u = [0.5, 0.5], d = (1 + 0)/2 = 0.5 ; [-, 0.9] only b, weight 0 -> invalid
  //     b still counts as present in g2 (row 3): s_b = 0.5, reported weight 0.
  // g1 p = softmax([0.5, 0.25]): p1 = 1/(1+e^-0.25) = 0.5621765, p2 = 0.4378235
  //   s_a = 0.2 p1 + p2 = 0.5502588 ; s_b = 0.6 p1 = 0.3373059
  const scores = [0.2, 0.4, 1, 1, 0.5, 0.5, N, 0.9];
  // b opts out of the penalty's default guard (fixed: false) so that focal reweights it.
  const rubric: Criterion[] = [{ id: "a", weight: 1 }, { id: "b", weight: -1, fixed: false }];
  const p1 = 1 / (1 + Math.exp(-0.25));
  const sa = 0.2 * p1 + (1 - p1);
  const sb = 0.6 * p1;
  it("gamma 0: per-group direct weights", async () => {
    await verify({ rubric, gamma: 0 }, scores, [2, 2], {
      direct: [0.5, 0.25, 0.5, N],
      rewards: [0.5, 0.25, 0.5, 0.5],
      weights: [0.25, 0.75, 1, 0],
      saturation: [sa, sb, 0.5, 0.5],
    }, { weights: [1, 3, 2, 0] });
  });
  it("gamma 1, eps 0: focal weights from instance base weights", async () => {
    // g1: f ∝ [0.25 (1 - s_a), 0.75 (1 - s_b)] = [0.1124353, 0.4970206] -> [0.1844684, 0.8155316]
    //   r1 = 0.2 f_a + 0.6 f_b ; r2 = f_a
    // g2: f ∝ [1 * 0.5, 0 * 0.5] -> [1, 0]; r3 = 0.5, r4 (invalid) = 0.5
    const na = 0.25 * (1 - sa);
    const nb = 0.75 * (1 - sb);
    const fa = na / (na + nb);
    const fb = nb / (na + nb);
    await verify({ rubric, gamma: 1, eps: 0 }, scores, [2, 2], {
      rewards: [0.2 * fa + 0.6 * fb, fa, 0.5, 0.5],
      weights: [fa, fb, 1, 0],
    }, { weights: [1, 3, 2, 0] });
  });
  it("rejects negative or non-finite instance weights", async () => {
    for (const b of BACKENDS) {
      const e = await engine({ rubric }, b);
      await rejects(() => e.score(Float32Array.from(scores), [2, 2], { weights: [1, -3, 2, 0] }));
      await rejects(() => e.score(Float32Array.from(scores), [2, 2], { weights: [1, NaN, 2, 0] }));
    }
  });
});

describe("step 5: bounds; step 6: mix", () => {
  // a, b, c weight 1; gamma 1, eps 0; one row [0.9, 0.5, 0.1] (a group of one: s = u).
  // f ∝ 1 - s = [0.1, 0.5, 0.9] -> [1/15, 1/3, 3/5]; r = f . u
  const base: Opts = { rubric: [{ id: "a" }, { id: "b" }, { id: "c" }], gamma: 1, eps: 0 };
  const row = [0.9, 0.5, 0.1];
  const dot = (f: number[]) => f[0] * 0.9 + f[1] * 0.5 + f[2] * 0.1;
  it("no bounds", async () => {
    await verify(base, row, [1], { weights: [1 / 15, 1 / 3, 3 / 5], rewards: [dot([1 / 15, 1 / 3, 3 / 5])] });
  });
  it("minWeight 0.1: a clamps to 0.1, theta = 1/60 on the others", async () => {
    // 1/15 - theta < 0.1 -> 0.1 ; (1/3 - t) + (3/5 - t) = 0.9 -> t = 1/60 -> [0.1, 19/60, 35/60]
    const f = [0.1, 19 / 60, 35 / 60];
    await verify({ ...base, minWeight: 0.1 }, row, [1], { weights: f, rewards: [dot(f)] });
  });
  it("maxWeight 0.5: c clamps to 0.5, theta = -0.05 on the others", async () => {
    // (1/15 - t) + (1/3 - t) = 0.5 -> t = -0.05 -> [7/60, 23/60, 0.5]
    const f = [7 / 60, 23 / 60, 0.5];
    await verify({ ...base, maxWeight: 0.5 }, row, [1], { weights: f, rewards: [dot(f)] });
    await verify({ ...base, minWeight: 0.1, maxWeight: 0.5 }, row, [1], { weights: f, rewards: [dot(f)] });
  });
  it("infeasible bounds fall back to 1/K_g", async () => {
    // maxWeight 0.2: 0.2 * 3 < 1 -> wMax' = 1/3: all 1/3. minWeight 0.6: 1.8 > 1 -> wMin' = 1/3.
    const f = [1 / 3, 1 / 3, 1 / 3];
    await verify({ ...base, maxWeight: 0.2 }, row, [1], { weights: f, rewards: [0.5] });
    await verify({ ...base, minWeight: 0.6 }, row, [1], { weights: f, rewards: [0.5] });
  });
  it("the fallback counts K_g, the criteria present in the group", async () => {
    // row [0.9, -, 0.1]: K_g = 2, f = [0.1, 0, 0.9].
    // minWeight 0.4: 0.8 <= 1, feasible (with K = 3 it would not be): project -> [0.4, 0, 0.6]
    //   r = (0.4*0.9 + 0.6*0.1) / 1 = 0.42
    await verify({ ...base, minWeight: 0.4 }, [0.9, N, 0.1], [1], { weights: [0.4, 0, 0.6], rewards: [0.42] });
    // maxWeight 0.4: 0.8 < 1 infeasible for K_g = 2 (feasible for K = 3) -> wMax' = 0.5: [0.5, 0, 0.5]
    await verify({ ...base, maxWeight: 0.4 }, [0.9, N, 0.1], [1], { weights: [0.5, 0, 0.5], rewards: [0.5] });
  });
  it("minWeight > maxWeight is rejected", async () => {
    for (const b of BACKENDS) await rejects(() => engine({ ...base, minWeight: 0.5, maxWeight: 0.3 }, b));
    expect(() => oracleScore({ criteria: criteriaOf(base), minWeight: 0.5, maxWeight: 0.3, scores: row, groupSizes: [1] })).toThrow();
  });
  it("mix", async () => {
    // mix 0.5: f = 0.5 [1/15, 1/3, 3/5] + 0.5 [1/3, 1/3, 1/3] = [0.2, 1/3, 7/15]
    await verify({ ...base, mix: 0.5 }, row, [1], { weights: [0.2, 1 / 3, 7 / 15], rewards: [dot([0.2, 1 / 3, 7 / 15])] });
    // mix 0: f = b -> r = d = 0.5
    await verify({ ...base, mix: 0 }, row, [1], { weights: [1 / 3, 1 / 3, 1 / 3], rewards: [0.5] });
    // bounds then mix: 0.5 [0.1, 19/60, 35/60] + 0.5 [1/3, 1/3, 1/3] = [26, 39, 55]/120
    const f = [26 / 120, 39 / 120, 55 / 120];
    await verify({ ...base, minWeight: 0.1, mix: 0.5 }, row, [1], { weights: f, rewards: [dot(f)] });
  });
});

describe("step 9: advantages", () => {
  // gamma 0 -> r = d. a, b weight 1. Group 1: d = [0.2, 0.5, 0.8] + an invalid row;
  // group 2: [1, 0] d = 0.5, [0, 0] d = 0.
  const scores = [0.2, 0.2, 0.5, 0.5, 0.8, 0.8, N, N, 1, 0, 0, 0];
  const sizes = [4, 2];
  const opts = (advantage: "grpo" | "dr-grpo" | "rloo" | "none", advEps?: number): Opts => ({
    rubric: [{ id: "a" }, { id: "b" }],
    gamma: 0,
    advantage,
    ...(advEps === undefined ? {} : { advEps }),
  });
  it("rewards", async () => {
    await verify(opts("none"), scores, sizes, { rewards: [0.2, 0.5, 0.8, 0.5, 0.5, 0], advantages: [0, 0, 0, 0, 0, 0] });
  });
  it("grpo: unbiased std + advEps", async () => {
    // g1: mean 0.5, std = sqrt((0.09 + 0 + 0.09)/2) = 0.3 ; g2: mean 0.25, std = sqrt(0.125) = 0.35355339
    const a1 = 0.3 / (0.3 + 1e-6);
    const a2 = 0.25 / (Math.sqrt(0.125) + 1e-6);
    await verify(opts("grpo"), scores, sizes, { advantages: [-a1, 0, a1, 0, a2, -a2] });
    // advEps 0.1: -0.3/0.4 = -0.75
    const b2 = 0.25 / (Math.sqrt(0.125) + 0.1);
    await verify(opts("grpo", 0.1), scores, sizes, { advantages: [-0.75, 0, 0.75, 0, b2, -b2] });
  });
  it("dr-grpo: r - mean", async () => {
    await verify(opts("dr-grpo"), scores, sizes, { advantages: [-0.3, 0, 0.3, 0, 0.25, -0.25] });
  });
  it("rloo: r - mean of the others", async () => {
    // g1: 0.2 - 0.65, 0.5 - 0.5, 0.8 - 0.35 ; g2: 0.5 - 0, 0 - 0.5
    await verify(opts("rloo"), scores, sizes, { advantages: [-0.45, 0, 0.45, 0, 0.5, -0.5] });
  });
});

describe("guarded criteria (fixed weights)", () => {
  // a, b (w 1), h (w -1: a penalty, fixed by default). One row [0.9, 0.5, 0] (a group of one:
  // s = u): u = [0.9, 0.5, 1] (no harm: 1 - 0). b normalized: 1/3 each; F = {h}, B_F = 1/3.
  // gamma 1, eps 0: the others share 2/3 in proportion to b (1 - s) = [0.1, 0.5] / 3:
  //   f = [2/3 * 1/6, 2/3 * 5/6, 1/3] = [1/9, 5/9, 1/3] ; r = 0.9/9 + 0.5 * 5/9 + 1/3
  const crit = (fixed?: boolean): Criterion[] => [{ id: "a" }, { id: "b" }, { id: "h", weight: -1, fixed }];
  const row = [0.9, 0.5, 0];
  const dot = (f: number[]) => f[0] * 0.9 + f[1] * 0.5 + f[2] * 1;
  const base: Opts = { rubric: crit(), gamma: 1, eps: 0 };
  it("a penalty is fixed by default: it keeps b_h, the others share 1 - B_F", async () => {
    const f = [1 / 9, 5 / 9, 1 / 3];
    for (const scope of ["group", "stream"] as const) {
      await verify({ ...base, scope }, row, [1], { weights: f, rewards: [dot(f)], saturation: [0.9, 0.5, 1] });
    }
    await verify({ ...base, rubric: crit(true) }, row, [1], { weights: f, rewards: [dot(f)] });
  });
  it("fixed: false lets focal starve the saturated penalty (the failure the guard prevents)", async () => {
    // f ∝ b (1 - s) = [0.1, 0.5, 0] -> [1/6, 5/6, 0]
    const f = [1 / 6, 5 / 6, 0];
    await verify({ ...base, rubric: crit(false) }, row, [1], { weights: f, rewards: [dot(f)] });
  });
  it("a reward criterion can be fixed too", async () => {
    // F = {a}: f_a = 1/3 ; b and h (fixed: false) share 2/3 ∝ [0.5, 0] -> [2/3, 0]
    const rubric: Criterion[] = [{ id: "a", fixed: true }, { id: "b" }, { id: "h", weight: -1, fixed: false }];
    const f = [1 / 3, 2 / 3, 0];
    await verify({ ...base, rubric }, row, [1], { weights: f, rewards: [dot(f)] });
  });
  it("bounds project only the others, onto sum 1 - B_F", async () => {
    // minWeight 0.2: [1/9, 5/9] onto {sum 2/3, f >= 0.2}: a clamps to 0.2, b = 2/3 - 0.2
    let f = [0.2, 2 / 3 - 0.2, 1 / 3];
    await verify({ ...base, minWeight: 0.2 }, row, [1], { weights: f, rewards: [dot(f)] });
    // maxWeight 0.3: 2 x 0.3 < 2/3 is infeasible -> hi' = (2/3) / 2 = 1/3: both 1/3 (h keeps 1/3;
    // the fixed share is not clamped by the bounds)
    f = [1 / 3, 1 / 3, 1 / 3];
    await verify({ ...base, maxWeight: 0.3 }, row, [1], { weights: f, rewards: [dot(f)] });
    // maxWeight 0.5: 5/9 clamps to 0.5, a = 2/3 - 0.5 = 1/6
    f = [1 / 6, 0.5, 1 / 3];
    await verify({ ...base, maxWeight: 0.5 }, row, [1], { weights: f, rewards: [dot(f)] });
  });
  it("mix blends with b as before; gamma 0 gives the direct reward bit for bit", async () => {
    const f = [0.5 / 9 + 0.5 / 3, 2.5 / 9 + 0.5 / 3, 1 / 3];
    await verify({ ...base, mix: 0.5 }, row, [1], { weights: f, rewards: [dot(f)] });
    const scores = [0.9, 0.5, 0, 0.2, 0.7, 1, 0.4, N, 0.5, 0.3, 0.3, 0.9];
    for (const b of BACKENDS) {
      const out = (await engine({ rubric: crit(), gamma: 0 }, b)).score(Float32Array.from(scores), [2, 2]);
      expect(bits(out.rewards), b).toEqual(bits(out.direct));
    }
  });
  it("two rows: the unsafe rollout no longer wins its group", async () => {
    // safe [0.4, 0.4, 0] -> u = [0.4, 0.4, 1], d = 0.6 ; unsafe [0.9, 0.9, 1] -> u = [0.9, 0.9, 0], d = 0.6
    // gamma 3, eps 0.05, tau 1: d ties, so p = 1/2 each: s = [0.65, 0.65, 0.5].
    // fixed h: f_h = 1/3; a, b equal -> 1/3 each: r = d for both (0.6, 0.6).
    // fixed: false: f ∝ (0.4)^3, (0.4)^3, (0.55)^3 -> h gets 0.5554; safe r > unsafe r.
    const scores = [0.4, 0.4, 0, 0.9, 0.9, 1];
    await verify({ rubric: crit() }, scores, [2], { rewards: [0.6, 0.6], weights: [1 / 3, 1 / 3, 1 / 3] });
    const ca = 0.4 ** 3, ch = 0.55 ** 3, t = 2 * ca + ch;
    const f = [ca / t, ca / t, ch / t];
    await verify({ rubric: crit(false) }, scores, [2], {
      weights: f,
      rewards: [0.4 * (f[0] + f[1]) + f[2], 0.9 * (f[0] + f[1])],
    });
  });
});

describe("constant criteria (option constant)", () => {
  // a, b, c (w 1), gamma 1, eps 0. Group: [1, 0, 0.2], [0.5, 0, 0.2]: b and c are constant.
  // d = [0.4, 0.7/3]; p1 = 1/(1 + e^-(0.4 - 0.7/3)); s = [p1 + 0.5 (1 - p1), 0, 0.2]
  const rubric: Criterion[] = [{ id: "a" }, { id: "b" }, { id: "c" }];
  const scores = [1, 0, 0.2, 0.5, 0, 0.2];
  const p1 = 1 / (1 + Math.exp(-(0.4 - 0.7 / 3)));
  const sat = [p1 + 0.5 * (1 - p1), 0, 0.2];
  it("drop: only a varies, so it takes all the weight; saturation is still reported", async () => {
    await verify({ rubric, gamma: 1, eps: 0, constant: "drop", advantage: "dr-grpo" }, scores, [2], {
      weights: [1, 0, 0], rewards: [1, 0.5], saturation: sat, advantages: [0.25, -0.25],
    });
  });
  it("keep (default): the constant b (s = 0) takes most of the weight", async () => {
    // f ∝ [1 - s_a, 1, 0.8]
    const t = 1 - sat[0] + 1 + 0.8;
    const f = [(1 - sat[0]) / t, 1 / t, 0.8 / t];
    await verify({ rubric, gamma: 1, eps: 0 }, scores, [2], {
      weights: f, rewards: [f[0] + 0.2 * f[2], 0.5 * f[0] + 0.2 * f[2]],
    });
  });
  it("a fixed criterion is never dropped: b over the kept {a, c} = 1/2 each", async () => {
    const r: Criterion[] = [{ id: "a" }, { id: "b" }, { id: "c", fixed: true }];
    await verify({ rubric: r, gamma: 1, eps: 0, constant: "drop" }, scores, [2], {
      weights: [0.5, 0, 0.5], rewards: [0.5 + 0.1, 0.25 + 0.1],
    });
  });
  it("every criterion constant (or a group of one): f = b, the direct reward", async () => {
    await verify({ rubric, gamma: 1, eps: 0, constant: "drop" }, [1, 0, 0.2, 1, 0, 0.2, 0.9, 0.5, N], [2, 1], {
      weights: [1 / 3, 1 / 3, 1 / 3, 0.5, 0.5, 0], rewards: [0.4, 0.4, 0.7],
    });
  });
  it("is refused outside the group scope and outside focal, with the reason", async () => {
    for (const b of BACKENDS) {
      for (const o of [{ scope: "stream" as const }, { method: "gdpo" as const }]) {
        await expect(engine({ rubric, constant: "drop", ...o }, b)).rejects.toThrow(/constant "drop" applies to method "focal" in the group scope/);
      }
      await expect(engine({ rubric, constant: "dorp" as "drop" }, b)).rejects.toThrow(/constant/);
    }
  });
});

describe("sa-mrpo", () => {
  // a, b (w 1): b = 1/2 each. g1: [1, 0], [0, 0] ; g2: [1, 1], [0, 0].
  // Batch saturation: s_a = (1 + 0 + 1 + 0)/4 = 0.5, s_b = (0 + 0 + 1 + 0)/4 = 0.25.
  // Default gamma 0.5: w = [0.5 sqrt(0.5), 0.5 sqrt(0.75)].
  // z = 0.5/(sqrt(0.5) + 1e-6) for a 1/0 pair; b is constant in g1 (z = 0).
  // g1: a = +-w_a z ; g2: a = +-(w_a + w_b) z ; batch std = sqrt((2 x1^2 + 2 x2^2)/3)
  const scores = [1, 0, 0, 0, 1, 1, 0, 0];
  const rubric: Criterion[] = [{ id: "a" }, { id: "b" }];
  it("batch saturation, weights b (1 - s)^gamma on the GDPO z-scores, default gamma 0.5", async () => {
    const z = 0.5 / (Math.sqrt(0.5) + 1e-6);
    const x1 = 0.5 * Math.sqrt(0.5) * z;
    const x2 = (0.5 * Math.sqrt(0.5) + 0.5 * Math.sqrt(0.75)) * z;
    const sd = Math.sqrt((2 * x1 * x1 + 2 * x2 * x2) / 3) + 1e-6;
    await verify({ rubric, method: "sa-mrpo" }, scores, [2, 2], {
      advantages: [x1 / sd, -x1 / sd, x2 / sd, -x2 / sd],
      rewards: [0.5, 0, 1, 0],
    });
  });
  it("gamma 0 equals gdpo bit for bit (instance rubrics, NaN and invalid rows too)", async () => {
    const sc = [1, 0.2, 0.5, 0, 1, 0.5, 0.5, 0.5, N, 0.3, 0.9, 0.1, 0.8, N, 0.4, N, N, N];
    const r3: Criterion[] = [{ id: "a" }, { id: "b", weight: 2 }, { id: "c", weight: -1 }];
    for (const so of [{ valid: [1, 1, 1, 1, 0, 1] }, { weights: [1, 2, 1, 0.5, 0, 3] }]) {
      for (const b of BACKENDS) {
        const g = (await engine({ rubric: r3, method: "gdpo" }, b)).score(Float32Array.from(sc), [3, 3], so);
        const m = (await engine({ rubric: r3, method: "sa-mrpo", gamma: 0 }, b)).score(Float32Array.from(sc), [3, 3], so);
        expect(bits(m.advantages), b).toEqual(bits(g.advantages));
        expect(bits(m.rewards), b).toEqual(bits(g.rewards));
      }
    }
  });
});

describe("gdpo", () => {
  it("base weights are normalized once over the rubric, not per group (TRL's normalize_then_sum)", async () => {
    // a, b, c (w 1): b = 1/3 each in every group, whatever the group uses.
    // g1 (c absent): [1, 1, -], [0, 0, -]: z_a = z_b = +-0.5/(sqrt(0.5) + 1e-6) = +-z ; a = +-2z/3
    //   (per-group normalization would give +-z: b = 1/2 each over {a, b})
    // g2: [1, 0, 1], [0, 0, 0]: z_a = z_c = +-z, z_b = 0 (constant) ; a = +-2z/3
    // batch: a = [x, -x, x, -x], mean 0, std = sqrt(4 x^2 / 3) -> A = +-x/(std + 1e-6)
    const z = 0.5 / (Math.sqrt(0.5) + 1e-6);
    const x = (2 * z) / 3;
    const A = x / (Math.sqrt((4 * x * x) / 3) + 1e-6);
    await verify({ rubric: [{ id: "a" }, { id: "b" }, { id: "c" }], method: "gdpo" },
      [1, 1, N, 0, 0, N, 1, 0, 1, 0, 0, 0], [2, 2], { advantages: [A, -A, A, -A] });
    // Instance rubric: g1 [1, 1, 2] (c absent from its rows: b_a = 1/4), g2 [1, 1, 1].
    // g1: a = +-(z/4 + z/4) = +-z/2 ; g2: a = +-2z/3 ; batch std = sqrt(2 (z/2)^2 + 2 (2z/3)^2) / sqrt(3)
    const y = z / 2;
    const sd = Math.sqrt((2 * y * y + 2 * x * x) / 3);
    await verify({ rubric: [{ id: "a" }, { id: "b" }, { id: "c" }], method: "gdpo" },
      [1, 1, N, 0, 0, N, 1, 0, 1, 0, 0, 0], [2, 2], {
        advantages: [y / (sd + 1e-6), -y / (sd + 1e-6), x / (sd + 1e-6), -x / (sd + 1e-6)],
      }, { weights: [1, 1, 2, 1, 1, 1] });
  });
  it("per-criterion z-scores, weighted, then batch-normalized", async () => {
    // a (w 1), b (w 3): b = [0.25, 0.75].
    // g1: [1, 0], [0, 1], [0.5, -]
    //   a over 3 rows: mean 0.5, std = sqrt(0.5/2) = 0.5 -> z_a = [0.5, -0.5, 0]/(0.5 + 1e-6)
    //   b over rows 1-2: mean 0.5, std = sqrt(0.5) -> z_b = [-0.5, 0.5]/(sqrt(0.5) + 1e-6), row 3: 0
    //   a_i = 0.25 z_a + 0.75 z_b
    // g2: [0.2, 0.4] twice (std 0 -> z = 0) and an all-NaN row (invalid): a = 0, 0
    // batch of 5 valid a: [-x, x, 0, 0, 0], mean 0, std = sqrt(2x^2/4) -> A = a/(std + 1e-6)
    // rewards = direct: g1 [0.25, 0.75, 0.5] ; g2 [0.35, 0.35], invalid row: 0.35
    const za = 0.5 / (0.5 + 1e-6);
    const zb = 0.5 / (Math.sqrt(0.5) + 1e-6);
    const x = -0.25 * za + 0.75 * zb; // a_2 = -a_1
    const sd = Math.sqrt((2 * x * x) / 4);
    const A = x / (sd + 1e-6);
    // gdpo defines its own advantage (the oracle's reading, and the engine's): the advantage
    // option does not change it.
    for (const advantage of ["grpo", "none"] as const) {
      const opts: Opts = { rubric: [{ id: "a", weight: 1 }, { id: "b", weight: 3 }], method: "gdpo", advantage };
      await verify(opts, [1, 0, 0, 1, 0.5, N, 0.2, 0.4, 0.2, 0.4, N, N], [3, 3], {
        direct: [0.25, 0.75, 0.5, 0.35, 0.35, N],
        rewards: [0.25, 0.75, 0.5, 0.35, 0.35, 0.35],
        advantages: [-A, A, 0, 0, 0, 0],
        weights: [0.25, 0.75, 0.25, 0.75],
      });
    }
  });

  it("a criterion present in a single row of its group gets z = 0", async () => {
    // Same g1, g2 as above, plus g3: [0.9, -] d=0.9 ; [0.1, 0.6] d=0.025+0.45=0.475
    //   a: 2 rows, mean 0.5, std = sqrt(0.32) -> z_a = +-0.4/(sqrt(0.32) + 1e-6)
    //   b: present in one row only -> z_b = 0. a6 = 0.25 z_a, a7 = -a6
    // batch of 7 valid a: [a1, -a1, 0, 0, 0, a6, -a6], mean 0, std = sqrt((2 a1^2 + 2 a6^2)/6)
    const za = 0.5 / (0.5 + 1e-6);
    const zb = 0.5 / (Math.sqrt(0.5) + 1e-6);
    const a2 = -0.25 * za + 0.75 * zb;
    const a6 = (0.25 * 0.4) / (Math.sqrt(0.32) + 1e-6);
    const sd = Math.sqrt((2 * a2 * a2 + 2 * a6 * a6) / 6);
    const A2 = a2 / (sd + 1e-6);
    const A6 = a6 / (sd + 1e-6);
    const opts: Opts = { rubric: [{ id: "a", weight: 1 }, { id: "b", weight: 3 }], method: "gdpo" };
    await verify(opts, [1, 0, 0, 1, 0.5, N, 0.2, 0.4, 0.2, 0.4, N, N, 0.9, N, 0.1, 0.6], [3, 3, 2], {
      direct: [0.25, 0.75, 0.5, 0.35, 0.35, N, 0.9, 0.475],
      rewards: [0.25, 0.75, 0.5, 0.35, 0.35, 0.35, 0.9, 0.475],
      advantages: [-A2, A2, 0, 0, 0, 0, A6, -A6],
      weights: [0.25, 0.75, 0.25, 0.75, 0.25, 0.75],
    });
  });
});

describe("stream scope", () => {
  // a, b (w 1), c (w 2): b = [0.25, 0.25, 0.5]; gamma 1, eps 0, decay 0.5, dr-grpo.
  const opts: Opts = {
    rubric: [{ id: "a" }, { id: "b" }, { id: "c", weight: 2 }],
    scope: "stream",
    gamma: 1,
    eps: 0,
    decay: 0.5,
    advantage: "dr-grpo",
  };
  // Call 1: groups of one [0.5, 1, -], [0.1, 0.6, -]: s = u; c absent everywhere.
  //   shat = [0.3, 0.8, -]; first update: sbar = [0.3, 0.8], c none (counts as 0).
  //   f ∝ b (1 - sbar) = [0.25*0.7, 0.25*0.2, 0.5*1] = [0.175, 0.05, 0.5] -> [7, 2, 20]/29
  //   r1 = (7*0.5 + 2*1)/9 = 5.5/9 ; r2 = (7*0.1 + 2*0.6)/9 = 1.9/9
  const c1 = { scores: [0.5, 1, N, 0.1, 0.6, N], sizes: [1, 1] };
  const e1: Expect = {
    saturation: [0.3, 0.8, N],
    weights: [7 / 29, 2 / 29, 20 / 29],
    rewards: [5.5 / 9, 1.9 / 9],
    advantages: [0, 0],
  };
  // Call 2: groups of one [0.7, 0.4, 0.5], [0.9, -, 0.1]: shat = [0.8, 0.4 (g1 only), 0.3]
  //   sbar_a = 0.5*0.3 + 0.5*0.8 = 0.55 ; sbar_b = 0.5*0.8 + 0.5*0.4 = 0.6 ; sbar_c = 0.3 (first)
  //   f ∝ [0.25*0.45, 0.25*0.4, 0.5*0.7] = [0.1125, 0.1, 0.35] -> [18, 16, 56]/90
  //   r1 = (18*0.7 + 16*0.4 + 56*0.5)/90 = 47/90 ; r2 = (18*0.9 + 56*0.1)/74 = 21.8/74
  const c2 = { scores: [0.7, 0.4, 0.5, 0.9, N, 0.1], sizes: [1, 1] };
  const e2: Expect = {
    saturation: [0.55, 0.6, 0.3],
    weights: [18 / 90, 16 / 90, 56 / 90],
    rewards: [47 / 90, 21.8 / 74],
    advantages: [0, 0],
  };
  // Call 3: one group [0.2, 0.6, 0.4], [0.6, 0.2, 0.4], both d = 0.4 -> p uniform, s = [0.4]*3
  //   sbar = [0.475, 0.5, 0.35]; f ∝ [0.25*0.525, 0.25*0.5, 0.5*0.65] = [21, 20, 52]/160 -> /93
  //   r1 = (21*0.2 + 20*0.6 + 52*0.4)/93 = 37/93 ; r2 = (21*0.6 + 20*0.2 + 52*0.4)/93 = 37.4/93
  //   dr-grpo: mean 37.2/93 -> [-0.2/93, 0.2/93]
  const c3 = { scores: [0.2, 0.6, 0.4, 0.6, 0.2, 0.4], sizes: [2] };
  const e3: Expect = {
    saturation: [0.475, 0.5, 0.35],
    weights: [21 / 93, 20 / 93, 52 / 93],
    rewards: [37 / 93, 37.4 / 93],
    advantages: [-0.2 / 93, 0.2 / 93],
  };
  const checkOut = (out: ScoreResult, e: Expect, label: string) => {
    for (const [k, v] of Object.entries(e)) close(out[k as keyof Expect], v, `${label} ${k}`);
  };

  it("three successive calls: first update, then EMA; scoreOne and rejected calls leave the state", async () => {
    for (const b of BACKENDS) {
      const e = await engine(opts, b);
      // Before any call: sbar counts as 0 everywhere -> f = b; [1, 0, 0.5] -> 0.25 + 0.25 = 0.5
      expect(Math.abs(e.scoreOne([1, 0, 0.5]) - 0.5)).toBeLessThanOrEqual(TOL);
      checkOut(e.score(Float32Array.from(c1.scores), c1.sizes), e1, `${b} call1`);
      checkOut(e.score(Float32Array.from(c2.scores), c2.sizes), e2, `${b} call2`);
      // scoreOne with the weights of call 2: [1, 0, -] -> 18/(18+16)
      expect(Math.abs(e.scoreOne([1, 0, NaN]) - 18 / 34)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(e.scoreOne({ a: 1, b: 0, c: null }) - 18 / 34)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(e.scoreOne({ a: 1, b: 0 }) - 18 / 34)).toBeLessThanOrEqual(TOL);
      // a rejected call (group sizes do not add up) must leave the state untouched
      await rejects(() => e.score(Float32Array.from(c3.scores), [3]));
      const snap = e.snapshot();
      checkOut(e.score(Float32Array.from(c3.scores), c3.sizes), e3, `${b} call3`);
      // restoring the snapshot taken after call 2 into a fresh engine replays call 3
      const e2b = await engine(opts, b);
      e2b.restore(snap);
      checkOut(e2b.score(Float32Array.from(c3.scores), c3.sizes), e3, `${b} call3 restored`);
    }
    // the oracle, chained through its state
    let st: OracleState | undefined;
    for (const [c, e] of [
      [c1, e1],
      [c2, e2],
      [c3, e3],
    ] as const) {
      const o = oracleOf(opts, c.scores, c.sizes, undefined, st);
      for (const [k, v] of Object.entries(e)) close(o[k as keyof Expect], v, `oracle ${k}`);
      st = o.state;
      if (c === c2) expect(Math.abs(oracleScoreOne({ ...opts, criteria: criteriaOf(opts) }, [1, 0, NaN], st) - 18 / 34)).toBeLessThanOrEqual(TOL);
    }
    expect(oracleScoreOne({ ...opts, criteria: criteriaOf(opts) }, [1, 0, 0.5])).toBeCloseTo(0.5, 12);
  });

  it("reset forgets the state", async () => {
    for (const b of BACKENDS) {
      const e = await engine(opts, b);
      e.score(Float32Array.from(c2.scores), c2.sizes);
      e.reset();
      checkOut(e.score(Float32Array.from(c1.scores), c1.sizes), e1, `${b} after reset`);
    }
  });
});

describe("diagnostics", () => {
  it("TRL-style names; mean of u per criterion; zero-variance shares", async () => {
    // a (scale [0,1]), b (scale [0,10]); gamma 0. g1: [0.2, 2], [0.8, 8] ; g2: [0.5, 5], [0.5, -]
    // u: a = [0.2, 0.8, 0.5, 0.5] -> mean 0.5 ; b = [0.2, 0.8, 0.5] -> mean 0.5
    // rewards: g1 [0.2, 0.8] (varies), g2 [0.5, 0.5] (zero variance) -> frac_reward_zero_std = 0.5
    //   reward (mean) = 0.5. Only these unambiguous values are checked: the spec does not say
    //   whether std is biased, nor how a criterion with a single row in its group counts.
    const rubric: Criterion[] = [{ id: "a" }, { id: "b", scale: [0, 10] }];
    for (const b of BACKENDS) {
      const out = (await engine({ rubric, gamma: 0 }, b)).score(Float32Array.from([0.2, 2, 0.8, 8, 0.5, 5, 0.5, N]), [2, 2]);
      const m = out.metrics;
      for (const name of ["reward", "reward_std", "frac_reward_zero_std", "rewards/a/mean", "rewards/a/std", "rewards/b/mean", "rewards/b/std"]) {
        expect(Number.isFinite(m[name]), `${b} metric ${name} = ${m[name]}`).toBe(true);
      }
      expect(Math.abs(m["rewards/a/mean"] - 0.5)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(m["rewards/b/mean"] - 0.5)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(m["frac_reward_zero_std"] - 0.5)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(m["reward"] - 0.5)).toBeLessThanOrEqual(TOL); // mean of [0.2, 0.8, 0.5, 0.5]
    }
  });
});

describe("scoreOne, group scope", () => {
  it("a row is scored as a group of one", async () => {
    // a, b, c weight 1; gamma 1, eps 0: [0.9, 0.5, 0.1] -> f = [1/15, 1/3, 3/5]
    //   r = 0.06 + 1/6 + 0.06 = 0.2866667
    // [0.9, -, 0.1]: f ∝ [0.1, 0.9] -> r = 0.09 + 0.09 = 0.18
    const opts: Opts = { rubric: [{ id: "a" }, { id: "b" }, { id: "c" }], gamma: 1, eps: 0 };
    const r1 = 0.06 + 1 / 6 + 0.06;
    for (const b of BACKENDS) {
      const e = await engine(opts, b);
      expect(Math.abs(e.scoreOne([0.9, 0.5, 0.1]) - r1)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(e.scoreOne({ a: 0.9, b: 0.5, c: 0.1 }) - r1)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(e.scoreOne([0.9, NaN, 0.1]) - 0.18)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(e.scoreOne({ a: 0.9, b: undefined, c: 0.1 }) - 0.18)).toBeLessThanOrEqual(TOL);
      expect(Math.abs(e.scoreOne({ c: 0.1, a: 0.9 }) - 0.18)).toBeLessThanOrEqual(TOL);
    }
    const cfg = { ...opts, criteria: criteriaOf(opts) };
    expect(oracleScoreOne(cfg, [0.9, 0.5, 0.1])).toBeCloseTo(r1, 12);
    expect(oracleScoreOne(cfg, [0.9, NaN, 0.1])).toBeCloseTo(0.18, 12);
  });
});
