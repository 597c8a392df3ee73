/**
 * The CLI at data speed (issue 13, item 5): rows/s and peak RSS of `replay`, `compare` and `score`
 * on one generated log (default 10,000,000 rows x 16 criteria, 1,024 rows = 64 groups of 16 a
 * step) in each input format, side by side in one run, plus `read` (the log reader alone: open the
 * log and walk its steps, nothing scored) to show where the time goes.
 *
 * The log is written once per format into a temporary folder (JSONL, CSV, Parquet through
 * hyparquet-writer, Arrow IPC through apache-arrow), then each command runs as a fresh process,
 * as users run it: rows/s = rows / wall time of that process (start to exit), CPU time and peak
 * RSS from /usr/bin/time. score writes JSONL to /dev/null; replay writes its report; compare prints JSON.
 *
 * Run from the repository root (after npm run build):
 *   npm run bench:cli -- [--rows N] [--criteria K] [--digits D|full] [--formats jsonl,csv,parquet,arrow] [--commands read,replay,compare,score] [--dir DIR] [--cli PATH]
 * (--help lists the flags; an unknown one is an error, see bench/args.js)
 * --dir keeps the logs in DIR (reused by a later run with the same --rows and --criteria);
 * --cli A,B runs these builds' dist/cli/main.js instead (e.g. the last release's and this one),
 * each command back to back on the same logs: a before/after table from one machine and one run.
 * Besides rows/s of wall time it prints rows per CPU second (user + system of the process),
 * which a loaded machine changes less.
 */
import { spawnSync } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const { values, number, list } = benchArgs(
  {
    rows: { default: "10000000", help: "rows of the generated log" },
    criteria: { default: "16", help: "criteria (score columns) per row" },
    digits: { default: "2", help: "decimal places of the scores, or full: full-precision doubles (as Python's json.dumps writes them)" },
    formats: { default: "jsonl,csv,parquet,arrow", help: "input formats, comma-separated" },
    commands: { default: "read,replay,compare,score", help: "commands, comma-separated (read: the reader alone)" },
    dir: { help: "keep the logs in this folder (reused by a later run of the same size)" },
    cli: { help: "builds to compare: their dist/cli/main.js, comma-separated (default: this checkout's)" },
  },
  "npm run bench:cli -- [flags]: rows/s, CPU and peak RSS of each command per input format, one fresh process each",
);
const ROWS = number("rows", { min: 1, integer: true });
const K = number("criteria", { min: 1, max: 256, integer: true });
const FORMATS = list("formats", ["jsonl", "csv", "parquet", "arrow"]);
const COMMANDS = list("commands", ["read", "replay", "compare", "score"]);
/** Scores are rounded to this many decimal places (Infinity: not rounded). */
const DIGITS = values.digits === "full" ? Infinity : number("digits", { min: 0, max: 15, integer: true });
const GROUP = 16, STEP = 1024;

const CLIS = values.cli === undefined ? [join(ROOT, "dist", "cli", "main.js")] : values.cli.split(",").map((p) => resolve(p));
for (const cli of CLIS) if (!existsSync(cli)) throw new Error(`${cli} missing: run \`npm run build\` first`);
const DIR = values.dir;
const tmp = mkdtempSync(join(tmpdir(), "focal-cli-bench-"));
process.on("exit", () => rmSync(tmp, { recursive: true, force: true }));
// Interrupted runs clean up too: the logs are gigabytes.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => process.exit(130));
if (DIR) mkdirSync(DIR, { recursive: true });
const logDir = DIR ?? tmp;
const ids = Array.from({ length: K }, (_, k) => `c${String(k).padStart(2, "0")}`);
const rubric = join(tmp, "rubric.json");
writeFileSync(rubric, JSON.stringify({ criteria: ids.map((id) => ({ id })) }));

/** Rows in blocks of one step: criterion k saturates at its own speed, with noise (LCG, deterministic). */
function* blocks() {
  let seed = 2463534242;
  const rnd = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296;
  for (let start = 0; start < ROWS; start += STEP) {
    const n = Math.min(STEP, ROWS - start);
    const step = start / STEP;
    const scores = new Float64Array(n * K);
    for (let i = 0; i < n * K; i++) {
      const k = i % K;
      const x = Math.min(1, Math.max(0, (step / (ROWS / STEP)) * (k + 1) / K + 0.3 * rnd()));
      scores[i] = DIGITS === Infinity ? x : Math.round(x * 10 ** DIGITS) / 10 ** DIGITS;
    }
    yield { step, n, group: Array.from({ length: n }, (_, i) => `p${Math.floor(i / GROUP)}`), scores };
  }
}

async function writeText(file, line) {
  const w = createWriteStream(file, { highWaterMark: 1 << 22 });
  const put = (s) => (w.write(s) ? undefined : new Promise((r) => w.once("drain", r)));
  if (file.endsWith(".csv")) await put(`step,group,${ids.join(",")}\n`);
  for (const b of blocks()) {
    let text = "";
    for (let i = 0; i < b.n; i++) text += line(b, i);
    await put(text);
  }
  await new Promise((r) => w.end(r));
}

const jsonl = (b, i) => {
  let s = "";
  for (let k = 0; k < K; k++) s += `${k ? "," : ""}"${ids[k]}":${b.scores[i * K + k]}`;
  return `{"step":${b.step},"group":"${b.group[i]}","scores":{${s}}}\n`;
};
const csv = (b, i) => {
  let s = `${b.step},${b.group[i]}`;
  for (let k = 0; k < K; k++) s += `,${b.scores[i * K + k]}`;
  return `${s}\n`;
};

async function writeParquet(file) {
  const { ParquetWriter, fileWriter, schemaFromColumnData } = await import("hyparquet-writer");
  let writer;
  const rowGroup = 64 * STEP;
  let cols = null;
  const flush = () => {
    const columnData = [
      { name: "step", data: Int32Array.from(cols.step), type: "INT32" },
      { name: "group", data: cols.group, type: "STRING" },
      ...ids.map((id, k) => ({ name: id, data: Float64Array.from(cols.scores[k]), type: "DOUBLE" })),
    ];
    writer ??= new ParquetWriter({ writer: fileWriter(file), schema: schemaFromColumnData({ columnData }) });
    writer.write({ columnData, rowGroupSize: rowGroup });
    cols = null;
  };
  for (const b of blocks()) {
    cols ??= { step: [], group: [], scores: ids.map(() => []) };
    for (let i = 0; i < b.n; i++) {
      cols.step.push(b.step);
      cols.group.push(b.group[i]);
      for (let k = 0; k < K; k++) cols.scores[k].push(b.scores[i * K + k]);
    }
    if (cols.step.length >= rowGroup) flush();
  }
  if (cols) flush();
  writer.finish();
}

async function writeArrow(file) {
  const { RecordBatch, RecordBatchFileWriter, Utf8, tableFromArrays, vectorFromArray } = await import("apache-arrow");
  const w = RecordBatchFileWriter.throughNode({ autoDestroy: false });
  const out = createWriteStream(file);
  w.pipe(out);
  let batch = null, schema;
  const flush = () => {
    const t = tableFromArrays({ step: Int32Array.from(batch.step), group: vectorFromArray(batch.group, new Utf8()), ...Object.fromEntries(ids.map((id, k) => [id, Float64Array.from(batch.scores[k])])) });
    schema ??= t.schema; // one schema object for every batch (a new one would start a new file)
    for (const rb of t.batches) w.write(new RecordBatch(schema, rb.data));
    batch = null;
  };
  for (const b of blocks()) {
    batch ??= { step: [], group: [], scores: ids.map(() => []) };
    for (let i = 0; i < b.n; i++) {
      batch.step.push(b.step);
      batch.group.push(b.group[i]);
      for (let k = 0; k < K; k++) batch.scores[k].push(b.scores[i * K + k]);
    }
    if (batch.step.length >= 64 * STEP) flush();
  }
  if (batch) flush();
  w.end();
  await new Promise((r) => out.on("close", r));
}

const files = {};
for (const f of FORMATS) {
  const file = join(logDir, `log-${ROWS}x${K}${DIGITS === 2 ? "" : `-${values.digits}digits`}.${f}`);
  files[f] = file;
  if (DIR && existsSync(file)) continue;
  const t0 = performance.now();
  if (f === "jsonl") await writeText(file, jsonl);
  else if (f === "csv") await writeText(file, csv);
  else if (f === "parquet") await writeParquet(file);
  else if (f === "arrow") await writeArrow(file);
  else throw new Error(`unknown format ${f}`);
  process.stderr.write(`wrote ${f}: ${(statSync(file).size / 2 ** 20).toFixed(0)} MiB in ${((performance.now() - t0) / 1000).toFixed(1)} s\n`);
}

const readScript = (cli) => `import { openLog } from ${JSON.stringify(join(cli, "..", "..", "log", "open.js"))};
const log = await openLog(process.argv[1], { rubric: ${JSON.stringify(ids.map((id) => ({ id })))} });
let rows = 0; for await (const s of log.steps) rows += s.valid.length;
if (rows !== ${ROWS}) throw new Error("read " + rows + " rows");`;

/** One fresh process: wall seconds, CPU seconds (user + system: what the load of the machine does not change as much) and peak RSS. */
function run(cli, command, file) {
  const args = {
    read: ["--input-type=module", "-e", readScript(cli), file],
    replay: [cli, "replay", file, "--rubric", rubric, "--report", join(tmp, "report.html")],
    compare: [cli, "compare", "--input", file, "--rubric", rubric, "--output-format", "json", "--output", join(tmp, "compare.json")],
    score: [cli, "score", "--input", file, "--rubric", rubric, "--output", "/dev/null"],
  }[command];
  const t0 = performance.now();
  const r = spawnSync("/usr/bin/time", ["-f", "%M %U %S", process.execPath, ...args], { encoding: "utf8", maxBuffer: 1 << 26 });
  const secs = (performance.now() - t0) / 1000;
  if (r.status !== 0) throw new Error(`${command} ${file}: ${r.stderr}`);
  const [kib, user, sys] = r.stderr.trim().split("\n").pop().split(" ").map(Number);
  return { secs, cpu: user + sys, rss: kib / 1024 };
}

// With several --cli builds, each command and format runs them back to back (the same load for both).
const results = [];
for (const command of COMMANDS) {
  for (const f of FORMATS) {
    for (const cli of CLIS) {
      const { secs, cpu, rss } = run(cli, command, files[f]);
      results.push({ cli, command, format: f, rowsPerSec: ROWS / secs, rowsPerCpu: ROWS / cpu, secs, rss });
      process.stderr.write(`${cli} ${command} ${f}: ${(ROWS / secs / 1e6).toFixed(2)} M rows/s, ${(ROWS / cpu / 1e6).toFixed(2)} M rows per CPU second, ${rss.toFixed(0)} MiB\n`);
    }
  }
}

const fmt = (x) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e4 ? `${(x / 1e3).toFixed(0)}k` : x.toFixed(0));
console.log(`\nfocal-reward CLI, ${ROWS.toLocaleString("en-US")} rows x ${K} criteria (scores ${DIGITS === Infinity ? "at full precision" : `to ${DIGITS} decimal places`}), ${STEP} rows a step (groups of ${GROUP}); methods focal,weighted-mean,gdpo`);
console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? "?"}, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}, node ${process.version}`);
console.log("rows/s (wall) / rows per CPU second, peak RSS\n");
for (const cli of CLIS) {
  console.log(`${cli}\n`);
  console.log(`| command | ${FORMATS.join(" | ")} |`);
  console.log(`|---|${FORMATS.map(() => "---:").join("|")}|`);
  for (const command of COMMANDS) {
    const row = FORMATS.map((f) => {
      const r = results.find((x) => x.cli === cli && x.command === command && x.format === f);
      const first = results.find((x) => x.cli === CLIS[0] && x.command === command && x.format === f);
      const vs = cli !== CLIS[0] ? `, ${(r.rowsPerCpu / first.rowsPerCpu).toFixed(1)}x per CPU s` : "";
      return `${fmt(r.rowsPerSec)} / ${fmt(r.rowsPerCpu)} (${r.rss.toFixed(0)} MiB${vs})`;
    });
    console.log(`| ${command} | ${row.join(" | ")} |`);
  }
  console.log("");
}
