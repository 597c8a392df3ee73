/** The worker of thread.ts: reads the log's steps and posts them in order, at most `ahead` ahead of the caller. */
import { parentPort, workerData } from "node:worker_threads";
import { readSteps } from "./jsonl.js";
import { fileChunks, lineBytes } from "./lines.js";
import { InputError } from "./step.js";
import type { ThreadJob, ThreadMessage } from "./thread.js";

const { path, criteria, ahead } = workerData as ThreadJob;
const port = parentPort!;
const post = (m: ThreadMessage) => port.postMessage(m);
let credit = ahead + 1;
let wake: (() => void) | undefined;
port.on("message", () => {
  credit++;
  wake?.();
});
const counter = { bytes: 0 };
try {
  // Each step on buffers of its own (no reuse), handed over to the caller without a copy.
  for await (const { criteria: _, ...step } of readSteps(lineBytes(fileChunks(path, counter)), criteria)) {
    while (credit === 0) await new Promise<void>((r) => (wake = r));
    credit--;
    port.postMessage({ kind: "step", step, bytes: counter.bytes } satisfies ThreadMessage, [step.scores.buffer, step.valid.buffer, step.order.buffer] as ArrayBuffer[]);
  }
  post({ kind: "end", bytes: counter.bytes });
} catch (e) {
  post(e instanceof InputError ? { kind: "error", message: e.message, line: e.line } : { kind: "error", message: (e as Error).message ?? String(e) });
}
