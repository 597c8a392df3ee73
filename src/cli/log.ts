/**
 * Reward logs as the commands open them: a file or stdin, JSONL or CSV, read in batches of lines
 * and split into training steps. The criteria come from the rubric, the CSV header, or a first
 * pass over a JSONL file (stdin is held in memory for that, when the command allows it).
 */
import { createReadStream, statSync } from "node:fs";
import type { Criterion } from "../types.js";
import { csvHeaderCriteria, readCsvSteps } from "./steps-csv.js";
import { InputError, readSteps, scanCriteria, type Step } from "./steps.js";

export interface Log {
  criteria: Criterion[];
  steps: AsyncIterable<Step>;
  /** For progress: bytes read so far, and the file's size (undefined for stdin). */
  bytesRead(): number;
  size: number | undefined;
}

export interface OpenLogOptions {
  /** The rubric's criteria; without them every criterion of the log, weight 1, scale [0, 1]. */
  rubric?: Criterion[];
  /** Default: by the file's extension (.csv), else JSONL. */
  format?: "jsonl" | "csv";
  /** JSONL on stdin without a rubric: hold it in memory to find the criteria (else refuse). */
  holdStdin?: boolean;
  /** CSV columns that are not in the rubric. */
  onIgnored?: (columns: string[]) => void;
}

/** `path` undefined or "-" reads stdin. Nothing is read before the steps are. */
export async function openLog(path: string | undefined, o: OpenLogOptions = {}): Promise<Log> {
  const stdin = path === undefined || path === "-";
  const format = o.format ?? (!stdin && path.toLowerCase().endsWith(".csv") ? "csv" : "jsonl");
  let stream: NodeJS.ReadableStream | undefined;
  const open = () => (stream = stdin ? process.stdin : createReadStream(path, { highWaterMark: 1 << 20 }));
  const size = stdin ? undefined : statSync(path).size;
  const bytesRead = () => (stream as { bytesRead?: number } | undefined)?.bytesRead ?? 0;
  let batches: AsyncIterable<readonly string[]> | Iterable<readonly string[]> = lineBatches(open);

  if (format === "csv") {
    const it = batches[Symbol.asyncIterator]();
    let first = await it.next();
    while (!first.done && first.value.length === 0) first = await it.next();
    if (first.done) throw new InputError(1, "empty input: no CSV header");
    const head = first.value;
    const criteria = o.rubric ?? csvHeaderCriteria(head[0]).map((id) => ({ id }));
    const rest = (async function* () {
      yield head;
      for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
    })();
    const steps = readCsvSteps(rest, { criteria: criteria.map((c) => c.id), onIgnored: o.onIgnored });
    return { criteria, steps, bytesRead, size };
  }

  let criteria = o.rubric;
  if (!criteria) {
    if (stdin) {
      if (!o.holdStdin) throw new Error("a JSONL log on stdin needs --rubric (the criteria must be known before the first step)");
      const held: (readonly string[])[] = [];
      for await (const batch of batches) held.push(batch);
      batches = held;
      criteria = (await scanCriteria(held)).map((id) => ({ id }));
    } else {
      criteria = (await scanCriteria(lineBatches(() => createReadStream(path)))).map((id) => ({ id }));
    }
    if (criteria.length === 0) throw new InputError(1, "empty input: no rollouts");
  }
  return { criteria, steps: readSteps(batches, criteria.map((c) => c.id)), bytesRead, size };
}

/**
 * Lines of a stream in batches (one array per chunk read: one await per chunk, not per line),
 * opened on the first read, so that nothing is consumed before the reader is ready.
 */
async function* lineBatches(open: () => NodeJS.ReadableStream): AsyncGenerator<string[]> {
  const stream = open();
  stream.setEncoding("utf8");
  let rest = "";
  for await (const chunk of stream as AsyncIterable<string>) {
    const parts = (rest + chunk).split("\n");
    rest = parts.pop()!;
    if (parts.length > 0) yield parts;
  }
  if (rest !== "") yield [rest];
}
