/**
 * State stores of the judging service: a tiny key-value interface with versions, so that a
 * write can be a compare-and-set. The service keeps one record per run (the engine snapshot plus
 * its own bookkeeping) and one record per committed batch of idempotent responses.
 *
 * Runtime-neutral: no Node API here (the file store lives in file-store.ts).
 */

/** A stored value and its version. Versions start at 1 and grow by 1 on every write. */
export interface Versioned {
  value: Uint8Array;
  version: number;
}

/**
 * The store could not be reached or did not answer. `unknownOutcome`: a write was sent but its
 * reply was lost, so it may have been applied (a retry under the same Idempotency-Key tells);
 * otherwise nothing was written. Services answer 503 + Retry-After (or 500 "outcome unknown").
 */
export class StoreUnavailableError extends Error {
  readonly unknownOutcome: boolean;
  constructor(message: string, unknownOutcome = false, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "StoreUnavailableError";
    this.unknownOutcome = unknownOutcome;
  }
}

/** A stored record failed its integrity check (bad header or checksum): it can only be replaced or deleted. */
export class CorruptRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CorruptRecordError";
  }
}

export interface StateStore {
  /** The current value of `key`, or undefined when there is none. */
  get(key: string): Promise<Versioned | undefined>;
  /**
   * Compare-and-set: write `value` when the current version of `key` equals `expected`
   * (0 = the key must not exist) and return the new version; return undefined, writing nothing,
   * when it does not. With `expected` undefined the write is unconditional.
   * Resolves only once the value is durable to the store's own standard.
   */
  put(key: string, value: Uint8Array, expected?: number): Promise<number | undefined>;
  /** Remove `key` (no-op when absent). Its versions start again at 1, so records written by compare-and-set (a run's) are overwritten with a tombstone instead (ledger.ts). */
  delete(key: string): Promise<void>;
  /** Flush and release resources. The store is not used afterwards. */
  close?(): Promise<void>;
}

/** In-memory store: per process (or isolate); values are copied in and out. */
export class MemoryStore implements StateStore {
  readonly #map = new Map<string, Versioned>();

  async get(key: string): Promise<Versioned | undefined> {
    const v = this.#map.get(key);
    return v && { value: v.value.slice(), version: v.version };
  }

  async put(key: string, value: Uint8Array, expected?: number): Promise<number | undefined> {
    const current = this.#map.get(key)?.version ?? 0;
    if (expected !== undefined && expected !== current) return undefined;
    const version = current + 1;
    this.#map.set(key, { value: value.slice(), version });
    return version;
  }

  async delete(key: string): Promise<void> {
    this.#map.delete(key);
  }

  /** Keys currently held (for tests and tooling). */
  keys(): string[] {
    return [...this.#map.keys()];
  }
}
