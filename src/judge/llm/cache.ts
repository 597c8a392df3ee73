/**
 * Content-addressed verdict cache: the key is a SHA-256 of everything that decides the answer
 * (model, template version, seed, the batch's criteria with their texts and choices, prompt and
 * response), so a retried or replayed rollout costs no second call, and a changed criterion
 * text or template can never be served a stale verdict. Values are the validated verdicts.
 */
import type { Verdict } from "./answer.js";
import { TEMPLATE_VERSION, type JudgeCriterion } from "./prompt.js";

export type Verdicts = Record<string, Verdict>;

/** Where verdicts are kept; `get` answers undefined on a miss (and on an unreadable entry). */
export interface JudgeCache {
  get(key: string): Verdicts | undefined | Promise<Verdicts | undefined>;
  set(key: string, value: Verdicts): void | Promise<void>;
}

const enc = new TextEncoder();

export async function cacheKey(model: string, seed: number, criteria: readonly JudgeCriterion[], prompt: string, response: string): Promise<string> {
  const material = JSON.stringify([TEMPLATE_VERSION, model, seed, criteria.map((c) => [c.id, c.text, c.choices]), prompt, response]);
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(material)));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** In memory, least recently used entries dropped beyond `maxEntries`. */
export class MemoryCache implements JudgeCache {
  readonly #map = new Map<string, Verdicts>();

  constructor(readonly maxEntries = 10_000) {
    if (!Number.isSafeInteger(maxEntries) || maxEntries < 1) throw new RangeError(`cache size must be an integer >= 1, got ${String(maxEntries)}`);
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): Verdicts | undefined {
    const v = this.#map.get(key);
    if (v !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, v);
    }
    return v;
  }

  set(key: string, value: Verdicts): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.maxEntries) this.#map.delete(this.#map.keys().next().value!);
  }
}

/** Memory in front of a slower cache (the disk): hits from below are kept in memory. */
export class TieredCache implements JudgeCache {
  constructor(
    readonly memory: MemoryCache,
    readonly below: JudgeCache,
  ) {}

  async get(key: string): Promise<Verdicts | undefined> {
    const hit = this.memory.get(key);
    if (hit) return hit;
    const v = await this.below.get(key);
    if (v) this.memory.set(key, v);
    return v;
  }

  async set(key: string, value: Verdicts): Promise<void> {
    this.memory.set(key, value);
    await this.below.set(key, value);
  }
}
