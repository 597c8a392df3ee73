/**
 * A run's idempotency window and its record encoding. The window holds the last N committed
 * Idempotency-Keys of a run (their 8-byte hashes) with the batch whose stored responses hold their
 * answers. It is kept in the run record itself, so a key and its update commit in one write.
 *
 * Run record: "FRR1" (u32 LE), key count (u32 LE), seq (f64 LE), count x (8-byte key hash, 8-byte
 * batch id), then the engine snapshot.
 */

const MAGIC = 0x31525246; // "FRR1"

export interface KeyEntry {
  /** Hex of the 8-byte key hash. */
  hash: string;
  /** Hex of the 8-byte batch id. */
  batch: string;
  /** The 16 record bytes (hash, batch). */
  bytes: Uint8Array;
}

export function hex(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += bytes[i]!.toString(16).padStart(2, "0");
  return s;
}

function unhex(s: string, out: Uint8Array, at: number): void {
  for (let i = 0; i < s.length / 2; i++) out[at + i] = parseInt(s.slice(2 * i, 2 * i + 2), 16);
}

export function keyEntry(hash: string, batch: string): KeyEntry {
  const bytes = new Uint8Array(16);
  unhex(hash, bytes, 0);
  unhex(batch, bytes, 8);
  return { hash, batch, bytes };
}

export class KeyWindow {
  /** Oldest first. */
  readonly entries: KeyEntry[];
  readonly #byHash = new Map<string, KeyEntry>();
  readonly #refs = new Map<string, number>();

  constructor(entries: KeyEntry[] = []) {
    this.entries = entries;
    for (const e of entries) {
      this.#byHash.set(e.hash, e);
      this.#refs.set(e.batch, (this.#refs.get(e.batch) ?? 0) + 1);
    }
  }

  get size(): number {
    return this.entries.length;
  }

  /** The batch holding the answer of a committed key. */
  batchOf(hash: string): string | undefined {
    return this.#byHash.get(hash)?.batch;
  }

  /**
   * What appending `added` and trimming to `max` entries would drop (no change made): how many
   * of the oldest entries, and the batches no entry would refer to any more.
   */
  plan(added: readonly KeyEntry[], max: number): { drop: number; freed: string[] } {
    const drop = Math.max(0, this.entries.length + added.length - max);
    const left = new Map<string, number>();
    const freed: string[] = [];
    const all = drop <= this.entries.length ? this.entries : [...this.entries, ...added];
    for (let i = 0; i < drop; i++) {
      const b = all[i]!.batch;
      const n = (left.get(b) ?? this.#refs.get(b) ?? added.filter((e) => e.batch === b).length) - 1;
      left.set(b, n);
      if (n === 0) freed.push(b);
    }
    return { drop, freed };
  }

  /** Apply a plan once its record is committed. */
  apply(added: readonly KeyEntry[], drop: number): void {
    this.entries.push(...added);
    for (const e of added) {
      this.#byHash.set(e.hash, e);
      this.#refs.set(e.batch, (this.#refs.get(e.batch) ?? 0) + 1);
    }
    for (const e of this.entries.splice(0, drop)) {
      if (this.#byHash.get(e.hash) === e) this.#byHash.delete(e.hash);
      const n = (this.#refs.get(e.batch) ?? 1) - 1;
      if (n <= 0) this.#refs.delete(e.batch);
      else this.#refs.set(e.batch, n);
    }
  }

  /** The run record of this window after (added, drop), without changing the window. */
  encode(seq: number, added: readonly KeyEntry[], drop: number, snapshot: Uint8Array): Uint8Array {
    const count = this.entries.length + added.length - drop;
    const out = new Uint8Array(16 + count * 16 + snapshot.length);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, MAGIC, true);
    dv.setUint32(4, count, true);
    dv.setFloat64(8, seq, true);
    let o = 16;
    let skip = drop;
    for (const list of [this.entries, added]) {
      for (const e of list) {
        if (skip > 0) {
          skip--;
          continue;
        }
        out.set(e.bytes, o);
        o += 16;
      }
    }
    out.set(snapshot, o);
    return out;
  }
}

export function decodeRunRecord(bytes: Uint8Array): { seq: number; window: KeyWindow; snapshot: Uint8Array } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 16 || dv.getUint32(0, true) !== MAGIC) throw new Error("not a focal-reward run record");
  const n = dv.getUint32(4, true);
  const seq = dv.getFloat64(8, true);
  if (bytes.length < 16 + n * 16) throw new Error("truncated run record");
  const entries: KeyEntry[] = [];
  let o = 16;
  for (let i = 0; i < n; i++, o += 16) {
    const b = bytes.slice(o, o + 16);
    entries.push({ hash: hex(b.subarray(0, 8)), batch: hex(b.subarray(8, 16)), bytes: b });
  }
  return { seq, window: new KeyWindow(entries), snapshot: bytes.slice(o) };
}
