import { isAscii } from "node:buffer";

/**
 * Lines of a text stream in chunks or batches (one await per chunk, not per line). Linear in the
 * input's length however long a line is: a line split over many chunks is kept as its pieces and
 * joined once, and each byte is searched for newlines once.
 */

/** Lines, or batches of lines, as the readers take them. */
export type Lines = AsyncIterable<string | readonly string[]> | Iterable<string | readonly string[]>;

/**
 * Pieces are decoded at most 64 KiB at a time: V8 keeps such strings in its young generation,
 * whose memory is reused, while a larger string gets fresh pages (on this kind of VM a page
 * fault costs more than decoding the page: 1 MiB strings made reading 5-10x slower).
 */
const PIECE = 1 << 16;

/**
 * The bytes of a file, read into one reused buffer (fresh buffers per read, as a read stream
 * makes them, cost their page faults each time): each chunk is valid until the next is asked for.
 * `counter.bytes` follows the bytes read (for progress).
 */
export async function* fileChunks(path: string, counter: { bytes: number }): AsyncGenerator<Buffer> {
  const { open } = await import("node:fs/promises");
  const file = await open(path, "r");
  try {
    const buf = Buffer.allocUnsafe(1 << 18);
    for (;;) {
      const { bytesRead } = await file.read(buf, 0, buf.length, null);
      if (bytesRead === 0) return;
      counter.bytes += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await file.close();
  }
}

/**
 * The bytes of `stream` in chunks of whole lines (a leading UTF-8 byte order mark dropped),
 * without the last newline of each chunk. Chunks are cut at newline bytes (0x0A never occurs
 * inside a multi-byte character). Only a line that spans chunks is copied (joined once); the rest
 * are views of the input's buffers, which may be reused once the next chunk is asked for.
 */
export async function* lineBytes(stream: NodeJS.ReadableStream | AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<Buffer> {
  let carry: Buffer[] = [];
  let first = true;
  for await (const raw of stream as AsyncIterable<Buffer | string>) {
    let chunk = typeof raw === "string" ? Buffer.from(raw) : raw;
    if (first) {
      first = false;
      if (chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) chunk = chunk.subarray(3);
    }
    const nl = chunk.lastIndexOf(10);
    if (nl < 0) {
      if (chunk.length > 0) carry.push(Buffer.from(chunk));
      continue;
    }
    let from = 0;
    if (carry.length > 0) {
      from = chunk.indexOf(10) + 1;
      yield Buffer.concat([...carry, chunk.subarray(0, from - 1)]);
      if (from > nl) from = -1;
    }
    if (from >= 0) yield chunk.subarray(from, nl);
    carry = nl + 1 < chunk.length ? [Buffer.from(chunk.subarray(nl + 1))] : [];
  }
  if (carry.length > 0) yield Buffer.concat(carry);
}

/** lineBytes() decoded: chunks of whole lines joined by "\n", in pieces of at most PIECE bytes. */
export async function* lineChunks(stream: NodeJS.ReadableStream | AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<{ chunk: string }> {
  for await (const b of lineBytes(stream)) yield* pieces(b);
}

/** Whole lines `b` (without the last newline) in pieces of at most PIECE bytes, cut at newlines (a longer line is one piece). */
function* pieces(b: Buffer): Generator<{ chunk: string }> {
  let a = 0;
  while (b.length - a > PIECE) {
    let e = b.lastIndexOf(10, a + PIECE);
    if (e < a) e = b.indexOf(10, a + PIECE);
    if (e < 0) break;
    yield { chunk: decode(b.subarray(a, e)) };
    a = e + 1;
  }
  yield { chunk: decode(b.subarray(a)) };
}

/** Batches of lines of `stream`, one array per chunk (see lineChunks). */
export async function* lineBatches(stream: NodeJS.ReadableStream | AsyncIterable<Buffer> | Iterable<Buffer>): AsyncGenerator<string[]> {
  for await (const { chunk } of lineChunks(stream)) yield chunk.split("\n");
}

/** Bytes as text: ASCII as one-byte characters (a copy, no decoding), the rest as UTF-8. */
export function decode(b: Uint8Array): string {
  const buf = Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.length);
  return isAscii(buf) ? buf.toString("latin1") : buf.toString("utf8");
}

/** Each line of `lines`, one at a time. */
export async function* eachLine(lines: Lines): AsyncGenerator<string> {
  for await (const item of lines) {
    if (typeof item === "string") yield item;
    else yield* item;
  }
}
