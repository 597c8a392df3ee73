import type { StreamState } from "./backend.js";
import type { CompiledRubric } from "./rubric.js";

/**
 * Stream state on the wire, little-endian:
 *   "FRSS" | version u16 | 0 u16 | K u32 | state fingerprint u32 | updates f64 |
 *   sbar f64 x K | seen u8 x K | zero padding to 4 | CRC-32 of all before it.
 */
const MAGIC = 0x53535246; // "FRSS"
const VERSION = 1;
const HEADER = 24;

export interface Snapshot extends StreamState {
  updates: number;
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

function bodyLength(k: number): number {
  return (HEADER + 8 * k + k + 3) & ~3;
}

export function encodeSnapshot(rubric: CompiledRubric, method: string, s: Snapshot): Uint8Array {
  const k = rubric.ids.length;
  const body = bodyLength(k);
  const bytes = new Uint8Array(body + 4);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint16(4, VERSION, true);
  view.setUint32(8, k, true);
  view.setUint32(12, stateFingerprint(rubric, method), true);
  view.setFloat64(16, s.updates, true);
  for (let i = 0; i < k; i++) view.setFloat64(HEADER + 8 * i, s.sbar[i], true);
  bytes.set(s.seen, HEADER + 8 * k);
  view.setUint32(body, crc32(bytes.subarray(0, body)), true);
  return bytes;
}

/** Parses and checks a snapshot; throws a RangeError that says what is wrong. */
export function decodeSnapshot(rubric: CompiledRubric, method: string, bytes: Uint8Array): Snapshot {
  if (!(bytes instanceof Uint8Array)) throw new TypeError("restore: expected a Uint8Array snapshot");
  const fail = (why: string) => new RangeError(`restore: ${why}`);
  if (bytes.length < HEADER + 4) throw fail(`snapshot too short (${bytes.length} bytes)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw fail("not a focal-reward snapshot (bad magic)");
  const version = view.getUint16(4, true);
  if (version !== VERSION) throw fail(`unsupported snapshot version ${version} (this engine reads ${VERSION})`);
  const k = view.getUint32(8, true);
  if (k !== rubric.ids.length) throw fail(`snapshot has ${k} criteria, the rubric ${rubric.ids.length}`);
  const body = bodyLength(k);
  if (bytes.length !== body + 4) throw fail(`snapshot length ${bytes.length}, expected ${body + 4}`);
  if (view.getUint32(body, true) !== crc32(bytes.subarray(0, body))) throw fail("checksum mismatch (corrupt snapshot)");
  if (view.getUint32(12, true) !== stateFingerprint(rubric, method)) {
    throw fail(`snapshot was taken with another rubric or method (criterion ids, scales, polarities or method differ from this "${method}" engine)`);
  }
  const updates = view.getFloat64(16, true);
  if (!Number.isInteger(updates) || updates < 0) throw fail("bad update count");
  const sbar = new Float64Array(k);
  const seen = bytes.slice(HEADER + 8 * k, HEADER + 9 * k);
  for (let i = 0; i < k; i++) {
    sbar[i] = view.getFloat64(HEADER + 8 * i, true);
    if (seen[i] > 1 || !(sbar[i] >= 0 && sbar[i] <= 1) || (!seen[i] && sbar[i] !== 0)) throw fail(`bad state for criterion ${i}`);
  }
  return { sbar, seen, updates };
}
