/**
 * `focal-reward replay` on real judge scores (test/fixtures/writingbench, provenance in its README),
 * the CSV reader and multi-step logs (the CLI: test/e2e/replay-cli.test.ts). The data set must be there: a missing file fails the
 * tests (nothing is skipped).
 */
import { existsSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { readSteps } from "../../dist/log/jsonl.js";
import { parseMethods } from "../../dist/analysis/methods.js";
import { Downsampler, kendallTauB, replay, type ReplayResult } from "../../dist/analysis/replay.js";
import { replayReport } from "../../dist/report/replay-report.js";
import { parseCsvRecord, readCsvSteps } from "../../dist/log/csv.js";
import type { Step } from "../../dist/log/step.js";
import type { Criterion } from "../../src/types.js";
import { WB_RUBRIC as RUBRIC, WB_SCORES as SCORES, loadWritingbench as load, toCsv, type WbLine as Line } from "../support/writingbench.js";

async function* arrayLines(text: string): AsyncGenerator<string> {
  yield* text.split("\n");
}

const METHODS = parseMethods("focal,weighted-mean,gdpo");

async function replayJsonl(text: string, rubric: { criteria: Criterion[] }, methods = METHODS, extra = {}): Promise<ReplayResult> {
  return replay(readSteps(arrayLines(text), rubric.criteria.map((c) => c.id)), { rubric, methods, engine: { advantage: "grpo", ...extra } });
}

describe("replay on writingbench (real judge scores)", () => {
  it("finds the data set", () => {
    expect(existsSync(SCORES), `missing ${SCORES}`).toBe(true);
    expect(existsSync(RUBRIC), `missing ${RUBRIC}`).toBe(true);
  });

  it("counts rows, groups and criteria as the README says, and finds the 3 constant criteria", async () => {
    const { rubric } = load();
    const r = await replayJsonl(readFileSync(SCORES, "utf8"), rubric);
    expect(r.rows).toBe(34);
    expect(r.validRows).toBe(34);
    expect(r.steps).toBe(1);
    expect(r.groups).toBe(5);
    expect(r.criteria.length).toBe(25);
    expect(r.judged.reduce((a, b) => a + b, 0)).toBe(34 * 5);
    expect(r.fracConstant.reduce((a, b) => a + b, 0)).toBe(3);
    for (const w of r.staticWeight) expect(w).toBeCloseTo(0.2, 12);
  });

  it("matches an independent reading of the data: mean normalized scores and direct rewards", async () => {
    const { lines, rubric } = load();
    const r = await replayJsonl(readFileSync(SCORES, "utf8"), rubric);
    r.criteria.forEach((c, k) => {
      const v = lines.filter((l) => l.scores[c] != null).map((l) => (l.scores[c]! - 1) / 9);
      expect(r.uMean[k]).toBeCloseTo(v.reduce((a, b) => a + b, 0) / v.length, 10);
    });
    expect(r.examples.length).toBeGreaterThan(0);
    for (const e of r.examples) {
      e.lines.forEach((ln, i) => {
        const l = lines[ln - 1]!;
        expect(l.group).toBe(e.group);
        const vals = Object.values(l.scores).map((s) => (s! - 1) / 9);
        expect(e.direct[i]).toBeCloseTo(vals.reduce((a, b) => a + b, 0) / vals.length, 6);
      });
    }
  });

  it("reports the engine's own weights and saturation per criterion", async () => {
    const { rubric } = load();
    const text = readFileSync(SCORES, "utf8");
    const r = await replayJsonl(text, rubric);
    const ids = rubric.criteria.map((c) => c.id);
    const engine = await createEngine({ rubric, method: "focal", scope: "group", advantage: "grpo" });
    let step: Step | undefined;
    for await (const s of readSteps(arrayLines(text), ids)) step = s;
    const out = engine.score(step!.scores, step!.groupSizes, { valid: step!.valid });
    const focal = r.methods.find((m) => m.key === "focal")!;
    const K = ids.length;
    step!.groups.forEach((g, gi) => {
      ids.forEach((id, k) => {
        if (!id.startsWith(`${String(g)}/`)) return;
        expect(focal.weight[k]).toBeCloseTo(out.weights[gi * K + k]!, 7);
        expect(focal.saturation[k]).toBeCloseTo(out.saturation[gi * K + k]!, 7);
      });
    });
    // Each criterion belongs to one group and a group's weights sum to 1: 5 groups -> 5.
    for (const m of r.methods) expect(m.weight.reduce((a, b) => a + b, 0)).toBeCloseTo(5, 5);
    expect(r.methods.find((m) => m.key === "weighted-mean")!.weight.every((w) => Math.abs(w - 0.2) < 1e-6)).toBe(true);
    // Focal moves weight away from the saturated criteria: the constant ones (u = 0.889) get less than static.
    r.criteria.forEach((_, k) => {
      if (r.fracConstant[k] === 1) expect(focal.weight[k]).toBeLessThan(0.2);
    });
  });

  it("compares rankings in every group that has something to rank", async () => {
    const { rubric } = load();
    const r = await replayJsonl(readFileSync(SCORES, "utf8"), rubric);
    expect(r.pairs.map((p) => `${p.a}/${p.b}`)).toEqual(["focal/weighted-mean", "focal/gdpo", "weighted-mean/gdpo"]);
    for (const p of r.pairs) {
      expect(p.groups).toBe(5);
      expect(p.meanTau).toBeGreaterThan(-1);
      expect(p.meanTau).toBeLessThanOrEqual(1);
      expect(p.tauHist.reduce((a, b) => a + b, 0)).toBe(5);
    }
    // Focal and the weighted mean do not order every group the same way on this data.
    expect(r.pairs[0]!.fracOrderDiffers).toBeGreaterThan(0);
  });

  it("reads the same data as CSV (quoted header, CRLF) with identical results", async () => {
    const { lines, rubric } = load();
    const ids = rubric.criteria.map((c) => c.id);
    const a = await replayJsonl(readFileSync(SCORES, "utf8"), rubric);
    const csv = toCsv(lines, ids);
    const b = await replay(readCsvSteps(arrayLines(csv), { criteria: ids }), { rubric, methods: METHODS, engine: { advantage: "grpo" } });
    for (const key of ["rows", "groups", "steps", "uMean", "uStd", "fracConstant", "staticWeight", "pairs"] as const) expect(b[key]).toEqual(a[key]);
    // Same examples; CSV line numbers count the header.
    expect(b.examples.map((e) => ({ ...e, lines: e.lines.map((l) => l - 1) }))).toEqual(a.examples);
    b.methods.forEach((m, i) => {
      expect(m.weight).toEqual(a.methods[i]!.weight);
      expect(m.saturation).toEqual(a.methods[i]!.saturation);
      expect(m.metrics).toEqual(a.methods[i]!.metrics);
    });
  });

  it("writes a report with every section and chart", async () => {
    const { rubric } = load();
    const r = await replayJsonl(readFileSync(SCORES, "utf8"), rubric, parseMethods("focal,focal-stream,weighted-mean,gdpo"));
    const html = replayReport(r, ["focal", "focal-stream"]);
    for (const id of ["weights-by-criterion", "saturation-by-criterion", "step-summary-focal", "step-summary-focal-stream", "tau-histogram"]) {
      expect(html).toContain(`data-chart="${id}"`);
    }
    expect(html).not.toMatch(/data-marks="0"/);
    expect(html).not.toMatch(/<script/i);
    expect(html).toContain("q40/Comprehensive Coverage");
  });
});

describe("CSV reader", () => {
  it("parses quotes, escaped quotes, embedded commas and newlines", async () => {
    expect(parseCsvRecord(`a,"b,c","d""e",`)).toEqual(["a", "b,c", 'd"e', ""]);
    expect(parseCsvRecord(`"open`)).toBeNull();
    const text = `step,group,"x, y",z,valid\n1,"g\n1",0.5,,true\n1,h,0.25,1,0\n2,g,NA,0.75,1\n`;
    const steps: Step[] = [];
    for await (const s of readCsvSteps(arrayLines(text))) steps.push(s);
    expect(steps.length).toBe(2);
    expect(steps[0]!.criteria).toEqual(["x, y", "z"]);
    expect(steps[0]!.groups).toEqual(["g\n1", "h"]);
    expect(Array.from(steps[0]!.scores)).toEqual([0.5, NaN, 0.25, 1]);
    expect(Array.from(steps[0]!.valid)).toEqual([1, 0]);
    expect(steps[0]!.lines).toEqual([2, 4]);
    expect(steps[1]!.step).toBe("2");
    expect(Array.from(steps[1]!.scores)).toEqual([NaN, 0.75]);
  });

  it("treats empty, blank and null-like cells as not judged, and reads numbers with spaces", async () => {
    const text = "group,a,b,c,d\ng, ,null, 0.25 ,NA\r\n";
    const steps: Step[] = [];
    for await (const s of readCsvSteps([text.split("\n")])) steps.push(s);
    expect(Array.from(steps[0]!.scores)).toEqual([NaN, NaN, 0.25, NaN]);
  });

  it("gathers the rows of a group in order of first appearance within a step", async () => {
    const text = `step,group,a\n0,g1,0.1\n0,g2,0.2\n0,g1,0.3\n0,g3,0.4\n0,g2,0.5\n`;
    const steps: Step[] = [];
    for await (const s of readCsvSteps(arrayLines(text))) steps.push(s);
    expect(steps[0]!.groups).toEqual(["g1", "g2", "g3"]);
    expect(steps[0]!.groupSizes).toEqual([2, 2, 1]);
    expect(Array.from(steps[0]!.scores, (v) => +v.toFixed(2))).toEqual([0.1, 0.3, 0.2, 0.5, 0.4]);
    expect(steps[0]!.lines).toEqual([2, 4, 3, 6, 5]);
  });

  it("rejects bad input with the line number", async () => {
    const bad = async (text: string): Promise<string> => {
      try {
        for await (const _ of readCsvSteps(arrayLines(text))) void _;
      } catch (e) {
        return (e as Error).message;
      }
      return "no error";
    };
    expect(await bad("group,a\ng,0.5\ng,abc\n")).toMatch(/line 3.*'a'.*not a number/);
    expect(await bad("group,a\ng,0.5,1\n")).toMatch(/line 2: 3 fields/);
    expect(await bad("a,b\n1,2\n")).toMatch(/no 'group' column/);
    expect(await bad("group,a\ng,\"open\n")).toMatch(/line 2: unterminated/);
    expect(await bad("group,a,valid\ng,1,maybe\n")).toMatch(/line 2: column 'valid'/);
    expect(await bad("")).toMatch(/empty input/);
  });
});

describe("multi-step logs", () => {
  /** A synthetic log: `steps` steps of 4 groups x 6 rollouts, 3 criteria, one invalid row per step. */
  function synth(steps: number): string {
    let seed = 12345;
    const rnd = (): number => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296);
    const out: string[] = [];
    for (let s = 0; s < steps; s++) {
      for (let g = 0; g < 4; g++) {
        for (let i = 0; i < 6; i++) {
          const sat = Math.min(1, 0.3 + s / steps);
          const scores = { fmt: +(sat + 0.1 * rnd()).toFixed(3), depth: +(0.2 * rnd()).toFixed(3), tone: i === 5 ? null : +rnd().toFixed(3) };
          out.push(JSON.stringify({ step: s, group: `p${g}`, scores, ...(g === 0 && i === 0 ? { valid: false } : {}) }));
        }
      }
    }
    return `${out.join("\n")}\n`;
  }
  const rubric = { criteria: [{ id: "fmt" }, { id: "depth", weight: 2 }, { id: "tone" }] };

  it("produces one point per step and tracks the stream scope", async () => {
    const r = await replayJsonl(synth(30), rubric, parseMethods("focal,focal-stream,weighted-mean"));
    expect(r.steps).toBe(30);
    expect(r.rows).toBe(30 * 24);
    expect(r.validRows).toBe(30 * 23);
    const stream = r.methods.find((m) => m.key === "focal-stream")!;
    expect(stream.perCriterion!.points).toBe(30);
    const w = stream.perCriterion!.series(0); // weight of fmt per step
    expect(w.length).toBe(30);
    // fmt saturates over the log: its focal weight falls.
    expect(w[29]![1]).toBeLessThan(w[0]![1]);
    const html = replayReport(r, ["focal", "focal-stream"]);
    for (const id of ["step-weights-focal", "step-saturation-focal", "step-weights-focal-stream", "step-saturation-focal-stream"]) expect(html).toContain(`data-chart="${id}"`);
  });

  it("keeps per-step series bounded (downsampling)", async () => {
    const r = await replay(readSteps(arrayLines(synth(100)), ["fmt", "depth", "tone"]), { rubric, methods: parseMethods("focal"), maxPoints: 8 });
    const m = r.methods[0]!;
    expect(m.perCriterion!.points).toBeLessThanOrEqual(8);
    const xs = m.perCriterion!.series(0).map(([x]) => x);
    expect(xs[0]).toBeGreaterThanOrEqual(0);
    expect(xs[xs.length - 1]).toBeLessThanOrEqual(99);
    for (let i = 1; i < xs.length; i++) expect(xs[i]!).toBeGreaterThan(xs[i - 1]!);
  });
});

describe("helpers", () => {
  it("Downsampler averages buckets and skips NaN", () => {
    const d = new Downsampler(2, 4);
    for (let i = 0; i < 16; i++) d.push(i, [i, i % 2 ? NaN : 1]);
    expect(d.points).toBeLessThanOrEqual(4);
    const s0 = d.series(0), s1 = d.series(1);
    expect(s0.reduce((a, [, y]) => a + y, 0) / s0.length).toBeCloseTo(7.5, 10);
    for (const [, y] of s1) expect(y).toBe(1);
  });

  it("kendallTauB", () => {
    expect(kendallTauB([1, 2, 3], [10, 20, 30])).toBe(1);
    expect(kendallTauB([1, 2, 3], [3, 2, 1])).toBe(-1);
    expect(kendallTauB([1, 1, 1], [1, 2, 3])).toBeNaN();
    expect(kendallTauB([1, 2, 3, 4], [1, 3, 2, 4])).toBeCloseTo(2 / 3, 12);
    // ties: x = (1,1,2), y = (1,2,3): nc=2, nd=0, tx=1, ty=0 -> 2/sqrt(3*2)
    expect(kendallTauB([1, 1, 2], [1, 2, 3])).toBeCloseTo(2 / Math.sqrt(6), 12);
  });

  it("kendallTauB counts pairs as sign(x_i - x_j) * sign(y_i - y_j) does, NaN and infinities included", () => {
    const reference = (x: number[], y: number[]) => {
      let conc = 0, disc = 0, tx = 0, ty = 0;
      for (let i = 0; i < x.length; i++) for (let j = i + 1; j < x.length; j++) {
        const dx = Math.sign(x[i]! - x[j]!), dy = Math.sign(y[i]! - y[j]!);
        if (dx === 0 && dy === 0) continue;
        if (dx === 0) tx++;
        else if (dy === 0) ty++;
        else if (dx === dy) conc++;
        else disc++;
      }
      const den = Math.sqrt((conc + disc + tx) * (conc + disc + ty));
      return den === 0 ? NaN : (conc - disc) / den;
    };
    let seed = 5;
    const rnd = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    const odd = [NaN, Infinity, -Infinity, -0];
    for (let t = 0; t < 500; t++) {
      const n = 2 + Math.floor(rnd() * (t % 5 === 0 ? 61 : 12)); // pair bits over several words too
      const v = () => (rnd() < 0.05 ? odd[Math.floor(rnd() * 4)]! : Math.floor(rnd() * 4) / 4); // many ties
      const x = Array.from({ length: n }, v), y = Array.from({ length: n }, v);
      expect(kendallTauB(x, y), `${x} / ${y}`).toBe(reference(x, y));
    }
  });

  it("parseMethods rejects unknown and duplicate methods", () => {
    expect(() => parseMethods("focal,nope")).toThrow(/unknown method 'nope'/);
    expect(() => parseMethods("gdpo,gdpo")).toThrow(/twice/);
  });
});
