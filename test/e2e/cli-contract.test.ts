/**
 * The CLI contract of `focal-reward score` (issue 2, section 5), checked line by line against the
 * independent oracle (test/support/oracle.ts) to 1e-5 on random JSONL inputs: steps, groups interleaved
 * within a step, null and missing scores, valid:false rows, a rubric file, the stream scope with a
 * --state file carried across two runs, --input, --metrics, and bad input.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import type { Criterion } from "../../src/types.js";
import { oracleScore, type OracleConfig, type OracleState } from "../support/oracle.js";
import { prng } from "../support/prng.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(ROOT, "dist", "cli", "main.js");
const TOL = 1e-5;
const dir = mkdtempSync(join(tmpdir(), "focal-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));


interface InLine {
  step?: unknown;
  group: unknown;
  scores: Record<string, number | null>;
  valid?: boolean;
}
interface OutLine {
  group: unknown;
  reward: number;
  direct: number | null;
  advantage: number;
  weights: Record<string, number>;
}

function run(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, "score", ...args], { input: input ?? "", encoding: "utf8", cwd: dir, timeout: 20000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function parseOut(stdout: string): OutLine[] {
  return stdout
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => JSON.parse(l) as OutLine);
}

/** Random JSONL: `steps` steps, groups interleaved within a step, holes and invalid rows. */
function randomLines(seed: number, ids: string[], scales: Record<string, [number, number]>, steps: number[]): InLine[] {
  // steps are numbers here; other step values are tested separately
  const r = prng(seed);
  const lines: InLine[] = [];
  for (const step of steps) {
    const G = 1 + Math.floor(r() * 4);
    const n = G + Math.floor(r() * 12);
    for (let i = 0; i < n; i++) {
      const g = i < G ? i : Math.floor(r() * G); // every group has a row; the rest interleaved
      const scores: Record<string, number | null> = {};
      const allNull = r() < 0.05;
      for (const id of ids) {
        const t = r();
        if (allNull || t < 0.1) scores[id] = null;
        else if (t < 0.2) continue; // missing key = not judged
        else {
          const [lo, hi] = scales[id] ?? [0, 1];
          scores[id] = Math.round((lo + (r() * 1.1 - 0.05) * (hi - lo)) * 1000) / 1000;
        }
      }
      // odd steps reuse plain numeric group ids: a group is gathered within its step only
      const line: InLine = { step, group: step % 2 ? g : `p${step}-${g}`, scores };
      if (r() < 0.1) line.valid = false;
      else if (r() < 0.1) line.valid = true;
      lines.push(line);
    }
  }
  return lines;
}

/** The oracle over JSONL lines: consecutive equal steps = one call; groups by first appearance. */
function oracleLines(lines: InLine[], criteria: Criterion[], cfg: Omit<OracleConfig, "criteria">, state0?: OracleState) {
  const K = criteria.length;
  const out: { group: unknown; reward: number; direct: number; advantage: number; weights: Record<string, number>; std: number }[] =
    new Array(lines.length);
  let state = state0;
  let start = 0;
  while (start < lines.length) {
    let end = start;
    const key = JSON.stringify(lines[start].step);
    while (end < lines.length && JSON.stringify(lines[end].step) === key) end++;
    const groups = new Map<string, number[]>();
    for (let li = start; li < end; li++) {
      const g = JSON.stringify(lines[li].group);
      if (!groups.has(g)) groups.set(g, []);
      groups.get(g)!.push(li);
    }
    const order = [...groups.values()].flat();
    const sizes = [...groups.values()].map((v) => v.length);
    const scores = new Float32Array(order.length * K);
    order.forEach((li, r) => {
      criteria.forEach((c, k) => {
        const v = lines[li].scores[c.id];
        scores[r * K + k] = v === null || v === undefined ? NaN : v;
      });
    });
    const o = oracleScore({
      ...cfg,
      criteria,
      scores,
      groupSizes: sizes,
      valid: order.map((li) => lines[li].valid !== false),
      state,
    });
    state = o.state;
    let r = 0;
    sizes.forEach((m, g) => {
      for (let j = 0; j < m; j++, r++) {
        const li = order[r];
        const w: Record<string, number> = {};
        const off = cfg.scope === "stream" ? 0 : g * K;
        criteria.forEach((c, k) => (w[c.id] = o.weights[off + k]));
        out[li] = { group: lines[li].group, reward: o.rewards[r], direct: o.direct[r], advantage: o.advantages[r], weights: w, std: o.debug.groupStd[r] };
      }
    });
    start = end;
  }
  return { out, state };
}

function compareLines(got: OutLine[], lines: InLine[], exp: ReturnType<typeof oracleLines>["out"], label: string, grpo = false, advEps = 1e-6) {
  expect(got.length, `${label}: one output line per input line`).toBe(lines.length);
  for (let i = 0; i < lines.length; i++) {
    const g = got[i];
    const e = exp[i];
    const at = `${label} line ${i + 1} ${JSON.stringify(lines[i])}`;
    expect(g.group, `${at}: group`).toEqual(e.group);
    expect(Math.abs(g.reward - e.reward) <= TOL, `${at}: reward ${g.reward} vs ${e.reward}`).toBe(true);
    if (Number.isNaN(e.direct)) expect(g.direct, `${at}: direct of an invalid row`).toBeNull();
    else expect(g.direct !== null && Math.abs(g.direct - e.direct) <= TOL, `${at}: direct ${g.direct} vs ${e.direct}`).toBe(true);
    // grpo advantages amplify the engine's f32 reward rounding (<= 1e-6) by 1/std: the bound of
    // backends.test.ts, |dA| <= dr (2 + 1.5 |A|) / (std + advEps), on top of TOL.
    const advTol = TOL + (!grpo || Number.isNaN(e.std) ? 0 : (1e-6 * (2 + 1.5 * Math.abs(e.advantage))) / (e.std + advEps));
    expect(Math.abs(g.advantage - e.advantage) <= advTol, `${at}: advantage ${g.advantage} vs ${e.advantage}`).toBe(true);
    const ids = new Set([...Object.keys(g.weights ?? {}), ...Object.keys(e.weights)]);
    for (const id of ids) {
      const gw = g.weights?.[id] ?? 0;
      const ew = e.weights[id] ?? 0;
      expect(Math.abs(gw - ew) <= TOL, `${at}: weight ${id} ${gw} vs ${ew}`).toBe(true);
    }
  }
}

const toJsonl = (lines: InLine[]) => lines.map((l) => JSON.stringify(l)).join("\n") + "\n";

const rubric: Criterion[] = [
  { id: "accuracy", weight: 2 },
  { id: "depth", weight: 1, scale: [1, 10] },
  { id: "unsafe", weight: -1 },
  { id: "verbose", weight: 0.5, polarity: "penalty" },
  { id: "tone", weight: 1 },
];
const scales = { depth: [1, 10] as [number, number] };
const rubricFile = join(dir, "rubric.json");
writeFileSync(rubricFile, JSON.stringify({ criteria: rubric }));

describe("focal-reward score: output matches the oracle line by line", () => {
  it("CLI is built", () => {
    expect(existsSync(CLI), `${CLI} (run npm run build)`).toBe(true);
  });

  const configs: { args: string[]; cfg: Omit<OracleConfig, "criteria"> }[] = [
    { args: ["--method", "focal", "--scope", "group", "--advantage", "grpo", "--backend", "simd"], cfg: { method: "focal", scope: "group", advantage: "grpo" } },
    {
      args: ["--method", "focal", "--scope", "group", "--gamma", "2", "--eps", "0.1", "--tau", "0.5", "--min-weight", "0.05", "--max-weight", "0.6", "--mix", "0.8", "--advantage", "rloo", "--backend", "scalar"],
      cfg: { method: "focal", scope: "group", gamma: 2, eps: 0.1, tau: 0.5, minWeight: 0.05, maxWeight: 0.6, mix: 0.8, advantage: "rloo" },
    },
    { args: ["--method", "weighted-mean", "--advantage", "dr-grpo", "--backend", "js"], cfg: { method: "weighted-mean", scope: "group", advantage: "dr-grpo" } },
    { args: ["--method", "focal", "--gamma", "0", "--advantage", "none", "--backend", "simd"], cfg: { method: "focal", gamma: 0, advantage: "none" } },
  ];
  configs.forEach(({ args, cfg }, c) => {
    it(`with a rubric file: ${args.join(" ")}`, () => {
      const lines = randomLines(100 + c, rubric.map((r) => r.id), scales, [0, 0 + 1, 2]);
      const res = run(["--rubric", rubricFile, ...args], toJsonl(lines));
      expect(res.code, res.stderr).toBe(0);
      compareLines(parseOut(res.stdout), lines, oracleLines(lines, rubric, cfg).out, args.join(" "), cfg.advantage === "grpo");
    });
  });

  it("without a rubric: every criterion seen has weight 1 and scale [0, 1]; --input FILE", () => {
    const ids = ["x", "y", "z"];
    const lines = randomLines(7, ids, {}, [10, 11]);
    // make sure every id is seen with a number somewhere
    lines[0].scores = { x: 0.25, y: 0.5, z: 0.75 };
    delete lines[0].valid;
    const inFile = join(dir, "in.jsonl");
    writeFileSync(inFile, toJsonl(lines));
    const res = run(["--input", inFile, "--gamma", "3", "--advantage", "grpo"]);
    expect(res.code, res.stderr).toBe(0);
    const crit = ids.map((id) => ({ id }));
    compareLines(parseOut(res.stdout), lines, oracleLines(lines, crit, { gamma: 3, advantage: "grpo" }).out, "no rubric", true);
  });

  it("lines without a step form one call; string steps work; only consecutive equal steps merge", () => {
    const a = randomLines(8, ["accuracy", "tone"], {}, [1]).map((l) => ({ ...l, step: undefined }));
    const b = randomLines(9, ["accuracy", "tone"], {}, [1]).map((l) => ({ ...l, step: "s-1" }));
    const c = randomLines(10, ["accuracy", "tone"], {}, [1]).map((l) => ({ ...l, step: 7 }));
    const d = randomLines(11, ["accuracy", "tone"], {}, [1]).map((l) => ({ ...l, step: "s-1" }));
    const lines = [...a, ...b, ...c, ...d];
    const res = run(["--rubric", rubricFile, "--advantage", "grpo"], toJsonl(lines));
    expect(res.code, res.stderr).toBe(0);
    compareLines(parseOut(res.stdout), lines, oracleLines(lines, rubric, { advantage: "grpo" }).out, "steps", true);
  });

  it("stream scope: the --state file carries sbar across two runs", () => {
    const state = join(dir, "stream.state");
    const args = ["--rubric", rubricFile, "--scope", "stream", "--gamma", "2", "--decay", "0.8", "--advantage", "dr-grpo", "--state", state];
    const cfg: Omit<OracleConfig, "criteria"> = { scope: "stream", gamma: 2, decay: 0.8, advantage: "dr-grpo" };
    const run1 = randomLines(21, rubric.map((r) => r.id), scales, [0, 1, 0]); // three calls
    const run2 = randomLines(22, rubric.map((r) => r.id), scales, [2, 3]);
    const o1 = oracleLines(run1, rubric, cfg);
    const o2 = oracleLines(run2, rubric, cfg, o1.state);
    const r1 = run(args, toJsonl(run1));
    expect(r1.code, r1.stderr).toBe(0);
    expect(existsSync(state), "state file written").toBe(true);
    compareLines(parseOut(r1.stdout), run1, o1.out, "stream run 1");
    const r2 = run(args, toJsonl(run2));
    expect(r2.code, r2.stderr).toBe(0);
    compareLines(parseOut(r2.stdout), run2, o2.out, "stream run 2");
    // and the two runs together in one process give the same as the two runs chained
    const r12 = run(args.slice(0, -2), toJsonl([...run1, ...run2]));
    expect(r12.code, r12.stderr).toBe(0);
    compareLines(parseOut(r12.stdout), [...run1, ...run2], [...o1.out, ...o2.out], "stream one run");
  });

  it("--metrics FILE writes one JSON line per step", () => {
    const lines = randomLines(31, rubric.map((r) => r.id), scales, [0, 1, 2]);
    const m = join(dir, "metrics.jsonl");
    const res = run(["--rubric", rubricFile, "--metrics", m], toJsonl(lines));
    expect(res.code, res.stderr).toBe(0);
    const ml = readFileSync(m, "utf8").split("\n").filter((l) => l.trim());
    expect(ml.length).toBe(3);
    for (const l of ml) expect(typeof JSON.parse(l)).toBe("object");
  });
});

describe("focal-reward score: bad input exits non-zero with the line number", () => {
  const bad = (input: string, args: string[] = []) => {
    const r = run(args, input);
    expect(r.code, `stdout: ${r.stdout}`).not.toBe(0);
    return r.stderr;
  };
  const good = JSON.stringify({ group: 1, scores: { accuracy: 0.5 } });
  it("malformed JSON", () => {
    expect(bad(`${good}\n{"group": 1, "scores": \n`)).toMatch(/\b2\b/);
  });
  it("unknown criterion with a rubric", () => {
    expect(bad(`${good}\n${good}\n${JSON.stringify({ group: 1, scores: { nope: 0.5 } })}\n`, ["--rubric", rubricFile])).toMatch(/\b3\b/);
  });
  it("non-numeric score", () => {
    expect(bad(`${JSON.stringify({ group: 1, scores: { accuracy: "high" } })}\n`)).toMatch(/\b1\b/);
  });
  it("empty input", () => {
    bad("");
  });
});
