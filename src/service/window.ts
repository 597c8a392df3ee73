/**
 * A run's idempotency window and its record encoding. The window holds the last committed
 * Idempotency-Keys of a run (their 8-byte hashes) with the batch whose stored answers hold theirs,
 * bounded by a count and by the bytes of those stored batches. It is kept in the run record itself,
 * so a key and its update commit in one write.
 *
 * Run record: "FRR2" (u32 LE), key count (u32 LE), seq (f64 LE), count x (8-byte key hash, 8-byte
 * batch id, u32 LE bytes of the batch's stored answers), then the engine snapshot. "FRR1" records
 * (16-byte entries, no sizes) are read as batches of 0 bytes.
 */

const MAGIC = 0x32525246; // "FRR2"
const MAGIC_V1 = 0x31525246; // "FRR1"

export interface KeyEntry {
  /** Hex of the 8-byte key hash. */
  hash: string;
  /** Hex of the 8-byte batch id. */
  batch: string;
  /** Bytes of the batch's stored answers (the same for every key of the batch). */
  size: number;
  /** The 20 record bytes (hash, batch, size). */
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

export function keyEntry(hash: string, batch: string, size = 0): KeyEntry {
  const bytes = new Uint8Array(ENTRY);
  unhex(hash, bytes, 0);
  unhex(batch, bytes, 8);
  new DataView(bytes.buffer).setUint32(16, size, true);
  return { hash, batch, size, bytes };
}

const ENTRY = 20;

export class KeyWindow {
  /** Oldest first. */
  readonly entries: KeyEntry[];
  readonly #byHash = new Map<string, KeyEntry>();

  constructor(entries: KeyEntry[] = []) {
    this.entries = entries;
    for (const e of entries) this.#byHash.set(e.hash, e);
  }

  get size(): number {
    return this.entries.length;
  }

  /** The batch holding the answer of a committed key. */
  batchOf(hash: string): string | undefined {
    return this.#byHash.get(hash)?.batch;
  }

  /**
   * What appending `added` and trimming to `max` entries and `maxBytes` of stored batches would
   * drop (no change made): how many of the oldest entries, and the batches no entry would refer to
   * any more. `added` itself is never dropped for bytes (its keys must stay known).
   */
  plan(added: readonly KeyEntry[], max: number, maxBytes = Infinity): { drop: number; freed: string[] } {
    const all = added.length ? [...this.entries, ...added] : this.entries;
    let drop = Math.max(0, all.length - max);
    // A batch's entries are contiguous (added in one commit): its bytes leave with its last entry.
    const sizes = new Map<string, number>();
    for (let i = drop; i < all.length; i++) sizes.set(all[i]!.batch, all[i]!.size);
    let bytes = 0;
    for (const v of sizes.values()) bytes += v;
    while (bytes > maxBytes && drop < this.entries.length) {
      const b = all[drop]!.batch;
      while (drop < this.entries.length && all[drop]!.batch === b) drop++;
      if (drop >= all.length || all[drop]!.batch !== b) bytes -= sizes.get(b) ?? 0;
    }
    const live = new Set<string>();
    for (let i = drop; i < all.length; i++) live.add(all[i]!.batch);
    const freed = new Set<string>();
    for (let i = 0; i < drop; i++) if (!live.has(all[i]!.batch)) freed.add(all[i]!.batch);
    return { drop, freed: [...freed] };
  }

  /** Bytes of the stored batches the window refers to. */
  get bytes(): number {
    const sizes = new Map<string, number>();
    for (const e of this.entries) sizes.set(e.batch, e.size);
    let n = 0;
    for (const v of sizes.values()) n += v;
    return n;
  }

  /** Apply a plan once its record is committed. */
  apply(added: readonly KeyEntry[], drop: number): void {
    this.entries.push(...added);
    for (const e of added) this.#byHash.set(e.hash, e);
    for (const e of this.entries.splice(0, drop)) {
      if (this.#byHash.get(e.hash) === e) this.#byHash.delete(e.hash);
    }
  }

  /** The run record of this window after (added, drop), without changing the window. */
  encode(seq: number, added: readonly KeyEntry[], drop: number, snapshot: Uint8Array): Uint8Array {
    const count = this.entries.length + added.length - drop;
    const out = new Uint8Array(16 + count * ENTRY + snapshot.length);
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
        o += ENTRY;
      }
    }
    out.set(snapshot, o);
    return out;
  }
}

export function decodeRunRecord(bytes: Uint8Array): { seq: number; window: KeyWindow; snapshot: Uint8Array } {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = bytes.length < 16 ? 0 : dv.getUint32(0, true);
  if (magic !== MAGIC && magic !== MAGIC_V1) throw new Error("not a focal-reward run record");
  const size = magic === MAGIC ? ENTRY : 16;
  const n = dv.getUint32(4, true);
  const seq = dv.getFloat64(8, true);
  if (bytes.length < 16 + n * size) throw new Error("truncated run record");
  if (!Number.isSafeInteger(seq) || seq < 0) throw new Error("bad update counter in run record");
  const entries: KeyEntry[] = [];
  let o = 16;
  for (let i = 0; i < n; i++, o += size) {
    const b = bytes.subarray(o, o + size);
    entries.push(keyEntry(hex(b.subarray(0, 8)), hex(b.subarray(8, 16)), size === ENTRY ? dv.getUint32(o + 16, true) : 0));
  }
  return { seq, window: new KeyWindow(entries), snapshot: bytes.slice(o) };
}
