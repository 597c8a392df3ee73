/**
 * The run ledger: every run's stream state, with no HTTP in it.
 *
 * One record per run in a StateStore (`run/<run>`: the engine snapshot, the update counter `seq`
 * and the idempotency window, window.ts) and one record per committed batch of keyed answers
 * (`resp/<run>/<batch>`). Jobs of one run go through one queue in arrival order; each drained
 * batch is applied on the run's engine and written once (group commit) with a compare-and-set on
 * the record's version, retried on a newer state when another writer moved it, and no job of the
 * batch is answered before that write resolved. So N concurrent jobs end in the state of the same
 * N jobs applied one after another in `seq` order, an acknowledged update is never lost, and a job
 * retried under the same key gets the first answer back without a second update.
 *
 * Every answer is a typed outcome (below); callers render them (routes.ts for HTTP). About 400
 * lines: the queue, the commit and the outcomes are one state machine over a run's slot.
 */
import type { Engine, ScoreResult } from "../types.js";
import type { StateStore } from "./store.js";
import { type KeyEntry, KeyWindow, decodeRunRecord, hex, keyEntry } from "./window.js";

export interface LedgerOptions {
  store: StateStore;
  /** Makes an engine of the service's rubric and settings (a run's own, or the scratch one). */
  createEngine: (purpose: "run" | "scratch") => Engine | Promise<Engine>;
  /** Recent keys a run remembers; 0: keys are ignored. */
  window: number;
  /** Most queued jobs of one run applied per state write. */
  maxBatch: number;
  /** Runs whose engines stay in memory (others are reloaded from the store). */
  maxCachedRuns: number;
  /** Counters (the service's metrics). */
  events?: { commit?(conflict: boolean): void; replay?(): void };
}

/** What makes a job idempotent: its key, and the request bytes a retry must repeat. */
export interface Idempotency {
  key: string;
  body: Uint8Array;
}

export interface ScoreJob {
  /** One engine call. Throwing refuses this job alone (a refused call leaves the engine's state as it was). */
  score(engine: Engine): ScoreResult;
  /** The answer of an applied job, rendered before the run's engine is used again (outputs may be views into it). */
  render(result: ScoreResult, seq: number): string;
  idempotency?: Idempotency;
}

/** The job could not be decided: nothing of it was acknowledged. */
export type Failure =
  /** The state kept moving under the batch (compare-and-set misses); nothing applied. */
  | { kind: "conflict"; attempts: number }
  /**
   * The store failed. `load`: the run's record could not be read; `commit`: its write failed (a
   * StoreUnavailableError says whether the outcome is unknown); `replay`: the stored answer of a
   * committed key could not be read (the update itself was applied once, earlier).
   */
  | { kind: "storeFailed"; during: "load" | "commit" | "replay"; error: unknown };

export type ScoreOutcome =
  | { kind: "applied"; body: string; seq: number }
  /** A committed key: the first answer, byte for byte. */
  | { kind: "replayed"; body: string }
  /** The key was committed with another request body. */
  | { kind: "keyReused" }
  /** The key was applied, but its answer is no longer stored. */
  | { kind: "responseGone" }
  /** The engine refused the job (its error), nothing applied. */
  | { kind: "rejected"; error: unknown }
  | Failure;

export type RestoreOutcome =
  | { kind: "restored"; run: string; version: number; seq: number }
  /** The snapshot does not load in this service's engine (its error), nothing changed. */
  | { kind: "invalidSnapshot"; error: unknown }
  /** `ifMatch` is not the record's version (or the batch moved it first). */
  | { kind: "preconditionFailed"; version: number }
  | Failure;

/** A run's committed state as last written (weights and saturation: of its last update here, if cached). */
export interface RunView {
  run: string;
  version: number;
  seq: number;
  snapshot: Uint8Array | undefined;
  weights: Float32Array | undefined;
  saturation: Float32Array | undefined;
}

interface ScoreEntry {
  type: "score";
  job: ScoreJob;
  keyHash: string | undefined;
  bodyHash: string;
  resolve(o: ScoreOutcome): void;
  reject(e: unknown): void;
}

interface RestoreEntry {
  type: "restore";
  bytes: Uint8Array;
  ifMatch: number | undefined;
  resolve(o: RestoreOutcome): void;
  reject(e: unknown): void;
}

type Entry = ScoreEntry | RestoreEntry;

/** A job's answer while its batch is not yet committed. */
type Draft =
  /** Decided whatever the commit does (refusals). */
  | { t: "final"; outcome: ScoreOutcome | RestoreOutcome }
  /** A committed key's stored answer, being read (never rejects). */
  | { t: "stored"; read: Promise<ScoreOutcome> }
  /** Applied on the engine: acknowledged once the commit lands. */
  | { t: "applied"; body: string; seq: number }
  /** The same key as draft `of` of this batch. */
  | { t: "sameKey"; of: number }
  | { t: "restored" };

interface Slot {
  run: string;
  engine: Engine | undefined;
  loaded: boolean;
  version: number;
  seq: number;
  snapshot: Uint8Array | undefined;
  window: KeyWindow;
  queue: Entry[];
  running: Promise<void> | undefined;
  weights: Float32Array | undefined;
  saturation: Float32Array | undefined;
}

const MAX_ATTEMPTS = 16;
const enc = new TextEncoder();
const dec = new TextDecoder();

export const runKey = (run: string) => `run/${run}`;
export const respKey = (run: string, batch: string) => `resp/${run}/${batch}`;

export async function sha256hex(data: Uint8Array | string, bytes: number): Promise<string> {
  const input = typeof data === "string" ? enc.encode(data) : data;
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", input as Uint8Array<ArrayBuffer>));
  return hex(d.subarray(0, bytes));
}

function randomId(): string {
  return hex(crypto.getRandomValues(new Uint8Array(8)));
}

export class RunLedger {
  readonly #o: LedgerOptions;
  readonly #runs = new Map<string, Slot>();
  #scratch: Promise<Engine> | undefined;

  constructor(options: LedgerOptions) {
    this.#o = options;
  }

  /** Apply a score job to `run`'s state (or answer a committed key's retry). */
  async score(run: string, job: ScoreJob): Promise<ScoreOutcome> {
    let keyHash: string | undefined;
    let bodyHash = "";
    if (job.idempotency && this.#o.window > 0) {
      keyHash = await sha256hex(`${run}\u0000${job.idempotency.key}`, 8);
      bodyHash = await sha256hex(job.idempotency.body, 16);
    }
    return new Promise<ScoreOutcome>((resolve, reject) => this.#enqueue(this.#slot(run), { type: "score", job, keyHash, bodyHash, resolve, reject }));
  }

  /** Replace `run`'s engine state by a snapshot; with `ifMatch`, only while the record is at that version. A restore is no update: seq stays. */
  async restore(run: string, bytes: Uint8Array, ifMatch?: number): Promise<RestoreOutcome> {
    // Checked on a scratch engine before queuing: a bad snapshot never reaches the run's engine.
    const scratch = await (this.#scratch ??= Promise.resolve(this.#o.createEngine("scratch")));
    try {
      scratch.restore(bytes);
    } catch (error) {
      return { kind: "invalidSnapshot", error };
    }
    return new Promise<RestoreOutcome>((resolve, reject) => this.#enqueue(this.#slot(run), { type: "restore", bytes, ifMatch, resolve, reject }));
  }

  /** The run's last committed state, read from the store (without caching the run) when not in memory. */
  async view(run: string): Promise<RunView> {
    const s = this.#runs.get(run);
    if (s?.loaded) return { run, version: s.version, seq: s.seq, snapshot: s.snapshot, weights: s.weights, saturation: s.saturation };
    const rec = await this.#o.store.get(runKey(run));
    if (!rec) return { run, version: 0, seq: 0, snapshot: undefined, weights: undefined, saturation: undefined };
    const r = decodeRunRecord(rec.value);
    return { run, version: rec.version, seq: r.seq, snapshot: r.snapshot, weights: undefined, saturation: undefined };
  }

  /** The cached runs that have state. */
  cached(): RunView[] {
    const out: RunView[] = [];
    for (const s of this.#runs.values()) {
      if (s.version > 0) out.push({ run: s.run, version: s.version, seq: s.seq, snapshot: s.snapshot, weights: s.weights, saturation: s.saturation });
    }
    return out;
  }

  /** Resolves once every queued job was answered. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#runs.values()].map((s) => s.running));
  }

  #slot(run: string): Slot {
    let s = this.#runs.get(run);
    if (s) {
      this.#runs.delete(run); // LRU order: most recent last
      this.#runs.set(run, s);
      return s;
    }
    s = {
      run, engine: undefined, loaded: false, version: 0, seq: 0, snapshot: undefined, window: new KeyWindow(),
      queue: [], running: undefined, weights: undefined, saturation: undefined,
    };
    this.#runs.set(run, s);
    if (this.#runs.size > this.#o.maxCachedRuns) {
      for (const [name, other] of this.#runs) {
        if (this.#runs.size <= this.#o.maxCachedRuns) break;
        if (other !== s && !other.running && other.queue.length === 0) this.#runs.delete(name);
      }
    }
    return s;
  }

  #enqueue(slot: Slot, entry: Entry): void {
    slot.queue.push(entry);
    if (slot.running) return;
    slot.running = (async () => {
      try {
        while (slot.queue.length) {
          const entries = slot.queue.splice(0, this.#o.maxBatch);
          try {
            await this.#batch(slot, entries);
          } catch (e) {
            // A bug, not an outcome: the callers answer it as an internal error.
            slot.loaded = false;
            for (const it of entries) it.reject(e);
          }
        }
      } finally {
        slot.running = undefined;
      }
    })();
  }

  async #load(slot: Slot): Promise<void> {
    slot.engine ??= await this.#o.createEngine("run");
    const rec = await this.#o.store.get(runKey(slot.run));
    if (!rec) {
      slot.engine.reset();
      Object.assign(slot, { version: 0, seq: 0, snapshot: undefined, window: new KeyWindow() });
    } else {
      const r = decodeRunRecord(rec.value);
      slot.engine.restore(r.snapshot);
      Object.assign(slot, { version: rec.version, seq: r.seq, snapshot: r.snapshot, window: r.window });
    }
    slot.loaded = true;
  }

  /** The stored answer of a committed key (an outcome: a failed read answers this job alone). */
  async #stored(slot: Slot, entry: ScoreEntry, batchId: string): Promise<ScoreOutcome> {
    try {
      const rec = await this.#o.store.get(respKey(slot.run, batchId));
      const stored = rec && (JSON.parse(dec.decode(rec.value)) as Record<string, { b: string; body: string } | undefined>)[entry.keyHash!];
      if (!stored) return { kind: "responseGone" };
      if (stored.b !== entry.bodyHash) return { kind: "keyReused" };
      this.#o.events?.replay?.();
      return { kind: "replayed", body: stored.body };
    } catch (error) {
      return { kind: "storeFailed", during: "replay", error };
    }
  }

  /** Apply a drained batch in order and commit it with one compare-and-set write. */
  async #batch(slot: Slot, entries: Entry[]): Promise<void> {
    const { store, window: maxKeys, events } = this.#o;
    for (let attempt = 1; ; attempt++) {
      if (!slot.loaded) {
        try {
          await this.#load(slot);
        } catch (error) {
          for (const e of entries) e.resolve({ kind: "storeFailed", during: "load", error });
          return;
        }
      }
      const engine = slot.engine!;
      const drafts: Draft[] = new Array(entries.length);
      const pending = new Map<string, number>();
      const stored: Record<string, { b: string; body: string }> = {};
      const newKeys: string[] = [];
      let applied = 0;
      let restored = false;
      let last: { weights: Float32Array; saturation: Float32Array } | undefined;
      for (let i = 0; i < entries.length; i++) {
        const e = entries[i]!;
        if (e.type === "restore") {
          if (e.ifMatch !== undefined && (e.ifMatch !== slot.version || applied > 0 || restored)) {
            drafts[i] = { t: "final", outcome: { kind: "preconditionFailed", version: slot.version } };
            continue;
          }
          engine.restore(e.bytes); // checked on the scratch engine
          restored = true;
          drafts[i] = { t: "restored" };
          continue;
        }
        const h = e.keyHash;
        if (h !== undefined) {
          const j = pending.get(h);
          if (j !== undefined) {
            drafts[i] = (entries[j] as ScoreEntry).bodyHash === e.bodyHash ? { t: "sameKey", of: j } : { t: "final", outcome: { kind: "keyReused" } };
            continue;
          }
          const committed = slot.window.batchOf(h);
          if (committed !== undefined) {
            drafts[i] = { t: "stored", read: this.#stored(slot, e, committed) };
            continue;
          }
        }
        let result: ScoreResult;
        try {
          result = e.job.score(engine);
        } catch (error) {
          drafts[i] = { t: "final", outcome: { kind: "rejected", error } };
          continue;
        }
        applied++;
        const seq = slot.seq + applied;
        const body = e.job.render(result, seq);
        drafts[i] = { t: "applied", body, seq };
        const K = engine.criteria.length;
        // copies: outputs may be views into the engine's memory
        last = { weights: result.weights.slice(0, K), saturation: result.saturation.slice(0, K) };
        if (h !== undefined) {
          pending.set(h, i);
          newKeys.push(h);
          stored[h] = { b: e.bodyHash, body };
        }
      }
      if (applied > 0 || restored) {
        const snapshot = engine.snapshot();
        const batchId = randomId();
        const added: KeyEntry[] = newKeys.map((h) => keyEntry(h, batchId));
        const { drop, freed } = slot.window.plan(added, maxKeys);
        let version: number | undefined;
        try {
          if (newKeys.length) await store.put(respKey(slot.run, batchId), enc.encode(JSON.stringify(stored)));
          version = await store.put(runKey(slot.run), slot.window.encode(slot.seq + applied, added, drop, snapshot), slot.version);
        } catch (error) {
          // Nothing of this batch is acknowledged: the engine is reloaded from the store.
          slot.loaded = false;
          this.#answer(slot, entries, drafts, { kind: "storeFailed", during: "commit", error });
          return;
        }
        if (version === undefined) {
          // Another writer moved this run: reload its state and apply the whole batch again.
          events?.commit?.(true);
          slot.loaded = false;
          if (newKeys.length) void store.delete(respKey(slot.run, batchId)).catch(() => {});
          if (attempt >= MAX_ATTEMPTS) {
            for (const e of entries) e.resolve({ kind: "conflict", attempts: attempt });
            return;
          }
          // Replicas racing for one run would collide again at once: back off up to 2^attempt ms (at most 256), jittered.
          await new Promise((r) => setTimeout(r, Math.random() * 2 ** Math.min(attempt, 8)));
          continue;
        }
        events?.commit?.(false);
        slot.window.apply(added, drop);
        Object.assign(slot, { version, seq: slot.seq + applied, snapshot });
        if (last) {
          slot.weights = last.weights;
          slot.saturation = last.saturation;
        } else {
          slot.weights = undefined;
          slot.saturation = undefined;
        }
        for (const b of freed) void store.delete(respKey(slot.run, b)).catch(() => {});
      }
      this.#answer(slot, entries, drafts, undefined);
      return;
    }
  }

  /** Answer a batch's jobs: as committed, or (`failed`) with nothing of it acknowledged. */
  #answer(slot: Slot, entries: Entry[], drafts: Draft[], failed: Failure | undefined): void {
    const resolve = (i: number, o: ScoreOutcome | RestoreOutcome) => (entries[i]!.resolve as (o: ScoreOutcome | RestoreOutcome) => void)(o);
    for (let i = 0; i < entries.length; i++) {
      const d = drafts[i]!;
      if (d.t === "final") resolve(i, d.outcome);
      else if (d.t === "stored") void d.read.then((o) => resolve(i, o));
      else if (failed) resolve(i, failed);
      else if (d.t === "applied") resolve(i, { kind: "applied", body: d.body, seq: d.seq });
      else if (d.t === "restored") resolve(i, { kind: "restored", run: slot.run, version: slot.version, seq: slot.seq });
      else {
        const first = drafts[d.of] as { body: string };
        this.#o.events?.replay?.();
        resolve(i, { kind: "replayed", body: first.body });
      }
    }
  }
}
