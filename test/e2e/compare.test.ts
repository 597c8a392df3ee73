/**
 * `focal-reward compare` on the real WritingBench judge scores (test/fixtures/writingbench: a
 * missing data set fails, it is never skipped), checked against values computed here from the
 * data file alone; the three formats; errors; memory bounded whatever the input size.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(ROOT, "dist", "cli", "main.js");
const DATA = join(ROOT, "test", "fixtures", "writingbench");
const RUBRIC = join(DATA, "rubric.json");
const LOG = readFileSync(join(DATA, "scores.jsonl"), "utf8");
const dir = mkdtempSync(join(tmpdir(), "focal-compare-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ALL = "focal,weighted-mean,gdpo,weighted-sum,min,power-mean,soft-min,cvar,points-ratio,all-or-nothing,gated,hierarchical,pow3r,dvao,mo-grpo";

function run(args: string[], input = LOG, node: string[] = []) {
  const r = spawnSync(process.execPath, [...node, CLI, "compare", ...args], { input, encoding: "utf8", cwd: dir, timeout: 30000, maxBuffer: 1 << 26 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Json { methods: string[]; diagnostics: Record<string, (number | null)[]> }

// The data, read independently: rows of u = (score - 1) / 9 (every weight 1, scale [1, 10]).
const rows = LOG.trim().split("\n").map((l) => JSON.parse(l) as { group: string; scores: Record<string, number> });
const rubric = JSON.parse(readFileSync(RUBRIC, "utf8")) as { criteria: { id: string; weight: number; scale: [number, number] }[] };
const u = rows.map((r) => Object.values(r.scores).map((s) => (s - 1) / 9));
const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

describe("compare on writingbench", () => {
  const res = run(["--rubric", RUBRIC, "--methods", ALL, "--output-format", "json"]);
  const json = JSON.parse(res.stdout) as Json;
  const col = (method: string) => json.methods.indexOf(method);
  const val = (name: string, method: string) => json.diagnostics[name]?.[col(method)] as number;

  it("the data set is what its README says", () => {
    expect(rows.length).toBe(34);
    expect(new Set(rows.map((r) => r.group)).size).toBe(5);
    expect(rubric.criteria.length).toBe(25);
    expect(rubric.criteria.every((c) => c.weight === 1 && c.scale[0] === 1 && c.scale[1] === 10)).toBe(true);
  });

  it("every method is a column; a summary line on stderr", () => {
    expect(res.code, res.stderr).toBe(0);
    expect(json.methods).toEqual(ALL.split(","));
    expect(res.stderr).toMatch(/compare: 1 steps, 34 rows, 5 groups, 15 methods in [\d.]+ s/);
  });

  it("values computed from the data alone", () => {
    const direct = u.map(mean);
    for (const m of json.methods) expect(val("focal/direct_reward", m), m).toBeCloseTo(mean(direct), 6);
    expect(val("reward", "weighted-mean")).toBeCloseTo(mean(direct), 6);
    expect(val("reward", "weighted-sum")).toBeCloseTo(5 * mean(direct), 5);
    expect(val("reward", "min")).toBeCloseTo(mean(u.map((r) => Math.min(...r))), 6);
    const strict = mean(u.map((r) => (r.every((x) => x >= 0.5) ? 1 : 0)));
    expect(val("reward", "all-or-nothing")).toBeCloseTo(strict, 6);
    expect(val("balance/strict_completion", "focal")).toBeCloseTo(strict, 6);
    // the README: three of the 25 criteria are constant within their group
    expect(val("focal/frac_constant_criteria", "focal")).toBeCloseTo(3 / 25, 9);
    // per criterion: the first criterion of the log
    const id = Object.keys(rows[0].scores)[0];
    const xs = rows.filter((r) => id in r.scores).map((r) => (r.scores[id] - 1) / 9);
    expect(val(`rewards/${id}/mean`, "focal")).toBeCloseTo(mean(xs), 6);
    // rewards that are the direct one do not re-rank anything
    for (const m of ["weighted-mean", "gdpo", "points-ratio", "hierarchical"]) {
      expect(val("focal/kendall_distance", m), m).toBe(0);
      expect(val("focal/top1_agreement", m), m).toBe(1);
    }
    expect(val("focal/sign_flip_rate", "weighted-mean")).toBe(0);
    // dvao gives a criterion constant in its group no weight; weighted-mean gives it its share
    expect(val("focal/weight_on_constant", "dvao")).toBe(0);
    expect(val("focal/weight_on_constant", "weighted-mean")).toBeCloseTo(3 / 25, 6);
    // focal moves weight off the constant (saturated) criteria
    expect(val("focal/weight_on_constant", "focal")).toBeLessThan(3 / 25);
  });

  it("table, json and csv carry the same numbers", () => {
    const csv = run(["--rubric", RUBRIC, "--methods", ALL, "--output-format", "csv"]);
    expect(csv.code, csv.stderr).toBe(0);
    const lines = csv.stdout.trim().split("\n").map((l) => l.split(","));
    expect(lines[0]).toEqual(["diagnostic", ...ALL.split(",")]);
    expect(lines.length - 1).toBe(Object.keys(json.diagnostics).length);
    for (const [name, ...cells] of lines.slice(1)) {
      cells.forEach((c, m) => expect(c === "" ? null : Number(c), `${name} ${m}`).toBe(json.diagnostics[name][m]));
    }
    const out = join(dir, "table.txt");
    const table = run(["--rubric", RUBRIC, "--methods", ALL, "--output", out]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toBe("");
    const text = readFileSync(out, "utf8").split("\n");
    expect(text[0].split(/\s+/)).toEqual(["diagnostic", ...ALL.split(",")]);
    const reward = text.find((l) => l.startsWith("reward "))!.split(/\s+/).slice(1).map(Number);
    reward.forEach((x, m) => expect(x, json.methods[m]).toBeCloseTo(json.diagnostics.reward[m] as number, 4));
    // 25 criteria: the per-criterion rows only on request
    expect(text.some((l) => l.startsWith("rewards/"))).toBe(false);
    const full = run(["--rubric", RUBRIC, "--methods", "focal", "--per-criterion"]);
    expect(full.stdout.split("\n").filter((l) => l.startsWith("rewards/")).length).toBe(50);
  });

  it("method options after colons, shared flags, focal-stream", () => {
    const r = run(["--rubric", RUBRIC, "--methods", "power-mean:power=1,power-mean:power=-inf,min,focal:gamma=0,focal-stream,cvar:alpha=1", "--output-format", "json", "--gamma", "5"]);
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as Json;
    const reward = j.diagnostics.reward;
    expect(reward[0]).toBeCloseTo(val("reward", "weighted-mean"), 6); // p = 1: the mean
    expect(reward[1]).toBeCloseTo(val("reward", "min"), 6); // p = -inf: the min
    expect(reward[3]).toBeCloseTo(val("reward", "weighted-mean"), 6); // gamma 0 (over --gamma 5): direct
    expect(reward[5]).toBeCloseTo(val("reward", "weighted-mean"), 6); // alpha = 1: the mean
    // F-GRPO shrinks the updates of prompts the policy mostly solves
    const f = run(["--rubric", RUBRIC, "--methods", "focal,focal:fGrpo=1", "--output-format", "json"]);
    const abs = (JSON.parse(f.stdout) as Json).diagnostics["focal/mean_abs_advantage"] as number[];
    expect(abs[1]).toBeLessThan(abs[0] / 2);
  });

  it("errors: unknown method, bad option, malformed line, stdin without a rubric", () => {
    const a = run(["--rubric", RUBRIC, "--methods", "focal,nope"]);
    expect(a.code).not.toBe(0);
    expect(a.stderr).toMatch(/nope/);
    const b = run(["--rubric", RUBRIC, "--methods", "cvar:alpha=2"]);
    expect(b.code).not.toBe(0);
    expect(b.stderr).toMatch(/alpha/);
    const c = run(["--rubric", RUBRIC], `${LOG.split("\n")[0]}\n{oops\n`);
    expect(c.code).toBe(1);
    expect(c.stderr).toMatch(/line 2/);
    const d = run([]);
    expect(d.code).not.toBe(0);
    expect(d.stderr).toMatch(/--rubric/);
  });
});

describe("compare streams", () => {
  it("128,000 rows in 2,000 steps through a heap of 8 MB that could not hold the input", () => {
    const ids = ["c0", "c1", "c2", "c3", "c4", "c5"];
    const rub = join(dir, "rubric.json");
    writeFileSync(rub, JSON.stringify({ criteria: ids.map((id, k) => ({ id, required: k < 2 })) }));
    let s = 1;
    const rnd = () => (s = (s * 16807) % 2147483647) / 2147483647;
    const lines: string[] = [];
    for (let step = 0; step < 2000; step++) {
      for (let g = 0; g < 8; g++) {
        for (let i = 0; i < 8; i++) lines.push(JSON.stringify({ step, group: g, scores: Object.fromEntries(ids.map((id) => [id, Math.round(rnd() * 10) / 10])) }));
      }
    }
    const input = `${lines.join("\n")}\n`;
    expect(input.length).toBeGreaterThan(10e6);
    // the same heap cannot hold the input as lines
    const hold = spawnSync(process.execPath, ["--max-old-space-size=8", "-e", "require('fs').readFileSync(0, 'utf8').split('\\n')"], { input, encoding: "utf8" });
    expect(hold.status).not.toBe(0);
    const r = run(["--rubric", rub, "--methods", "weighted-mean,min", "--output-format", "json"], input, ["--max-old-space-size=8"]);
    expect(r.code, r.stderr.slice(0, 500)).toBe(0);
    expect(r.stderr).toMatch(/2000 steps, 128000 rows, 16000 groups/);
    expect(JSON.parse(r.stdout).diagnostics.reward[0]).toBeGreaterThan(0.4);
  }, 20000);
});

describe("compare on CSV", () => {
  it("gives the same diagnostics for the same log as CSV (criteria from the header or the rubric)", () => {
    const ids = rubric.criteria.map((c) => c.id);
    const quote = (s: string) => `"${s.replace(/"/g, '""')}"`;
    const csv = [["group", ...ids].map(quote).join(",")];
    for (const r of rows) csv.push([quote(r.group), ...ids.map((id) => (id in r.scores ? String(r.scores[id]) : ""))].join(","));
    const file = join(dir, "scores.csv");
    writeFileSync(file, `${csv.join("\n")}\n`);
    const fromJsonl = run(["--rubric", RUBRIC, "--output-format", "json"]);
    const fromCsv = run(["--rubric", RUBRIC, "--input", file, "--output-format", "json"], "");
    expect(fromCsv.code).toBe(0);
    expect(JSON.parse(fromCsv.stdout)).toEqual(JSON.parse(fromJsonl.stdout));
    // Without a rubric the header names the criteria (weight 1, scale [0, 1]): a different scale, so
    // only the shape is compared.
    const headerOnly = JSON.parse(run(["--input", file, "--output-format", "json"], "").stdout) as Json;
    expect(Object.keys(headerOnly.diagnostics)).toContain(`rewards/${ids[0]}/mean`);
  });
});
