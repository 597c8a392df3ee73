/**
 * The file store (issue 11): concurrent writers on one directory are safe by construction (the
 * next version's file is an exclusive create), the version is inside the CRC, failed writes leave
 * no temporary files, a failed directory fsync is reported as an unknown outcome, and faults of
 * the file system (ENOSPC, EMFILE) fail the write without changing what is stored.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import * as nodeFs from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { FileStore, KEEP, crc32 } from "../../dist/service/file-store.js";
import { createHandler } from "../../dist/service/index.js";
import { PROBLEM_TYPES } from "../../dist/service/problem.js";
import { StoreUnavailableError } from "../../dist/service/store.js";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "focal-file-store-"));
  dirs.push(d);
  return d;
}
const bytes = (...b: number[]) => Uint8Array.from(b);
const errno = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
/** Every file under dir, relative, sorted. */
function files(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[]).filter((f) => f.includes(".")).sort();
}

describe("FileStore: two writers on one directory", () => {
  it("of two stores with the same cached version only one writes the next; the other sees a conflict", async () => {
    const dir = tempDir();
    const a = await FileStore.open(dir, { durable: false });
    const b = await FileStore.open(dir, { durable: false }); // as a second server would (another PID namespace: no lock can tell)
    expect(await a.put("run/x", bytes(1), 0)).toBe(1);
    expect((await b.get("run/x"))!.version).toBe(1);
    expect(await a.put("run/x", bytes(2), 1)).toBe(2);
    // b still believes version 1: its compare-and-set must fail, not overwrite a's update
    expect(await b.put("run/x", bytes(3), 1)).toBeUndefined();
    expect(await b.get("run/x")).toEqual({ value: bytes(2), version: 2 });
    // a writer whose view is several versions old (those files are gone) cannot recreate one
    expect(await a.put("run/x", bytes(4), 2)).toBe(3);
    expect(await a.put("run/x", bytes(5), 3)).toBe(4);
    expect(await b.put("run/x", bytes(6), 2)).toBeUndefined();
    expect(await a.get("run/x")).toEqual({ value: bytes(5), version: 4 });
    // an unconditional write goes after the latest
    expect(await b.put("run/x", bytes(7))).toBe(5);
    await a.close();
    await b.close();
  });

  it("four stores incrementing one counter by compare-and-set: no increment lost or doubled", async () => {
    const dir = tempDir();
    const stores = await Promise.all(Array.from({ length: 4 }, () => FileStore.open(dir, { durable: false })));
    let acknowledged = 0;
    let unknown = 0; // a writer stalled while more than KEEP versions went by: it cannot tell
    await Promise.all(
      stores.map(async (s) => {
        for (let done = 0; done < 25; ) {
          const cur = await s.get("n");
          const n = cur ? new DataView(cur.value.buffer).getUint32(0, true) : 0;
          const next = new Uint8Array(4);
          new DataView(next.buffer).setUint32(0, n + 1, true);
          try {
            if ((await s.put("n", next, cur?.version ?? 0)) !== undefined) {
              done++;
              acknowledged++;
            }
          } catch (e) {
            if (!(e instanceof StoreUnavailableError && e.unknownOutcome)) throw e;
            unknown++;
          }
        }
      }),
    );
    const final = await stores[0]!.get("n");
    expect(acknowledged).toBe(100);
    const value = new DataView(final!.value.buffer).getUint32(0, true);
    expect(value - acknowledged).toBeGreaterThanOrEqual(0);
    expect(value - acknowledged).toBeLessThanOrEqual(unknown);
    expect(final!.version).toBe(value);
    for (const s of stores) await s.close();
    expect(files(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });
});

/** A store whose link runs `between` right after (or before) its real link: another writer's turn in the race window. */
async function storeWithTurn(dir: string, when: "before" | "after", between: () => Promise<void>) {
  let armed = false;
  const link: typeof nodeFs.link = async (from, to) => {
    if (armed && when === "before") { armed = false; await between(); }
    await nodeFs.link(from, to);
    if (armed && when === "after") { armed = false; await between(); }
  };
  const store = await FileStore.open(dir, { durable: false, fs: { link } });
  return { store, arm: () => { armed = true; } };
}
const u32 = (n: number) => new Uint8Array(new Uint32Array([n]).buffer);
const valueOf = (v: { value: Uint8Array } | undefined) => new DataView(v!.value.buffer, v!.value.byteOffset).getUint32(0, true);

describe("FileStore: a write built upon before its writer looks again", () => {
  it("another store writes the next version on this record between its link and its check: both are acknowledged, nothing doubled", async () => {
    const dir = tempDir();
    const other = await FileStore.open(dir, { durable: false });
    const increment = async (s: FileStore) => {
      const cur = await s.get("n");
      return s.put("n", u32((cur ? valueOf(cur) : 0) + 1), cur?.version ?? 0);
    };
    const { store, arm } = await storeWithTurn(dir, "after", async () => {
      expect(await increment(other)).toBe(3); // read this store's version 2, just linked
    });
    expect(await increment(store)).toBe(1);
    arm();
    // before the fix: the newer version made this store take its own write for a stale one, remove
    // it and report a conflict, and its retry then counted the increment twice
    expect(await increment(store)).toBe(2);
    expect(valueOf(await store.get("n"))).toBe(3);
    expect((await store.get("n"))!.version).toBe(3);
    await store.close();
    await other.close();
  });

  it("a store whose view is more than KEEP versions old sees a conflict before it writes", async () => {
    const dir = tempDir();
    const a = await FileStore.open(dir, { durable: false });
    const b = await FileStore.open(dir, { durable: false });
    expect(await a.put("k", u32(1), 0)).toBe(1);
    for (let v = 1; v <= KEEP + 3; v++) expect(await b.put("k", u32(v + 1), v)).toBe(v + 1);
    expect(await a.put("k", u32(99), 1)).toBeUndefined();
    expect(await a.get("k")).toEqual({ value: u32(KEEP + 4), version: KEEP + 4 });
    // only the newest and the KEEP below it are on disk
    const recs = files(dir).filter((f) => f.endsWith(".rec"));
    expect(recs.length).toBe(KEEP + 1);
    expect(recs.filter((f) => statSync(join(dir, f)).size > 0)).toEqual([recs.find((f) => f.endsWith(`${KEEP + 4}.rec`))]);
    await a.close();
    await b.close();
  });

  it("a writer stalled between its check and its link while more than KEEP versions went by: an unknown outcome, never a silent success", async () => {
    const dir = tempDir();
    const other = await FileStore.open(dir, { durable: false });
    const { store, arm } = await storeWithTurn(dir, "before", async () => {
      for (let v = 1; v <= KEEP + 2; v++) await other.put("k", u32(100 + v), v);
    });
    expect(await store.put("k", u32(1), 0)).toBe(1);
    arm();
    const err = await store.put("k", u32(2), 1).catch((e) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(err.unknownOutcome).toBe(true);
    expect(await store.get("k")).toEqual({ value: u32(100 + KEEP + 2), version: KEEP + 3 });
    await store.close();
    await other.close();
  });
});

describe("FileStore: a read racing a write", () => {
  it("a record emptied between the listing and the read (its successor was linked): the successor is read", async () => {
    const dir = tempDir();
    const writer = await FileStore.open(dir, { durable: false });
    expect(await writer.put("k", u32(1), 0)).toBe(1);
    let turn = true;
    const readFile = (async (path: Parameters<typeof nodeFs.readFile>[0], options?: Parameters<typeof nodeFs.readFile>[1]) => {
      if (turn && String(path).endsWith("1.rec")) {
        turn = false;
        expect(await writer.put("k", u32(2), 1)).toBe(2); // empties 1.rec after linking 2.rec
      }
      return nodeFs.readFile(path, options);
    }) as typeof nodeFs.readFile;
    const reader = await FileStore.open(dir, { durable: false, fs: { readFile } });
    expect(await reader.get("k")).toEqual({ value: u32(2), version: 2 });
    expect(turn).toBe(false);
    await reader.close();
    await writer.close();
  });
});

describe("FileStore: records", () => {
  it("the version is inside the CRC and must match the file's name", async () => {
    const dir = tempDir();
    const s = await FileStore.open(dir, { durable: false });
    await s.put("k", bytes(1, 2, 3));
    const [file] = files(dir).filter((f) => f.endsWith(".rec"));
    const rec = readFileSync(join(dir, file!));
    rec[4]! ^= 2; // version 1 -> 3
    writeFileSync(join(dir, file!), rec);
    await expect(s.get("k")).rejects.toThrow(/checksum mismatch for 'k'/);
    await s.close();
  });

  it("reads a record of the first layout (FRS1) and replaces it on the next write", async () => {
    const dir = tempDir();
    const value = bytes(9, 8, 7);
    const head = Buffer.alloc(12);
    head.writeUInt32LE(0x31535246, 0);
    head.writeUInt32LE(7, 4);
    head.writeUInt32LE(crc32(value), 8);
    const legacy = `${Buffer.from("run/old").toString("base64url")}.rec`;
    writeFileSync(join(dir, legacy), Buffer.concat([head, value]));
    const s = await FileStore.open(dir, { durable: false });
    expect(await s.get("run/old")).toEqual({ value, version: 7 });
    expect(await s.put("run/old", bytes(1), 7)).toBe(8);
    expect(readdirSync(dir)).not.toContain(legacy);
    expect(await s.get("run/old")).toEqual({ value: bytes(1), version: 8 });
    await s.close();
  });

  it("delete removes every file of the key", async () => {
    const dir = tempDir();
    const s = await FileStore.open(dir, { durable: false });
    await s.put("resp/r/1", bytes(1));
    await s.put("resp/r/1", bytes(2));
    await s.delete("resp/r/1");
    expect(await s.get("resp/r/1")).toBeUndefined();
    await s.close();
    expect(readdirSync(dir)).toEqual([]);
  });
});

describe("FileStore: faults", () => {
  it("ENOSPC or EMFILE while writing: the write fails, no .tmp is left, the old record stays", async () => {
    const dir = tempDir();
    let fail: string | undefined;
    const open: typeof nodeFs.open = async (path, flags, mode) => {
      const fh = await nodeFs.open(path, flags, mode);
      if (fail === "ENOSPC" && flags === "wx") {
        return Object.assign(Object.create(fh), { writev: async () => { throw errno("ENOSPC"); }, close: () => fh.close(), sync: () => fh.sync() });
      }
      if (fail === "EMFILE") {
        await fh.close();
        throw errno("EMFILE");
      }
      return fh;
    };
    const s = await FileStore.open(dir, { fs: { open } });
    expect(await s.put("k", bytes(1), 0)).toBe(1);
    for (const f of ["ENOSPC", "EMFILE"]) {
      fail = f;
      const err = await s.put("k", bytes(2), 1).catch((e: unknown) => e);
      // the store is unavailable (503, retry), and nothing was written: not an unknown outcome
      expect(err).toBeInstanceOf(StoreUnavailableError);
      expect((err as StoreUnavailableError).unknownOutcome).toBe(false);
      expect(((err as Error).cause as NodeJS.ErrnoException).code).toBe(f);
      fail = undefined;
      expect(files(dir).filter((x) => x.endsWith(".tmp"))).toEqual([]);
      expect(await s.get("k")).toEqual({ value: bytes(1), version: 1 });
    }
    expect(await s.put("k", bytes(3), 1)).toBe(2);
    await s.close();
  });

  it("short writes (a file size limit, a nearly full disk) are continued, never linked half-written", async () => {
    const dir = tempDir();
    let cap = Infinity;
    const open: typeof nodeFs.open = async (path, flags, mode) => {
      const fh = await nodeFs.open(path, flags, mode);
      if (flags !== "wx") return fh;
      let size = 0;
      // like RLIMIT_FSIZE: at most 7 bytes a call, a short count at the cap, EFBIG past it
      const writev = async (parts: NodeJS.ArrayBufferView[], position: number) => {
        const all = Buffer.concat(parts.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
        const n = Math.min(7, all.length, cap - size);
        if (n <= 0) throw errno("EFBIG");
        const { bytesWritten } = await fh.write(all, 0, n, position);
        size += bytesWritten;
        return { bytesWritten, buffers: parts };
      };
      return Object.assign(Object.create(fh), { writev, close: () => fh.close(), sync: () => fh.sync() });
    };
    const s = await FileStore.open(dir, { durable: false, fs: { open } });
    const value = Uint8Array.from({ length: 100 }, (_, i) => i);
    expect(await s.put("k", value, 0)).toBe(1);
    expect(await s.get("k")).toEqual({ value, version: 1 });
    cap = 50; // the next record does not fit: refused, the old one stays
    const err = await s.put("k", value, 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect(await s.get("k")).toEqual({ value, version: 1 });
    expect(files(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    await s.close();
  });

  it("the directory fsync fails after the link: an unknown outcome, and the record is there", async () => {
    const dir = tempDir();
    let failDirSync = false;
    const open: typeof nodeFs.open = async (path, flags, mode) => {
      const fh = await nodeFs.open(path, flags, mode);
      if (failDirSync && flags === "r") return Object.assign(Object.create(fh), { sync: async () => { throw errno("EIO"); }, close: () => fh.close() });
      return fh;
    };
    const s = await FileStore.open(dir, { fs: { open } });
    await s.put("k", bytes(1), 0);
    failDirSync = true;
    const err = await s.put("k", bytes(2), 1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreUnavailableError);
    expect((err as StoreUnavailableError).unknownOutcome).toBe(true);
    failDirSync = false;
    expect(await s.get("k")).toEqual({ value: bytes(2), version: 2 });
    await s.close();
  });

  it("through the handler: 500 outcome-unknown, and the retry with the same Idempotency-Key gets the stored answer", async () => {
    const dir = tempDir();
    let failRunSync = false;
    const open: typeof nodeFs.open = async (path, flags, mode) => {
      const fh = await nodeFs.open(path, flags, mode);
      // the fsync of the run record's directory (not of the stored responses')
      const runDir = String(path).endsWith(Buffer.from("run/r").toString("base64url"));
      if (failRunSync && flags === "r" && runDir) return Object.assign(Object.create(fh), { sync: async () => { throw errno("EIO"); }, close: () => fh.close() });
      return fh;
    };
    const store = await FileStore.open(dir, { fs: { open } });
    const h = createHandler({ rubric: [{ id: "a" }, { id: "b" }], createEngine, scope: "stream", store });
    const body = JSON.stringify({ run: "r", criteria: ["a", "b"], scores: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8], groupSizes: [4] });
    const post = () => h(new Request("http://t/v1/score", { method: "POST", headers: { "content-type": "application/json", "idempotency-key": "k1" }, body }));
    failRunSync = true;
    const first = await post();
    const problem = await first.json();
    expect(first.status).toBe(500);
    expect(problem.type).toBe(PROBLEM_TYPES.outcomeUnknown);
    failRunSync = false;
    const retry = await post();
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect((await retry.json()).seq).toBe(1);
    const state = await h(new Request("http://t/v1/runs/r/state"));
    expect(state.headers.get("x-focal-seq")).toBe("1");
    await h.close();
  });
});
