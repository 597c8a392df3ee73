/** `focal-reward score`: one output line per input row, in input order. */
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createEngine } from "../index.js";
import type { Engine, ScoreResult } from "../types.js";
import { ENGINE_GROUP, INPUT_FLAGS, LOG_FORMAT, OutOfScaleTally, engineFlags, readRubricFile, warnOutOfScale } from "./common.js";
import { EXIT, UsageError, type CommandSpec, type Values } from "./flags.js";
import { AtomicFile, ByteRows, checkWritable, csvCell, progress, writeAtomic, writeOut } from "./io.js";
import { openLog, type LogFormat } from "../log/open.js";
import { InputError, stepError, type Step } from "../log/step.js";

export const command: CommandSpec = {
  name: "score",
  summary: "score a reward log: one output line per input row, in input order",
  usage: ["[--input FILE|-] [--rubric FILE] [options] < scores.jsonl > rewards.jsonl"],
  about: `${LOG_FORMAT}
output line (JSONL): {"step"?, "group", "reward", "direct", "advantage", "weights": {"<criterion>": w}}
CSV output: columns step, group, reward, direct, advantage, weight/<criterion>...`,
  groups: [
    {
      title: "input and output",
      flags: [
        ...INPUT_FLAGS,
        { name: "output", arg: "FILE", help: "write there (atomically, when the whole log scored) instead of stdout" },
        { name: "output-format", arg: "F", help: "jsonl (default) | csv", choices: ["jsonl", "csv"] },
        { name: "state", arg: "FILE", help: "stream scope: load the state before, save it after (atomically)" },
        { name: "stepped", help: "stream scope: step-keyed updates; every row needs an integer \"step\" >= 0, a\nstep's weights come from the state before it opened, and a step split over\nseveral invocations with --state resumes exactly" },
        { name: "metrics", arg: "FILE", help: "write the engine's metrics as JSONL, one line per step (streamed)" },
      ],
    },
    ENGINE_GROUP,
  ],
};

export async function run(values: Values): Promise<number> {
  const s = (name: string) => values[name] as string | undefined;
  const file = s("rubric") !== undefined ? await readRubricFile(s("rubric")!, "score") : undefined;
  const statePath = s("state"), metricsPath = s("metrics"), outputPath = s("output");
  const options = { ...file?.options, ...engineFlags(values) };
  if (statePath !== undefined && (options.scope ?? "group") !== "stream") throw new UsageError("--state needs --scope stream");
  const stepped = values.stepped === true;
  if (stepped && (options.scope ?? "group") !== "stream") throw new UsageError("--stepped needs --scope stream");
  // Every file the command will write is checked before the first row is scored.
  for (const [flag, path] of [["--state", statePath], ["--metrics", metricsPath], ["--output", outputPath]] as const) {
    if (path !== undefined) await checkWritable(flag, path);
  }
  // Without a rubric the columns are every criterion in the log: the stream scope's weights
  // depend on the whole set, so stdin is held in memory to find them first.
  const log = await openLog(s("input"), { format: s("input-format") as LogFormat | undefined, rubric: file?.criteria, holdStdin: true });
  const engine = await createEngine({ ...options, rubric: { criteria: log.criteria }, reuseOutputs: true });
  if (statePath !== undefined && existsSync(statePath)) {
    try {
      engine.restore(new Uint8Array(await readFile(statePath)));
    } catch (e) {
      throw new Error(`--state ${statePath}: ${(e as Error).message}`);
    }
  }
  const csv = s("output-format") === "csv";
  const out = outputPath !== undefined ? new AtomicFile(outputPath) : undefined;
  const metrics = metricsPath !== undefined ? new AtomicFile(metricsPath) : undefined;
  let metricsError: Error | undefined;
  const bar = progress("score", log);
  const outside = new OutOfScaleTally(log.criteria);
  let rows = 0;
  let inflight: Promise<void> | undefined;
  try {
    const write = (text: string | Uint8Array) => (out ? out.write(text) : writeOut(text));
    const bytes = new ByteRows();
    // Into a file, a step's rows are written while the next step is read and scored (one write
    // in flight, in one of two buffers); stdout keeps the buffers it is given, so it gets fresh ones.
    const overlap = out !== undefined; // (then out.write below)
    if (csv) await write(`${["step", "group", "reward", "direct", "advantage", ...engine.criteria.map((id) => `weight/${id}`)].map(csvCell).join(",")}\n`);
    for await (const step of log.steps) {
      let result: ScoreResult;
      const trainingStep = stepped ? stepNumber(step) : undefined;
      try {
        result = engine.score(step.scores, step.groupSizes, { valid: step.valid, step: trainingStep });
      } catch (e) {
        throw stepError(step, e);
      }
      outside.add(result.metrics);
      const rowsOut = csv ? csvRows(engine, step, result, bytes, overlap) : jsonRows(engine, step, result, bytes, overlap);
      await inflight;
      if (out) {
        inflight = out.write(rowsOut);
        inflight.catch(() => {}); // awaited before the next write, or below
      } else await write(rowsOut);
      if (metrics && !metricsError) {
        // A metrics file that cannot be written loses the metrics, not the scoring or the state.
        await metrics.write(`${JSON.stringify({ step: step.step ?? null, ...result.metrics })}\n`).catch((e: Error) => {
          metricsError = e;
          return metrics.abort();
        });
      }
      rows += step.order.length;
      bar.tick(rows);
    }
    bar.done();
    await inflight;
    await out?.commit();
    warnOutOfScale("score", outside.list(), file !== undefined);
  } catch (err) {
    bar.done();
    // A write that failed before the error came first.
    const e = (await inflight?.then(() => undefined, (w: unknown) => w)) ?? err;
    await Promise.all([out?.abort(), metrics?.abort()]);
    if (e instanceof InputError) {
      process.stderr.write(`focal-reward score: ${e.message}\n`);
      return EXIT.failure;
    }
    throw e;
  }
  if (metrics && !metricsError) await metrics.commit().catch((e: Error) => (metricsError = e));
  if (statePath !== undefined) await writeAtomic(statePath, engine.snapshot());
  if (metricsError) {
    process.stderr.write(`focal-reward score: --metrics ${metricsPath}: ${metricsError.message} (the rewards were written${statePath ? " and the state saved" : ""}; no metrics file)\n`);
    return EXIT.failure;
  }
  return EXIT.ok;
}

/** Weights as JSON once per group (group scope: the criteria judged there) or once per step. */
function weightsJson(engine: Engine, step: Step, r: ScoreResult): string[] {
  const ids = engine.criteria, k = ids.length;
  const perGroup = engine.scope === "group";
  return (perGroup ? step.groups : [undefined]).map((_, g) => {
    const w: Record<string, number> = {};
    for (let c = 0; c < k; c++) {
      const at = perGroup ? g * k + c : c;
      if (!perGroup || !Number.isNaN(r.saturation[at]!)) w[ids[c]!] = r.weights[at]!;
    }
    return JSON.stringify(w);
  });
}

function groupOfRows(step: Step): Int32Array {
  const groupOfRow = new Int32Array(step.order.length);
  for (let g = 0, i = 0; g < step.groupSizes.length; g++) for (let j = 0; j < step.groupSizes[g]!; j++) groupOfRow[i++] = g;
  return groupOfRow;
}

/**
 * The output of a step as bytes: per group, the text before and after the numbers is encoded
 * once; per row only the three numbers are written (no string of the whole step is built).
 */
function jsonRows(engine: Engine, step: Step, r: ScoreResult, out: ByteRows, reuse: boolean): Buffer {
  const weights = weightsJson(engine, step, r);
  const perGroup = engine.scope === "group";
  const stepJson = step.step === undefined ? "" : `"step":${JSON.stringify(step.step)},`;
  const head = step.groups.map((g) => Buffer.from(`{${stepJson}"group":${JSON.stringify(g) ?? "null"},"reward":`));
  const tail = weights.map((w) => Buffer.from(`,"weights":${w}}\n`));
  return rowBytes(step, out, head, (i) => {
    out.number(r.rewards[i]!);
    out.bytes(DIRECT);
    const d = r.direct[i]!;
    if (Number.isNaN(d)) out.bytes(NULL);
    else out.number(d);
    out.bytes(ADVANTAGE);
    out.number(r.advantages[i]!);
  }, (g) => tail[perGroup ? g : 0]!, reuse);
}

const DIRECT = Buffer.from(',"direct":'), ADVANTAGE = Buffer.from(',"advantage":'), NULL = Buffer.from("null"), COMMA = Buffer.from(",");

function csvRows(engine: Engine, step: Step, r: ScoreResult, out: ByteRows, reuse: boolean): Buffer {
  const k = engine.criteria.length;
  const perGroup = engine.scope === "group";
  const stepCell = step.step === undefined ? "" : csvCell(typeof step.step === "string" ? step.step : JSON.stringify(step.step));
  const head = step.groups.map((g) => Buffer.from(`${stepCell},${csvCell(typeof g === "string" ? g : (JSON.stringify(g) ?? ""))},`));
  const tail = (perGroup ? step.groups : [undefined]).map((_, g) => {
    let cells = "";
    for (let c = 0; c < k; c++) {
      const at = perGroup ? g * k + c : c;
      cells += perGroup && Number.isNaN(r.saturation[at]!) ? "," : `,${num(r.weights[at]!)}`;
    }
    return Buffer.from(`${cells}\n`);
  });
  return rowBytes(step, out, head, (i) => {
    out.number(r.rewards[i]!);
    out.bytes(COMMA);
    const d = r.direct[i]!;
    if (!Number.isNaN(d)) out.number(d);
    out.bytes(COMMA);
    out.number(r.advantages[i]!);
  }, (g) => tail[perGroup ? g : 0]!, reuse);
}

/** The step's rows in input order: head of the row's group, its numbers (written by `numbers`), tail. */
function rowBytes(step: Step, out: ByteRows, head: Buffer[], numbers: (i: number) => void, tail: (g: number) => Buffer, reuse: boolean): Buffer {
  const groupOfRow = groupOfRows(step);
  for (let j = 0; j < step.order.length; j++) {
    const i = step.order[j]!;
    const g = groupOfRow[i]!;
    out.bytes(head[g]!);
    numbers(i);
    out.bytes(tail(g));
  }
  return out.take(reuse);
}

/** A float32 output as JSON (NaN and infinities cannot occur in outputs; null guards them). */
function num(x: number): string {
  return Number.isFinite(x) ? String(x) : "null";
}

/** --stepped: the step as an integer >= 0 (a JSON number, or a CSV field of digits). */
function stepNumber(step: Step): number {
  const v = step.step;
  const n = typeof v === "string" && /^\s*\d+\s*$/.test(v) ? Number(v) : v;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) {
    throw new InputError(step.lines[0]!, `--stepped: "step" must be an integer >= 0, got ${JSON.stringify(v) ?? "none"}`);
  }
  return n;
}
