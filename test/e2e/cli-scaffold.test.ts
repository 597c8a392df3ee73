/**
 * The CLI scaffold (issue 9, item 4), driven as a user would: one input convention for every command
 * (--input FILE, -, stdin; --input-format jsonl|csv, CSV from stdin everywhere), --output-format,
 * --version, "did you mean", exit codes (2 usage, 1 bad input), --help made from the flag table,
 * and --metrics written as a stream.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { parseCsvRecord } from "../../dist/log/csv.js";
import { CLI, ROOT } from "../support/paths.js";
import { WB_RUBRIC, WB_SCORES, loadWritingbench, toCsv } from "../support/writingbench.js";

const dir = mkdtempSync(join(tmpdir(), "focal-cli-scaffold-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], input = "") {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8", cwd: dir, timeout: 30000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const { lines, rubric } = loadWritingbench();
const ids = rubric.criteria.map((c) => c.id);
const JSONL = readFileSync(WB_SCORES, "utf8");
const CSV = toCsv(lines, ids);
const csvFile = join(dir, "wb.csv");
writeFileSync(csvFile, CSV);
const csvNoExt = join(dir, "wb.data");
writeFileSync(csvNoExt, CSV);

describe("one input convention for every command", () => {
  it("score: stdin, --input -, --input FILE and CSV from stdin give the same output", () => {
    const base = cli(["score", "--rubric", WB_RUBRIC], JSONL);
    expect(base.code, base.stderr).toBe(0);
    expect(base.stdout.trim().split("\n").length).toBe(lines.length);
    expect(cli(["score", "--rubric", WB_RUBRIC, "--input", "-"], JSONL).stdout).toBe(base.stdout);
    expect(cli(["score", "--rubric", WB_RUBRIC, "--input", WB_SCORES]).stdout).toBe(base.stdout);
    const fromCsv = cli(["score", "--rubric", WB_RUBRIC, "--input-format", "csv"], CSV);
    expect(fromCsv.code, fromCsv.stderr).toBe(0);
    expect(fromCsv.stdout).toBe(base.stdout);
    expect(cli(["score", "--rubric", WB_RUBRIC, "--input", csvNoExt, "--input-format", "csv"]).stdout).toBe(base.stdout);
  });

  it("compare and replay read CSV from stdin too", () => {
    const a = cli(["compare", "--rubric", WB_RUBRIC, "--output-format", "json", "--input", csvFile]);
    const b = cli(["compare", "--rubric", WB_RUBRIC, "--output-format", "json", "--input-format", "csv"], CSV);
    expect(b.code, b.stderr).toBe(0);
    expect(b.stdout).toBe(a.stdout);
    const r1 = cli(["replay", "--input", csvFile, "--rubric", WB_RUBRIC, "--report", join(dir, "r1.html")]);
    const r2 = cli(["replay", "--input-format", "csv", "--report", join(dir, "r2.html")], CSV);
    expect(r2.code, r2.stderr).toBe(0);
    // Without a rubric the CSV header names the criteria (scale [0, 1]): same rows, other weights.
    expect(r2.stdout.split("\n")[0]).toBe(r1.stdout.split("\n")[0]);
  });

  it("score --output-format csv: a header and one row per input row, same numbers as JSONL", () => {
    const json = cli(["score", "--rubric", WB_RUBRIC], JSONL).stdout.trim().split("\n").map((l) => JSON.parse(l) as { reward: number; advantage: number; weights: Record<string, number> });
    const r = cli(["score", "--rubric", WB_RUBRIC, "--output-format", "csv"], JSONL);
    expect(r.code, r.stderr).toBe(0);
    const rows = r.stdout.trim().split("\n");
    expect(rows[0]!.startsWith("step,group,reward,direct,advantage,weight/")).toBe(true);
    expect(rows.length).toBe(lines.length + 1);
    rows.slice(1).forEach((row, i) => {
      const cells = parseCsvRecord(row)!;
      expect(Number(cells[2])).toBe(json[i]!.reward);
      expect(Number(cells[4])).toBe(json[i]!.advantage);
    });
  });
});

describe("usage errors exit 2, bad input exits 1", () => {
  it("--version", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    for (const args of [["--version"], ["score", "--version"], ["replay", "--version"]]) {
      const r = cli(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(`focal-reward ${pkg.version}\n`);
    }
  });

  it("did you mean, for flags and commands", () => {
    const flag = cli(["score", "--gama", "3"]);
    expect(flag.code).toBe(2);
    expect(flag.stderr).toContain("unknown flag '--gama' (did you mean --gamma?)");
    const cmd = cli(["scroe"]);
    expect(cmd.code).toBe(2);
    expect(cmd.stderr).toContain("did you mean score?");
    // A flag of another command (or an old name) names the one to use.
    expect(cli(["replay", "--format", "csv"]).stderr).toContain("replay has no --format: use --input-format");
    expect(cli(["compare", "--format", "json"]).stderr).toContain("compare has no --format: use --output-format");
    expect(cli(["compare", "--method", "gdpo"]).stderr).toContain("use --methods");
  });

  it("bad choices, missing values and numbers are usage errors; bad input is not", () => {
    for (const args of [["score", "--advantage", "ppo"], ["score", "--rubric"], ["score", "--gamma", "x"], ["compare", "--methods", "nope"], ["score", "stray"]]) {
      const r = cli(args, JSONL);
      expect(r.code, `${args.join(" ")}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toContain("--help lists the flags");
    }
    const bad = cli(["score"], '{"group": 1, "scores": {"a": "x"}}\n');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("line 1");
  });

  it("--help lists every flag of the command's table, and the exit codes", () => {
    const every: Record<string, string[]> = {
      score: ["input", "input-format", "output", "output-format", "state", "metrics", "rubric", "method", "gamma", "fgrpo"],
      compare: ["input", "input-format", "output", "output-format", "methods", "per-criterion", "rubric", "threshold"],
      replay: ["input", "input-format", "report", "methods", "rubric", "backend"],
      serve: ["rubric", "port", "state-dir", "store", "judge", "max-body"],
      demo: ["seeds", "steps", "backend", "report"],
    };
    for (const [name, flags] of Object.entries(every)) {
      const r = cli([name, "--help"]);
      expect(r.code).toBe(0);
      for (const f of [...flags, "help", "version"]) expect(r.stdout, `${name} --help: --${f}`).toMatch(new RegExp(`--${f}\\b`));
      expect(r.stdout).toContain("exit status: 0 done, 1 bad input");
    }
    expect(cli(["compare", "--help"]).stdout).not.toMatch(/--method\b/);
  });
});

describe("--metrics is written as a stream, atomically", () => {
  it("one line per step; nothing left behind", () => {
    const steps = Array.from({ length: 50 }, (_, s) => [0, 1, 2].map((g) => JSON.stringify({ step: s, group: g, scores: { a: (s * 7 + g) % 5 / 4, b: g / 2 } })).join("\n")).join("\n");
    const m = join(dir, "m.jsonl");
    const r = cli(["score", "--metrics", m], `${steps}\n`);
    expect(r.code, r.stderr).toBe(0);
    const ml = readFileSync(m, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { step: number; reward: number });
    expect(ml.map((l) => l.step)).toEqual(Array.from({ length: 50 }, (_, s) => s));
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});
