/**
 * The run ledger (src/service/ledger.ts) without HTTP: each typed outcome, the queue's order, the
 * group commit's compare-and-set retry, and the idempotency window, on the in-memory and file stores.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { FileStore } from "../../dist/service/file-store.js";
import { type ScoreJob, RunLedger, sha256hex } from "../../dist/service/ledger.js";
import { MemoryStore, type StateStore } from "../../dist/service/index.js";
import type { Engine, EngineOptions, ScoreResult } from "../../src/types.js";
import { prng } from "../support/prng.js";

const OPTIONS: EngineOptions = { rubric: { criteria: [{ id: "a", weight: 2 }, { id: "b" }, { id: "c" }] }, scope: "stream" };
const K = 3;

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function ledger(store: StateStore, o: { window?: number; maxBatch?: number; maxCachedRuns?: number } = {}) {
  const counts = { commits: 0, conflicts: 0, replays: 0 };
  const l = new RunLedger({
    store,
    createEngine: (purpose: string) => createEngine(purpose === "run" ? { ...OPTIONS, reuseOutputs: true } : OPTIONS),
    window: o.window ?? 16,
    windowBytes: 1 << 20,
    maxBatch: o.maxBatch ?? 256,
    maxCachedRuns: o.maxCachedRuns ?? 16,
    maxCachedBytes: 1 << 28,
    recycleCells: 1 << 20,
    events: { commit: (c: boolean) => (c ? counts.conflicts++ : counts.commits++), replay: () => counts.replays++ },
  });
  return { l, counts };
}

/** A batch of 2 groups of 3, seeded. */
function scores(seed: number): Float32Array {
  const r = prng(seed);
  return Float32Array.from({ length: 6 * K }, () => Math.round(r() * 100) / 100);
}

/** A job scoring `s`, answering its rewards and seq; keyed when `key` is given. */
function job(s: Float32Array, key?: string): ScoreJob {
  return {
    score: (e: Engine) => e.score(s, [3, 3]),
    render: (r: ScoreResult, seq: number) => JSON.stringify({ seq, rewards: Array.from(r.rewards) }),
    idempotency: key === undefined ? undefined : { scope: "test", key, body: new Uint8Array(s.buffer.slice(0)) },
  };
}

async function replayed(batches: Float32Array[]): Promise<Uint8Array> {
  const e = await createEngine(OPTIONS);
  for (const s of batches) e.score(s, [3, 3]);
  return e.snapshot();
}

async function stores(): Promise<[string, () => Promise<StateStore>][]> {
  const dir = mkdtempSync(join(tmpdir(), "focal-ledger-test-"));
  dirs.push(dir);
  let n = 0;
  return [
    ["memory", async () => new MemoryStore()],
    ["file", async () => FileStore.open(join(dir, String(n++)), { durable: false })],
  ];
}

describe.each(await stores())("RunLedger on the %s store", (_name, open) => {
  it("applied: concurrent jobs of a run end in the state of the same jobs applied in seq order", async () => {
    const store = await open();
    const { l, counts } = ledger(store);
    const batches = Array.from({ length: 20 }, (_, i) => scores(i));
    const outs = await Promise.all(batches.map((s) => l.score("r", job(s))));
    const order: Float32Array[] = [];
    for (const [i, o] of outs.entries()) {
      expect(o.kind).toBe("applied");
      if (o.kind === "applied") order[o.seq - 1] = batches[i]!;
    }
    expect(order.filter(Boolean)).toHaveLength(20);
    const view = await l.view("r");
    expect(view.seq).toBe(20);
    expect(view.snapshot).toEqual(await replayed(order));
    expect(counts.commits).toBeLessThan(20); // group commit: fewer writes than jobs
    expect((await l.view("other")).version).toBe(0);
    await store.close?.();
  });

  it("replayed, keyReused: a key answers its first body byte for byte, once applied; another body under it is refused", async () => {
    const store = await open();
    const { l, counts } = ledger(store);
    const s = scores(1);
    const dup = await Promise.all(Array.from({ length: 5 }, () => l.score("r", job(s, "k"))));
    expect(dup.filter((o) => o.kind === "applied")).toHaveLength(1);
    expect(dup.filter((o) => o.kind === "replayed")).toHaveLength(4);
    const first = dup.find((o) => o.kind === "applied") as { body: string };
    const again = await l.score("r", job(s, "k"));
    expect(again).toEqual({ kind: "replayed", body: first.body });
    expect(await l.score("r", job(scores(2), "k"))).toEqual({ kind: "keyReused" });
    expect(counts.replays).toBe(5);
    expect((await l.view("r")).seq).toBe(1);
    // keys are per run
    expect((await l.score("r2", job(s, "k"))).kind).toBe("applied");
    await store.close?.();
  });

  it("the window keeps the last N keys; a key that left it is applied again, its stored answers deleted", async () => {
    const store = await open();
    const { l } = ledger(store, { window: 2 });
    await l.score("r", job(scores(1), "k1"));
    await l.score("r", job(scores(2), "k2"));
    expect((await l.score("r", job(scores(1), "k1"))).kind).toBe("replayed");
    await l.score("r", job(scores(3), "k3"));
    const late = await l.score("r", job(scores(1), "k1"));
    expect(late.kind === "applied" && late.seq).toBe(4);
    await store.close?.();
  });

  it("rejected: the engine refusing one job fails it alone; the others of its batch apply", async () => {
    const store = await open();
    const { l } = ledger(store);
    const bad: ScoreJob = { score: (e: Engine) => e.score(new Float32Array(5), [3, 3]), render: () => "" };
    const [a, b, c] = await Promise.all([l.score("r", job(scores(1))), l.score("r", bad), l.score("r", job(scores(2)))]);
    expect(b!.kind).toBe("rejected");
    expect(b!.kind === "rejected" && b!.error).toBeInstanceOf(RangeError);
    expect([a, c].map((o) => o!.kind === "applied" && o!.seq)).toEqual([1, 2]);
    expect((await l.view("r")).snapshot).toEqual(await replayed([scores(1), scores(2)]));
    await store.close?.();
  });

  it("restore is its own job: restored (seq stays), preconditionFailed on a stale If-Match, invalidSnapshot for bad bytes", async () => {
    const store = await open();
    const { l } = ledger(store);
    await l.score("r", job(scores(1)));
    const v1 = await l.view("r");
    await l.score("r", job(scores(2)));
    expect(await l.restore("r", v1.snapshot!, 1)).toEqual({ kind: "preconditionFailed", version: 2 });
    const bad = v1.snapshot!.slice();
    bad[bad.length - 1]! ^= 0xff;
    const inv = await l.restore("r", bad);
    expect(inv.kind).toBe("invalidSnapshot");
    expect((await l.view("r")).version).toBe(2);
    expect(await l.restore("r", v1.snapshot!, 2)).toEqual({ kind: "restored", run: "r", version: 3, seq: 2 });
    const next = await l.score("r", job(scores(3)));
    expect(next.kind === "applied" && next.seq).toBe(3);
    expect((await l.view("r")).snapshot).toEqual(await replayed([scores(1), scores(3)]));
    await store.close?.();
  });

  it("two ledgers on one store (two isolates): compare-and-set retries keep every update exactly once", async () => {
    const store = await open();
    const one = ledger(store), two = ledger(store);
    const batches = Array.from({ length: 24 }, (_, i) => scores(100 + i));
    const outs: { seq: number }[] = [];
    for (let w = 0; w < 24; w += 6) {
      const wave = batches.slice(w, w + 6).map((s, i) => (i % 2 ? two.l : one.l).score("shared", job(s)));
      for (const o of await Promise.all(wave)) outs.push(o as { seq: number });
    }
    const seqs = outs.map((o) => o.seq);
    expect(new Set(seqs).size).toBe(24);
    const order: Float32Array[] = [];
    seqs.forEach((q, i) => (order[q - 1] = batches[i]!));
    const fresh = ledger(store).l;
    expect((await fresh.view("shared")).snapshot).toEqual(await replayed(order));
    expect(one.counts.conflicts + two.counts.conflicts).toBeGreaterThan(0);
    await store.close?.();
  });

  it("a run deleted and recreated by another ledger: one caching the old record at the same version reloads, never overwrites it (no ABA)", async () => {
    const store = await open();
    const a = ledger(store).l, b = ledger(store).l;
    const s = Array.from({ length: 5 }, (_, i) => scores(300 + i));
    await a.score("r", job(s[0]!));
    await a.score("r", job(s[1]!)); // a caches r at version 2
    expect((await b.remove("r")).kind).toBe("removed");
    expect((await b.view("r")).snapshot).toBeUndefined(); // a deleted run reads as no state
    await b.score("r", job(s[2]!));
    const recreated = await b.score("r", job(s[3]!)); // the new record has seq 2 and a version past the deleted one's
    expect(recreated.kind === "applied" && recreated.seq).toBe(2);
    expect((await b.view("r")).version).toBeGreaterThan(2);
    const late = await a.score("r", job(s[4]!));
    expect(late.kind === "applied" && late.seq).toBe(3);
    const fresh = await ledger(store).l.view("r");
    expect(fresh.seq).toBe(3);
    expect(fresh.snapshot).toEqual(await replayed([s[2]!, s[3]!, s[4]!]));
    // A ledger caching a deleted run does not bring it back either: its write starts the run afresh.
    await a.score("gone", job(s[0]!));
    await b.remove("gone");
    const after = await a.score("gone", job(s[1]!));
    expect(after.kind === "applied" && after.seq).toBe(1);
    expect((await ledger(store).l.view("gone")).snapshot).toEqual(await replayed([s[1]!]));
    await store.close?.();
  });
});

describe("RunLedger failures", () => {
  it("a restore queued behind an update of its batch fails its If-Match (the batch moved the state first)", async () => {
    const inner = new MemoryStore();
    let gate: Promise<void> | undefined;
    let release = () => {};
    const store: StateStore = { get: (k) => inner.get(k), delete: (k) => inner.delete(k), put: async (k, v, e) => (await gate, inner.put(k, v, e)) };
    const { l } = ledger(store);
    await l.score("r", job(scores(1)));
    const snap = (await l.view("r")).snapshot!;
    gate = new Promise((r) => (release = r));
    const a = l.score("r", job(scores(2))); // its commit waits at the gate; the next two queue up as one batch
    const b = l.score("r", job(scores(3)));
    const r = l.restore("r", snap, 2);
    for (let i = 0; i < 10; i++) await new Promise((res) => setImmediate(res));
    release();
    expect((await a).kind).toBe("applied");
    expect((await b).kind === "applied" && ((await b) as { seq: number }).seq).toBe(3);
    expect(await r).toEqual({ kind: "preconditionFailed", version: 2 });
  });

  it("storeFailed (commit): nothing of the batch is acknowledged, the state is reloaded, the next job continues", async () => {
    const inner = new MemoryStore();
    let fail = false;
    const store: StateStore = { get: (k) => inner.get(k), delete: (k) => inner.delete(k), put: (k, v, e) => (fail ? Promise.reject(new Error("disk full")) : inner.put(k, v, e)) };
    const { l } = ledger(store);
    await l.score("r", job(scores(1)));
    fail = true;
    const outs = await Promise.all([l.score("r", job(scores(2))), l.restore("r", (await l.view("r")).snapshot!)]);
    for (const o of outs) expect(o).toMatchObject({ kind: "storeFailed", during: "commit" });
    fail = false;
    const ok = await l.score("r", job(scores(3)));
    expect(ok.kind === "applied" && ok.seq).toBe(2);
    expect((await l.view("r")).snapshot).toEqual(await replayed([scores(1), scores(3)]));
  });

  it("storeFailed (load): a run whose record cannot be read answers that, and serves once it can", async () => {
    const inner = new MemoryStore();
    let fail = true;
    const store: StateStore = { get: (k) => (fail ? Promise.reject(new Error("EIO")) : inner.get(k)), delete: (k) => inner.delete(k), put: (k, v, e) => inner.put(k, v, e) };
    const { l } = ledger(store);
    expect(await l.score("r", job(scores(1)))).toMatchObject({ kind: "storeFailed", during: "load" });
    fail = false;
    expect((await l.score("r", job(scores(1)))).kind).toBe("applied");
  });

  it("storeFailed (replay): a stored answer that cannot be read fails that retry alone, with no unhandled rejection", async () => {
    const inner = new MemoryStore();
    let failResp = false;
    const store: StateStore = {
      get: (k) => (failResp && k.startsWith("resp/") ? Promise.reject(Object.assign(new Error("EMFILE: too many open files"), { code: "EMFILE" })) : inner.get(k)),
      delete: (k) => inner.delete(k),
      put: (k, v, e) => inner.put(k, v, e),
    };
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const { l } = ledger(store);
      await l.score("r", job(scores(1), "k"));
      failResp = true;
      // the retry shares a batch with a new update, whose commit must not be held up or lost
      const [retry, other] = await Promise.all([l.score("r", job(scores(1), "k")), l.score("r", job(scores(2)))]);
      expect(retry).toMatchObject({ kind: "storeFailed", during: "replay" });
      expect(other.kind === "applied" && other.seq).toBe(2);
      failResp = false;
      expect((await l.score("r", job(scores(1), "k"))).kind).toBe("replayed");
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });

  it("responseGone: a committed key whose stored answer was deleted", async () => {
    const store = new MemoryStore();
    const { l } = ledger(store);
    await l.score("r", job(scores(1), "k"));
    for (const k of store.keys()) if (k.startsWith("resp/")) await store.delete(k);
    expect(await l.score("r", job(scores(1), "k"))).toEqual({ kind: "responseGone" });
    expect((await l.view("r")).seq).toBe(1);
  });

  it("conflict: a state that moves under every attempt gives up after 16, nothing applied", async () => {
    const inner = new MemoryStore();
    let puts = 0;
    // Every compare-and-set of the run record misses, as if another writer always got there first.
    const store: StateStore = { get: (k) => inner.get(k), delete: (k) => inner.delete(k), put: async (k, v, e) => (k.startsWith("run/") ? (puts++, undefined) : inner.put(k, v, e)) };
    const { l, counts } = ledger(store);
    expect(await l.score("r", job(scores(1)))).toEqual({ kind: "conflict", attempts: 16 });
    expect(puts).toBe(16);
    expect(counts.conflicts).toBe(16);
    expect(inner.keys().filter((k) => k.startsWith("run/"))).toEqual([]);
  });

  it("a bug in a job (not an engine refusal) rejects, and the run keeps serving", async () => {
    const { l } = ledger(new MemoryStore());
    const buggy: ScoreJob = { score: (e: Engine) => e.score(scores(1), [3, 3]), render: () => { throw new TypeError("render bug"); } };
    await expect(l.score("r", buggy)).rejects.toThrow(/render bug/);
    const ok = await l.score("r", job(scores(2)));
    expect(ok.kind === "applied" && ok.seq).toBe(1);
  });

  it("replays survive a restart on the file store", async () => {
    const dir = mkdtempSync(join(tmpdir(), "focal-ledger-test-"));
    dirs.push(dir);
    const s1 = await FileStore.open(dir);
    const first = await ledger(s1).l.score("r", job(scores(1), "k"));
    await s1.close();
    const s2 = await FileStore.open(dir);
    const again = await ledger(s2).l.score("r", job(scores(1), "k"));
    expect(again).toEqual({ kind: "replayed", body: (first as { body: string }).body });
    await s2.close();
  });
});

describe("KeyWindow bytes", () => {
  const h = (i: number) => i.toString(16).padStart(16, "0");
  it("trims whole batches, oldest first, until the stored bytes fit; never the keys being added", async () => {
    const { KeyWindow, keyEntry, decodeRunRecord } = await import("../../dist/service/window.js");
    const w = new KeyWindow();
    // batches of 300, 500 (two keys) and 200 bytes
    const adds = [[keyEntry(h(1), h(100), 300)], [keyEntry(h(2), h(200), 500), keyEntry(h(3), h(200), 500)], [keyEntry(h(4), h(300), 200)]];
    for (const a of adds) w.apply(a, w.plan(a, 10, 1000).drop);
    expect(w.bytes).toBe(1000);
    expect(w.plan([keyEntry(h(5), h(400), 100)], 10, 1000)).toEqual({ drop: 1, freed: [h(100)] });
    expect(w.plan([keyEntry(h(5), h(400), 600)], 10, 1000)).toEqual({ drop: 3, freed: [h(100), h(200)] });
    expect(w.plan([keyEntry(h(5), h(400), 5000)], 10, 1000)).toEqual({ drop: 4, freed: [h(100), h(200), h(300)] });
    // the count bound may split a batch; its bytes stay counted while a key refers to it
    expect(w.plan([], 2, 1000)).toEqual({ drop: 2, freed: [h(100)] });
    // sizes survive the record
    const rec = decodeRunRecord(w.encode(4, [], 0, Uint8Array.of(7)));
    expect(rec.window.bytes).toBe(1000);
    expect(rec.window.entries.map((e: { size: number }) => e.size)).toEqual([300, 500, 500, 200]);
    // an FRR1 record (16-byte entries, before sizes): read as batches of 0 bytes
    const v1 = new Uint8Array(16 + 16 + 1);
    const dv = new DataView(v1.buffer);
    dv.setUint32(0, 0x31525246, true);
    dv.setUint32(4, 1, true);
    dv.setFloat64(8, 3, true);
    v1.set(keyEntry(h(9), h(900)).bytes.subarray(0, 16), 16);
    v1[32] = 5;
    const old = decodeRunRecord(v1);
    expect(old.seq).toBe(3);
    expect(old.window.batchOf(h(9))).toBe(h(900));
    expect(old.snapshot).toEqual(Uint8Array.of(5));
  });
});

describe("sha256hex (idempotency keys and bodies)", () => {
  it("Node's synchronous digest gives WebCrypto's bytes, so keys stored by either runtime match", async () => {
    const r = prng(9);
    for (const input of ["", "a", "/v1/score\u0000run\u0000step-1", "é\u0000✓", Uint8Array.from({ length: 5000 }, () => Math.floor(r() * 256))]) {
      const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
      const web = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
      const want = Array.from(web.subarray(0, 16), (b) => b.toString(16).padStart(2, "0")).join("");
      expect(await sha256hex(input, 16)).toBe(want);
      expect(await sha256hex(input, 8)).toBe(want.slice(0, 16));
    }
  });
});
