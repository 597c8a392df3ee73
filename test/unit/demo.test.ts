/**
 * The demo's simulation (src/demo): deterministic per seed on every backend, identical on simd and
 * scalar, gamma = 0 equal to the static run, and the printed table (the CLI end to end: test/e2e/demo-cli.test.ts).
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { DEMO_METHODS, firstDifference, formatTable, runDemo } from "../../dist/demo/run.js";
import { DEFAULT_SIM, simRubric, simulate, type RunRecord } from "../../dist/demo/sim.js";
import { Rng } from "../../dist/demo/rng.js";

const SHORT = { ...DEFAULT_SIM, steps: 40 };

function sameRun(a: RunRecord, b: RunRecord): void {
  for (const key of ["quality", "judged", "weights", "saturation", "theta", "reward", "rewardStd", "fracZeroStd", "meanAbsAdvantage"] as const) {
    const x = a[key], y = b[key];
    expect(x.length).toBe(y.length);
    for (let i = 0; i < x.length; i++) {
      if (!Object.is(x[i], y[i])) throw new Error(`${key}[${i}] differs: ${x[i]} vs ${y[i]}`);
    }
  }
}

async function runOn(backend: "simd" | "scalar" | "js", options: object, seed: number, sim = SHORT): Promise<RunRecord> {
  const engine = await createEngine({ rubric: simRubric(sim), advantage: "grpo", backend, ...options });
  expect(engine.backend).toBe(backend);
  return simulate(engine, seed, sim);
}

describe("rng", () => {
  it("is deterministic per seed and differs between seeds", () => {
    const a = new Rng(7), b = new Rng(7), c = new Rng(8);
    const xa = Array.from({ length: 64 }, () => a.normal());
    const xb = Array.from({ length: 64 }, () => b.normal());
    const xc = Array.from({ length: 64 }, () => c.normal());
    expect(xa).toEqual(xb);
    expect(xa).not.toEqual(xc);
  });
  it("has roughly standard normal moments", () => {
    const r = new Rng(1);
    let s = 0, s2 = 0;
    const n = 20000;
    for (let i = 0; i < n; i++) {
      const v = r.normal();
      s += v;
      s2 += v * v;
    }
    expect(Math.abs(s / n)).toBeLessThan(0.03);
    expect(Math.abs(s2 / n - 1)).toBeLessThan(0.05);
  });
});

describe("simulation", () => {
  for (const backend of ["simd", "scalar", "js"] as const) {
    it(`is deterministic per seed on ${backend}`, async () => {
      for (const options of [{ method: "weighted-mean" }, { method: "focal", scope: "stream" }, { method: "gdpo" }] as const) {
        const engine = await createEngine({ rubric: simRubric(SHORT), advantage: "grpo", backend, ...options });
        const a = simulate(engine, 5, SHORT);
        const b = simulate(engine, 5, SHORT); // same engine: the stream state must be reset per run
        sameRun(a, b);
        sameRun(a, await runOn(backend, options, 5));
        expect(firstDifference([a], [simulate(engine, 6, SHORT)])).not.toBeNull();
      }
    });
  }

  it("gives the same runs on simd and scalar (bit for bit)", async () => {
    for (const m of DEMO_METHODS) {
      for (const seed of [1, 2]) sameRun(await runOn("simd", m.options, seed), await runOn("scalar", m.options, seed));
    }
  });

  it("gives nearly the same runs on js (the engine's js backend agrees to ~1e-6 per call)", async () => {
    const a = await runOn("simd", { method: "focal" }, 3);
    const b = await runOn("js", { method: "focal" }, 3);
    let max = 0;
    for (let i = 0; i < a.quality.length; i++) max = Math.max(max, Math.abs(a.quality[i]! - b.quality[i]!));
    expect(max).toBeLessThan(1e-4);
  });

  it("records sane values: qualities in [0, 1], weights summing to 1, saturation in [0, 1]", async () => {
    const r = await runOn("simd", { method: "focal" }, 1);
    const K = r.criteria.length;
    for (const v of r.quality) expect(v >= 0 && v <= 1).toBe(true);
    for (let t = 0; t < r.steps; t++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += r.weights[t * K + k]!;
      expect(Math.abs(s - 1)).toBeLessThan(1e-5);
      for (let k = 0; k < K; k++) expect(r.saturation[t * K + k]! >= 0 && r.saturation[t * K + k]! <= 1).toBe(true);
    }
    let sum = 0;
    for (const v of r.theta) sum += v;
    expect(sum).toBeLessThanOrEqual(DEFAULT_SIM.capacity + 1e-9);
  });

  it("static weights under weighted-mean are 1/K at every step", async () => {
    const r = await runOn("simd", { method: "weighted-mean" }, 1);
    for (const w of r.weights) expect(w).toBeCloseTo(1 / r.criteria.length, 6);
  });
});

describe("gamma = 0 equals the static run", () => {
  const pair = DEMO_METHODS.filter((m) => m.key === "weighted-mean" || m.key === "focal-g0");
  for (const backend of ["simd", "scalar", "js"] as const) {
    it(`bit for bit on ${backend} (runDemo asserts it)`, async () => {
      const res = await runDemo({ seeds: [1, 2], backend, sim: SHORT, methods: pair });
      expect(res.backend).toBe(backend);
      expect(res.gammaZero).toEqual({ bitwise: true, maxAbsDiff: 0, firstDifference: null });
    });
  }

  it("the check catches a difference", () => {
    const one = () => new Float64Array(1);
    const r1: RunRecord = { seed: 1, steps: 1, criteria: ["x", "y"], quality: new Float64Array([0.5, 0.5, 0.6, 0.7]), judged: new Float64Array(2), weights: new Float64Array(2), saturation: new Float64Array(2), theta: new Float64Array(2), reward: one(), rewardStd: one(), fracZeroStd: one(), meanAbsAdvantage: one() };
    const r2: RunRecord = { ...r1, quality: new Float64Array([0.5, 0.5, 0.6, 0.7 + 1e-16]) };
    expect(firstDifference([r1], [r1])).toBeNull();
    expect(firstDifference([r1], [r2])).toMatch(/seed 1, step 1, criterion y/);
  });
});

describe("the safety penalty and the issue-12 variants", () => {
  it("the rubric marks unsafe as a penalty, fixed by default; focal-unfixed opts it out", () => {
    const fixed = simRubric(DEFAULT_SIM).criteria.find((c) => c.id === "unsafe")!;
    expect(fixed).toEqual({ id: "unsafe", weight: -1, scale: [0, DEFAULT_SIM.judgeLevels] });
    expect(simRubric(DEFAULT_SIM, false).criteria.find((c) => c.id === "unsafe")!.fixed).toBe(false);
    const keys = DEMO_METHODS.map((m) => m.key);
    for (const k of ["focal-unfixed", "focal-drop", "focal-drgrpo", "focal-drop-drgrpo"]) expect(keys).toContain(k);
  });

  it("the judge scores the bad thing: the mean unsafe score is 1 - the safe quality, roughly", async () => {
    const r = await runOn("simd", { method: "weighted-mean" }, 1);
    const K = r.criteria.length, k = r.criteria.indexOf("unsafe");
    // Step 0: the judged unsafe level (with noise and rounding) near the true unsafe share.
    expect(Math.abs(r.judged[k]! - (1 - r.quality[k]!))).toBeLessThan(0.05);
    expect(1 - r.quality[k]!).toBeLessThan(0.2); // rarely triggered at the start
    expect(K).toBe(7);
  });

  it("records the engine's reward, reward_std, frac_reward_zero_std and mean |advantage| per step", async () => {
    const r = await runOn("simd", { method: "focal" }, 2);
    for (let t = 0; t < r.steps; t++) {
      expect(r.reward[t]! > 0 && r.reward[t]! < 1).toBe(true);
      expect(r.rewardStd[t]).toBeGreaterThan(0);
      expect(r.fracZeroStd[t]! >= 0 && r.fracZeroStd[t]! <= 1).toBe(true);
      expect(r.meanAbsAdvantage[t]).toBeGreaterThan(0);
    }
  });
});

describe("demo summary", () => {
  it("prints one row per method with per-criterion scores, worst, spread and mean", async () => {
    const res = await runDemo({ seeds: [1, 2, 3], sim: SHORT });
    const table = formatTable(res);
    const lines = table.split("\n");
    expect(lines.length).toBe(2 + DEMO_METHODS.length + 2); // head, rule, methods, blank, the penalty note
    for (const c of DEFAULT_SIM.criteria) expect(lines[0]).toContain(c.id);
    expect(lines[0]).toContain("unsafe rate");
    expect(lines[lines.length - 1]).toMatch(/^unsafe rate: the share of rollouts that are unsafe/);
    for (const h of ["worst", "spread", "mean"]) expect(lines[0]).toContain(h);
    for (const m of DEMO_METHODS) expect(table).toContain(m.label);
    for (const s of res.stats) {
      expect(s.worst.length).toBe(3);
      for (let i = 0; i < 3; i++) {
        expect(s.spread[i]).toBeGreaterThanOrEqual(0);
        expect(s.worst[i]).toBeLessThanOrEqual(s.mean[i]!);
      }
    }
  });
});
