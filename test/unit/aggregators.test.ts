/**
 * Every aggregator of issue 3 on a case small enough to compute by hand (the expected values are
 * written as the arithmetic of the formula, not taken from the engine), on all three backends.
 *
 * Rubric: a (weight 1, required), b (weight 2), c (weight 1, penalty: u = 1 - x), scale [0, 1].
 * One group of three rows, raw (a, b, c) -> u (a, b, c):
 *   row 1: (0.8, 0.5, 0.2) -> (0.8, 0.5, 0.8)   d = (0.8 + 1.0 + 0.8) / 4 = 0.65
 *   row 2: (0.4, 1.0, 0.6) -> (0.4, 1.0, 0.4)   d = (0.4 + 2.0 + 0.4) / 4 = 0.70
 *   row 3: (1.0, 0.0, 0.0) -> (1.0, 0.0, 1.0)   d = (1.0 + 0.0 + 1.0) / 4 = 0.50
 * Normalized weights w = (0.25, 0.5, 0.25).
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import type { BackendName, Criterion, EngineOptions } from "../../src/types.js";

const RUBRIC: Criterion[] = [{ id: "a", required: true }, { id: "b", weight: 2 }, { id: "c", polarity: "penalty" }];
const SCORES = [0.8, 0.5, 0.2, 0.4, 1.0, 0.6, 1.0, 0.0, 0.0];
const SIZES = [3];
const BACKENDS: BackendName[] = ["simd", "scalar", "js"];
const { exp, log, sqrt, pow } = Math;

async function rewards(opts: Omit<EngineOptions, "rubric" | "backend">, rubric = RUBRIC, scores = SCORES, sizes = SIZES) {
  const out: Float32Array[] = [];
  for (const backend of BACKENDS) out.push((await createEngine({ rubric, backend, advantage: "none", ...opts })).score(scores, sizes).rewards);
  return out;
}

async function expectRewards(opts: Omit<EngineOptions, "rubric" | "backend">, want: number[], rubric = RUBRIC, scores = SCORES, sizes = SIZES) {
  const outs = await rewards(opts, rubric, scores, sizes);
  outs.forEach((got, b) => {
    want.forEach((x, i) => expect(got[i], `${BACKENDS[b]} ${JSON.stringify(opts)} row ${i + 1}`).toBeCloseTo(x, 6));
  });
  // the two wasm builds agree bit for bit
  expect(Array.from(new Uint32Array(outs[0].buffer))).toEqual(Array.from(new Uint32Array(outs[1].buffer)));
}

describe("static aggregators", () => {
  it("weighted-sum: sum b u with the raw weights (TRL)", async () => {
    await expectRewards({ method: "weighted-sum" }, [2.6, 2.8, 2.0]);
  });

  it("min: the worst criterion (weights only select: a zero weight does not count)", async () => {
    await expectRewards({ method: "min" }, [0.5, 0.4, 0]);
    // b weight 0 (instance weights: a rubric refuses a weight of 0)
    const zeroB = [{ id: "a" }, { id: "b" }, { id: "c", polarity: "penalty" as const }];
    for (const backend of BACKENDS) {
      const r = (await createEngine({ rubric: zeroB, backend, method: "min", advantage: "none" })).score(SCORES, SIZES, { weights: [1, 0, 1] });
      [0.8, 0.4, 1].forEach((x, i) => expect(r.rewards[i], `${backend} row ${i + 1}`).toBeCloseTo(x, 6));
    }
  });

  it("power-mean: p = 2, 0 (geometric), -1 (harmonic), 1 (= weighted mean), -Infinity (= min)", async () => {
    await expectRewards({ method: "power-mean", power: 2 }, [
      sqrt(0.25 * 0.64 + 0.5 * 0.25 + 0.25 * 0.64), sqrt(0.25 * 0.16 + 0.5 * 1 + 0.25 * 0.16), sqrt(0.25 + 0 + 0.25),
    ]);
    await expectRewards({ method: "power-mean", power: 0 }, [pow(0.8, 0.5) * pow(0.5, 0.5), pow(0.4, 0.5), 0]);
    await expectRewards({ method: "power-mean", power: -1 }, [1 / (0.25 / 0.8 + 0.5 / 0.5 + 0.25 / 0.8), 1 / (0.25 / 0.4 + 0.5 + 0.25 / 0.4), 0]);
    await expectRewards({ method: "power-mean", power: -Infinity }, [0.5, 0.4, 0]);
    await expectRewards({ method: "power-mean", power: Infinity }, [0.8, 1, 1]);
    // p = 1 is the direct reward bit for bit
    for (const backend of BACKENDS) {
      const r = (await createEngine({ rubric: RUBRIC, backend, method: "power-mean", power: 1 })).score(SCORES, SIZES);
      expect(Array.from(r.rewards), backend).toEqual(Array.from(r.direct));
    }
    // the default p is 0
    await expectRewards({ method: "power-mean" }, [pow(0.4, 0.5), pow(0.4, 0.5), 0]);
  });

  it("soft-min: -T ln sum w exp(-u / T), between min and the weighted mean", async () => {
    const T = 0.1;
    const sm = (u: number[]) => -T * log(0.25 * exp(-u[0] / T) + 0.5 * exp(-u[1] / T) + 0.25 * exp(-u[2] / T));
    await expectRewards({ method: "soft-min", temperature: T }, [sm([0.8, 0.5, 0.8]), sm([0.4, 1, 0.4]), sm([1, 0, 1])]);
    const [r] = await rewards({ method: "soft-min", temperature: 100 });
    expect(r[0]).toBeCloseTo(0.65, 3); // T -> inf: the weighted mean
    const [q] = await rewards({ method: "soft-min", temperature: 0.001 });
    // T -> 0: the min, plus T ln(1 / weight of the criteria at the min) = 0.001 ln 2
    expect(q[1]).toBeCloseTo(0.4 - 0.001 * log(0.5), 6);
  });

  it("cvar: mean of the worst alpha share of the weight (the boundary criterion in part)", async () => {
    // alpha 0.25: inside the worst criterion's weight
    await expectRewards({ method: "cvar", alpha: 0.25 }, [0.5, 0.4, 0]);
    // alpha 0.75: row 1 = (0.5 * 0.5 + 0.25 * 0.8) / 0.75; row 2 = (0.5 * 0.4 + 0.25 * 1) / 0.75; row 3 = 0.25 / 0.75
    await expectRewards({ method: "cvar", alpha: 0.75 }, [0.6, 0.6, 1 / 3]);
    // alpha 1: the weighted mean
    await expectRewards({ method: "cvar", alpha: 1 }, [0.65, 0.7, 0.5]);
  });

  it("points-ratio: (met positive points - met penalty points) / positive points, clipped to [0, 1]", async () => {
    // penalty c is met at its raw score x_c: row 1 = (0.8 + 2 * 0.5 - 0.2) / 3
    await expectRewards({ method: "points-ratio" }, [1.6 / 3, 1.8 / 3, 1 / 3]);
    await expectRewards({ method: "points-ratio" }, [0], RUBRIC, [0, 0, 1], [1]); // (0 - 1) / 3 clips to 0
    // a row with only its penalty judged has no positive points: it takes d
    await expectRewards({ method: "points-ratio" }, [0.7], RUBRIC, [NaN, NaN, 0.3], [1]);
  });

  it("all-or-nothing, gated, hierarchical over the required criterion a (threshold 0.5)", async () => {
    await expectRewards({ method: "all-or-nothing" }, [1, 0, 1]);
    await expectRewards({ method: "gated" }, [0.65, 0, 0.5]);
    // row 2 fails a: only the required part counts, on the full scale: 1 * 0.4 / 4
    await expectRewards({ method: "hierarchical" }, [0.65, 0.1, 0.5]);
    // threshold 0.9: row 1 (a = 0.8) fails too
    await expectRewards({ method: "gated", threshold: 0.9 }, [0, 0, 0.5]);
    await expectRewards({ method: "hierarchical", threshold: 0.9 }, [0.2, 0.1, 0.5]);
    // a score exactly at the threshold passes, even through a [1, 10] scale map
    const scaled: Criterion[] = [{ id: "a", scale: [1, 10], required: true }, { id: "b" }];
    await expectRewards({ method: "all-or-nothing" }, [1, 0], scaled, [5.5, 0, 5.4, 1], [2]);
    // no criterion marked required: every criterion is
    const none = RUBRIC.map(({ required: _, ...c }) => c);
    await expectRewards({ method: "all-or-nothing" }, [1, 0, 0], none);
    await expectRewards({ method: "hierarchical" }, [0.65, 0.7, 0.5], none);
    // an absent required criterion is left out (vacuous pass)
    await expectRewards({ method: "gated" }, [(2 * 0.2 + 0.5) / 3], RUBRIC, [NaN, 0.2, 0.5], [1]);
  });
});

describe("dynamic aggregators", () => {
  // unbiased stds over the three rows: a and c (0.8, 0.4, 1), b (0.5, 1, 0)
  const meanA = (0.8 + 0.4 + 1) / 3;
  const sdA = sqrt(((0.8 - meanA) ** 2 + (0.4 - meanA) ** 2 + (1 - meanA) ** 2) / 2);
  const sdB = 0.5;
  const U = [[0.8, 0.5, 0.8], [0.4, 1, 0.4], [1, 0, 1]];
  const mean = (f: number[], u: number[]) => (f[0] * u[0] + f[1] * u[1] + f[2] * u[2]) / (f[0] + f[1] + f[2]);

  it("dvao: weights b sigma normalized, then the weighted mean", async () => {
    const f = [sdA, 2 * sdB, sdA];
    await expectRewards({ method: "dvao" }, U.map((u) => mean(f, u)));
    const e = await createEngine({ rubric: RUBRIC, backend: "js", method: "dvao" });
    const w = e.score(SCORES, SIZES).weights;
    const s = 2 * sdA + 2 * sdB;
    expect(Array.from(w)).toEqual([sdA / s, (2 * sdB) / s, sdA / s].map((x) => expect.closeTo(x, 6)));
  });

  it("mo-grpo: sum of weighted per-criterion z-scores within the group", async () => {
    const meanB = 0.5;
    const z = (x: number, m: number, sd: number) => (x - m) / (sd + 1e-6);
    const want = U.map((u) => 0.25 * z(u[0], meanA, sdA) + 0.5 * z(u[1], meanB, sdB) + 0.25 * z(u[2], meanA, sdA));
    await expectRewards({ method: "mo-grpo" }, want);
  });

  it("pow3r: contrast EMA across calls, floor, snapshot / restore, rejected call", async () => {
    // first call: cbar = the group's stds, so the weights are dvao's
    await expectRewards({ method: "pow3r" }, U.map((u) => mean([sdA, 2 * sdB, sdA], u)));
    // floor 0.3 (minWeight): v = (0.1896, 0.6207, 0.1896) -> (0.3, 0.6207, 0.3), renormalized
    const v = [sdA, 2 * sdB, sdA].map((x) => x / (2 * sdA + 2 * sdB));
    await expectRewards({ method: "pow3r", minWeight: 0.3 }, U.map((u) => mean([0.3, v[1], 0.3], u)));
    // second call, raw rows (0, 0.5, 0.5) and (1, 0.5, 0.5): contrast (sqrt(1/2), 0, 0)
    const second = [0, 0.5, 0.5, 1, 0.5, 0.5];
    const cbar = [0.9 * sdA + 0.1 * sqrt(0.5), 0.9 * sdB, 0.9 * sdA];
    const f2 = [cbar[0], 2 * cbar[1], cbar[2]];
    const want2 = [mean(f2, [0, 0.5, 0.5]), mean(f2, [1, 0.5, 0.5])];
    const bits: number[][] = [];
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric: RUBRIC, backend, method: "pow3r", advantage: "none" });
      e.score(SCORES, SIZES);
      const snap = e.snapshot();
      expect(() => e.score([Infinity, 0, 0], [1])).toThrow(RangeError);
      expect(Array.from(e.snapshot()), `${backend}: a rejected call leaves the state`).toEqual(Array.from(snap));
      e.scoreOne([0.1, 0.2, 0.3]);
      expect(Array.from(e.snapshot()), `${backend}: scoreOne leaves the state`).toEqual(Array.from(snap));
      const r = e.score(second, [2]).rewards;
      want2.forEach((x, i) => expect(r[i], `${backend} call 2 row ${i}`).toBeCloseTo(x, 6));
      bits.push(Array.from(new Uint32Array(r.buffer)));
      // a fresh engine restored from the snapshot continues the same way; reset forgets
      const fresh = await createEngine({ rubric: RUBRIC, backend, method: "pow3r", advantage: "none" });
      fresh.restore(snap);
      expect(Array.from(fresh.score(second, [2]).rewards)).toEqual(Array.from(r));
      fresh.reset();
      // no estimate (b normalized) then the second batch's own contrast: only a has any
      const r0 = fresh.score(second, [2]).rewards;
      // cbar = (sqrt(1/2), 0, 0): v = (1, 0, 0), floored to (1, 0.02, 0.02)
      expect(r0[0]).toBeCloseTo(mean([1, 0.02, 0.02], [0, 0.5, 0.5]), 6);
      expect(r0[1]).toBeCloseTo(mean([1, 0.02, 0.02], [1, 0.5, 0.5]), 6);
    }
    expect(bits[0]).toEqual(bits[1]);
  });
});

describe("fGrpo: prompt-level focal scaling of the advantage", () => {
  it("(1 - success rate)^gamma on any method; 0 is the identity; an all-success group gets 0", async () => {
    for (const backend of BACKENDS) {
      const plain = (await createEngine({ rubric: RUBRIC, backend, method: "weighted-mean" })).score(SCORES, SIZES).advantages;
      // threshold 0.6: rows 1 and 2 (d = 0.65, 0.7) succeed: scale (1 - 2/3)^1
      const f1 = (await createEngine({ rubric: RUBRIC, backend, method: "weighted-mean", fGrpo: 1, threshold: 0.6 })).score(SCORES, SIZES).advantages;
      plain.forEach((a, i) => expect(f1[i], backend).toBeCloseTo(a / 3, 6));
      const f2 = (await createEngine({ rubric: RUBRIC, backend, method: "min", fGrpo: 2, threshold: 0.6 })).score(SCORES, SIZES);
      const minAdv = (await createEngine({ rubric: RUBRIC, backend, method: "min" })).score(SCORES, SIZES).advantages;
      minAdv.forEach((a, i) => expect(f2.advantages[i], backend).toBeCloseTo(a / 9, 6));
      const f0 = (await createEngine({ rubric: RUBRIC, backend, method: "weighted-mean", fGrpo: 0 })).score(SCORES, SIZES).advantages;
      expect(Array.from(f0), `${backend}: fGrpo 0 changes nothing`).toEqual(Array.from(plain));
      const all = (await createEngine({ rubric: RUBRIC, backend, fGrpo: 1, threshold: 0.4 })).score(SCORES, SIZES).advantages;
      expect(Array.from(all).every((a) => a === 0), `${backend}: ${all}`).toBe(true);
    }
  });
});

describe("scoreOne and options", () => {
  it("scoreOne scores a row as a group of one", async () => {
    for (const backend of BACKENDS) {
      const one = async (method: EngineOptions["method"], o: Partial<EngineOptions> = {}) =>
        (await createEngine({ rubric: RUBRIC, backend, method, ...o })).scoreOne([0.4, 1, 0.6]);
      expect(await one("min"), backend).toBeCloseTo(0.4, 6);
      expect(await one("weighted-sum"), backend).toBeCloseTo(2.8, 6);
      expect(await one("gated"), backend).toBe(0);
      expect(await one("hierarchical"), backend).toBeCloseTo(0.1, 6);
      expect(await one("points-ratio"), backend).toBeCloseTo(0.6, 6);
      expect(await one("dvao"), backend).toBeCloseTo(0.7, 6);
      expect(await one("mo-grpo"), backend).toBe(0);
      expect(await one("pow3r"), backend).toBeCloseTo(0.7, 6); // no state: b
    }
  });

  it("rejects bad options with a RangeError naming them", async () => {
    const bad: [Partial<EngineOptions>, RegExp][] = [
      [{ method: "power-mean", power: NaN }, /power/],
      [{ method: "power-mean", power: 100 }, /power/],
      [{ method: "soft-min", temperature: 0 }, /temperature/],
      [{ method: "soft-min", temperature: Infinity }, /temperature/],
      [{ method: "cvar", alpha: 0 }, /alpha/],
      [{ method: "cvar", alpha: 1.5 }, /alpha/],
      [{ method: "gated", threshold: -0.1 }, /threshold/],
      [{ method: "gated", threshold: 2 }, /threshold/],
      [{ fGrpo: -1 }, /fGrpo/],
      [{ fGrpo: Infinity }, /fGrpo/],
      [{ method: "nope" as never }, /method/],
      [{ method: "pow3r", scope: "stream" }, /stream/],
    ];
    for (const [o, re] of bad) await expect(createEngine({ rubric: RUBRIC, ...o }), JSON.stringify(o)).rejects.toThrow(re);
    for (const [o] of bad) await expect(createEngine({ rubric: RUBRIC, ...o })).rejects.toBeInstanceOf(RangeError);
  });
});
