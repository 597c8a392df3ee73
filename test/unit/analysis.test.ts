/**
 * The analysis layer (issue 9, item 2): Diagnostics is the one per-criterion accumulator, replay
 * builds on it (so the two cannot disagree, as they once did on frac_constant), the report shows
 * every metric, and the dependencies run one way (checked on the sources' imports).
 */
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { Diagnostics, prepare } from "../../dist/analysis/diagnostics.js";
import { parseMethods } from "../../dist/analysis/methods.js";
import { replay } from "../../dist/analysis/replay.js";
import type { Step } from "../../dist/log/step.js";
import { replayReport } from "../../dist/report/replay-report.js";
import { compileRubric } from "../../dist/rubric.js";
import { ROOT } from "../support/paths.js";
import { prng } from "../support/prng.js";

function step(rows: number[][], sizes: number[], criteria: string[]): Step {
  const n = rows.length;
  return {
    step: 0, groups: sizes.map((_, g) => `g${g}`), groupSizes: sizes, criteria,
    scores: Float32Array.from(rows.flat()), valid: new Uint8Array(n).fill(1),
    lines: rows.map((_, i) => i + 1), order: Int32Array.from(rows.keys()),
  };
}

async function* once(s: Step) {
  yield s;
}

describe("replay and Diagnostics agree", () => {
  it("one step of groups of size 1: frac_constant is 1 in replay, Diagnostics and the engine", async () => {
    const criteria = ["a", "b"];
    const st = step([[0.1, 0.9], [0.5, 0.2], [0.7, 0.4], [0.3, 0.6]], [1, 1, 1, 1], criteria);
    const rubric = { criteria: criteria.map((id) => ({ id })) };
    const r = await replay(once(st), { rubric, methods: parseMethods("focal") });
    const engine = await createEngine({ rubric, method: "focal" });
    const out = engine.score(st.scores, st.groupSizes);
    const d = new Diagnostics(compileRubric(rubric));
    d.add(prepare(compileRubric(rubric), st.scores, st.groupSizes), out);
    expect(out.metrics["focal/frac_constant_criteria"]).toBe(1);
    expect(d.criteria().fracConstant).toEqual([1, 1]);
    expect(d.metrics()["focal/frac_constant_criteria"]).toBe(1);
    expect(r.fracConstant).toEqual([1, 1]);
    expect(r.methods[0]!.metrics["focal/frac_constant_criteria"]).toBe(1);
  });

  it("replay's per-criterion numbers are Diagnostics' on a multi-step log", async () => {
    const r0 = prng(5);
    const K = 5, criteria = Array.from({ length: K }, (_, k) => `c${k}`);
    const rubric = { criteria: criteria.map((id, k) => ({ id, weight: k + 1 })) };
    const steps = Array.from({ length: 6 }, () => step(Array.from({ length: 12 }, () => criteria.map(() => (r0() < 0.1 ? NaN : Math.round(r0() * 4) / 4))), [4, 4, 3, 1], criteria));
    async function* all() {
      yield* steps;
    }
    const r = await replay(all(), { rubric, methods: parseMethods("focal,gdpo") });
    const cr = compileRubric(rubric);
    for (const [mi, name] of ["focal", "gdpo"].entries()) {
      const e = await createEngine({ rubric, method: name as "focal" | "gdpo" });
      const d = new Diagnostics(cr);
      for (const s of steps) d.add(prepare(cr, s.scores, s.groupSizes, s.valid), e.score(s.scores, s.groupSizes, { valid: s.valid }));
      const c = d.criteria();
      expect(r.methods[mi]!.metrics).toEqual(d.metrics());
      expect(r.methods[mi]!.weight).toEqual(c.weight);
      if (mi === 0) {
        expect(r.fracConstant).toEqual(c.fracConstant);
        expect(r.uMean).toEqual(c.mean);
        expect(r.staticWeight).toEqual(c.staticWeight);
      }
    }
  });
});

describe("the replay report shows every metric", () => {
  it("79 criteria, 3 methods: every diagnostic name and every criterion's row; the summary table starts with reward", async () => {
    const r0 = prng(79);
    const K = 79, criteria = Array.from({ length: K }, (_, k) => `crit${k}`);
    const rubric = { criteria: criteria.map((id) => ({ id })) };
    const st = step(Array.from({ length: 32 }, () => criteria.map(() => Math.round(r0() * 4) / 4)), [8, 8, 8, 8], criteria);
    const r = await replay(once(st), { rubric, methods: parseMethods("focal,weighted-mean,gdpo") });
    const html = replayReport(r, ["focal"]);
    const names = Object.keys(r.methods[0]!.metrics);
    expect(names.length).toBeGreaterThan(164);
    for (const n of names) {
      const parts = n.split("/");
      if (parts.length === 3 && (parts[0] === "focal" || parts[0] === "rewards")) expect(html).toContain(`<td class="l">${parts[1]}</td>`);
      else expect(html, n).toContain(`>${n}<`);
    }
    expect(html).toContain("focal/frac_constant_criteria");
    const summary = html.slice(html.indexOf('id="methods"'));
    const head = summary.slice(0, summary.indexOf("</tr>"));
    expect(head.indexOf(">reward<")).toBeLessThan(head.indexOf(">reward_std<"));
    expect(head.indexOf(">reward_std<")).toBeLessThan(head.indexOf(">frac_reward_zero_std<"));
    expect(html).not.toContain("showing those where the focal weights depart most");
    expect(html).toContain(`The charts show the 40 of ${K} criteria`);
  });
});

describe("dependencies run one way", () => {
  const imports = (folder: string): [string, string][] => {
    const dir = join(ROOT, "src", folder);
    return readdirSync(dir).filter((f) => f.endsWith(".ts")).flatMap((f) =>
      [...readFileSync(join(dir, f), "utf8").matchAll(/from "(\.[^"]+)"/g)].map((m) => [`${folder}/${f}`, m[1]!] as [string, string]));
  };
  it("report -> analysis -> log -> core; nothing below imports the CLI or the service", () => {
    const forbidden: Record<string, RegExp> = {
      analysis: /\/(cli|report|service)\//,
      log: /\/(cli|analysis|report|service)\//,
      report: /\/(cli|service)\//,
    };
    for (const [folder, re] of Object.entries(forbidden)) {
      for (const [file, spec] of imports(folder)) expect(`${file} imports ${spec}`).not.toMatch(new RegExp(`imports .*${re.source}`));
    }
  });
});
