/**
 * Node: the `rules` judge in a worker thread, so that a judge timeout can stop it. A rule runs
 * synchronously (a regex that backtracks holds whatever thread runs it); here it holds the
 * worker, the event loop keeps serving, and when a rollout's time is up the worker is terminated
 * and a fresh one takes the rollouts that were waiting. Serve uses it for `--judge rules`; edge
 * runtimes run the rules in line (no worker), protected only by the regex check at load.
 */
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { type Judge, type JudgeScores, type RuleSet, type RulesJudgeOptions, rulesJudge } from "./judges.js";

interface Job {
  id: number;
  query: string;
  prompt: string;
  resolve(scores: JudgeScores): void;
  reject(err: unknown): void;
}

type Answer = { id: number; scores?: JudgeScores; error?: string };

/** The rules judge, run off the event loop. The rules are compiled (and refused) here first. */
export function workerRulesJudge(rules: RuleSet, options: RulesJudgeOptions = {}): Judge {
  rulesJudge(rules, options); // refuse bad rules now, in this thread (the worker compiles them again)
  let worker: Worker | undefined;
  let next = 0;
  const queued: Job[] = [];
  const sent = new Map<number, Job>();

  const spawn = (): Worker => {
    const w = new Worker(new URL(import.meta.url), { workerData: rules });
    w.unref(); // an idle judge does not keep the process alive
    w.on("message", (a: Answer) => {
      const job = sent.get(a.id);
      if (!job) return;
      sent.delete(a.id);
      if (a.error !== undefined) job.reject(new Error(a.error));
      else job.resolve(a.scores!);
    });
    const fail = (err: unknown) => {
      if (worker !== w) return;
      worker = undefined;
      for (const job of sent.values()) job.reject(err);
      sent.clear();
      pump();
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`rules judge worker exited (${code})`)));
    return w;
  };

  const pump = () => {
    if (queued.length === 0) return;
    worker ??= spawn();
    const batch = queued.splice(0);
    for (const job of batch) sent.set(job.id, job);
    worker.postMessage(batch.map(({ id, query, prompt }) => ({ id, query, prompt })));
  };

  const abort = (job: Job, reason: unknown) => {
    const q = queued.indexOf(job);
    if (q >= 0) queued.splice(q, 1);
    else if (sent.has(job.id)) {
      // The worker may be stuck on this rollout: stop it; the others it held go to a fresh one.
      const w = worker;
      worker = undefined;
      sent.delete(job.id);
      queued.unshift(...sent.values());
      sent.clear();
      void w?.terminate();
      pump();
    } else return;
    job.reject(reason);
  };

  return (query, prompt, _label, { signal }) =>
    new Promise<JudgeScores>((resolve, reject) => {
      if (signal.aborted) return reject(signal.reason);
      const job: Job = { id: next++, query, prompt, resolve, reject };
      signal.addEventListener("abort", () => abort(job, signal.reason), { once: true });
      queued.push(job);
      if (queued.length === 1) queueMicrotask(pump); // the rollouts of one tick travel together
    });
}

if (!isMainThread && parentPort && workerData) {
  const judge = rulesJudge(workerData as RuleSet);
  const context = { signal: new AbortController().signal, index: 0, criteria: [] };
  const port = parentPort;
  port.on("message", (jobs: { id: number; query: string; prompt: string }[]) => {
    for (const j of jobs) {
      try {
        port.postMessage({ id: j.id, scores: judge(j.query, j.prompt, undefined, context) as JudgeScores });
      } catch (e) {
        port.postMessage({ id: j.id, error: e instanceof Error ? e.message : String(e) });
      }
    }
  });
}
