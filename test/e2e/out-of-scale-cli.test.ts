/**
 * The out-of-scale policy on the command line: the WritingBench judge scores (1-10) scored without
 * --rubric are clamped into [0, 1], and score, compare and replay say so once per criterion with
 * the count (stderr) and in focal/frac_out_of_scale; --out-of-scale error refuses them, naming the
 * line, the criterion and the value.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../support/paths.js";
import { WB_RUBRIC, WB_SCORES } from "../support/writingbench.js";

const dir = mkdtempSync(join(tmpdir(), "focal-out-of-scale-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cli = (args: string[], input?: string) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", input, cwd: dir, timeout: 60_000 });
const warnings = (stderr: string) => stderr.split("\n").filter((l) => /warning: criterion '.*': \d+ scores? outside its scale/.test(l));

describe("WritingBench without --rubric", () => {
  it("score: every reward 1, but 25 warnings (one per criterion, 170 scores) and frac_out_of_scale 1", () => {
    const metrics = join(dir, "m.jsonl");
    const r = cli(["score", "--input", WB_SCORES, "--metrics", metrics]);
    expect(r.status, r.stderr).toBe(0);
    const w = warnings(r.stderr);
    expect(w).toHaveLength(25);
    expect(w[0]).toBe("focal-reward score: warning: criterion 'q40/Comprehensive Coverage': 7 scores outside its scale [0, 1], clamped into it");
    expect(w.reduce((s, l) => s + Number(/: (\d+) scores/.exec(l)![1]), 0)).toBe(170);
    expect(r.stderr).toContain("no --rubric, so every scale is [0, 1]: pass --rubric with the right scales (--out-of-scale error refuses such scores)");
    const m = JSON.parse(readFileSync(metrics, "utf8").trim());
    expect(m["focal/frac_out_of_scale"]).toBe(1);
    expect(m["focal/q40/Comprehensive Coverage/out_of_scale"]).toBe(7);
  });

  it("with its rubric: no warning, frac_out_of_scale 0", () => {
    const metrics = join(dir, "m2.jsonl");
    const r = cli(["score", "--input", WB_SCORES, "--rubric", WB_RUBRIC, "--metrics", metrics]);
    expect(r.status, r.stderr).toBe(0);
    expect(warnings(r.stderr)).toEqual([]);
    expect(JSON.parse(readFileSync(metrics, "utf8").trim())["focal/frac_out_of_scale"]).toBe(0);
  });

  it("compare and replay warn the same way and report the share", () => {
    const c = cli(["compare", "--input", WB_SCORES, "--output-format", "json"]);
    expect(c.status, c.stderr).toBe(0);
    expect(warnings(c.stderr)).toHaveLength(25);
    const json = JSON.parse(c.stdout);
    expect(json.diagnostics["focal/frac_out_of_scale"]).toEqual([1, 1, 1]);
    const r = cli(["replay", WB_SCORES, "--report", join(dir, "r.html")]);
    expect(r.status, r.stderr).toBe(0);
    expect(warnings(r.stderr)).toHaveLength(25);
  });

  it("--out-of-scale error: exit 1, the line, the criterion and the value; nothing written", () => {
    const out = join(dir, "never.jsonl");
    for (const command of ["score", "compare", "replay"]) {
      const args = command === "replay" ? [WB_SCORES, "--report", join(dir, "x.html")] : ["--input", WB_SCORES];
      const r = cli([command, ...args, "--out-of-scale", "error", ...(command === "score" ? ["--output", out] : [])]);
      expect(r.status, command).toBe(1);
      expect(r.stderr, command).toMatch(/line 1: step \(none\): (focal: )?score: row 0, criterion 'q40\/Comprehensive Coverage' is 9, outside its scale \[0, 1\]/);
    }
    expect(() => readFileSync(out)).toThrow();
    const bad = cli(["score", "--input", WB_SCORES, "--out-of-scale", "refuse"]);
    expect(bad.status).toBe(2);
  });
});

it("the line is the offending row's own, also when rows are regrouped", () => {
  const lines = [
    { group: "a", scores: { x: 0.5, y: 1 } },
    { group: "b", scores: { x: 0.1, y: 0 } },
    { group: "a", scores: { x: 0.9, y: 0.5 } },
    { group: "b", scores: { x: 0.3, y: -2 } },
  ].map((l) => JSON.stringify(l)).join("\n");
  const r = cli(["score", "--rubric", writeRubric(), "--out-of-scale", "error"], `${lines}\n`);
  expect(r.status).toBe(1);
  expect(r.stderr).toContain("line 4: step (none): score: row 3, criterion 'y' is -2, outside its scale [0, 1]");
  const ok = cli(["score", "--rubric", writeRubric()], `${lines}\n`);
  expect(ok.status).toBe(0);
  expect(warnings(ok.stderr)).toEqual(["focal-reward score: warning: criterion 'y': 1 score outside its scale [0, 1], clamped into it"]);
  expect(ok.stderr).toContain("fix those scales in the rubric");
});

function writeRubric(): string {
  const path = join(dir, "xy.json");
  writeFileSync(path, JSON.stringify({ criteria: [{ id: "x" }, { id: "y" }] }));
  return path;
}
