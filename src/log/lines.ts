import { isAscii } from "node:buffer";

/**
 * Lines of a text stream in chunks or batches (one await per chunk, not per line). Linear in the
 * input's length however long a line is: a line split over many chunks is kept as its pieces and
 * joined once, and each byte is searched for newlines once.
 */

/** Lines, or batches of lines, as the readers take them. */
export type Lines = AsyncIterable<string | readonly string[]> | Iterable<string | readonly string[]>;

/**
 * Chunks of whole lines of `stream` (UTF-8; a leading byte order mark is dropped), joined by "\n"
 * without the last newline. Chunks are cut at their last newline byte (0x0A never occurs inside a
 * multi-byte character), so each piece decodes on its own: ASCII as one-byte strings (a copy, no
 * decoding), the rest as UTF-8.
 */
export async function* lineChunks(stream: NodeJS.ReadableStream): AsyncGenerator<{ chunk: string }> {
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
      if (chunk.length > 0) carry.push(chunk);
      continue;
    }
    // Only the line that spans chunks is copied (joined with its start); the rest decodes in place.
    if (carry.length > 0) {
      const first = chunk.indexOf(10);
      yield { chunk: decode(Buffer.concat([...carry, chunk.subarray(0, first)])) };
      if (first < nl) yield { chunk: decode(chunk.subarray(first + 1, nl)) };
    } else yield { chunk: decode(chunk.subarray(0, nl)) };
    carry = nl + 1 < chunk.length ? [chunk.subarray(nl + 1)] : [];
  }
  if (carry.length > 0) yield { chunk: decode(Buffer.concat(carry)) };
}

/** Batches of lines of `stream`, one array per chunk read (see lineChunks). */
export async function* lineBatches(stream: NodeJS.ReadableStream): AsyncGenerator<string[]> {
  for await (const { chunk } of lineChunks(stream)) yield chunk.split("\n");
}

function decode(b: Buffer): string {
  return isAscii(b) ? b.toString("latin1") : b.toString("utf8");
}

/** Each line of `lines`, one at a time. */
export async function* eachLine(lines: Lines): AsyncGenerator<string> {
  for await (const item of lines) {
    if (typeof item === "string") yield item;
    else yield* item;
  }
}
