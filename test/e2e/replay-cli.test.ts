/**
 * `focal-reward replay` driven as a user would: the vendored WritingBench log (JSONL, CSV, stdin),
 * the report file, warnings and errors with line numbers.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../support/paths.js";
import { WB_RUBRIC as RUBRIC, WB_SCORES as SCORES, loadWritingbench as load, toCsv } from "../support/writingbench.js";

const dir = mkdtempSync(join(tmpdir(), "focal-replay-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("replay CLI", () => {
  const run = (args: string[], input?: string) => spawnSync(process.execPath, [CLI, "replay", ...args], { encoding: "utf8", input });

  it("replays the real JSONL with its rubric and writes the report", () => {
    const report = join(dir, "wb.html");
    const r = run([SCORES, "--rubric", RUBRIC, "--methods", "focal,weighted-mean,gdpo", "--report", report]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/^34 rows \(34 valid\), 1 steps, 5 groups, 25 criteria/);
    expect(r.stdout).toContain("focal vs weighted-mean: tau");
    expect(r.stderr).not.toContain("\x1b["); // no progress bar when stderr is not a terminal
    const html = readFileSync(report, "utf8");
    expect(html).toContain('data-chart="weights-by-criterion"');
  });

  it("reads CSV (by extension) and stdin JSONL (with --rubric)", () => {
    const { lines, rubric } = load();
    const csv = join(dir, "wb.csv");
    writeFileSync(csv, toCsv(lines, rubric.criteria.map((c) => c.id)));
    const a = run([csv, "--rubric", RUBRIC, "--report", join(dir, "a.html")]);
    expect(a.status, a.stderr).toBe(0);
    const b = run(["-", "--rubric", RUBRIC, "--report", join(dir, "b.html")], readFileSync(SCORES, "utf8"));
    expect(b.status, b.stderr).toBe(0);
    expect(a.stdout).toBe(b.stdout);
  });

  it("warns when scores fall outside the scale (no rubric)", () => {
    const r = run([SCORES, "--report", join(dir, "c.html")]);
    expect(r.status).toBe(0);
    // Once per criterion with its count (25 criteria, 170 scores), and the report says the same.
    const warnings = r.stderr.split("\n").filter((l) => /warning: criterion '.*': \d+ scores outside its scale \[0, 1\], clamped/.test(l));
    expect(warnings).toHaveLength(25);
    expect(warnings.reduce((s, l) => s + Number(/: (\d+) scores/.exec(l)![1]), 0)).toBe(170);
    expect(readFileSync(join(dir, "c.html"), "utf8")).toContain("criterion 'q40/Comprehensive Coverage': 7 scores lie outside its scale [0, 1]");
  });

  it("fails clearly on bad input", () => {
    const missing = run([join(dir, "nope.jsonl")]);
    expect(missing.status).not.toBe(0);
    const stdin = run(["-"], "{}\n");
    expect(stdin.status).not.toBe(0);
    expect(stdin.stderr).toContain("needs --rubric");
    const badJson = join(dir, "bad.jsonl");
    writeFileSync(badJson, '{"group":"g","scores":{"a":1}}\n{"group":\n');
    const bj = run([badJson, "--report", join(dir, "d.html")]);
    expect(bj.status).not.toBe(0);
    expect(bj.stderr).toContain("line 2");
    const badCsv = join(dir, "bad.csv");
    writeFileSync(badCsv, "group,a\ng,0.5\ng,x\n");
    const bc = run([badCsv, "--report", join(dir, "e.html")]);
    expect(bc.status).not.toBe(0);
    expect(bc.stderr).toContain("line 3");
    expect(run([SCORES, "--methods", "focal,bogus"]).stderr).toContain("unknown method");
  });
});
