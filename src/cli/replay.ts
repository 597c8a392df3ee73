/** `focal-reward replay`: stream a reward log through several methods and write a report. */
import { parseMethods } from "../analysis/methods.js";
import { replay, type ReplayResult } from "../analysis/replay.js";
import { replayReport } from "../report/replay-report.js";
import { INPUT_FLAGS, LOG_FORMAT, METHODS_FLAG, SHARED_ENGINE_GROUP, engineFlags, readRubricFile, warnOutOfScale } from "./common.js";
import { EXIT, type CommandSpec, type Values } from "./flags.js";
import { checkWritable, progress, writeAtomic } from "./io.js";
import { openLog, type LogFormat } from "../log/open.js";

export const command: CommandSpec = {
  name: "replay",
  summary: "replay a reward log through several methods; write an HTML report",
  usage: ["[LOG | --input FILE|-] [--methods focal,weighted-mean,gdpo] [--rubric FILE] [--report FILE]"],
  about: `LOG (or --input) is a file, or - for stdin (JSONL on stdin needs --rubric; CSV does not).
${LOG_FORMAT}
Memory grows with the largest step (a log without steps is one step, held whole).
The report (default replay-report.html) is one self-contained HTML file.`,
  positional: { name: "LOG", flag: "input" },
  groups: [
    {
      title: "input and output",
      flags: [...INPUT_FLAGS, { name: "report", arg: "FILE", help: "the HTML report (default replay-report.html)" }],
    },
    { title: "methods", flags: [METHODS_FLAG] },
    SHARED_ENGINE_GROUP,
  ],
  insteadOf: { format: "input-format", method: "methods" },
};

export async function run(values: Values): Promise<number> {
  const s = (name: string) => values[name] as string | undefined;
  const input = s("input") ?? "-";
  const reportFile = s("report") ?? "replay-report.html";
  const file = s("rubric") !== undefined ? await readRubricFile(s("rubric")!, "replay") : undefined;
  const { method: _method, ...fileOptions } = file?.options ?? {};
  const engine = { ...fileOptions, ...engineFlags(values) };
  const methods = parseMethods(s("methods") ?? "focal,weighted-mean,gdpo");
  await checkWritable("--report", reportFile);
  const source = await openLog(input, {
    rubric: file?.criteria,
    format: s("input-format") as LogFormat | undefined,
    onIgnored: (cols) => process.stderr.write(`replay: ignoring columns not in the rubric: ${cols.join(", ")}\n`),
  });
  const bar = progress("replay", source);
  let res: ReplayResult;
  try {
    res = await replay(source.steps, {
      rubric: { criteria: source.criteria },
      methods,
      engine,
      source: input === "-" ? "stdin" : input,
      onStep: (rows) => bar.tick(rows),
    });
  } finally {
    bar.done();
  }
  await writeAtomic(reportFile, replayReport(res, methods.filter((m) => m.options.method === "focal").map((m) => m.key)));
  process.stdout.write(formatSummary(res));
  warnOutOfScale("replay", res.outOfScale, file !== undefined);
  for (const note of res.notes) process.stderr.write(`replay: note: ${note}\n`);
  process.stderr.write(`replay: ${res.rows} rows, ${res.steps} steps in ${res.seconds.toFixed(2)} s; report written to ${reportFile}\n`);
  return EXIT.ok;
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
