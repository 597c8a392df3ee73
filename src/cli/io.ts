/** Output helpers the commands share: stdout with backpressure, atomic files written as a stream, progress, tables. */
import { type FileHandle, open, rename, stat, unlink } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { writeFloat32 } from "./float-text.js";

/** Writes to stdout, waiting when the pipe is full. */
export function writeOut(text: string | Uint8Array): Promise<void> | void {
  if (!process.stdout.write(text)) return new Promise((res) => process.stdout.once("drain", () => res()));
}

/**
 * Fails now, before any work, when `path` cannot be created: its folder is missing or is not a
 * folder. (A command must not score a whole log and then fail to save it.)
 */
export async function checkWritable(flag: string, path: string): Promise<void> {
  const dir = dirname(resolve(path));
  let s;
  try {
    s = await stat(dir);
  } catch {
    throw new Error(`${flag} ${path}: the folder ${dir} does not exist`);
  }
  if (!s.isDirectory()) throw new Error(`${flag} ${path}: ${dir} is not a folder`);
  try {
    const t = await stat(path);
    if (t.isDirectory()) throw new Error(`${flag} ${path}: is a folder`);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
}

/**
 * A file written as a stream into `<path>.<pid>.tmp` and renamed over `path` on commit, so that
 * readers see the old or the new content, never a torn one; abort() removes the temporary file.
 * A path that exists and is not a regular file (/dev/null, /dev/stdout, a FIFO) is written in
 * place: renaming over it would replace the device or pipe with a file. Writes are buffered up
 * to 1 MiB.
 */
export class AtomicFile {
  private readonly tmp: string;
  private handle: Promise<FileHandle>;
  private pending: string[] = [];
  private bytes = 0;
  private done = false;
  /** Written in place (not a regular file). */
  private direct = false;

  constructor(readonly path: string) {
    this.tmp = `${path}.${process.pid}.tmp`;
    this.handle = stat(path).then(
      (st) => {
        this.direct = !st.isFile();
        return open(this.direct ? path : this.tmp, "w");
      },
      () => open(this.tmp, "w"),
    );
    this.handle.catch(() => {}); // reported by the first write or commit
  }

  async write(text: string | Uint8Array): Promise<void> {
    if (typeof text !== "string") {
      await this.flush();
      await (await this.handle).writeFile(text);
      return;
    }
    this.pending.push(text);
    this.bytes += text.length;
    if (this.bytes >= 1 << 20) await this.flush();
  }

  private async flush(): Promise<void> {
    if (this.pending.length === 0) return;
    const text = this.pending.join("");
    this.pending = [];
    this.bytes = 0;
    // writeFile loops until every byte is written (write() may write part and report no error).
    await (await this.handle).writeFile(text);
  }

  async commit(): Promise<void> {
    try {
      await this.flush();
      await (await this.handle).close();
      if (!this.direct) await rename(this.tmp, this.path);
      this.done = true;
    } finally {
      if (!this.done) await this.abort();
    }
  }

  /** Removes the temporary file (safe to call twice, or after a failed commit). */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.pending = [];
    try {
      await (await this.handle).close();
    } catch {
      // already closed, or never opened
    }
    if (!this.direct) await unlink(this.tmp).catch(() => {});
  }
}

/**
 * Output built as bytes in one buffer (large writes, no string per row): take() hands over what
 * was written and goes on in a new buffer of the same size (the old one belongs to the writer
 * now), or in the one taken before it.
 */
export class ByteRows {
  private buf: Buffer = Buffer.allocUnsafe(1 << 16);
  private at = 0;

  bytes(b: Uint8Array): void {
    if (this.at + b.length > this.buf.length) this.grow(b.length);
    this.buf.set(b, this.at);
    this.at += b.length;
  }

  /** `s` must be ASCII (numbers, fixed punctuation). */
  ascii(s: string): void {
    if (this.at + s.length > this.buf.length) this.grow(s.length);
    this.at += this.buf.write(s, this.at, "latin1");
  }

  /** A float32 output as JSON: String(x), or null (NaN and infinities cannot occur in outputs; null guards them). */
  number(x: number): void {
    if (this.at + 32 > this.buf.length) this.grow(32);
    const end = writeFloat32(this.buf, this.at, x);
    if (end >= 0) this.at = end;
    else this.ascii(Number.isFinite(x) ? String(x) : "null");
  }

  /**
   * What was written. `reuse`: the next rows go into the buffer taken before this one (its write
   * must be over), else into a new one. Fresh buffers per step cost their page faults.
   */
  take(reuse = false): Buffer {
    const done = this.buf.subarray(0, this.at);
    const spare = this.spare;
    if (reuse) this.spare = this.buf;
    this.buf = reuse && spare && spare.length >= this.buf.length ? spare : Buffer.allocUnsafe(this.buf.length);
    this.at = 0;
    return done;
  }
  private spare: Buffer | undefined;

  private grow(n: number): void {
    const b = Buffer.allocUnsafe(Math.max(2 * this.buf.length, this.at + n));
    this.buf.copy(b, 0, 0, this.at);
    this.buf = b;
  }
}

/** Writes the whole of `data` atomically. */
export async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const f = new AtomicFile(path);
  try {
    await f.write(data);
  } catch (e) {
    await f.abort();
    throw e;
  }
  await f.commit();
}

/**
 * A progress line on stderr, only when stderr is a terminal: rows, rows/s and, for a file, the
 * share read and the time left. tick() is cheap (it redraws at most every 150 ms).
 */
export function progress(label: string, source?: { bytesRead(): number; size: number | undefined }) {
  const on = process.stderr.isTTY === true;
  const t0 = performance.now();
  let last = 0;
  return {
    tick(rows: number): void {
      if (!on) return;
      const now = performance.now();
      if (now - last < 150) return;
      last = now;
      const secs = (now - t0) / 1000;
      let line = `${label}: ${rows.toLocaleString("en-US")} rows, ${fmtRate(rows / Math.max(secs, 1e-9))} rows/s`;
      const size = source?.size;
      if (size !== undefined && size > 0) {
        const f = Math.min(1, source!.bytesRead() / size);
        const fill = Math.round(f * 24);
        const eta = f > 0 ? (secs * (1 - f)) / f : NaN;
        line = `[${"#".repeat(fill)}${"-".repeat(24 - fill)}] ${(100 * f).toFixed(0).padStart(3)}% ${line}, ETA ${fmtTime(eta)}`;
      }
      process.stderr.write(`\r\x1b[K${line}`);
    },
    /** Clears the line (call before writing anything else to stderr). */
    done(): void {
      if (on) process.stderr.write("\r\x1b[K");
    },
  };
}

export function fmtRate(r: number): string {
  return r >= 1e6 ? `${(r / 1e6).toFixed(2)}M` : r >= 1e3 ? `${(r / 1e3).toFixed(1)}k` : r.toFixed(0);
}

function fmtTime(s: number): string {
  if (!Number.isFinite(s)) return "?";
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, "0")}`;
}

/** A plain-text table: the first column left-aligned, the others right-aligned, a rule under the head. */
export function textTable(head: readonly string[], body: readonly (readonly string[])[]): string {
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((r) => (r[c] ?? "").length)));
  const line = (r: readonly string[]) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ").trimEnd();
  return `${[line(head), widths.map((w) => "-".repeat(w)).join("  "), ...body.map(line)].join("\n")}\n`;
}

export function csvCell(s: string): string {
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}
