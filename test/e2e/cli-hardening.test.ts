/**
 * The CLI under careless and hostile input (issue 11, CLI items), driven as a user would: byte
 * order marks, CSV headers (blank lines before, duplicate and missing columns, header only), numbers
 * that are not decimal, float32 overflow reported on its own line (score, compare, replay), --state
 * in a missing folder refused before scoring, a failing --metrics write, long lines read in linear
 * time.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { lineBatches } from "../../dist/log/lines.js";
import { CLI } from "../support/paths.js";

const dir = mkdtempSync(join(tmpdir(), "focal-cli-hard-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], input = "", shell?: string) {
  const r = shell
    ? spawnSync("bash", ["-c", `${shell}; exec "$@"`, "bash", process.execPath, CLI, ...args], { input, encoding: "utf8", cwd: dir, timeout: 60000 })
    : spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8", cwd: dir, timeout: 60000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const rows = (n: number, step = 0) => Array.from({ length: n }, (_, i) => JSON.stringify({ step, group: i % 2, scores: { a: (i % 5) / 4, b: (i % 3) / 2 } }));
const JSONL = `${[...rows(6, 0), ...rows(6, 1)].join("\n")}\n`;

describe("byte order marks", () => {
  it("JSONL with a BOM scores as without (stdin and file)", () => {
    const plain = cli(["score"], JSONL);
    expect(plain.code, plain.stderr).toBe(0);
    const bom = cli(["score"], `\uFEFF${JSONL}`);
    expect(bom.code, bom.stderr).toBe(0);
    expect(bom.stdout).toBe(plain.stdout);
    const f = join(dir, "bom.jsonl");
    writeFileSync(f, `\uFEFF${JSONL}`);
    expect(cli(["score", "--input", f]).stdout).toBe(plain.stdout);
  });

  it("CSV with a BOM keeps its first column's name", () => {
    const csv = "group,a,b\ng,0.5,1\ng,0.25,0\n";
    const plain = cli(["score", "--input-format", "csv"], csv);
    expect(plain.code, plain.stderr).toBe(0);
    const bom = cli(["score", "--input-format", "csv"], `\uFEFF${csv}`);
    expect(bom.code, bom.stderr).toBe(0);
    expect(bom.stdout).toBe(plain.stdout);
  });
});

describe("CSV headers and cells", () => {
  const csv = (text: string, args: string[] = []) => cli(["score", "--input-format", "csv", ...args], text);

  it("blank lines before the header are skipped; errors still name the right line", () => {
    const ok = csv("\n\r\n  \ngroup,a\ng,0.5\ng,1\n");
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout.trim().split("\n").length).toBe(2);
    const bad = csv("\n\ngroup,a\ng,0.5\ng,x\n");
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("line 5: column 'a': not a number: 'x'");
  });

  it("a duplicate column, a nameless column, no group column, a header only: each says so", () => {
    expect(csv("group,a,b,a\ng,1,1,1\n").stderr).toContain("line 1: duplicate column 'a' (columns 2 and 4 of the header)");
    expect(csv("\ngroup,a,,b\ng,1,1,1\n").stderr).toContain("line 2: the header's column 3 has no name");
    expect(csv("prompt,a\ng,1\n").stderr).toContain("line 1: the header has no 'group' column (columns: prompt, a)");
    const only = csv("group,a,b\n");
    expect(only.code).toBe(1);
    expect(only.stderr).toContain("line 1: the CSV has a header but no rows");
    expect(csv("\n\n").stderr).toContain("empty input: no CSV header");
  });

  it("only decimal numbers are scores: 0x10, 0b1, 0o7, Infinity, 1_0 are refused", () => {
    for (const cell of ["0x10", "0b1", "0o7", "Infinity", "-Infinity", "1_0", "1e", "--1"]) {
      const r = csv(`group,a\ng,0.5\ng,${cell}\n`);
      expect(r.code, cell).toBe(1);
      expect(r.stderr, cell).toContain(`line 3: column 'a': not a number: '${cell}'`);
    }
    const ok = csv("group,a,b\ng, 0.5 ,1e-1\ng,+.25,NA\n");
    expect(ok.code, ok.stderr).toBe(0);
  });
});

describe("float32 overflow is reported on the line that has it", () => {
  const log = `${[...rows(4, 0), JSON.stringify({ step: 0, group: 1, scores: { a: 1e39 } }), ...rows(2, 0)].join("\n")}\n`;
  it("score, compare and replay (JSONL), and CSV", () => {
    for (const args of [["score"], ["compare"], ["replay", "--report", join(dir, "r.html")]]) {
      const r = cli([...args, "--input", "-", "--rubric", writeRubric()], log);
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr, args[0]).toContain("line 5: score 'a' is 1e+39: outside the float32 range");
    }
    const c = cli(["score", "--input-format", "csv"], "group,a\ng,1\ng,-4e38\n");
    expect(c.stderr).toContain("line 3: score 'a' is -4e+38: outside the float32 range");
    // 3.4e38 itself is a float32 number
    expect(cli(["score", "--input-format", "csv"], "group,a\ng,1\ng,3.4e38\n").code).toBe(0);
  });
});

function writeRubric(): string {
  const f = join(dir, "rubric.json");
  writeFileSync(f, JSON.stringify({ criteria: [{ id: "a" }, { id: "b" }] }));
  return f;
}

describe("files the command writes", () => {
  it("--state in a missing folder fails before anything is scored", () => {
    const r = cli(["score", "--scope", "stream", "--state", join(dir, "nope", "run.state")], JSONL);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/--state .*run\.state: the folder .*nope does not exist/);
    for (const flag of ["--metrics", "--output"]) {
      const m = cli(["score", flag, join(dir, "nope", "x.jsonl")], JSONL);
      expect(m.code, flag).toBe(1);
      expect(m.stdout, flag).toBe("");
    }
    expect(cli(["replay", "--rubric", writeRubric(), "--report", join(dir, "nope", "r.html")], JSONL).code).toBe(1);
  });

  it("a --metrics write that fails (file size limit) leaves no .tmp, and the state is still saved", () => {
    const work = mkdtempSync(join(dir, "metrics-"));
    const many = `${Array.from({ length: 200 }, (_, s) => rows(3, s).join("\n")).join("\n")}\n`;
    const r = cli(["score", "--scope", "stream", "--state", join(work, "run.state"), "--metrics", join(work, "m.jsonl")], many, "ulimit -f 8");
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--metrics");
    expect(r.stderr).toContain("the state saved");
    expect(r.stdout.trim().split("\n").length).toBe(600);
    expect(existsSync(join(work, "run.state"))).toBe(true);
    expect(existsSync(join(work, "m.jsonl"))).toBe(false);
    expect(readdirSync(work).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});

describe("outputs that are not regular files", () => {
  it("--output to a FIFO writes into it and leaves it a FIFO (no temporary file renamed over it)", () => {
    const work = mkdtempSync(join(dir, "fifo-"));
    const fifo = join(work, "out.fifo"), got = join(work, "got.jsonl"), input = join(work, "in.jsonl");
    writeFileSync(input, JSONL);
    // The reader runs beside the command; `wait` lets it finish before the files are checked.
    const script = `mkfifo "$1" && { timeout 20 cat "$1" > "$2" & } && "$3" "$4" score --input "$5" --output "$1"; c=$?; wait; exit $c`;
    const r = spawnSync("bash", ["-c", script, "bash", fifo, got, process.execPath, CLI, input], { encoding: "utf8", timeout: 60000 });
    expect(r.status, r.stderr).toBe(0);
    expect(statSync(fifo).isFIFO()).toBe(true);
    expect(readFileSync(got, "utf8")).toBe(cli(["score"], JSONL).stdout);
    expect(readdirSync(work).sort()).toEqual(["got.jsonl", "in.jsonl", "out.fifo"]);
  });
});

describe("long lines", () => {
  /** Seconds to split one line of `mib` MiB arriving in 64 KiB chunks (as from a pipe). */
  async function splitTime(mib: number): Promise<number> {
    const chunk = "x".repeat(1 << 16);
    const n = mib * 16;
    const t0 = performance.now();
    let total = 0;
    for await (const batch of lineBatches(Readable.from((function* () {
      for (let i = 0; i < n; i++) yield Buffer.from(chunk);
      yield Buffer.from("\n");
    })()))) for (const l of batch) total += l.length;
    expect(total).toBe(n << 16);
    return (performance.now() - t0) / 1000;
  }

  it("a line is split in time linear in its length (16 times longer: far less than 256 times slower)", async () => {
    // A ratio of two sizes measured in one process, not a time: linear splitting gives ~16x,
    // quadratic ~256x. The least of three runs of each, as a busy machine stretches single runs
    // (one run of each once gave 24x for 8 times longer).
    const least = async (mib: number) => Math.min(await splitTime(mib), await splitTime(mib), await splitTime(mib));
    const small = await least(2);
    const big = await least(32);
    expect(big / Math.max(small, 1e-3)).toBeLessThan(64);
  }, 60000);

  it("a 32 MiB line through score on stdin", () => {
    const line = JSON.stringify({ group: 0, scores: { a: 0.5 }, note: "y".repeat(32 << 20) });
    const r = cli(["score"], `${line}\n${JSON.stringify({ group: 0, scores: { a: 1 } })}\n`);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.trim().split("\n").length).toBe(2);
  }, 60000);
});

describe("a reader that closes stdout early (focal-reward score ... | head -1)", () => {
  it("ends the command quietly with 141, as SIGPIPE would, and saves no --state", async () => {
    const log = join(dir, "long.jsonl");
    writeFileSync(log, `${Array.from({ length: 400 }, (_, s) => rows(64, s).join("\n")).join("\n")}\n`);
    const state = join(dir, "pipe-state.bin");
    const r = spawnSync("bash", ["-c", 'set -o pipefail; "$@" | head -1', "bash", process.execPath, CLI, "score", "--input", log, "--scope", "stream", "--state", state], { encoding: "utf8", cwd: dir, timeout: 60000 });
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toBe("");
    expect(r.status).toBe(141);
    expect(existsSync(state)).toBe(false);
  }, 60000);
});

describe("JSONL files of 8 MiB or more (read in a worker thread)", () => {
  // The same bytes on stdin take the one-thread reader: the outputs, errors and exit codes must match.
  const ids = Array.from({ length: 16 }, (_, k) => `c${k}`);
  const line = (i: number) => JSON.stringify({ step: Math.floor(i / 1000), group: `g${Math.floor(i / 8)}`, scores: Object.fromEntries(ids.map((id, k) => [id, ((i * 7919 + k * 104729) % 1000) / 999])) });
  const lines = Array.from({ length: 30000 }, (_, i) => line(i));
  const rubric = join(dir, "big-rubric.json");
  const run = (args: string[], input?: string) => {
    const r = spawnSync(process.execPath, [CLI, ...args, "--rubric", rubric], { input, encoding: "utf8", cwd: dir, timeout: 60000, maxBuffer: 1 << 30 });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const fromFile = (args: string[], file: string) => run([...args, "--input", file]);
  const fromStdin = (args: string[], file: string) => run([...args, "--input", "-"], readFileSync(file, "utf8"));
  const untimed = (html: string) => html.replace(/[\d.]+ s \([^)]*rows\/s\)/g, "");

  it("score, compare and replay give the output of the same log on stdin; a bad row late in the file the same error", () => {
    writeFileSync(rubric, JSON.stringify({ criteria: ids.map((id) => ({ id })) }));
    const good = join(dir, "big.jsonl"), bad = join(dir, "big-bad.jsonl");
    writeFileSync(good, `${lines.join("\n")}\n`);
    writeFileSync(bad, `${[...lines.slice(0, 27000), '{"step":27,"group":"x","scores":{"c0":"y"}}', ...lines.slice(27000)].join("\n")}\n`);
    expect(statSync(good).size).toBeGreaterThanOrEqual(8 << 20);
    for (const file of [good, bad]) {
      for (const args of [["score"], ["score", "--scope", "stream"], ["compare", "--output-format", "json"]]) {
        const a = fromFile(args, file), b = fromStdin(args, file);
        expect(a.code, `${args.join(" ")} ${file}: ${a.stderr}`).toBe(file === good ? 0 : 1);
        expect(a.stdout, args.join(" ")).toBe(b.stdout);
        if (file === bad) expect(a.stderr, args.join(" ")).toBe(b.stderr);
      }
      const report = (name: string) => ["replay", "--report", join(dir, name)];
      const a = fromFile(report("thread.html"), file), b = fromStdin(report("one.html"), file);
      expect(a.code, a.stderr).toBe(file === good ? 0 : 1);
      if (file === good) expect(untimed(readFileSync(join(dir, "thread.html"), "utf8")).replaceAll(file, "stdin")).toBe(untimed(readFileSync(join(dir, "one.html"), "utf8")));
      else expect(a.stderr).toBe(b.stderr);
    }
    expect(fromFile(["score"], bad).stderr).toContain("line 27001: score 'c0' is \"y\", expected a number or null");
  }, 120000);
});
