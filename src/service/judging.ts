/** The judging of `/get_reward`'s rollouts: a pool of judge calls, each failure marking its row invalid, logged rate-limited. */
import { type Judge, JudgeTimeout, runJudge } from "./judges.js";
import type { RewardRequest } from "./parse.js";

export interface Judged {
  /** n x K scores, rubric order (NaN = not judged). */
  scores: Float32Array;
  /** 0 where the judge failed. */
  valid: Uint8Array;
  failures: number;
  /** Failures by the judge's status (`429`, `timeout`, ...), else by reason. */
  failuresByStatus: Record<string, number>;
  firstError: string | undefined;
}

export interface RowJudgeOptions {
  judge: Judge;
  criteria: readonly string[];
  index: ReadonlyMap<string, number>;
  timeoutMs: number;
  concurrency: number;
  /** Counts a failure (metrics). */
  onFailure(reason: "error" | "timeout" | "invalid"): void;
  log: (line: string) => void;
}

/** A judge of requests' rows; judge failures go to `log`, at most one line per run and criterion every 10 s (with how many were not shown). */
export function rowJudge(o: RowJudgeOptions): (req: RewardRequest) => Promise<Judged> {
  const logged = new Map<string, { at: number; hidden: number }>();
  const logFailure = (run: string, criterion: string, reason: string) => {
    const key = `${run}\u0000${criterion}`;
    const now = Date.now();
    const last = logged.get(key);
    if (last && now - last.at < 10_000) {
      last.hidden++;
      return;
    }
    const more = last?.hidden ? ` (${last.hidden} more since the last line)` : "";
    logged.set(key, { at: now, hidden: 0 });
    if (logged.size > 4096) logged.delete(logged.keys().next().value!);
    o.log(`focal-reward: judge failure: run=${run} criterion=${criterion} reason=${reason}${more}`);
  };

  return async (req) => {
    const n = req.query.length;
    const K = o.criteria.length;
    const scores = new Float32Array(n * K).fill(NaN);
    const valid = new Uint8Array(n).fill(1);
    const out: Judged = { scores, valid, failures: 0, failuresByStatus: {}, firstError: undefined };
    let next = 0;
    // Every 1024 rollouts all judge loops wait for one macrotask: a large request (or a synchronous
    // judge) does not keep /healthz and the other requests waiting.
    let pause: Promise<void> | undefined;
    const worker = async () => {
      for (let i = next++; i < n; i = next++) {
        if (i % 1024 === 1023) pause ??= new Promise<void>((r) => setTimeout(() => { pause = undefined; r(); }, 0));
        if (pause) await pause;
        try {
          const answer = await runJudge(o.judge, [req.query[i]!, req.prompts[i]!, req.labels?.[i]], i, o.criteria, o.timeoutMs);
          if (answer === null || typeof answer !== "object") throw new TypeError("judge answered no object");
          const row = new Float32Array(K).fill(NaN);
          for (const c in answer) {
            const k = o.index.get(c);
            const v = answer[c];
            if (k === undefined) throw new TypeError(`judge scored unknown criterion '${c}'`);
            if (v === null || v === undefined) continue;
            // Finite as a double but not as float32 (1e39) is no score either: this rollout is invalid, not the batch.
            if (typeof v !== "number" || !Number.isFinite(Math.fround(v))) throw new TypeError(`judge gave '${c}' a non-finite score${typeof v === "number" && Number.isFinite(v) ? ` (${v} is outside the float32 range)` : ""}`);
            row[k] = v;
          }
          scores.set(row, i * K);
        } catch (e) {
          const own = (e as { reason?: unknown; status?: unknown } | null) ?? {};
          const reason = e instanceof JudgeTimeout ? "timeout" : own.reason === "timeout" || own.reason === "invalid" || own.reason === "error" ? own.reason : e instanceof TypeError ? "invalid" : "error";
          o.onFailure(reason);
          const status = typeof own.status === "string" ? own.status : reason;
          out.failuresByStatus[status] = (out.failuresByStatus[status] ?? 0) + 1;
          const message = e instanceof Error ? e.message : String(e);
          out.firstError ??= message;
          const criterion = /criterion '([^']*)'|gave '([^']*)'/.exec(message);
          logFailure(req.run, criterion?.[1] ?? criterion?.[2] ?? "*", `${reason}: ${message}`);
          valid[i] = 0;
          out.failures++;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(o.concurrency, n) }, worker));
    return out;
  };
}
