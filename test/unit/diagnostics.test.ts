/**
 * src/diagnostics.ts on a case computed by hand, and its accumulation over calls.
 *
 * Rubric x (required), y; scale [0, 1]; threshold 0.5. Two groups, u = raw:
 *   group 1: (1, 0), (0, 1), (1, 1)   d = 0.5, 0.5, 1
 *   group 2: (1, 0.2), (1, 0.8)       d = 0.6, 0.9      (x constant here)
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { Diagnostics, prepare } from "../../dist/analysis/diagnostics.js";
import { compileRubric, countOutOfScale, normalizedScore } from "../../dist/rubric.js";
import type { Criterion } from "../../src/types.js";

const RUBRIC: Criterion[] = [{ id: "x", required: true }, { id: "y" }];
const SCORES = [1, 0, 0, 1, 1, 1, 1, 0.2, 1, 0.8];
const SIZES = [3, 2];

async function diagnose(method: "weighted-mean" | "all-or-nothing", calls = 1) {
  const e = await createEngine({ rubric: RUBRIC, method, backend: "scalar" });
  const d = new Diagnostics(RUBRIC, { threshold: 0.5 });
  for (let c = 0; c < calls; c++) d.add(prepare(d.rubric, SCORES, SIZES), e.score(SCORES, SIZES));
  return d.metrics();
}

describe("diagnostics", () => {
  it("weighted-mean: per criterion, balance, ranking (by hand)", async () => {
    const m = await diagnose("weighted-mean");
    const close = (name: string, want: number) => expect(m[name], name).toBeCloseTo(want, 6);
    close("reward", 0.7);
    close("frac_reward_zero_std", 0);
    close("rewards/x/mean", 0.8);
    close("rewards/x/std", Math.sqrt(0.2)); // ss = 4 * 0.04 + 0.64
    close("rewards/y/mean", 0.6);
    close("rewards/y/std", Math.sqrt(0.22)); // ss = 0.36 + 3 * 0.16 + 0.04
    close("focal/x/weight", 0.5);
    close("focal/x/frac_constant", 0.5);
    close("focal/y/frac_constant", 0);
    close("focal/frac_constant_criteria", 0.25);
    close("focal/x/weight_on_constant", 0.5);
    close("focal/weight_on_constant", 0.25);
    close("focal/frac_unexplored", 0);
    // x: group 1 satisfiers rows 1 (A < 0) and 3; y: group 1 rows 2 (A < 0) and 3, group 2 row 2 (A > 0)
    close("focal/x/suppressed", 0.5);
    close("focal/y/suppressed", 1 / 3);
    close("focal/frac_suppressed", 0.4);
    close("balance/worst_criterion_mean", 0.6);
    close("balance/spread_range", 0.2);
    close("balance/spread_std", 0.1);
    close("balance/gini", (2 * 0.2) / (2 * 4 * 0.7));
    close("balance/strict_completion", 0.8); // x >= 0.5 in 4 of 5 rows
    close("balance/top1/worst_criterion_mean", 0.9); // best rows (1, 1) and (1, 0.8)
    close("balance/top1/strict_completion", 1);
    close("focal/kendall_distance", 0);
    close("focal/sign_flip_rate", 0);
    close("focal/top1_agreement", 1);
    // grpo: group 1 r - mean = (-1/6, -1/6, 1/3), std 0.2887; group 2 (-0.15, 0.15), std 0.2121
    const a1 = 1 / 6 / (Math.sqrt(1 / 12) + 1e-6), a2 = 0.15 / (Math.sqrt(0.045) + 1e-6);
    expect(m["focal/mean_abs_advantage"]).toBeCloseTo((4 * a1 + 2 * a2) / 5, 5);
  });

  it("all-or-nothing: ties count 1/2 in the Kendall distance; sign flips; shared top rows", async () => {
    const m = await diagnose("all-or-nothing");
    const close = (name: string, want: number) => expect(m[name], name).toBeCloseTo(want, 6);
    // r = (1, 0, 1), (1, 1): group 1 pairs 0.5 + 0.5 + 0, group 2 pair 0.5, over 4 pairs
    close("focal/kendall_distance", 1.5 / 4);
    close("focal/sign_flip_rate", 0.2); // row 1: d below its group mean, advantage positive
    close("focal/top1_agreement", 1);
    close("frac_reward_zero_std", 0.5);
    close("balance/top1/worst_criterion_mean", 0.5); // y over tied tops: (0 + 1) / 2 and (0.2 + 0.8) / 2
    close("focal/y/suppressed", 2 / 3); // group 2's satisfier has advantage 0
    close("focal/frac_suppressed", 0.4);
  });

  it("accumulates: the same call twice gives the same shares and means", async () => {
    const [one, two] = [await diagnose("weighted-mean"), await diagnose("weighted-mean", 2)];
    for (const k of Object.keys(one)) {
      if (k === "reward_std" || k.endsWith("/std")) continue; // pooled std: n - 1 changes
      expect(two[k], k).toBeCloseTo(one[k], 12);
    }
  });

  it("counts the groups of two or more valid rows whose advantages are all 0", async () => {
    const e = await createEngine({ rubric: RUBRIC, method: "all-or-nothing", backend: "scalar" });
    const d = new Diagnostics(RUBRIC, { threshold: 0.5 });
    expect(d.fracZeroAdvantageGroups()).toBeNaN();
    // group 1: r = (1, 0, 1), advantages not 0; group 2: r = (1, 1), advantages 0; group 3: one row
    const scores = [...SCORES, 1, 1], sizes = [...SIZES, 1];
    d.add(prepare(d.rubric, scores, sizes), e.score(scores, sizes));
    expect(d.fracZeroAdvantageGroups()).toBe(0.5);
  });

  it("rejects a bad threshold", () => {
    expect(() => new Diagnostics(RUBRIC, { threshold: 2 })).toThrow(RangeError);
  });
});

describe("diagnostics shared by several methods on one call", () => {
  it("give the metrics each gives alone, bit for bit (thresholds, methods and reused calls mixed)", async () => {
    const { prng } = await import("../support/prng.js");
    const r = prng(31);
    const crit: Criterion[] = [{ id: "a", required: true }, { id: "b" }, { id: "c", weight: -1 }, { id: "d" }];
    const engines = await Promise.all((["focal", "weighted-mean", "gdpo", "min"] as const).map((method) => createEngine({ rubric: crit, method, backend: "js" })));
    const calls = Array.from({ length: 12 }, (_, c) => {
      // Now and then a group of more than 32 rows (its passes are not kept as bits).
      const sizes = Array.from({ length: 1 + (c % 5) }, () => 1 + Math.floor(r() * (c % 4 === 3 ? 45 : 9)));
      const n = sizes.reduce((x, y) => x + y, 0);
      const scores = Array.from({ length: n * 4 }, () => (r() < 0.15 ? NaN : r() < 0.2 ? Math.round(r() * 2) / 2 : r()));
      const valid = Array.from({ length: n }, () => r() > 0.1);
      return { sizes, scores, valid, out: engines.map((e) => { const o = e.score(scores, sizes, { valid }); return { rewards: o.rewards.slice(), direct: o.direct.slice(), advantages: o.advantages.slice(), weights: o.weights.slice(), saturation: o.saturation.slice(), metrics: {} }; }) };
    });
    const thresholds = [0.5, 0.7, 0.5, 0.3];
    const alone = engines.map((_, m) => {
      const d = new Diagnostics(crit, { threshold: thresholds[m] });
      for (const c of calls) d.add(prepare(d.rubric, c.scores, c.sizes, c.valid), c.out[m]!);
      return d.metrics();
    });
    const shared = engines.map((_, m) => new Diagnostics(crit, { threshold: thresholds[m] }));
    let last: ReturnType<typeof prepare> | undefined;
    for (const c of calls) {
      const call = (last = prepare(shared[0]!.rubric, c.scores, c.sizes, c.valid, last));
      for (const m of [2, 0, 3, 1]) shared[m]!.add(call, c.out[m]!);
      shared[1]!.add(call, c.out[1]!); // the same method twice on one call (its sums have moved on)
    }
    const twice = new Diagnostics(crit, { threshold: thresholds[1] });
    for (const c of calls) {
      const call = prepare(twice.rubric, c.scores, c.sizes, c.valid);
      twice.add(call, c.out[1]!);
      twice.add(call, c.out[1]!);
    }
    const bits = (m: Record<string, number>) => JSON.stringify(Object.entries(m).map(([k, v]) => [k, Object.is(v, -0) ? "-0" : String(v)]));
    for (const m of [0, 2, 3]) expect(bits(shared[m]!.metrics()), `method ${m}`).toBe(bits(alone[m]!));
    expect(bits(shared[1]!.metrics())).toBe(bits(twice.metrics()));
  });
});

describe("diagnostics kept as bits and row by row", () => {
  it("strict completion and constant criteria agree with their definitions in groups of up to 32 valid rows and beyond", async () => {
    const { prng } = await import("../support/prng.js");
    const r = prng(7);
    const crit: Criterion[] = [{ id: "a", required: true }, { id: "b" }, { id: "c", required: true }, { id: "d" }];
    const e = await createEngine({ rubric: crit, method: "weighted-mean", backend: "js" });
    const d = new Diagnostics(crit, { threshold: 0.5 });
    let strict = 0, rows = 0, constant = 0, judged = 0;
    for (let c = 0; c < 20; c++) {
      const sizes = Array.from({ length: 3 }, () => 1 + Math.floor(r() * 40));
      const n = sizes.reduce((x, y) => x + y, 0);
      // a few criteria constant in a group, some scores missing, ties at the threshold
      const flat = Math.floor(r() * 4);
      const scores = Array.from({ length: n * 4 }, (_, j) => (r() < 0.1 ? NaN : j % 4 === flat ? 0.5 : Math.round(r() * 4) / 4));
      const valid = Array.from({ length: n }, () => r() > 0.1);
      const out = e.score(scores, sizes, { valid });
      d.add(prepare(d.rubric, scores, sizes, valid), out);
      for (let g = 0, s0 = 0; g < sizes.length; s0 += sizes[g]!, g++) {
        const kept = Array.from({ length: sizes[g]! }, (_, x) => s0 + x).filter((i) => !Number.isNaN(out.direct[i]!));
        rows += kept.length;
        strict += kept.filter((i) => [0, 2].every((k) => !(scores[i * 4 + k]! < 0.5 - 1e-6))).length;
        for (let k = 0; k < 4; k++) {
          const v = kept.map((i) => scores[i * 4 + k]!).filter((x) => !Number.isNaN(x));
          if (v.length === 0) continue;
          judged++;
          if (v.every((x) => x === v[0])) constant++;
        }
      }
    }
    const m = d.metrics();
    expect(m["balance/strict_completion"]).toBe(strict / rows);
    expect(m["focal/frac_constant_criteria"]).toBe(constant / judged);
  });
});

describe("prepare", () => {
  it("refuses group sizes that do not sum to the rows (or a mask of another length) and writes nothing", () => {
    const cr = compileRubric(RUBRIC);
    // Scores of three rows, x out of scale in the first; group 2 is the last row.
    const call = prepare(cr, [2, 0, 0, 1, 1, NaN], [2, 1]);
    const kept = () => JSON.stringify([Array.from(call.u), Array.from(call.present), Array.from(call.outOfScale)]);
    const before = kept();
    for (const sizes of [[2, 2], [1, 1], [3, 1], [2, 1.5], [-1, 4]]) {
      expect(() => prepare(cr, [0, NaN, NaN, NaN, NaN, NaN], sizes, undefined, call), String(sizes)).toThrow(RangeError);
    }
    expect(() => prepare(cr, SCORES, [3, 3])).toThrow(/group sizes sum to 6 rows, the scores hold 5/);
    expect(() => prepare(cr, SCORES, SIZES, [true, true])).toThrow(/one entry per row \(5\)/);
    expect(kept()).toBe(before);
    expect(Array.from(call.present)).toEqual([1, 1, 1, 0]);
    expect([call.clamped, call.scored, ...call.outOfScale]).toEqual([1, 5, 1, 0]);
  });

  it("normalizes, marks presence and counts out-of-scale scores of unmasked rows as the one-score forms do", async () => {
    const { prng } = await import("../support/prng.js");
    const r = prng(7);
    const crit: Criterion[] = [{ id: "a", scale: [1, 5] }, { id: "b", weight: -2 }, { id: "c", polarity: "penalty", scale: [-1, 1] }];
    const cr = compileRubric(crit);
    let last: ReturnType<typeof prepare> | undefined;
    for (let c = 0; c < 20; c++) {
      const sizes = Array.from({ length: 1 + (c % 4) }, () => Math.floor(r() * 6));
      const n = sizes.reduce((x, y) => x + y, 0);
      const scores = Float32Array.from({ length: n * 3 }, () => (r() < 0.2 ? NaN : 8 * r() - 3));
      const valid = c % 3 === 0 ? undefined : Array.from({ length: n }, () => r() > 0.3);
      const call = (last = prepare(cr, scores, sizes, valid, last));
      expect(Array.from(call.u)).toEqual(Array.from(scores, (x, i) => normalizedScore(cr, x, i % 3)));
      const present = new Array(sizes.length * 3).fill(0);
      for (let g = 0, i = 0; g < sizes.length; g++) {
        for (const end = i + sizes[g]!; i < end; i++) for (let k = 0; k < 3; k++) if ((!valid || valid[i]) && !Number.isNaN(scores[i * 3 + k])) present[g * 3 + k] = 1;
      }
      expect(Array.from(call.present)).toEqual(present);
      const outside = new Float64Array(3);
      const counted = countOutOfScale(cr, scores, n, valid, outside);
      expect([call.clamped, call.scored, ...call.outOfScale]).toEqual([counted.outside, counted.present, ...outside]);
    }
  });
});
