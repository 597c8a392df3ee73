/**
 * `focal-reward judge`: an LLM grades every rollout of a JSONL or CSV file against the rubric and
 * writes the score log that `score`, `compare` and `replay` read, one line per input row, in
 * input order. Rows are judged concurrently (under the judge's limits) but written in order;
 * `--resume` continues an output file after the rows it already has.
 */
import { createReadStream, existsSync } from "node:fs";
import { open, readFile, truncate } from "node:fs/promises";
import { createInterface } from "node:readline";
import { type Judgement, type LlmJudge, LlmJudgeError, instanceCriteria, llmJudge } from "../judge/llm/index.js";
import { unknownName } from "../validate.js";
import { INPUT_FLAGS, readRubricFile } from "./common.js";
import { EXIT, UsageError, type CommandSpec, type Values } from "./flags.js";
import { checkWritable } from "./io.js";
import { JUDGE_GROUP, llmOptionsFromFlags } from "./judge-flags.js";
import { parseCsvRecord } from "../log/csv.js";
import { InputError } from "../log/step.js";

export const command: CommandSpec = {
  name: "judge",
  summary: "grade prompt/response rows with an LLM judge into a score log (for score, compare, replay)",
  usage: ["--judge-url URL --judge-model NAME [--rubric FILE] [options] < rows.jsonl > scores.jsonl"],
  about: `input row (JSONL): {"group"?, "step"?, "prompt": "...", "response": "...", "criteria"?: [{"id", "text", "choices"?}]}
CSV: a header with prompt, response and optionally group, step, criteria (a JSON cell).
output line: {"group", "step"?, "scores": {"<criterion>": number | null}, "reasons"?: {...}}, in input order.
A row whose judgement fails after its retries gets null scores, "valid": false and the error, never
a 0. A row without "group" is grouped by its prompt (the first 16 hex of its SHA-256). The rubric's
criteria need "text" (the statement checked) unless every row brings its own criteria.`,
  groups: [
    {
      title: "input and output",
      flags: [
        { name: "rubric", arg: "FILE", help: 'criteria with "text" (optional "choices", lowest first, and "scale")' },
        { name: "input", arg: "FILE", help: "the rows to judge: a file, or - for stdin (the default)" },
        INPUT_FLAGS.find((f) => f.name === "input-format")!,
        { name: "output", arg: "FILE", help: "append the score log there instead of stdout (needed by --resume)" },
        { name: "resume", help: "keep the rows already in --output, judge only the rest" },
        { name: "reasons", help: "add each criterion's reason to the output line" },
        { name: "progress", help: "draw the progress bar even when stderr is not a terminal" },
        { name: "no-progress", help: "never draw it" },
      ],
    },
    JUDGE_GROUP,
  ],
};

interface Row {
  line: number;
  group: unknown;
  step: unknown;
  prompt: string;
  response: string;
  criteria: unknown;
}

const ROW_KEYS = ["group", "step", "prompt", "response", "criteria"];

async function groupOf(prompt: string): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(prompt)));
  return Array.from(d.subarray(0, 8), (b) => b.toString(16).padStart(2, "0")).join("");
}

function rowOf(o: Record<string, unknown>, line: number): Omit<Row, "group"> & { group?: unknown } {
  for (const k of Object.keys(o)) if (!ROW_KEYS.includes(k)) throw new InputError(line, unknownName("key", k, ROW_KEYS));
  if (typeof o.prompt !== "string") throw new InputError(line, '"prompt" must be a string');
  if (typeof o.response !== "string") throw new InputError(line, '"response" must be a string');
  return { line, group: o.group, step: o.step, prompt: o.prompt, response: o.response, criteria: o.criteria };
}

/** Input rows, JSONL or CSV (quoted CSV fields may span lines). */
async function* readRows(path: string | undefined, format: "jsonl" | "csv"): AsyncGenerator<Omit<Row, "group"> & { group?: unknown }> {
  const input = path === undefined || path === "-" ? process.stdin : createReadStream(path);
  const lines = createInterface({ input, crlfDelay: Infinity });
  let n = 0;
  let header: string[] | undefined;
  let pending = "";
  let start = 0;
  for await (const text of lines) {
    n++;
    if (format === "jsonl") {
      if (text.trim() === "") continue;
      let v: unknown;
      try {
        v = JSON.parse(text);
      } catch (e) {
        throw new InputError(n, `malformed JSON (${(e as Error).message})`);
      }
      if (v === null || typeof v !== "object" || Array.isArray(v)) throw new InputError(n, "expected a JSON object");
      yield rowOf(v as Record<string, unknown>, n);
      continue;
    }
    if (pending === "") start = n;
    pending = pending === "" ? text : `${pending}\n${text}`;
    let cells: string[] | null;
    try {
      cells = parseCsvRecord(pending);
    } catch (e) {
      throw new InputError(start, (e as Error).message);
    }
    if (cells === null) continue; // a quoted field goes on
    pending = "";
    if (!header) {
      header = cells.map((c) => c.trim());
      for (const h of header) if (!ROW_KEYS.includes(h)) throw new InputError(start, unknownName("column", h, ROW_KEYS));
      for (const need of ["prompt", "response"]) if (!header.includes(need)) throw new InputError(start, `the CSV header needs a "${need}" column`);
      continue;
    }
    if (cells.length === 1 && cells[0] === "") continue;
    if (cells.length !== header.length) throw new InputError(start, `${cells.length} fields, the header has ${header.length}`);
    const o: Record<string, unknown> = {};
    header.forEach((h, i) => {
      const cell = cells![i]!;
      if (h === "criteria") {
        if (cell.trim() === "") return;
        try {
          o.criteria = JSON.parse(cell);
        } catch {
          throw new InputError(start, 'the "criteria" cell must be a JSON list of {"id", "text", "choices"?}');
        }
      } else if (h === "step") {
        if (cell !== "") o.step = /^-?\d+(\.\d+)?$/.test(cell.trim()) ? Number(cell) : cell;
      } else if (h === "group") {
        if (cell !== "") o.group = cell;
      } else o[h] = cell;
    });
    yield rowOf(o, start);
  }
  if (pending !== "") throw new InputError(start, "a quoted CSV field is never closed");
}

async function countRows(path: string, format: "jsonl" | "csv"): Promise<number> {
  let n = 0;
  for await (const _ of readRows(path, format)) n++;
  return n;
}

/** The output lines already written, each parsed; a torn last line (no newline) is cut off. */
async function readDone(path: string): Promise<{ group: unknown; step: unknown }[]> {
  const text = await readFile(path, "utf8");
  const end = text.lastIndexOf("\n") + 1;
  if (end < text.length) await truncate(path, Buffer.byteLength(text.slice(0, end)));
  const done: { group: unknown; step: unknown }[] = [];
  for (const [i, l] of text.slice(0, end).split("\n").entries()) {
    if (l.trim() === "") continue;
    try {
      const o = JSON.parse(l) as { group: unknown; step: unknown };
      done.push({ group: o.group, step: o.step });
    } catch {
      throw new Error(`--resume: ${path} line ${i + 1} is not JSON: not an output of this command?`);
    }
  }
  return done;
}

function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

class Progress {
  readonly #t0 = Date.now();
  #last = 0;
  done = 0;
  failures = 0;

  constructor(
    readonly total: number | undefined,
    readonly skipped: number,
    readonly judge: LlmJudge,
    readonly draw: boolean,
  ) {}

  tick(final = false): void {
    if (!this.draw) return;
    const now = Date.now();
    if (!final && now - this.#last < 200) return;
    this.#last = now;
    const secs = Math.max((now - this.#t0) / 1000, 1e-3);
    const rate = this.done / secs;
    const at = this.skipped + this.done;
    const hits = this.judge.stats().cacheHits;
    let bar = "";
    let eta = "";
    if (this.total !== undefined && this.total > 0) {
      const frac = Math.min(at / this.total, 1);
      const w = 24;
      bar = `[${"#".repeat(Math.round(frac * w)).padEnd(w, "-")}] ${at}/${this.total} `;
      const left = this.total - at;
      eta = rate > 0 ? ` ETA ${formatSecs(left / rate)}` : " ETA ?";
    } else bar = `${at} rows `;
    process.stderr.write(`\r\x1b[2Kjudge ${bar}${rate.toFixed(1)} rows/s${eta}  failures ${this.failures}  cache hits ${hits}${final ? "\n" : ""}`);
  }
}

function formatSecs(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const t = Math.round(s);
  const h = Math.floor(t / 3600), m = Math.floor((t % 3600) / 60), sec = t % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : m > 0 ? `${m}m${String(sec).padStart(2, "0")}s` : `${sec}s`;
}

export async function run(values: Values): Promise<number> {
  try {
    return await judgeCommand(values);
  } catch (e) {
    if (e instanceof InputError) {
      process.stderr.write(`focal-reward judge: ${e.message}\n`);
      return EXIT.failure;
    }
    throw e;
  }
}

async function judgeCommand(values: Values): Promise<number> {
  const input = values.input as string | undefined;
  const output = values.output as string | undefined;
  const format = (values["input-format"] as "jsonl" | "csv" | undefined) ?? (input?.toLowerCase().endsWith(".csv") ? "csv" : "jsonl");
  if (values.resume && output === undefined) throw new UsageError("--resume needs --output FILE (the file to continue)");
  if (values.progress && values["no-progress"]) throw new UsageError("--progress and --no-progress: give one");
  if (output !== undefined) await checkWritable("--output", output);
  if (output !== undefined && !values.resume && existsSync(output) && (await readFile(output)).length > 0) {
    throw new Error(`--output ${output} exists: add --resume to continue it, or remove it`);
  }
  const log = (l: string) => process.stderr.write(`\r\x1b[2K${l}\n`);
  const rubric = values.rubric !== undefined ? (await readRubricFile(values.rubric as string, "judge")).criteria : [];
  const settings = await llmOptionsFromFlags(values, log);
  const judge = llmJudge({ ...settings, criteria: rubric, requireText: false });
  const rubricById = new Map(judge.criteria.map((c) => [c.id, c] as const));

  const done = output !== undefined && values.resume && existsSync(output) ? await readDone(output) : [];
  const total = input !== undefined && input !== "-" ? await countRows(input, format) : undefined;
  const draw = values["no-progress"] ? false : values.progress === true || process.stderr.isTTY === true;
  const progress = new Progress(total, done.length, judge, draw);
  const sink = output !== undefined ? await open(output, "a") : undefined;
  const write = async (text: string) => {
    if (sink) await sink.write(text);
    else if (!process.stdout.write(text)) await new Promise<void>((r) => process.stdout.once("drain", () => r()));
  };

  // Rows in flight at most: enough to keep the judge's calls busy, bounded in memory.
  const window = Math.max(16, 4 * (settings.concurrency ?? 8));
  const inflight: { row: Row; result: Promise<Judgement | LlmJudgeError> }[] = [];
  let index = 0;
  let failed = 0;
  let judged = 0;

  const flush = async (all: boolean) => {
    while (inflight.length > 0 && (all || inflight.length >= window)) {
      const { row, result } = inflight.shift()!;
      const r = await result;
      const line: Record<string, unknown> = { group: row.group };
      if (row.step !== undefined) line.step = row.step;
      if (r instanceof LlmJudgeError) {
        const ids = criteriaIds(row);
        line.scores = Object.fromEntries(ids.map((id) => [id, null]));
        line.valid = false;
        line.error = `${r.status}: ${r.message}`;
        failed++;
        progress.failures++;
      } else {
        line.scores = r.scores;
        if (values.reasons) line.reasons = r.reasons;
      }
      judged++;
      await write(`${JSON.stringify(line)}\n`);
      progress.done++;
      progress.tick();
    }
  };
  const criteriaIds = (row: Row) => (row.criteria === undefined ? judge.criteria.map((c) => c.id) : (row.criteria as { id: string }[]).map((c) => c.id));

  try {
    for await (const raw of readRows(input, format)) {
      const row: Row = { ...raw, group: raw.group !== undefined ? raw.group : await groupOf(raw.prompt) };
      const i = index++;
      if (i < done.length) {
        if (!same(done[i]!.group, row.group) || !same(done[i]!.step, row.step)) {
          throw new InputError(row.line, `--resume: output line ${i + 1} has group ${JSON.stringify(done[i]!.group)}, this row ${JSON.stringify(row.group)}: the output belongs to another input`);
        }
        continue;
      }
      // Check the row's criteria now: a bad row is the user's to fix, not a judge failure.
      if (row.criteria !== undefined) {
        try {
          instanceCriteria(row.criteria, rubricById, "criteria");
        } catch (e) {
          throw new InputError(row.line, (e as Error).message);
        }
      } else {
        if (judge.criteria.length === 0) throw new InputError(row.line, 'no criteria: give --rubric FILE or the row\'s "criteria"');
        const blank = judge.criteria.find((c) => c.text === "");
        if (blank) throw new InputError(row.line, `rubric criterion '${blank.id}' has no "text" and the row brings no criteria`);
      }
      const result = judge.judge(row.prompt, row.response, row.criteria).catch((e: unknown) => {
        if (e instanceof LlmJudgeError) return e;
        throw e;
      });
      inflight.push({ row, result });
      await flush(false);
    }
    if (done.length > index) throw new Error(`--resume: ${output} has ${done.length} lines, more than the input's ${index} rows`);
    await flush(true);
  } catch (e) {
    // Bad input stops the run, but the rows judged before it are written (and kept by --resume).
    if (e instanceof InputError) await flush(true);
    throw e;
  } finally {
    progress.tick(true);
    await sink?.close();
  }
  const s = judge.stats();
  process.stderr.write(
    `focal-reward judge: ${judged} rows judged${done.length ? ` (${done.length} kept from before)` : ""}, ${failed} failed, ` +
      `${s.cacheMisses} calls needed, ${s.cacheHits} from the cache, ${s.retries} retries\n`,
  );
  return judged > 0 && failed === judged ? EXIT.failure : EXIT.ok;
}
