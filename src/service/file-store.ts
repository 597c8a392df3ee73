/**
 * A StateStore on the local file system, for Node (also works under Bun and Deno's node: layer).
 *
 * Each key is a directory, `<dir>/<base64url(key)>/`, holding its record as `<version>.rec`:
 * "FRS2", the version (u32 LE), a CRC-32 of the first 8 bytes and the value (u32 LE), then the
 * value. A write goes to a temporary file that is flushed (fsync) and then hard-linked to the next
 * version's name; the link is an exclusive create, so of any number of writers (processes on one
 * directory, even in different PID namespaces) only one can ever write version N, and the others
 * see a compare-and-set conflict and reload. A reader or a restarted process (kill -9, or with
 * `durable` a power cut) sees whole records only. The KEEP versions below the newest keep their
 * names, emptied, so that a name once used stays taken while a writer may still try it (see
 * #create); older ones are removed.
 *
 * The `.lock` file only names the process that opened the directory (a courtesy note when two
 * servers share it); correctness does not depend on it. Records of the first layout (FRS1, one
 * `<base64url(key)>.rec` file, its version outside the CRC) are read and replaced on the next write.
 */
import * as nodeFs from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { CorruptRecordError, type StateStore, StoreUnavailableError, type Versioned } from "./store.js";

/** The file system calls the store makes (tests inject faults: ENOSPC, EMFILE, a failing fsync). */
export interface FileStoreFs {
  open: typeof nodeFs.open;
  readFile: typeof nodeFs.readFile;
  readdir: typeof nodeFs.readdir;
  mkdir: typeof nodeFs.mkdir;
  link: typeof nodeFs.link;
  rm: typeof nodeFs.rm;
  truncate: typeof nodeFs.truncate;
  writeFile: typeof nodeFs.writeFile;
}

export interface FileStoreOptions {
  /** fsync files and the directory before a write resolves. Default true. Off: survives kill -9, not a power cut. */
  durable?: boolean;
  /** Replace some file system calls (fault injection in tests). */
  fs?: Partial<FileStoreFs>;
}

const MAGIC = 0x32535246; // "FRS2" little-endian
const MAGIC_V1 = 0x31535246; // "FRS1": version outside the CRC

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crcUpdate(c: number, bytes: Uint8Array): number {
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return c;
}

export function crc32(...parts: Uint8Array[]): number {
  let c = 0xffffffff;
  for (const p of parts) c = crcUpdate(c, p);
  return (c ^ 0xffffffff) >>> 0;
}

const keyDir = (key: string) => Buffer.from(key, "utf8").toString("base64url");
const REC = /^(\d+)\.rec$/;

const code = (e: unknown) => (e as NodeJS.ErrnoException | null)?.code;

/**
 * Versions kept below the newest. A version's name is removed only once a version more than KEEP
 * above it exists, so a writer that linked version N and then finds the newest at most N + KEEP
 * knows its name had never been used: its record is the one later versions were built on.
 */
export const KEEP = 8;

export class FileStore implements StateStore {
  readonly dir: string;
  readonly durable: boolean;
  /** The pid another live process wrote into `.lock` when this one opened the directory. */
  readonly sharedWith: number | undefined;
  readonly #fs: FileStoreFs;
  readonly #versions = new Map<string, number>();
  readonly #locks = new Map<string, Promise<unknown>>();
  #ownsLock: boolean;
  #closed = false;

  private constructor(dir: string, durable: boolean, fs: FileStoreFs, sharedWith: number | undefined) {
    this.dir = dir;
    this.durable = durable;
    this.#fs = fs;
    this.sharedWith = sharedWith;
    this.#ownsLock = sharedWith === undefined;
  }

  /** Open (creating it if needed) a state directory. */
  static async open(dir: string, options: FileStoreOptions = {}): Promise<FileStore> {
    const fs: FileStoreFs = { ...nodeFs, ...options.fs };
    await fs.mkdir(dir, { recursive: true });
    const sharedWith = await noteOwner(fs, dir);
    const store = new FileStore(dir, options.durable ?? true, fs, sharedWith);
    // Temporary files of writes that never reached their link (a killed process); with another
    // live owner they may be its writes in progress, so they stay.
    if (sharedWith === undefined) {
      for (const name of await fs.readdir(dir)) {
        if (name.endsWith(".tmp")) await fs.rm(join(dir, name), { force: true });
      }
    }
    return store;
  }

  /** Serialized with the key's writes, so the version cached is the newest this store saw. */
  get(key: string): Promise<Versioned | undefined> {
    return this.#serial(key, () => this.#read(key).catch(unavailable));
  }

  async #read(key: string): Promise<Versioned | undefined> {
    this.#check();
    for (let attempt = 0; ; attempt++) {
      const { latest } = await this.#list(key);
      if (latest === 0) {
        const legacy = await this.#legacy(key);
        this.#versions.set(key, legacy?.version ?? 0);
        return legacy;
      }
      let buf: Buffer;
      try {
        buf = await this.#fs.readFile(join(this.dir, keyDir(key), `${latest}.rec`));
      } catch (e) {
        // A newer version replaced it between the listing and the read: list again.
        if (code(e) === "ENOENT" && attempt < 16) continue;
        throw e;
      }
      let value: Uint8Array;
      try {
        value = decode(buf, key, latest);
      } catch (e) {
        // Emptied while being read: its successor's writer does that once the successor is linked.
        if (attempt < 16 && (await this.#list(key)).latest > latest) continue;
        throw e;
      }
      this.#versions.set(key, latest);
      return { value, version: latest };
    }
  }

  put(key: string, value: Uint8Array, expected?: number): Promise<number | undefined> {
    return this.#serial(key, async () => {
      this.#check();
      // The version only (from the file names): a corrupt record can be replaced.
      let current = this.#versions.get(key);
      if (current === undefined) current = await this.#latest(key);
      for (let attempt = 0; attempt < 64; attempt++) {
        if (expected !== undefined && expected !== current) return undefined;
        const version = current + 1;
        if (await this.#create(key, version, value)) {
          this.#versions.set(key, version);
          return version;
        }
        // Another writer has version N: reload (the compare-and-set then fails, or an unconditional write goes after it).
        this.#versions.delete(key);
        current = await this.#latest(key);
      }
      throw new StoreUnavailableError(`state store: '${key}' kept changing under 64 writes`);
    }).catch(unavailable);
  }

  delete(key: string): Promise<void> {
    return this.#serial(key, async () => {
      await this.#fs.rm(join(this.dir, keyDir(key)), { recursive: true, force: true });
      await this.#fs.rm(join(this.dir, `${keyDir(key)}.rec`), { force: true });
      this.#versions.set(key, 0);
    });
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.allSettled([...this.#locks.values()]);
    this.#closed = true;
    if (this.#ownsLock) {
      const lock = join(this.dir, ".lock");
      const pid = await this.#fs.readFile(lock, "utf8").catch(() => "");
      if (pid.trim() === String(process.pid)) await this.#fs.rm(lock, { force: true });
    }
  }

  /** Writes version `version` of `key` unless some writer did: true when this one did. */
  async #create(key: string, version: number, value: Uint8Array): Promise<boolean> {
    const fs = this.#fs;
    const sub = join(this.dir, keyDir(key));
    try {
      await fs.mkdir(sub);
      if (this.durable) await syncDir(fs, this.dir);
    } catch (e) {
      if (code(e) !== "EEXIST") throw e;
    }
    // Another writer has this version already: a conflict, before anything is written.
    if ((await this.#list(key)).latest >= version) return false;
    const head = Buffer.alloc(12);
    head.writeUInt32LE(MAGIC, 0);
    head.writeUInt32LE(version, 4);
    head.writeUInt32LE(crc32(head.subarray(0, 8), value), 8);
    // Random: writers in other PID namespaces may have this pid.
    const tmp = join(this.dir, `${keyDir(key)}.${version}.${randomBytes(8).toString("hex")}.tmp`);
    const target = join(sub, `${version}.rec`);
    try {
      const fh = await fs.open(tmp, "wx");
      try {
        // A write may be short (a file size limit, a nearly full disk): loop until all is written or it fails.
        const parts = [head, value];
        for (let done = 0, total = head.length + value.length; done < total; ) {
          const { bytesWritten } = await fh.writev(parts, done);
          if (bytesWritten === 0) throw Object.assign(new Error("state store: a write made no progress"), { code: "EIO" });
          done += bytesWritten;
          // drop what was written from the front of the parts
          for (let w = bytesWritten; w > 0; ) {
            const p0 = parts[0]!;
            if (p0.length <= w) { w -= p0.length; parts.shift(); } else { parts[0] = p0.subarray(w); w = 0; }
          }
        }
        if (this.durable) await fh.sync();
      } finally {
        await fh.close();
      }
      try {
        await fs.link(tmp, target); // the exclusive create
      } catch (e) {
        if (code(e) === "EEXIST") return false;
        throw e;
      }
    } finally {
      await fs.rm(tmp, { force: true }).catch(() => {});
    }
    // The record is visible now: from here a failure leaves the outcome unknown.
    try {
      // Newer versions built on this record are the common case under contention; only when the
      // newest is more than KEEP above could this name have been removed and re-created (a stalled
      // writer), and then whether later writers saw this record is unknowable.
      const { latest, versions } = await this.#list(key);
      if (latest > version + KEEP) throw new StoreUnavailableError(`state store: version ${version} of '${key}' was written while ${latest - version} newer ones were`, true);
      if (this.durable) await syncDir(fs, sub);
      // The value before this one is needed by no reader once this one is linked: only its name.
      if (versions.includes(version - 1)) {
        await fs.truncate(join(sub, `${version - 1}.rec`)).catch((e) => {
          if (code(e) !== "ENOENT") throw e; // removed by a writer far ahead
        });
      }
      for (const v of versions) if (v < latest - KEEP) await fs.rm(join(sub, `${v}.rec`), { force: true });
      await fs.rm(join(this.dir, `${keyDir(key)}.rec`), { force: true }); // a first-layout record
    } catch (e) {
      if (e instanceof StoreUnavailableError) throw e;
      throw new StoreUnavailableError(`state store: version ${version} of '${key}' was written but not flushed (${(e as Error).message})`, true, { cause: e });
    }
    return true;
  }

  async #list(key: string): Promise<{ latest: number; versions: number[] }> {
    let names: string[];
    try {
      names = await this.#fs.readdir(join(this.dir, keyDir(key)));
    } catch (e) {
      if (code(e) === "ENOENT") return { latest: 0, versions: [] };
      throw e;
    }
    const versions = names.map((n) => REC.exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
    return { latest: versions.reduce((a, b) => Math.max(a, b), 0), versions };
  }

  /** The newest version of `key` (0: none), from the file names: a corrupt record has one too. */
  async #latest(key: string): Promise<number> {
    return (await this.#list(key)).latest || ((await this.#legacy(key))?.version ?? 0);
  }

  /** A record of the first layout (FRS1), if there is one. */
  async #legacy(key: string): Promise<Versioned | undefined> {
    let buf: Buffer;
    try {
      buf = await this.#fs.readFile(join(this.dir, `${keyDir(key)}.rec`));
    } catch (e) {
      if (code(e) === "ENOENT") return undefined;
      throw e;
    }
    if (buf.length < 12 || buf.readUInt32LE(0) !== MAGIC_V1) throw new CorruptRecordError(`state store: bad record for '${key}'`);
    const value = new Uint8Array(buf.buffer, buf.byteOffset + 12, buf.length - 12).slice();
    if (crc32(value) !== buf.readUInt32LE(8)) throw new CorruptRecordError(`state store: checksum mismatch for '${key}'`);
    return { value, version: buf.readUInt32LE(4) };
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

/**
 * A failure of the file system itself (ENOSPC, EFBIG, EMFILE, EIO, ...) before anything was
 * written is the store being unavailable: nothing applied, retry later. Bad records stay errors.
 */
function unavailable(e: unknown): never {
  if (e instanceof StoreUnavailableError || code(e) === undefined) throw e;
  throw new StoreUnavailableError(`state store: ${(e as Error).message}`, false, { cause: e });
}

function decode(buf: Buffer, key: string, version: number): Uint8Array {
  if (buf.length < 12) throw new CorruptRecordError(`state store: bad record for '${key}' (${buf.length} bytes)`);
  const magic = buf.readUInt32LE(0);
  if (magic !== MAGIC) throw new CorruptRecordError(`state store: bad record for '${key}' (not FRS2)`);
  const value = new Uint8Array(buf.buffer, buf.byteOffset + 12, buf.length - 12).slice();
  if (crc32(buf.subarray(0, 8), value) !== buf.readUInt32LE(8)) throw new CorruptRecordError(`state store: checksum mismatch for '${key}'`);
  if (buf.readUInt32LE(4) !== version) throw new CorruptRecordError(`state store: record of '${key}' says version ${buf.readUInt32LE(4)}, its file ${version}`);
  return value;
}

async function syncDir(fs: FileStoreFs, dir: string): Promise<void> {
  const fh = await fs.open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes this pid into `<dir>/.lock` unless a live process's pid is there; returns that pid
 * (the directory is shared, which is safe, only slower under contention).
 */
async function noteOwner(fs: FileStoreFs, dir: string): Promise<number | undefined> {
  const path = join(dir, ".lock");
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await fs.writeFile(path, String(process.pid), { flag: "wx" });
      return undefined;
    } catch (e) {
      if (code(e) !== "EEXIST") throw e;
    }
    const pid = Number((await fs.readFile(path, "utf8").catch(() => "")).trim());
    if (Number.isInteger(pid) && pid > 0 && alive(pid)) return pid;
    await fs.rm(path, { force: true }); // left by a process that is gone
  }
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return code(e) === "EPERM";
  }
}
