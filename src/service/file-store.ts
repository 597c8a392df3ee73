/**
 * A StateStore on the local file system, for Node (also works under Bun and Deno's node: layer).
 *
 * Each key is one file, `<dir>/<base64url(key)>.rec`: "FRS1", the version (u32 LE), a CRC-32 of
 * the value (u32 LE), then the value. A write goes to a temporary file that is flushed (fsync)
 * and renamed over the old one, then the directory is flushed: a reader, or a process restarted
 * after a kill -9 (or, with `durable`, a power cut), sees either the old record or the new one,
 * never a mix. One process owns a directory at a time (a `.lock` file holding its pid; a lock
 * left by a dead process is taken over), so versions cached in memory are authoritative and a
 * compare-and-set needs no file lock.
 */
import { mkdir, open, readFile, readdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { StateStore, Versioned } from "./store.js";

export interface FileStoreOptions {
  /** fsync files and the directory before a write resolves. Default true. Off: survives kill -9, not a power cut. */
  durable?: boolean;
}

const MAGIC = 0x31535246; // "FRS1" little-endian

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function fileName(key: string): string {
  return Buffer.from(key, "utf8").toString("base64url") + ".rec";
}

export class FileStore implements StateStore {
  readonly dir: string;
  readonly durable: boolean;
  readonly #versions = new Map<string, number>();
  readonly #locks = new Map<string, Promise<unknown>>();
  #tmp = 0;
  #closed = false;

  private constructor(dir: string, durable: boolean) {
    this.dir = dir;
    this.durable = durable;
  }

  /** Open (creating it if needed) and lock a state directory. */
  static async open(dir: string, options: FileStoreOptions = {}): Promise<FileStore> {
    await mkdir(dir, { recursive: true });
    await takeLock(dir);
    const store = new FileStore(dir, options.durable ?? true);
    // Temporary files of writes that never reached their rename (a killed process).
    for (const name of await readdir(dir)) {
      if (name.endsWith(".tmp")) await rm(join(dir, name), { force: true });
    }
    return store;
  }

  /** Serialized with the key's writes: a read that raced a write would cache a stale version. */
  get(key: string): Promise<Versioned | undefined> {
    return this.#serial(key, () => this.#read(key));
  }

  async #read(key: string): Promise<Versioned | undefined> {
    this.#check();
    let buf: Buffer;
    try {
      buf = await readFile(join(this.dir, fileName(key)));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") {
        this.#versions.set(key, 0);
        return undefined;
      }
      throw e;
    }
    if (buf.length < 12 || buf.readUInt32LE(0) !== MAGIC) throw new Error(`state store: bad record for '${key}'`);
    const version = buf.readUInt32LE(4);
    const value = new Uint8Array(buf.buffer, buf.byteOffset + 12, buf.length - 12).slice();
    if (crc32(value) !== buf.readUInt32LE(8)) throw new Error(`state store: checksum mismatch for '${key}'`);
    this.#versions.set(key, version);
    return { value, version };
  }

  put(key: string, value: Uint8Array, expected?: number): Promise<number | undefined> {
    return this.#serial(key, async () => {
      this.#check();
      let current = this.#versions.get(key);
      if (current === undefined) current = (await this.#read(key))?.version ?? 0;
      if (expected !== undefined && expected !== current) return undefined;
      const version = current + 1;
      const head = Buffer.alloc(12);
      head.writeUInt32LE(MAGIC, 0);
      head.writeUInt32LE(version, 4);
      head.writeUInt32LE(crc32(value), 8);
      const path = join(this.dir, fileName(key));
      const tmp = `${path}.${process.pid}.${this.#tmp++}.tmp`;
      const fh = await open(tmp, "w");
      try {
        await fh.writev([head, value]);
        if (this.durable) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path);
      if (this.durable) await syncDir(this.dir);
      this.#versions.set(key, version);
      return version;
    });
  }

  delete(key: string): Promise<void> {
    return this.#serial(key, async () => {
      await rm(join(this.dir, fileName(key)), { force: true });
      this.#versions.set(key, 0);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.allSettled([...this.#locks.values()]);
    this.#closed = true;
    const lock = join(this.dir, ".lock");
    held.delete(lock);
    await unlink(lock).catch(() => {});
  }

  #check(): void {
    if (this.#closed) throw new Error("state store is closed");
  }

  #serial<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.#locks.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    this.#locks.set(key, tail);
    void tail.then(() => {
      if (this.#locks.get(key) === tail) this.#locks.delete(key);
    });
    return next;
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Directories this process holds (a lock file with our own pid but not listed here is stale). */
const held = new Set<string>();

async function takeLock(dir: string): Promise<void> {
  const path = join(dir, ".lock");
  if (held.has(path)) throw new Error(`state dir ${dir} is in use by process ${process.pid} (this one)`);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await writeFile(path, String(process.pid), { flag: "wx" });
      held.add(path);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const pid = Number((await readFile(path, "utf8").catch(() => "")).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new Error(`state dir ${dir} is in use by process ${pid}`);
    }
    await rm(path, { force: true }); // left by a process that is gone
  }
  throw new Error(`could not lock state dir ${dir}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}
