/** `focal-reward replay LOG`: stream a reward log through several methods and write a report. */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseMethods, replay, type ReplayResult } from "../report/replay.js";
import { replayReport } from "../report/replay-report.js";
import { ENGINE_FLAGS, engineOptions, readRubric } from "./common.js";
import { openLog, type Log } from "./log.js";

export const summary = "replay a reward log (JSONL or CSV) through several methods; write a report";

const USAGE = `usage: focal-reward replay LOG [--methods focal,weighted-mean,gdpo] [--rubric FILE] [--report FILE]
                            [--format jsonl|csv] [--gamma G] [--eps E] [--tau T] [--min-weight W]
                            [--max-weight W] [--mix M] [--decay D] [--advantage grpo|dr-grpo|rloo|none]
                            [--backend auto|simd|scalar|js]

LOG is a file (or - for stdin, which needs --rubric or CSV) in the JSONL of \`focal-reward score\`
({"step"?, "group", "scores": {...}, "valid"?} per line) or CSV (a header; columns group, step and valid,
and one column per criterion). Consecutive rows with the same step form one training step; memory
grows with the largest step (a log without steps is one step, held whole).
Methods: any of focal-reward compare's, with options after colons (focal-stream, power-mean:power=-1).
The report (default replay-report.html) is one self-contained HTML file.
`;

export async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: { ...ENGINE_FLAGS, methods: { type: "string" }, report: { type: "string" }, format: { type: "string" }, help: { type: "boolean", short: "h" } },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    process.stderr.write(`focal-reward replay: ${positionals.length === 0 ? "no LOG given" : `one LOG, got '${positionals.join("', '")}'`}\n\n${USAGE}`);
    return 2;
  }
  const log = positionals[0];
  if (values.method !== undefined) throw new Error("replay: give the methods with --methods (--method is for score)");
  const format = values.format;
  if (format !== undefined && format !== "jsonl" && format !== "csv") throw new Error("--format must be jsonl or csv");
  const methodList = values.methods ?? "focal,weighted-mean,gdpo";
  const reportFile = values.report ?? "replay-report.html";
  const rubric = values.rubric !== undefined ? await readRubric(values.rubric) : undefined;
  const { rubric: _rubric, method: _method, ...engine } = engineOptions(values, []);
  const methods = parseMethods(methodList);
  const source = await openLog(log, {
    rubric,
    format: format as "jsonl" | "csv" | undefined,
    onIgnored: (cols) => process.stderr.write(`replay: ignoring columns not in the rubric: ${cols.join(", ")}\n`),
  });
  const { criteria, steps } = source;

  const bar = process.stderr.isTTY === true ? progressBar(source) : null;
  let res: ReplayResult;
  try {
    res = await replay(steps, {
      rubric: { criteria },
      methods,
      engine,
      source: log === "-" ? "stdin" : log,
      onStep: bar ?? undefined,
    });
  } finally {
    if (bar) process.stderr.write("\r\x1b[K");
  }
  writeFileSync(reportFile, replayReport(res, methods.filter((m) => m.options.method === "focal").map((m) => m.key)));
  process.stdout.write(formatSummary(res));
  for (const note of res.notes) process.stderr.write(`replay: note: ${note}\n`);
  process.stderr.write(`replay: ${res.rows} rows, ${res.steps} steps in ${res.seconds.toFixed(2)} s; report written to ${reportFile}\n`);
  return 0;
}

function progressBar(src: Log): (rows: number, steps: number) => void {
  const t0 = performance.now();
  let last = 0;
  return (rows) => {
    const now = performance.now();
    if (now - last < 150) return;
    last = now;
    const secs = (now - t0) / 1000;
    const rate = rows / Math.max(secs, 1e-9);
    let line = `replay: ${rows.toLocaleString("en-US")} rows, ${fmtRate(rate)} rows/s`;
    if (src.size !== undefined && src.size > 0) {
      const f = Math.min(1, src.bytesRead() / src.size);
      const w = 24;
      const fill = Math.round(f * w);
      const eta = f > 0 ? (secs * (1 - f)) / f : NaN;
      line = `[${"#".repeat(fill)}${"-".repeat(w - fill)}] ${(100 * f).toFixed(0).padStart(3)}% ${line}, ETA ${fmtTime(eta)}`;
    }
    process.stderr.write(`\r\x1b[K${line}`);
  };
}

function fmtRate(r: number): string {
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(0);
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, "0")}`;
}

function formatSummary(r: ReplayResult): string {
  const out: string[] = [];
  out.push(`${r.rows} rows (${r.validRows} valid), ${r.steps} steps, ${r.groups} groups, ${r.criteria.length} criteria, backend ${r.backend}`);
  out.push("");
  out.push(["method".padEnd(22), "reward".padStart(8), "mean|adv|".padStart(10), "zero-adv groups".padStart(16)].join(" "));
  for (const m of r.methods) {
    out.push([m.label.padEnd(22), fmt(m.metrics.reward), fmt(m.meanAbsAdvantage).padStart(10), fmt(m.fracZeroAdvantageGroups).padStart(16)].join(" "));
  }
  if (r.pairs.length > 0) {
    out.push("");
    out.push(`within-group ${r.rankBy} orders: mean Kendall tau, share of groups whose order / top rollout differs`);
    for (const p of r.pairs) out.push(`  ${p.a} vs ${p.b}: tau ${fmt(p.meanTau)}, order ${fmt(p.fracOrderDiffers)}, top ${fmt(p.fracTopDiffers)} (${p.groups} groups)`);
  }
  return `${out.join("\n")}\n`;
}

function fmt(v: number | undefined): string {
  return v === undefined || !Number.isFinite(v) ? "       –" : v.toFixed(4).padStart(8);
}
