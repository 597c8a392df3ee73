/**
 * `focal-reward compare`: one reward log through several methods, step by step, with the
 * diagnostics of src/analysis/diagnostics.ts accumulated per method; a table with the methods as columns
 * and the diagnostics as rows (or JSON, CSV). Memory holds one step and O(K) per method.
 */
import { createEngine } from "../index.js";
import { compileRubric } from "../rubric.js";
import { Diagnostics, prepare, type PreparedCall } from "../analysis/diagnostics.js";
import { parseMethods } from "../analysis/methods.js";
import type { Engine } from "../types.js";
import { INPUT_FLAGS, LOG_FORMAT, METHODS_FLAG, SHARED_ENGINE_GROUP, engineFlags, readRubricFile, warnOutOfScale } from "./common.js";
import { EXIT, type CommandSpec, type Values } from "./flags.js";
import { checkWritable, csvCell, progress, textTable, writeAtomic, writeOut } from "./io.js";
import { openLog, type LogFormat } from "../log/open.js";
import { InputError, stepError } from "../log/step.js";

export const command: CommandSpec = {
  name: "compare",
  summary: "run a reward log through several methods; diagnostics side by side",
  usage: ["[--input FILE|-] [--rubric FILE] [--methods LIST] [--output-format table|json|csv] [--output FILE]"],
  about: `Scores every step of the log with each method and prints the diagnostics: rows = diagnostics,
columns = methods. Memory holds one step and O(K) per method.
${LOG_FORMAT}`,
  groups: [
    {
      title: "input and output",
      flags: [
        ...INPUT_FLAGS,
        { name: "output", arg: "FILE", help: "write there (atomically) instead of stdout" },
        { name: "output-format", arg: "F", help: "table (default) | json | csv", choices: ["table", "json", "csv"] },
        { name: "per-criterion", help: "table: also the per-criterion rows (always in json and csv; in the table by\ndefault when the rubric has at most 8 criteria)" },
      ],
    },
    { title: "methods", flags: [METHODS_FLAG] },
    SHARED_ENGINE_GROUP,
  ],
  insteadOf: { format: "output-format", method: "methods" },
};

export async function run(values: Values): Promise<number> {
  const s = (name: string) => values[name] as string | undefined;
  const format = s("output-format") ?? "table";
  const file = s("rubric") !== undefined ? await readRubricFile(s("rubric")!, "compare") : undefined;
  const { method: _method, ...fileOptions } = file?.options ?? {};
  const shared = { ...fileOptions, ...engineFlags(values) };
  const methods = parseMethods(s("methods") ?? "focal,weighted-mean,gdpo");
  const specs = methods.map((m) => m.key);
  const perMethod = methods.map((m) => m.options);
  if (s("output") !== undefined) await checkWritable("--output", s("output")!);
  const log = await openLog(s("input"), {
    format: s("input-format") as LogFormat | undefined,
    rubric: file?.criteria,
    onIgnored: (cols) => process.stderr.write(`compare: ignoring columns not in the rubric: ${cols.join(", ")}\n`),
  });
  const criteria = log.criteria;
  const engines: Engine[] = [];
  for (const [m, spec] of specs.entries()) {
    try {
      engines.push(await createEngine({ ...shared, ...perMethod[m], rubric: { criteria }, reuseOutputs: true }));
    } catch (e) {
      throw new Error(`--methods ${spec}: ${(e as Error).message}`);
    }
  }
  const rubric = compileRubric({ criteria });
  const diags = specs.map(() => new Diagnostics(rubric, { threshold: shared.threshold }));

  const t0 = performance.now();
  const bar = progress("compare", log);
  let steps = 0, rows = 0, groups = 0;
  let last: PreparedCall | undefined;
  try {
    for await (const step of log.steps) {
      const call = (last = prepare(rubric, step.scores, step.groupSizes, step.valid, last));
      engines.forEach((e, m) => {
        let out;
        try {
          out = e.score(step.scores, step.groupSizes, { valid: step.valid });
        } catch (err) {
          throw stepError(step, err, specs.length > 1 ? `${specs[m]}: ` : "");
        }
        diags[m]!.add(call, out);
      });
      steps++;
      rows += call.n;
      groups += step.groupSizes.length;
      bar.tick(rows);
    }
  } catch (e) {
    bar.done();
    if (e instanceof InputError) {
      process.stderr.write(`focal-reward compare: ${e.message}\n`);
      return EXIT.failure;
    }
    throw e;
  }
  bar.done();
  // The methods share the inputs, so the first one's count is every one's.
  warnOutOfScale("compare", diags[0]!.outOfScale(), file !== undefined);
  const metrics = diags.map((d) => d.metrics());
  const names: string[] = [];
  const seen = new Set<string>();
  for (const m of metrics) for (const k of Object.keys(m)) if (!seen.has(k)) { seen.add(k); names.push(k); }
  const perCriterion = values["per-criterion"] === true || rubric.ids.length <= 8;
  const text = format === "json" ? toJson(specs, names, metrics)
    : format === "csv" ? toCsv(specs, names, metrics)
      : toTable(specs, names.filter((n) => perCriterion || !isPerCriterion(n)), metrics);
  if (s("output") !== undefined) await writeAtomic(s("output")!, text);
  else await writeOut(text);
  const secs = (performance.now() - t0) / 1000;
  process.stderr.write(`compare: ${steps} steps, ${rows} rows, ${groups} groups, ${specs.length} methods in ${secs.toFixed(2)} s\n`);
  return EXIT.ok;
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
  return textTable(["diagnostic", ...methods], names.map((n) => [n, ...metrics.map((m) => fmt(m[n]))]));
}
