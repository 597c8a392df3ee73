import type { StreamState } from "./backend.js";
import type { CompiledRubric } from "./rubric.js";
import { WINDOW, type SteppedState } from "./stepped.js";

/**
 * Stream state on the wire, little-endian:
 *   "FRSS" | version u16 | 0 u16 | K u32 | state fingerprint u32 | updates f64 |
 *   sbar f64 x K | seen u8 x K | zero padding to 4 |
 *   version 2 only (a step-keyed state): open step f64 | group count f64 x K | q sum u64 x K |
 *     closed steps u32 | per closed step, oldest first: step f64 | sbar f64 x K | seen u8 x K | padding to 4 |
 *   CRC-32 of all before it.
 * A state without steps is written as version 1, as before steps existed.
 */
const MAGIC = 0x53535246; // "FRSS"
const VERSION = 1;
const VERSION_STEPPED = 2;
const HEADER = 24;

export interface Snapshot extends StreamState {
  updates: number;
  stepped?: SteppedState;
}

let crcTable: Uint32Array | undefined;

export function crc32(bytes: Uint8Array): number {
  const table = (crcTable ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c;
  }));
  let crc = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) crc = table[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

/** FNV-1a over what gives the state its meaning: the method (focal keeps saturations, pow3r
 *  contrasts) and the criterion ids, scales and polarities. */
export function stateFingerprint(r: CompiledRubric, method: string): number {
  let h = 0x811c9dc5;
  const mix = (byte: number) => (h = Math.imul(h ^ byte, 0x01000193));
  const text = new TextEncoder();
  for (const byte of text.encode(method)) mix(byte);
  mix(0);
  r.ids.forEach((id, k) => {
    for (const byte of text.encode(id)) mix(byte);
    mix(0);
    for (const byte of new Uint8Array(Float64Array.of(r.lo[k], r.inv[k], r.penalty[k]).buffer)) mix(byte);
  });
  return h >>> 0;
}

/** Bytes of sbar and seen, padded to 4. */
const vectorLength = (k: number) => (8 * k + k + 3) & ~3;

function bodyLength(k: number): number {
  return HEADER + vectorLength(k);
}

function steppedLength(k: number, closed: number): number {
  return 8 + 16 * k + 4 + closed * (8 + vectorLength(k));
}

export function encodeSnapshot(rubric: CompiledRubric, method: string, s: Snapshot): Uint8Array {
  const k = rubric.ids.length;
  const st = s.stepped;
  const body = bodyLength(k) + (st ? steppedLength(k, st.window.length) : 0);
  const bytes = new Uint8Array(body + 4);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, st ? VERSION_STEPPED : VERSION, true);
  view.setUint32(8, k, true);
  view.setUint32(12, stateFingerprint(rubric, method), true);
  view.setFloat64(16, s.updates, true);
  for (let i = 0; i < k; i++) view.setFloat64(HEADER + 8 * i, s.sbar[i], true);
  bytes.set(s.seen, HEADER + 8 * k);
  if (st) {
    let at = bodyLength(k);
    view.setFloat64(at, st.step, true);
    at += 8;
    for (let i = 0; i < k; i++, at += 8) view.setFloat64(at, st.count[i], true);
    for (let i = 0; i < k; i++, at += 8) view.setBigUint64(at, st.qSum[i], true);
    view.setUint32(at, st.window.length, true);
    at += 4;
    for (const c of st.window) {
      view.setFloat64(at, c.step, true);
      for (let i = 0; i < k; i++) view.setFloat64(at + 8 + 8 * i, c.sbar[i], true);
      bytes.set(c.seen, at + 8 + 8 * k);
      at += 8 + vectorLength(k);
    }
  }
  view.setUint32(body, crc32(bytes.subarray(0, body)), true);
  return bytes;
}

/** Reads sbar f64 x K then seen u8 x K at `at`, checking each criterion. */
function readVectors(view: DataView, bytes: Uint8Array, at: number, k: number, fail: (why: string) => Error): StreamState {
  const sbar = new Float64Array(k);
  const seen = bytes.slice(at + 8 * k, at + 9 * k);
  for (let i = 0; i < k; i++) {
    sbar[i] = view.getFloat64(at + 8 * i, true);
    if (seen[i] > 1 || !(sbar[i] >= 0 && sbar[i] <= 1) || (!seen[i] && sbar[i] !== 0)) throw fail(`bad state for criterion ${i}`);
  }
  return { sbar, seen };
}

function readStepped(view: DataView, bytes: Uint8Array, k: number, end: number, fail: (why: string) => Error): SteppedState {
  let at = bodyLength(k);
  if (end < at + steppedLength(k, 0)) throw fail("step-keyed snapshot too short");
  const step = view.getFloat64(at, true);
  if (!Number.isSafeInteger(step) || step < 0) throw fail("bad open step");
  at += 8;
  const count: number[] = [], qSum: bigint[] = [];
  for (let i = 0; i < k; i++, at += 8) {
    const c = view.getFloat64(at, true);
    if (!Number.isSafeInteger(c) || c < 0) throw fail(`bad group count for criterion ${i}`);
    count.push(c);
  }
  for (let i = 0; i < k; i++, at += 8) {
    const q = view.getBigUint64(at, true);
    if (q > BigInt(count[i]) * 2n ** 32n) throw fail(`bad saturation sum for criterion ${i}`);
    qSum.push(q);
  }
  const closed = view.getUint32(at, true);
  if (closed > WINDOW) throw fail(`${closed} closed steps, at most ${WINDOW}`);
  if (end !== bodyLength(k) + steppedLength(k, closed)) throw fail(`snapshot length ${end + 4} does not fit ${closed} closed steps`);
  at += 4;
  const window = [];
  for (let j = 0; j < closed; j++) {
    const s = view.getFloat64(at, true);
    const previous = j > 0 ? window[j - 1].step : -1;
    if (!Number.isSafeInteger(s) || s <= previous || s >= step) throw fail(`bad closed step ${j}`);
    window.push({ step: s, ...readVectors(view, bytes, at + 8, k, fail) });
    at += 8 + vectorLength(k);
  }
  return { step, count, qSum, window };
}

/** Parses and checks a snapshot; throws a RangeError that says what is wrong. */
export function decodeSnapshot(rubric: CompiledRubric, method: string, bytes: Uint8Array): Snapshot {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("restore: expected a Uint8Array snapshot");
  const fail = (why: string) => new RangeError(`restore: ${why}`);
  if (bytes.length < HEADER + 4) throw fail(`snapshot too short (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw fail("not a focal-reward snapshot (bad magic)");
  const version = view.getUint16(4, true);
  if (version !== VERSION && version !== VERSION_STEPPED) throw fail(`unsupported snapshot version ${version} (this engine reads ${VERSION} and ${VERSION_STEPPED})`);
  const k = view.getUint32(8, true);
  if (k !== rubric.ids.length) throw fail(`snapshot has ${k} criteria, the rubric ${rubric.ids.length}`);
  const body = version === VERSION ? bodyLength(k) : bytes.length - 4;
  if (bytes.length !== body + 4 || body < bodyLength(k)) throw fail(`snapshot length ${bytes.length}, expected ${bodyLength(k) + 4}${version === VERSION ? "" : " or more"}`);
  if (view.getUint32(body, true) !== crc32(bytes.subarray(0, body))) throw fail("checksum mismatch (corrupt snapshot)");
  if (view.getUint32(12, true) !== stateFingerprint(rubric, method)) {
    throw fail(`snapshot was taken with another rubric or method (criterion ids, scales, polarities or method differ from this "${method}" engine)`);
  }
  const updates = view.getFloat64(16, true);
  if (!Number.isInteger(updates) || updates < 0) throw fail("bad update count");
  const { sbar, seen } = readVectors(view, bytes, HEADER, k, fail);
  const stepped = version === VERSION_STEPPED ? readStepped(view, bytes, k, body, fail) : undefined;
  return { sbar, seen, updates, stepped };
}
