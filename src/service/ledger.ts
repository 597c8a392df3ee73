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
 * Memory: a run's engine keeps the wasm memory its largest batch grew; after a job of more than
 * `recycleCells` scores the engine is dropped and remade from the snapshot at its next job, and
 * idle runs leave the cache past `maxCachedRuns` or an estimated `maxCachedBytes`. Disk: the
 * window keeps at most `window` keys and `windowBytes` of stored answers per run.
 *
 * Every answer is a typed outcome (below); callers render them (routes.ts for HTTP). About 600
 * lines: the queue, the commit, repair and the outcomes are one state machine over a run's slot.
 */
import type { Engine, ScoreResult } from "../types.js";
import { CorruptRecordError, type StateStore, type Versioned } from "./store.js";
import { type KeyEntry, KeyWindow, decodeRunRecord, hex, keyEntry } from "./window.js";

export interface LedgerOptions {
  store: StateStore;
  /** Makes an engine of the service's rubric and settings (a run's own, or the scratch one). */
  createEngine: (purpose: "run" | "scratch") => Engine | Promise<Engine>;
  /** Recent keys a run remembers; 0: keys are ignored. */
  window: number;
  /** Most bytes of stored answers a run keeps for its keys (a larger answer is not kept: its retry answers responseGone). */
  windowBytes: number;
  /** A job of more scores than this makes its run's engine be remade afterwards (its grown memory given back). */
  recycleCells: number;
  /** Estimated bytes of the cached runs' engines and states past which idle runs leave the cache. */
  maxCachedBytes: number;
  /** Most queued jobs of one run applied per state write. */
  maxBatch: number;
  /** Runs whose engines stay in memory (others are reloaded from the store). */
  maxCachedRuns: number;
  /** Counters (the service's metrics). */
  events?: { commit?(conflict: boolean): void; replay?(): void };
}

/** What makes a job idempotent: its key, and the request bytes a retry must repeat. */
export interface Idempotency {
  /** Keys of one scope never answer another's (the route). */
  scope: string;
  key: string;
  body: Uint8Array;
}

export interface ScoreJob {
  /** One engine call. Throwing refuses this job alone (a refused call leaves the engine's state as it was). */
  score(engine: Engine): ScoreResult;
  /** The answer of an applied job, rendered before the run's engine is used again (outputs may be views into it). */
  render(result: ScoreResult, seq: number): string;
  idempotency?: Idempotency;
  /** Scores the call passes the engine (rows x criteria), for the memory bound. */
  cells?: number;
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
  | { kind: "storeFailed"; during: "load" | "commit" | "replay"; error: unknown }
  /** The run's record cannot be used (corrupt, or saved with another rubric): replace it (restore) or remove it. */
  | { kind: "corrupt"; run: string; reason: string };

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

export type RemoveOutcome = { kind: "removed"; run: string; existed: boolean } | Failure;

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
  /** The key's hash as releases before the route scoping stored it: their keys still replay after an upgrade. */
  legacyHash: string | undefined;
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

interface RemoveEntry {
  type: "remove";
  resolve(o: RemoveOutcome): void;
  reject(e: unknown): void;
}

type Entry = ScoreEntry | RestoreEntry | RemoveEntry;

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
  /** Why the loaded record cannot be used (then only a restore or a remove proceeds). */
  corrupt: string | undefined;
  /** Most scores of one call since the engine was made (its memory grew to hold them). */
  peakCells: number;
}

/** Estimated wasm memory of an engine: a base, and about 10 bytes per score of its largest call (measured: 9.5 at 16 criteria, growth slack included). */
const ENGINE_BASE_BYTES = 65_536;
const ENGINE_BYTES_PER_CELL = 10;

/** The run's stored state cannot be used (view): `reason` says why. */
export class CorruptRunError extends Error {
  readonly run: string;
  readonly reason: string;
  constructor(run: string, reason: string) {
    super(`run '${run}': ${reason}`);
    this.name = "CorruptRunError";
    this.run = run;
    this.reason = reason;
  }
}

const MAX_ATTEMPTS = 16;
const enc = new TextEncoder();
const dec = new TextDecoder();

export const runKey = (run: string) => `run/${run}`;
export const respKey = (run: string, batch: string) => `resp/${run}/${batch}`;

/**
 * A deleted run's record: no snapshot, read as "no state". DELETE writes it over the record instead
 * of deleting the key, so the store's version never restarts: a ledger (or replica) still caching
 * the old record at version v cannot win a compare-and-set against a recreated run that reached v
 * again (ABA); it conflicts, reloads and applies on top. 16 bytes on any store.
 */
const TOMBSTONE = new KeyWindow().encode(0, [], 0, new Uint8Array(0));

/**
 * Node's synchronous SHA-256 where the runtime lends it without an import (Node >= 20.16, Bun):
 * ~5 us a digest against WebCrypto's ~40 us (a keyed request takes three). Elsewhere WebCrypto.
 */
const nodeCrypto = (globalThis as { process?: { getBuiltinModule?(id: string): unknown } }).process?.getBuiltinModule?.("node:crypto") as
  | typeof import("node:crypto")
  | undefined;

export async function sha256hex(data: Uint8Array | string, bytes: number): Promise<string> {
  const input = typeof data === "string" ? enc.encode(data) : data;
  const d = nodeCrypto ? nodeCrypto.createHash("sha256").update(input).digest() : new Uint8Array(await crypto.subtle.digest("SHA-256", input as Uint8Array<ArrayBuffer>));
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
    let keyHash: string | undefined, legacyHash: string | undefined;
    let bodyHash = "";
    if (job.idempotency && this.#o.window > 0) {
      const { scope, key, body } = job.idempotency;
      keyHash = await sha256hex(`${scope}\u0000${run}\u0000${key}`, 8);
      legacyHash = await sha256hex(`${run}\u0000${key}`, 8);
      bodyHash = await sha256hex(body, 16);
    }
    return new Promise<ScoreOutcome>((resolve, reject) => this.#enqueue(this.#slot(run), { type: "score", job, keyHash, legacyHash, bodyHash, resolve, reject }));
  }

  /**
   * Replace `run`'s engine state by a snapshot; with `ifMatch`, only while the record is at that
   * version. A restore is no update: seq stays. Without `ifMatch` it also replaces a corrupt record.
   */
  async restore(run: string, bytes: Uint8Array, ifMatch?: number): Promise<RestoreOutcome> {
    // Checked on a scratch engine before queuing: a bad snapshot never reaches the run's engine.
    const problem = await this.#check(bytes);
    if (problem !== undefined) return { kind: "invalidSnapshot", error: problem };
    return new Promise<RestoreOutcome>((resolve, reject) => this.#enqueue(this.#slot(run), { type: "restore", bytes, ifMatch, resolve, reject }));
  }

  /** Remove `run`'s record and stored answers (the run starts afresh), whatever their state. */
  remove(run: string): Promise<RemoveOutcome> {
    return new Promise<RemoveOutcome>((resolve, reject) => this.#enqueue(this.#slot(run), { type: "remove", resolve, reject }));
  }

  /**
   * The run's last committed state, read from the store (without caching the run) when not in
   * memory. Throws CorruptRunError when the record cannot be used, as a job on it would answer.
   */
  async view(run: string): Promise<RunView> {
    const s = this.#runs.get(run);
    if (s?.loaded) {
      if (s.corrupt !== undefined) throw new CorruptRunError(run, s.corrupt);
      return { run, version: s.version, seq: s.seq, snapshot: s.snapshot, weights: s.weights, saturation: s.saturation };
    }
    const rec = await this.#read(run);
    if (rec.corrupt !== undefined) throw new CorruptRunError(run, rec.corrupt);
    return { run, version: rec.version, seq: rec.seq, snapshot: rec.snapshot, weights: undefined, saturation: undefined };
  }

  /** The cached runs that have state. */
  cached(): RunView[] {
    const out: RunView[] = [];
    for (const s of this.#runs.values()) {
      if (s.snapshot && s.corrupt === undefined) out.push({ run: s.run, version: s.version, seq: s.seq, snapshot: s.snapshot, weights: s.weights, saturation: s.saturation });
    }
    return out;
  }

  /** Estimated bytes of the cached runs (engines' memory, snapshots, windows). */
  cachedBytes(): number {
    let n = 0;
    for (const s of this.#runs.values()) n += footprint(s);
    return n;
  }

  /** Resolves once every queued job was answered. */
  async drain(): Promise<void> {
    await Promise.allSettled([...this.#runs.values()].map((s) => s.running));
  }

  /** Why a snapshot does not load in this service's engine, or undefined when it does. */
  async #check(bytes: Uint8Array): Promise<unknown> {
    const p = (this.#scratch ??= Promise.resolve(this.#o.createEngine("scratch")));
    p.catch(() => (this.#scratch = undefined)); // a failed make is tried again next time
    const scratch = await p;
    try {
      scratch.restore(bytes);
      return undefined;
    } catch (error) {
      return error;
    }
  }

  /** The run's record as stored, or why it cannot be used (`corrupt`); store outages throw. */
  async #read(run: string): Promise<{ version: number; seq: number; snapshot: Uint8Array | undefined; window: KeyWindow; corrupt?: string }> {
    const empty = { version: 0, seq: 0, snapshot: undefined, window: new KeyWindow() };
    let rec;
    try {
      rec = await this.#o.store.get(runKey(run));
    } catch (e) {
      if (e instanceof CorruptRecordError) return { ...empty, corrupt: `its state record is corrupt (${e.message})` };
      throw e;
    }
    if (!rec) return empty;
    let r: ReturnType<typeof decodeRunRecord>;
    try {
      r = decodeRunRecord(rec.value);
    } catch (e) {
      return { ...empty, version: rec.version, corrupt: `its state record is corrupt (${e instanceof Error ? e.message : String(e)})` };
    }
    if (r.snapshot.length === 0) return { ...empty, version: rec.version }; // a deleted run: its next write goes on from this version
    const problem = await this.#check(r.snapshot);
    if (problem !== undefined) {
      const why = problem instanceof Error ? problem.message : String(problem);
      return { ...empty, version: rec.version, seq: r.seq, corrupt: `its stored state does not load in this server's engine (${why}); if the rubric or method changed, serve this run with the ones it was started with` };
    }
    return { version: rec.version, seq: r.seq, snapshot: r.snapshot, window: r.window };
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
      queue: [], running: undefined, weights: undefined, saturation: undefined, corrupt: undefined, peakCells: 0,
    };
    this.#runs.set(run, s);
    this.#trim(s);
    return s;
  }

  /** Idle runs leave the cache, least recently used first, past the count or the bytes. */
  #trim(keep: Slot | undefined): void {
    const { maxCachedRuns, maxCachedBytes } = this.#o;
    let bytes = this.cachedBytes();
    for (const [name, other] of this.#runs) {
      if (this.#runs.size <= maxCachedRuns && bytes <= maxCachedBytes) break;
      if (other !== keep && !other.running && other.queue.length === 0) {
        this.#runs.delete(name);
        bytes -= footprint(other);
      }
    }
  }

  #enqueue(slot: Slot, entry: Entry): void {
    slot.queue.push(entry);
    if (slot.running) return;
    slot.running = (async () => {
      try {
        while (slot.queue.length) {
          // A remove is a batch of its own; the others are applied up to maxBatch at a time.
          const cut = slot.queue.findIndex((e) => e.type === "remove");
          const entries = slot.queue.splice(0, cut === 0 ? 1 : Math.min(this.#o.maxBatch, cut < 0 ? Infinity : cut));
          try {
            if (entries[0]!.type === "remove") await this.#remove(slot, entries[0] as RemoveEntry);
            else await this.#batch(slot, entries as (ScoreEntry | RestoreEntry)[]);
          } catch (e) {
            // A bug, not an outcome: the callers answer it as an internal error.
            slot.loaded = false;
            for (const it of entries) it.reject(e);
          }
        }
      } finally {
        slot.running = undefined;
        this.#trim(undefined);
      }
    })();
  }

  async #load(slot: Slot): Promise<void> {
    const r = await this.#read(slot.run);
    Object.assign(slot, { version: r.version, seq: r.seq, snapshot: r.snapshot, window: r.window, corrupt: r.corrupt, weights: undefined, saturation: undefined });
    slot.loaded = true;
    if (r.corrupt === undefined) await this.#engineOf(slot, true);
  }

  /** The run's engine; made anew (when dropped) or `reset` to the slot's committed state. */
  async #engineOf(slot: Slot, reset: boolean): Promise<Engine> {
    if (slot.engine && !reset) return slot.engine;
    if (!slot.engine) {
      slot.engine = await this.#o.createEngine("run");
      slot.peakCells = 0;
    }
    if (slot.snapshot) slot.engine.restore(slot.snapshot);
    else slot.engine.reset();
    return slot.engine;
  }

  async #remove(slot: Slot, entry: RemoveEntry): Promise<void> {
    const { store } = this.#o;
    let batches: string[] = [];
    let existed = true;
    try {
      let rec: Versioned | undefined;
      try {
        rec = await store.get(runKey(slot.run));
        existed = rec !== undefined;
      } catch (e) {
        if (!(e instanceof CorruptRecordError)) throw e;
      }
      try {
        if (rec) {
          const r = decodeRunRecord(rec.value);
          existed = r.snapshot.length > 0; // else already deleted
          batches = [...new Set(r.window.entries.map((e) => e.batch))];
        }
      } catch {
        // a corrupt record names no batches: its stored answers stay (they are never read again)
      }
      // Unconditional: a delete wins over any state. A tombstone, not a delete: see TOMBSTONE.
      if (existed) await store.put(runKey(slot.run), TOMBSTONE);
    } catch (error) {
      slot.loaded = false;
      entry.resolve({ kind: "storeFailed", during: "commit", error });
      return;
    }
    Object.assign(slot, { loaded: false, version: 0, seq: 0, snapshot: undefined, window: new KeyWindow(), weights: undefined, saturation: undefined, corrupt: undefined });
    for (const b of batches) await store.delete(respKey(slot.run, b)).catch(() => {});
    entry.resolve({ kind: "removed", run: slot.run, existed });
  }

  /** The stored answer of a committed key (an outcome: a failed read answers this job alone). */
  async #stored(slot: Slot, entry: ScoreEntry, keyHash: string, batchId: string): Promise<ScoreOutcome> {
    try {
      const rec = await this.#o.store.get(respKey(slot.run, batchId));
      const stored = rec && (JSON.parse(dec.decode(rec.value)) as Record<string, { b: string; body?: string } | undefined>)[keyHash];
      if (stored && stored.b !== entry.bodyHash) return { kind: "keyReused" };
      if (stored?.body === undefined) return { kind: "responseGone" };
      this.#o.events?.replay?.();
      return { kind: "replayed", body: stored.body };
    } catch (error) {
      return { kind: "storeFailed", during: "replay", error };
    }
  }

  /** On a corrupt record: refuse the jobs before the first plain restore, which replaces the record; then go on as usual. */
  async #repair(slot: Slot, entries: (ScoreEntry | RestoreEntry)[]): Promise<void> {
    const at = entries.findIndex((e) => e.type === "restore" && e.ifMatch === undefined);
    const corrupt = { kind: "corrupt" as const, run: slot.run, reason: slot.corrupt! };
    for (const e of at < 0 ? entries : entries.slice(0, at)) e.resolve(corrupt);
    if (at < 0) return;
    const fix = entries[at] as RestoreEntry;
    const { store } = this.#o;
    try {
      // The corrupt record's value cannot be read, its version may not be either: replaced whatever it is
      // (no delete: versions never restart, see TOMBSTONE).
      const version = (await store.put(runKey(slot.run), new KeyWindow().encode(slot.seq, [], 0, fix.bytes)))!;
      Object.assign(slot, { version, snapshot: fix.bytes.slice(), window: new KeyWindow(), corrupt: undefined, weights: undefined, saturation: undefined });
      await this.#engineOf(slot, true);
      fix.resolve({ kind: "restored", run: slot.run, version, seq: slot.seq });
    } catch (error) {
      slot.loaded = false;
      fix.resolve({ kind: "storeFailed", during: "commit", error });
    }
    if (at + 1 < entries.length) await this.#batch(slot, entries.slice(at + 1));
  }

  /** Apply a drained batch in order and commit it with one compare-and-set write. */
  async #batch(slot: Slot, entries: (ScoreEntry | RestoreEntry)[]): Promise<void> {
    const { store, window: maxKeys, windowBytes, events } = this.#o;
    for (let attempt = 1; ; attempt++) {
      if (!slot.loaded) {
        try {
          await this.#load(slot);
        } catch (error) {
          for (const e of entries) e.resolve({ kind: "storeFailed", during: "load", error });
          return;
        }
      }
      if (slot.corrupt !== undefined) return this.#repair(slot, entries);
      const engine = await this.#engineOf(slot, false);
      const drafts: Draft[] = new Array(entries.length);
      const pending = new Map<string, number>();
      const stored: Record<string, { b: string; body?: string }> = {};
      const newKeys: string[] = [];
      let applied = 0;
      let restored = false;
      let cells = 0;
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
          const found = [h, e.legacyHash].find((k) => k !== undefined && slot.window.batchOf(k) !== undefined);
          if (found !== undefined) {
            drafts[i] = { t: "stored", read: this.#stored(slot, e, found, slot.window.batchOf(found)!) };
            continue;
          }
        }
        cells = Math.max(cells, e.job.cells ?? 0);
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
      slot.peakCells = Math.max(slot.peakCells, cells);
      if (applied > 0 || restored) {
        const snapshot = engine.snapshot();
        const batchId = randomId();
        // Answers are kept up to the window's bytes; a larger one keeps its key (a retry is then refused, never applied twice).
        let kept = 0;
        for (const h of newKeys) {
          const size = stored[h]!.body!.length + 64; // with the key's JSON around it
          if (kept + size > windowBytes) delete stored[h]!.body;
          else kept += size;
        }
        const record = newKeys.length ? enc.encode(JSON.stringify(stored)) : undefined;
        const added: KeyEntry[] = newKeys.map((h) => keyEntry(h, batchId, record?.length ?? 0));
        const { drop, freed } = slot.window.plan(added, maxKeys, windowBytes);
        let version: number | undefined;
        try {
          if (record) await store.put(respKey(slot.run, batchId), record);
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
          if (record) void store.delete(respKey(slot.run, batchId)).catch(() => {});
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
        slot.weights = last?.weights;
        slot.saturation = last?.saturation;
        for (const b of freed) void store.delete(respKey(slot.run, b)).catch(() => {});
      }
      // A large call grew the engine's memory, which wasm never returns: drop the engine, remade at the next job.
      if (cells > this.#o.recycleCells) slot.engine = undefined;
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

/** Estimated bytes a cached run holds: its engine's memory, its snapshot, its window. */
function footprint(s: Slot): number {
  return (s.engine ? ENGINE_BASE_BYTES + ENGINE_BYTES_PER_CELL * s.peakCells : 0) + (s.snapshot?.length ?? 0) + 20 * s.window.size;
}
