/**
 * Throughput and peak memory of `focal-reward replay` on a large generated reward log.
 *
 * The log (default 10,000,000 rows x 16 criteria, 1,024 rows = 64 groups of 16 per training step) is
 * generated on the fly and streamed into the stdin of a separate `node dist/cli/main.js replay -`
 * process, so it is never held in memory nor written to disk. Each format (JSONL, CSV) is one tinybench
 * task of one iteration: rows/s = rows / wall time of the replay process (start to exit, report
 * included); peak RSS = the process's VmHWM from /proc (sampled every 50 ms; Linux only). A third task
 * times the generator alone, to show it is not the bottleneck (it shares the machine's cores).
 *
 * Run from the repository root:
 *   npm run bench:replay -- [--rows N] [--criteria K] [--formats jsonl,csv] [--methods focal,weighted-mean,gdpo]
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Bench } from "tinybench";

function arg(name: string, dflt: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1]! : dflt;
}

const ROWS = Number(arg("rows", "10000000"));
const K = Number(arg("criteria", "16"));
const GROUP = 16;
const GROUPS_PER_STEP = 64;
const FORMATS = arg("formats", "jsonl,csv").split(",") as ("jsonl" | "csv")[];
const METHODS = arg("methods", "focal,weighted-mean,gdpo");

/** The repository root: the nearest parent directory with focal-reward's package.json. */
function findRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const p = join(d, "package.json");
    if (existsSync(p) && JSON.parse(readFileSync(p, "utf8")).name === "focal-reward") return d;
    const up = dirname(d);
    if (up === d) throw new Error("focal-reward's package.json not found above this file");
    d = up;
  }
}

const ROOT = findRoot();
const CLI = join(ROOT, "dist", "cli", "main.js");
if (!existsSync(CLI)) throw new Error("dist/cli/main.js missing: run `npm run build` first");
const criteria = Array.from({ length: K }, (_, k) => `c${String(k).padStart(2, "0")}`);
const tmp = mkdtempSync(join(tmpdir(), "focal-replay-bench-"));
const rubricFile = join(tmp, "rubric.json");
writeFileSync(rubricFile, JSON.stringify({ criteria: criteria.map((id, k) => ({ id, weight: k === K - 1 ? -1 : 1 })) }));
const SCORE = Array.from({ length: 101 }, (_, i) => (i / 100).toFixed(2));

/**
 * Chunks of the log (about 256 rows each). Criterion k saturates at its own speed over the log, with
 * noise; deterministic (LCG).
 */
function* chunks(format: "jsonl" | "csv", rows: number): Generator<string> {
  let seed = 2463534242;
  const rnd = (): number => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296;
  const perStep = GROUP * GROUPS_PER_STEP;
  const steps = Math.ceil(rows / perStep);
  if (format === "csv") yield `step,group,${criteria.join(",")}\n`;
  let buf = "";
  for (let r = 0; r < rows; r++) {
    const step = Math.floor(r / perStep);
    const group = Math.floor((r % perStep) / GROUP);
    const progress = step / steps;
    let line = format === "csv" ? `${step},g${group}` : `{"step":${step},"group":"g${group}","scores":{`;
    for (let k = 0; k < K; k++) {
      const base = Math.min(1, 0.1 + progress * (1.5 - k / K));
      const v = SCORE[Math.max(0, Math.min(100, Math.round(100 * (base + 0.25 * (rnd() - 0.5)))))]!;
      line += format === "csv" ? `,${v}` : `${k ? "," : ""}"${criteria[k]}":${v}`;
    }
    buf += format === "csv" ? `${line}\n` : `${line}}}\n`;
    if ((r & 255) === 255) {
      yield buf;
      buf = "";
    }
  }
  if (buf) yield buf;
}

interface Measure { seconds: number; peakRssMiB: number; bytes: number; stdout: string }
const results = new Map<string, Measure>();

function vmHwmKiB(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

async function replayOnce(format: "jsonl" | "csv"): Promise<Measure> {
  const t0 = performance.now();
  const child = spawn(process.execPath, [CLI, "replay", "-", "--input-format", format, "--rubric", rubricFile, "--methods", METHODS, "--report", join(tmp, `report-${format}.html`)], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stdout = "", stderr = "", peak = 0, bytes = 0;
  child.stdout.setEncoding("utf8").on("data", (d: string) => (stdout += d));
  child.stderr.setEncoding("utf8").on("data", (d: string) => (stderr += d));
  const timer = setInterval(() => {
    const v = vmHwmKiB(child.pid!);
    if (v > peak) peak = v;
  }, 50);
  const exited = new Promise<number>((resolve) => child.on("close", (code) => resolve(code ?? 1)));
  child.stdin.on("error", () => {}); // the child may exit early on an error; its stderr says why
  for (const c of chunks(format, ROWS)) {
    bytes += c.length;
    if (!child.stdin.write(c)) await new Promise((r) => child.stdin.once("drain", r));
  }
  child.stdin.end();
  const code = await exited;
  clearInterval(timer);
  const seconds = (performance.now() - t0) / 1000;
  if (code !== 0) throw new Error(`replay exited with ${code}: ${stderr}`);
  return { seconds, peakRssMiB: peak / 1024, bytes, stdout };
}

const bench = new Bench({ name: "focal-reward replay", iterations: 1, time: 0, warmup: false });
for (const format of FORMATS) {
  bench.add(`replay ${format}`, async () => {
    results.set(format, await replayOnce(format));
  });
}
const GEN_ROWS = Math.min(ROWS, 1_000_000);
let genSeconds = NaN;
bench.add("generator only (jsonl)", () => {
  const t0 = performance.now();
  let n = 0;
  for (const c of chunks("jsonl", GEN_ROWS)) n += c.length;
  genSeconds = (performance.now() - t0) / 1000;
  if (n === 0) throw new Error("empty");
});

process.stderr.write(`replay bench: ${ROWS.toLocaleString("en-US")} rows x ${K} criteria, ${GROUPS_PER_STEP}x${GROUP} rows per step, methods ${METHODS}, formats ${FORMATS.join(",")}\n`);
try {
  await bench.run();
} finally {
  rmSync(tmp, { recursive: true, force: true });
}

const rowsFmt = ROWS.toLocaleString("en-US");
const table = [...results].map(([format, m]) => ({
  format,
  rows: rowsFmt,
  criteria: K,
  "wall s": m.seconds.toFixed(1),
  "rows/s": Math.round(ROWS / m.seconds).toLocaleString("en-US"),
  "input MB/s": (m.bytes / 1e6 / m.seconds).toFixed(1),
  "input GB": (m.bytes / 1e9).toFixed(2),
  "peak RSS MiB": Number.isFinite(m.peakRssMiB) && m.peakRssMiB > 0 ? m.peakRssMiB.toFixed(0) : "n/a",
}));
console.table(table);
console.log(`generator alone: ${Math.round(GEN_ROWS / genSeconds).toLocaleString("en-US")} rows/s (jsonl, ${GEN_ROWS.toLocaleString("en-US")} rows)`);
for (const t of bench.tasks) {
  const r = t.result as { state?: string; latency?: { mean: number }; error?: unknown } | undefined;
  if (r?.state === "errored" || r?.error) console.error(`${t.name}: ${String(r.error)}`);
}
console.log("\n| format | rows x criteria | rows/s | input MB/s | peak RSS (MiB) |\n|---|---|---|---|---|");
for (const row of table) console.log(`| ${row.format} | ${row.rows} x ${K} | ${row["rows/s"]} | ${row["input MB/s"]} | ${row["peak RSS MiB"]} |`);
const first = [...results.values()][0];
if (first) console.log(`\nreplay summary (${[...results.keys()][0]}):\n${first.stdout}`);
