/**
 * One chat-completions call over plain fetch (no SDK, so it runs on edge runtimes too), with the
 * judge's limits: a global cap on calls in flight, an optional requests-per-minute pace, a
 * per-call timeout, and retries only where a retry can help (408, 409, 429, 5xx, connection
 * errors and timeouts) with exponential backoff, jitter and the server's Retry-After.
 */

/** Why a call failed. `status` is the HTTP status ("429") or timeout | connection | invalid. */
export class CallError extends Error {
  constructor(
    readonly status: string,
    message: string,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

const RETRY_STATUS = new Set([408, 409, 429]);
/** Longest Retry-After obeyed; a longer one is cut to this (the rollout's deadline still applies). */
export const MAX_RETRY_AFTER_MS = 300_000;

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new Error("aborted");
}

/** Resolves after `ms`, rejects at once when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    const onAbort = () => {
      clearTimeout(timer);
      reject(abortError(signal!));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Calls in flight at most `concurrency`, starts at most `rpm` a minute (evenly paced, so a burst
 * cannot exceed it in any window). Waiters are served first come, first served.
 */
export class Limiter {
  #active = 0;
  #waiting: (() => void)[] = [];
  #nextStart = 0;
  peak = 0;

  constructor(
    readonly concurrency: number,
    readonly rpm: number | undefined,
  ) {}

  get active(): number {
    return this.#active;
  }

  async acquire(signal?: AbortSignal): Promise<() => void> {
    if (this.rpm !== undefined) {
      const now = Date.now();
      const at = Math.max(now, this.#nextStart);
      this.#nextStart = at + 60_000 / this.rpm;
      if (at > now) await sleep(at - now, signal);
    }
    if (this.#active >= this.concurrency) {
      await new Promise<void>((resolve, reject) => {
        const go = () => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        };
        const onAbort = () => {
          const i = this.#waiting.indexOf(go);
          if (i >= 0) this.#waiting.splice(i, 1);
          reject(abortError(signal!));
        };
        this.#waiting.push(go);
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    } else this.#active++;
    this.peak = Math.max(this.peak, this.#active);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next(); // the slot passes straight to the next waiter
      else this.#active--;
    };
  }
}

/** Retry-After as milliseconds (delta-seconds or an HTTP date), or undefined. */
export function retryAfterMs(header: string | null, now = Date.now()): number | undefined {
  if (header === null) return undefined;
  const t = header.trim();
  if (/^\d+(\.\d+)?$/.test(t)) return Math.min(Number(t) * 1000, MAX_RETRY_AFTER_MS);
  const at = Date.parse(t);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(at - now, 0), MAX_RETRY_AFTER_MS);
}

export interface CallSettings {
  /** Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1. */
  url: string;
  apiKey: string | undefined;
  timeoutMs: number;
  retries: number;
  /** First backoff; doubles per retry up to maxDelayMs, with +-50% jitter. */
  baseDelayMs: number;
  maxDelayMs: number;
  limiter: Limiter;
  fetch: typeof fetch;
  /** Called before each retry with the wait chosen and why. */
  onRetry?: (error: CallError, waitMs: number, attempt: number) => void;
  /** Called once per HTTP attempt with its outcome ("200", "429", "timeout", ...). */
  onAttempt?: (status: string) => void;
}

export interface Completion {
  content: string;
  finishReason: string | undefined;
}

/** One attempt: POST {url}/chat/completions under the per-call timeout. */
async function attempt(s: CallSettings, body: string, signal: AbortSignal | undefined): Promise<Completion> {
  const ctl = new AbortController();
  const onAbort = () => ctl.abort(abortError(signal!));
  signal?.addEventListener("abort", onAbort, { once: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ctl.abort(new Error("timeout"));
  }, s.timeoutMs);
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (s.apiKey) headers.authorization = `Bearer ${s.apiKey}`;
  try {
    let res: Response;
    let text: string;
    try {
      res = await s.fetch(`${s.url.replace(/\/+$/, "")}/chat/completions`, { method: "POST", headers, body, signal: ctl.signal });
      text = await res.text();
    } catch (e) {
      if (signal?.aborted) throw abortError(signal);
      if (timedOut) throw new CallError("timeout", `no answer within ${s.timeoutMs} ms`, true);
      throw new CallError("connection", `connection failed: ${e instanceof Error ? (e.cause instanceof Error ? e.cause.message : e.message) : String(e)}`, true);
    }
    if (!res.ok) {
      let detail = text.slice(0, 300);
      try {
        const m = (JSON.parse(text) as { error?: { message?: unknown } | string })?.error;
        if (typeof m === "string") detail = m;
        else if (typeof m?.message === "string") detail = m.message;
      } catch {
        // not JSON: keep the text
      }
      const retryable = RETRY_STATUS.has(res.status) || res.status >= 500;
      throw new CallError(String(res.status), `HTTP ${res.status}: ${detail}`, retryable, retryAfterMs(res.headers.get("retry-after")));
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new CallError("invalid", `the server answered 200 with a body that is not JSON: ${JSON.stringify(text.slice(0, 120))}`, false);
    }
    const choice = (json as { choices?: { message?: { content?: unknown; refusal?: unknown }; finish_reason?: unknown }[] })?.choices?.[0];
    const content = choice?.message?.content;
    if (typeof content !== "string") {
      const refusal = choice?.message?.refusal;
      throw new CallError("invalid", typeof refusal === "string" ? `the model refused: ${refusal}` : "the answer has no choices[0].message.content", false);
    }
    return { content, finishReason: typeof choice?.finish_reason === "string" ? choice.finish_reason : undefined };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", onAbort);
  }
}

/** The call with its retries; rejects with the last CallError, or the signal's reason. */
export async function complete(s: CallSettings, request: Record<string, unknown>, signal?: AbortSignal): Promise<Completion> {
  const body = JSON.stringify(request);
  for (let n = 0; ; n++) {
    const release = await s.limiter.acquire(signal);
    let error: CallError;
    try {
      const out = await attempt(s, body, signal);
      s.onAttempt?.("200");
      return out;
    } catch (e) {
      if (!(e instanceof CallError)) throw e;
      s.onAttempt?.(e.status);
      error = e;
    } finally {
      release();
    }
    if (!error.retryable || n >= s.retries) throw error;
    const backoff = Math.min(s.baseDelayMs * 2 ** n, s.maxDelayMs) * (0.5 + Math.random());
    // The server's Retry-After is a floor: wait at least that long, spread by up to 10%.
    const wait = error.retryAfterMs !== undefined ? error.retryAfterMs * (1 + 0.1 * Math.random()) : backoff;
    s.onRetry?.(error, Math.round(wait), n + 1);
    await sleep(wait, signal);
  }
}
