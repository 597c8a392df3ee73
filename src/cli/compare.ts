/**
 * `focal-reward compare`: one reward log through several methods, step by step, with the
 * diagnostics of src/diagnostics.ts accumulated per method; a table with the methods as columns
 * and the diagnostics as rows (or JSON, CSV). Memory holds one step and O(K) per method.
 */
import { parseArgs } from "node:util";
import { createEngine } from "../index.js";
import { compileRubric } from "../rubric.js";
import { Diagnostics, prepare } from "../diagnostics.js";
import type { Engine } from "../types.js";
import { ENGINE_FLAGS, ENGINE_HELP, engineOptions, methodOptions, readRubric, writeAtomic, writeOut } from "./common.js";
import { openLog } from "./log.js";
import { InputError } from "./steps.js";

export const summary = "run a reward log through several methods; diagnostics side by side";

const HELP = `usage: focal-reward compare --rubric FILE [--methods LIST] [--format table|json|csv] [--output FILE] < log.jsonl
       focal-reward compare --input log.jsonl|log.csv [--rubric FILE] [--methods LIST] ...

Reads a reward log: the JSONL of \`focal-reward score\` ({"step"?, "group", "scores": {...}, "valid"?} per
line) or CSV (a header with group, step and valid columns and one column per criterion), scores every step
with each method and prints the diagnostics: rows = diagnostics, columns = methods.

  --methods LIST       comma-separated (default focal,weighted-mean,gdpo). A method may carry its own
                       options after colons: power-mean:power=-1, focal:gamma=5:minWeight=0.05,
                       focal:scope=stream, min:fGrpo=1. Methods: focal, weighted-mean, gdpo,
                       weighted-sum, min, power-mean, soft-min, cvar, points-ratio, all-or-nothing,
                       gated, hierarchical, pow3r, dvao, mo-grpo; focal-stream = focal:scope=stream
  --format F           table (default) | json | csv
  --output FILE        write there instead of stdout
  --input FILE         read FILE instead of stdin (then --rubric may be left out)
  --per-criterion      table: also the per-criterion rows (always in json and csv; in the table by
                       default when the rubric has at most 8 criteria)
  --power P            power-mean exponent (default 0)       --temperature T   soft-min (default 0.1)
  --alpha A            cvar tail share (default 0.25)        --fgrpo G   F-GRPO exponent (default off)
  --threshold X        pass threshold on the [0, 1] scale (default 0.5), for every method and for the
                       diagnostics (satisfied, unexplored, suppressed, strict completion)
${ENGINE_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...ENGINE_FLAGS, methods: { type: "string" }, format: { type: "string" }, output: { type: "string" },
      input: { type: "string" }, "per-criterion": { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const format = values.format ?? "table";
  if (format !== "table" && format !== "json" && format !== "csv") throw new Error(`--format must be table, json or csv, got '${format}'`);
  const rubricCriteria = values.rubric !== undefined ? await readRubric(values.rubric) : undefined;
  const log = await openLog(values.input, {
    rubric: rubricCriteria,
    onIgnored: (cols) => process.stderr.write(`compare: ignoring columns not in the rubric: ${cols.join(", ")}\n`),
  });
  const criteria = log.criteria;

  if (values.method !== undefined) throw new Error("compare: give the methods with --methods (--method is for score)");
  const shared = engineOptions(values, criteria);
  delete shared.method;
  const specs = (values.methods ?? "focal,weighted-mean,gdpo").split(",").map((s) => s.trim()).filter(Boolean);
  if (specs.length === 0) throw new Error("--methods: empty list");
  if (new Set(specs).size !== specs.length) throw new Error("--methods: a method is given twice");
  const engines: Engine[] = [];
  for (const spec of specs) {
    try {
      engines.push(await createEngine({ ...shared, ...methodOptions(spec) }));
    } catch (e) {
      throw new Error(`--methods ${spec}: ${(e as Error).message}`);
    }
  }
  const rubric = compileRubric({ criteria });
  const diags = specs.map(() => new Diagnostics(rubric, { threshold: shared.threshold }));

  const t0 = performance.now();
  const tty = process.stderr.isTTY === true;
  let steps = 0, rows = 0, groups = 0, last = 0;
  try {
    for await (const step of log.steps) {
      const call = prepare(rubric, step.scores, step.groupSizes);
      engines.forEach((e, m) => {
        let out;
        try {
          out = e.score(step.scores, step.groupSizes, { valid: step.valid });
        } catch (err) {
          throw new InputError(step.lines[0], `step ${JSON.stringify(step.step) ?? "(none)"}: ${(err as Error).message}`);
        }
        diags[m].add(call, out);
      });
      steps++;
      rows += call.n;
      groups += step.groupSizes.length;
      if (tty && performance.now() - last > 200) {
        last = performance.now();
        process.stderr.write(`\r\x1b[Kcompare: ${steps} steps, ${rows.toLocaleString("en-US")} rows`);
      }
    }
  } catch (e) {
    if (tty) process.stderr.write("\r\x1b[K");
    if (e instanceof InputError) {
      process.stderr.write(`focal-reward compare: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
  if (tty) process.stderr.write("\r\x1b[K");
  const metrics = diags.map((d) => d.metrics());
  const names: string[] = [];
  const seen = new Set<string>();
  for (const m of metrics) for (const k of Object.keys(m)) if (!seen.has(k)) { seen.add(k); names.push(k); }
  const perCriterion = values["per-criterion"] === true || rubric.ids.length <= 8;
  const text = format === "json" ? toJson(specs, names, metrics)
    : format === "csv" ? toCsv(specs, names, metrics)
      : toTable(specs, names.filter((n) => perCriterion || !isPerCriterion(n)), metrics);
  if (values.output !== undefined) await writeAtomic(values.output, text);
  else await writeOut(text);
  const secs = (performance.now() - t0) / 1000;
  process.stderr.write(`compare: ${steps} steps, ${rows} rows, ${groups} groups, ${specs.length} methods in ${secs.toFixed(2)} s\n`);
  return 0;
}

function isPerCriterion(name: string): boolean {
  return name.startsWith("rewards/") || (name.startsWith("focal/") && name.split("/").length > 2);
}

const value = (x: number | undefined) => (x === undefined || !Number.isFinite(x) ? null : x);

function toJson(methods: string[], names: string[], metrics: Record<string, number>[]): string {
  const diagnostics: Record<string, (number | null)[]> = {};
  for (const n of names) diagnostics[n] = metrics.map((m) => value(m[n]));
  return `${JSON.stringify({ methods, diagnostics }, null, 1)}\n`;
}

function csvCell(s: string): string {
  return /[",\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

function toCsv(methods: string[], names: string[], metrics: Record<string, number>[]): string {
  const lines = [["diagnostic", ...methods].map(csvCell).join(",")];
  for (const n of names) lines.push([csvCell(n), ...metrics.map((m) => String(value(m[n]) ?? ""))].join(","));
  return `${lines.join("\n")}\n`;
}

function fmt(x: number | undefined): string {
  const v = value(x);
  if (v === null) return "-";
  if (v !== 0 && Math.abs(v) < 1e-3) return v.toExponential(2);
  return v.toFixed(4);
}

function toTable(methods: string[], names: string[], metrics: Record<string, number>[]): string {
  const head = ["diagnostic", ...methods];
  const body = names.map((n) => [n, ...metrics.map((m) => fmt(m[n]))]);
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((r) => r[c].length)));
  const line = (r: string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join("  ").trimEnd();
  return `${[line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n")}\n`;
}
