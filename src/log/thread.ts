/**
 * A JSONL log file read in a worker thread while the caller scores (the machine's second core
 * parses): the same readSteps as in one thread, so the same steps in the same order and the same
 * errors, after the steps before them. Memory stays bounded: at most AHEAD + 1 steps are posted and
 * not yet taken by the caller. Each step's arrays are its own, handed over without a copy.
 */
import { Worker } from "node:worker_threads";
import { InputError, type Step } from "./step.js";

/** Steps the worker may read ahead of the caller (besides the one in flight). */
const AHEAD = 2;

/** What the worker posts: a step, the end, or the error that ended the read (`line`: an InputError's). */
export type ThreadMessage =
  | { kind: "step"; step: Omit<Step, "criteria">; bytes: number }
  | { kind: "end"; bytes: number }
  | { kind: "error"; message: string; line?: number };

export interface ThreadJob {
  path: string;
  criteria: readonly string[];
  ahead: number;
}

/** The steps of the JSONL file `path`, read in a worker; `counter.bytes` follows the bytes read. */
export async function* threadSteps(path: string, criteria: readonly string[], counter: { bytes: number }): AsyncGenerator<Step> {
  const job: ThreadJob = { path, criteria, ahead: AHEAD };
  // execArgv: [] — the caller's node flags (--input-type, --eval) may not apply to a worker.
  const worker = new Worker(new URL("./thread-worker.js", import.meta.url), { workerData: job, execArgv: [] });
  const queue: ThreadMessage[] = [];
  let wake: (() => void) | undefined;
  const push = (m: ThreadMessage) => {
    queue.push(m);
    wake?.();
  };
  worker.on("message", push);
  worker.on("error", (e) => push({ kind: "error", message: e.message }));
  worker.on("exit", (code) => push({ kind: "error", message: `the log reader thread stopped (exit code ${code})` }));
  try {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((r) => (wake = r));
      const m = queue.shift()!;
      if (m.kind === "error") {
        if (m.line === undefined) throw new Error(m.message);
        throw new InputError(m.line, m.message.slice(`line ${m.line}: `.length));
      }
      counter.bytes = m.bytes;
      if (m.kind === "end") return;
      worker.postMessage(1); // the worker may read one more step ahead
      yield { ...m.step, criteria };
    }
  } finally {
    worker.removeAllListeners();
    await worker.terminate();
  }
}
