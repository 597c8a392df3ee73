/**
 * Reward logs as the commands open them: a file or stdin, JSONL, CSV, Parquet or Arrow IPC (the
 * last two through optional dependencies, loaded only for such a file), read in batches
 * and split into training steps. The criteria come from the rubric, the CSV header or the
 * columnar file's schema, or (JSONL without a rubric) a first pass over the file that only
 * collects the criterion ids (stdin is held in memory for that, when the command allows it).
 */
import { statSync } from "node:fs";
import { availableParallelism } from "node:os";
import type { Criterion } from "../types.js";
import { openCsv } from "./csv.js";
import { readSteps, scanCriteria } from "./jsonl.js";
import { fileChunks, lineBatches, lineBytes } from "./lines.js";
import { InputError, type Step } from "./step.js";

export const LOG_FORMATS = ["jsonl", "csv", "parquet", "arrow"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

export interface Log {
  criteria: Criterion[];
  /** The steps; a step's arrays may be reused once the next step is read. */
  steps: AsyncIterable<Step>;
  /** For progress: bytes read so far, and the file's size (undefined for stdin). */
  bytesRead(): number;
  size: number | undefined;
}

export interface OpenLogOptions {
  /** The rubric's criteria; without them every criterion of the log, weight 1, scale [0, 1]. */
  rubric?: Criterion[];
  /** Default: by the file's extension, else JSONL. */
  format?: LogFormat;
  /** JSONL on stdin without a rubric: hold it in memory to find the criteria (else refuse). */
  holdStdin?: boolean;
  /** CSV columns that are not in the rubric. */
  onIgnored?: (columns: string[]) => void;
  /**
   * Read a JSONL file in a worker thread (thread.ts) while the caller scores. Default: for files
   * of THREAD_BYTES or more (the worker costs ~30 ms to start) when the process may use more than
   * one core (with one, the thread only adds its CPU and memory).
   */
  thread?: boolean;
}

/** The size from which a JSONL file is read in a worker thread by default. */
export const THREAD_BYTES = 8 << 20;

/** The format a file's name implies (undefined: none, read as JSONL). */
export function formatOf(path: string): LogFormat | undefined {
  const p = path.toLowerCase();
  if (p.endsWith(".csv")) return "csv";
  if (p.endsWith(".jsonl") || p.endsWith(".ndjson") || p.endsWith(".json")) return "jsonl";
  if (p.endsWith(".parquet") || p.endsWith(".pq")) return "parquet";
  if (p.endsWith(".arrow") || p.endsWith(".arrows") || p.endsWith(".feather") || p.endsWith(".ipc")) return "arrow";
  return undefined;
}

/** `path` undefined or "-" reads stdin. Nothing but a CSV header is read before the steps are. */
export async function openLog(path: string | undefined, o: OpenLogOptions = {}): Promise<Log> {
  const stdin = path === undefined || path === "-";
  const format = o.format ?? (stdin ? undefined : formatOf(path)) ?? "jsonl";
  let stream: (NodeJS.ReadableStream & { bytesRead?: number }) | undefined;
  const counter = { bytes: 0 };
  let size: number | undefined;
  if (!stdin) {
    try {
      const st = statSync(path);
      if (st.isDirectory()) throw new Error(`--input ${path}: is a folder`);
      size = st.size;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`--input ${path}: no such file`);
      throw e;
    }
  }
  const open = () => (stdin ? (stream = process.stdin) : fileChunks(path, counter));
  const bytesRead = () => stream?.bytesRead ?? counter.bytes;

  if (format === "parquet" || format === "arrow") {
    if (stdin && format === "parquet") throw new Error("a Parquet log must be a file (its index is at the end): give --input FILE");
    const { arrowSource, columnCriteria, columnSteps, parquetSource } = await import("./columnar.js");
    const where = stdin ? "stdin" : path;
    const source = format === "parquet" ? await parquetSource(path!) : await arrowSource(stdin ? undefined : path);
    const criteria = o.rubric ?? columnCriteria(source, where).map((id) => ({ id }));
    if (o.rubric) {
      if (!source.columns.includes("group")) throw new Error(`${where}: no 'group' column (columns: ${source.columns.join(", ")})`);
      const used = new Set(o.rubric.map((c) => c.id));
      const ignored = source.columns.filter((c) => c !== "step" && c !== "group" && c !== "valid" && !used.has(c));
      if (ignored.length > 0) o.onIgnored?.(ignored);
    }
    return { criteria, steps: columnSteps(source, criteria.map((c) => c.id), true), bytesRead: () => 0, size: undefined };
  }

  if (format === "csv") {
    const csv = await openCsv(lineBatches(open()), { criteria: o.rubric?.map((c) => c.id), onIgnored: o.onIgnored });
    return { criteria: o.rubric ?? csv.criteria.map((id) => ({ id })), steps: csv.steps, bytesRead, size };
  }

  let criteria = o.rubric;
  let held: Buffer[] | undefined;
  if (!criteria) {
    if (stdin) {
      if (!o.holdStdin) throw new Error("a JSONL log on stdin needs --rubric (the criteria must be known before the first step)");
      held = [];
      for await (const b of open() as AsyncIterable<Buffer | string>) held.push(typeof b === "string" ? Buffer.from(b) : b);
      criteria = (await scanCriteria(lineBatches(held))).map((id) => ({ id }));
    } else {
      criteria = (await scanCriteria(lineBatches(fileChunks(path, { bytes: 0 })))).map((id) => ({ id }));
    }
    if (criteria.length === 0) throw new InputError(1, "empty input: no rollouts");
  }
  const ids = criteria.map((c) => c.id);
  if (!stdin && (o.thread ?? (size! >= THREAD_BYTES && availableParallelism() > 1))) {
    const { threadSteps } = await import("./thread.js");
    return { criteria, steps: threadSteps(path, ids, counter), bytesRead, size };
  }
  const steps = (async function* () {
    yield* readSteps(lineBytes(held ?? open()), ids, true);
  })();
  return { criteria, steps, bytesRead, size };
}
