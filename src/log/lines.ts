import { isAscii } from "node:buffer";

/**
 * Lines of a text stream in batches (one array per chunk read: one await per chunk, not per line).
 * Linear in the input's length however long a line is: a line split over many chunks is kept as
 * its pieces and joined once, and each byte is searched for newlines once.
 */

/** Lines, or batches of lines, as the readers take them. */
export type Lines = AsyncIterable<string | readonly string[]> | Iterable<string | readonly string[]>;

/**
 * Batches of lines of `stream` (UTF-8; a leading byte order mark is dropped). Chunks are cut at
 * their last newline byte (0x0A never occurs inside a multi-byte character), so each piece
 * decodes on its own: ASCII as one-byte strings (a copy, no decoding), the rest as UTF-8.
 */
export async function* lineBatches(stream: NodeJS.ReadableStream): AsyncGenerator<string[]> {
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
    let lines: string[];
    if (carry.length === 0) lines = decode(chunk.subarray(0, nl)).split("\n");
    else {
      const first = chunk.indexOf(10);
      const joined = decode(Buffer.concat([...carry, chunk.subarray(0, first)]));
      lines = first === nl ? [joined] : [joined, ...decode(chunk.subarray(first + 1, nl)).split("\n")];
    }
    carry = nl + 1 < chunk.length ? [chunk.subarray(nl + 1)] : [];
    yield lines;
  }
  if (carry.length > 0) yield [decode(Buffer.concat(carry))];
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
