/**
 * Issue 11's items that live in the run ledger and the routes, through the fetch handler: a stored
 * answer that cannot be read, keys scoped by route, corrupt or foreign run records and their
 * repair (PUT, DELETE /v1/runs/:run), an unparsable URL, and the disk and memory bounds.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { FileStore } from "../../dist/service/file-store.js";
import { serveNode } from "../../dist/service/node.js";
import { MemoryStore, createHandler, type FetchHandler, type StateStore } from "../../dist/service/index.js";
import type { HandlerOptions } from "../../dist/service/handler.js";
import type { EngineOptions } from "../../src/types.js";
import { call } from "../support/handler-call.js";
import { prng } from "../support/prng.js";

const RUBRIC = [{ id: "accuracy", weight: 2 }, { id: "format" }, { id: "toxicity", weight: -1 }];
const IDS = RUBRIC.map((c) => c.id);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "focal-ledger-http-"));
  dirs.push(d);
  return d;
}

function make(options: Partial<HandlerOptions> = {}): FetchHandler {
  return createHandler({ rubric: RUBRIC, createEngine, scope: "stream", log: () => {}, ...options } as HandlerOptions);
}


/** A columnar batch of `groups` groups of 4, seeded. */
function columnar(seed: number, run = "r", groups = 2) {
  const r = prng(seed);
  const n = groups * 4;
  return { run, criteria: IDS, scores: Array.from({ length: n * IDS.length }, () => Math.round(r() * 1000) / 1000), groupSizes: Array.from({ length: groups }, () => 4) };
}

/** The store's current record files by the key they hold (`<base64url(key)>/<version>.rec`). */
function filesByKey(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const d of readdirSync(dir, { withFileTypes: true })) {
    if (!d.isDirectory()) continue;
    const recs = readdirSync(join(dir, d.name)).filter((f) => /^\d+\.rec$/.test(f)).sort((x, y) => parseInt(x) - parseInt(y));
    if (recs.length) out.set(Buffer.from(d.name, "base64url").toString(), join(dir, d.name, recs[recs.length - 1]!));
  }
  return out;
}

function flipLastByte(file: string): void {
  const bytes = readFileSync(file);
  bytes[bytes.length - 1]! ^= 0xff;
  writeFileSync(file, bytes);
}

describe("a stored answer that cannot be read answers that request alone", () => {
  it("EMFILE reading it: 503 store-unavailable with Retry-After; a corrupt one: 500; the server keeps serving, nothing unhandled", async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown) => unhandled.push(e);
    process.on("unhandledRejection", onUnhandled);
    try {
      const inner = new MemoryStore();
      let emfile = false;
      const store: StateStore = {
        get: (k) => (emfile && k.startsWith("resp/") ? Promise.reject(Object.assign(new Error("EMFILE: too many open files, open"), { code: "EMFILE" })) : inner.get(k)),
        put: (k, v, e) => inner.put(k, v, e),
        delete: (k) => inner.delete(k),
      };
      const h = make({ store });
      const b = columnar(1);
      const first = await call(h, "POST", "/v1/score", b, { "idempotency-key": "k1" });
      expect(first.status).toBe(200);
      emfile = true;
      const [retry, other] = await Promise.all([
        call(h, "POST", "/v1/score", b, { "idempotency-key": "k1" }),
        call(h, "POST", "/v1/score", columnar(2)),
      ]);
      expect(retry.status).toBe(503);
      expect(retry.headers.get("content-type")).toBe("application/problem+json");
      expect(retry.headers.get("retry-after")).toBe("1");
      expect(retry.json.type).toBe("urn:focal-reward:problem:store-unavailable");
      expect(other.status).toBe(200);
      expect(other.json.seq).toBe(2);
      emfile = false;
      const again = await call(h, "POST", "/v1/score", b, { "idempotency-key": "k1" });
      expect(again.text).toBe(first.text);

      // The file store, its stored answer corrupted on disk: the CRC catches it.
      const dir = tempDir();
      const fs1 = await FileStore.open(dir, { durable: false });
      const lines: string[] = [];
      const f = make({ store: fs1, log: (l) => lines.push(l) });
      const one = await call(f, "POST", "/v1/score", b, { "idempotency-key": "k1" });
      const resp = [...filesByKey(dir)].find(([k]) => k.startsWith("resp/"))![1];
      flipLastByte(resp);
      const bad = await call(f, "POST", "/v1/score", b, { "idempotency-key": "k1" });
      expect(bad.status).toBe(500);
      expect(bad.json.detail).toMatch(/stored answer of this Idempotency-Key could not be read .*applied once/);
      expect(lines.some((l) => l.includes("internal error"))).toBe(true);
      const next = await call(f, "POST", "/v1/score", columnar(3));
      expect(next.status).toBe(200);
      expect(next.json.seq).toBe(one.json.seq + 1);
      await f.close();
      await new Promise((r) => setImmediate(r));
      expect(unhandled).toEqual([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
  });
});

describe("Idempotency-Keys are scoped by route", () => {
  it("one key on /v1/score and on /get_reward of one run: two updates, neither refused as reused", async () => {
    const h = make();
    const a = await call(h, "POST", "/v1/score", columnar(1), { "idempotency-key": "step-1" });
    const labels = ['{"accuracy": 1}', '{"accuracy": 0}'];
    const b = await call(h, "POST", "/get_reward?run=r", { query: ["p a", "p b"], prompts: ["p", "p"], labels }, { "idempotency-key": "step-1" });
    expect([a.status, b.status]).toEqual([200, 200]);
    expect(a.json.seq).toBe(1);
    expect(b.json.extra_logs.seq).toBe(2);
    expect(b.headers.get("idempotent-replayed")).toBeNull();
    // and each route still replays its own
    const b2 = await call(h, "POST", "/get_reward?run=r", { query: ["p a", "p b"], prompts: ["p", "p"], labels }, { "idempotency-key": "step-1" });
    expect(b2.text).toBe(b.text);
    expect(b2.headers.get("idempotent-replayed")).toBe("true");
  });
});

describe("a run record that cannot be used is clear and repairable", () => {
  it("corrupt on disk: GET and POST answer 409 saying what to do; PUT replaces it; DELETE /v1/runs/:run starts afresh", async () => {
    const dir = tempDir();
    const s1 = await FileStore.open(dir, { durable: false });
    const h1 = make({ store: s1 });
    await call(h1, "POST", "/v1/score", columnar(1), { "idempotency-key": "a" });
    const snapshot = new Uint8Array(await (await h1(new Request("http://service.test/v1/runs/r/state"))).arrayBuffer());
    await h1.close();
    flipLastByte(filesByKey(dir).get("run/r")!);

    const h = make({ store: await FileStore.open(dir, { durable: false }) });
    const post = await call(h, "POST", "/v1/score", columnar(2));
    const get = await call(h, "GET", "/v1/runs/r/state");
    for (const r of [post, get]) {
      expect(r.status).toBe(409);
      expect(r.json.field).toBe("run");
      expect(r.json.detail).toMatch(/^run 'r': its state record is corrupt \(state store: checksum mismatch/);
      expect(r.json.detail).toMatch(/PUT \/v1\/runs\/r\/state .* or DELETE \/v1\/runs\/r to start the run afresh/);
    }
    // If-Match cannot be checked against a corrupt record: refused the same way
    expect((await call(h, "PUT", "/v1/runs/r/state", snapshot, { "content-type": "application/octet-stream", "if-match": '"1"' })).status).toBe(409);
    const put = await call(h, "PUT", "/v1/runs/r/state", snapshot, { "content-type": "application/octet-stream" });
    expect(put.status).toBe(200);
    expect(put.json).toMatchObject({ run: "r", version: 2 }); // over the corrupt version 1: versions never restart
    const orphans = [...filesByKey(dir).keys()].filter((k) => k.startsWith("resp/")); // the corrupt record named them: they are never read again
    const after = await call(h, "POST", "/v1/score", columnar(2), { "idempotency-key": "b" });
    expect(after.status).toBe(200);
    const e = await createEngine({ rubric: { criteria: RUBRIC }, scope: "stream" });
    e.score(Float32Array.from(columnar(1).scores), [4, 4]);
    e.score(Float32Array.from(columnar(2).scores), [4, 4]);
    expect(new Uint8Array(await (await h(new Request("http://service.test/v1/runs/r/state"))).arrayBuffer())).toEqual(e.snapshot());

    const del = await call(h, "DELETE", "/v1/runs/r");
    expect(del.status).toBe(200);
    expect(del.json).toEqual({ run: "r", deleted: true });
    expect((await call(h, "GET", "/v1/runs/r/state")).status).toBe(404);
    expect((await call(h, "DELETE", "/v1/runs/r")).status).toBe(404);
    // Of the deleted run only its tombstone is left (one small record carrying the version), and the
    // names of the versions before it, emptied.
    const runDir = join(dir, Buffer.from("run/r").toString("base64url"));
    expect(readdirSync(runDir).map((f) => [f, statSync(join(runDir, f)).size])).toEqual([["1.rec", 0], ["2.rec", 0], ["3.rec", 0], ["4.rec", 12 + 16]]);
    const fresh = await call(h, "POST", "/v1/score", columnar(3));
    expect(fresh.json.seq).toBe(1);
    expect((await call(h, "GET", "/v1/runs/r/state")).headers.get("etag")).toBe('"5"'); // not "1": a stale If-Match cannot match the new run
    expect((await call(h, "GET", "/v1/runs/r")).headers.get("allow")).toBe("DELETE");
    await h.close();
    expect(orphans).toHaveLength(1);
    expect([...filesByKey(dir).keys()].filter((k) => k.startsWith("resp/"))).toEqual(orphans); // DELETE took the stored answers of key "b"
  });

  it("a record that is no run record, and a corrupt one deleted without a PUT", async () => {
    const store = new MemoryStore();
    await store.put("run/x", Uint8Array.of(1, 2, 3));
    const h = make({ store });
    const r = await call(h, "POST", "/v1/score", columnar(1, "x"));
    expect(r.status).toBe(409);
    expect(r.json.detail).toMatch(/not a focal-reward run record/);
    expect((await call(h, "DELETE", "/v1/runs/x")).status).toBe(200);
    expect((await call(h, "POST", "/v1/score", columnar(1, "x"))).json.seq).toBe(1);
  });

  it("another rubric on the same state dir: GET and POST agree (409, naming the rubric), DELETE starts the run with the new one", async () => {
    const dir = tempDir();
    const s1 = await FileStore.open(dir, { durable: false });
    const h1 = make({ store: s1 });
    expect((await call(h1, "POST", "/v1/score", columnar(1))).status).toBe(200);
    await h1.close();
    const other = [...RUBRIC, { id: "length" }];
    const h = createHandler({ rubric: other, createEngine, scope: "stream", store: await FileStore.open(dir, { durable: false }) } as HandlerOptions);
    const get = await call(h, "GET", "/v1/runs/r/state", undefined, { accept: "application/json" });
    const post = await call(h, "POST", "/v1/score", { run: "r", criteria: ["accuracy"], scores: [1, 0], groupSizes: [2] });
    for (const x of [get, post]) {
      expect(x.status).toBe(409);
      expect(x.json.detail).toMatch(/does not load in this server's engine \(.*criteria.*\); if the rubric or method changed, serve this run with the ones it was started with/);
    }
    expect(get.json.detail).toBe(post.json.detail);
    expect((await call(h, "DELETE", "/v1/runs/r")).status).toBe(200);
    expect((await call(h, "POST", "/v1/score", { run: "r", criteria: ["accuracy"], scores: [1, 0], groupSizes: [2] })).status).toBe(200);
    await h.close();
  });
});

describe("an unparsable request URL", () => {
  it("is a 400 problem, not a 500", async () => {
    const srv = await serveNode(make(), { port: 0 });
    try {
      for (const target of ["http://[bad/v1/score", "//", "http://x:99999/healthz"]) {
        const raw = await new Promise<string>((ok, fail) => {
          const s = connect(srv.port, "127.0.0.1", () => s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
          let d = "";
          s.on("data", (c) => (d += c));
          s.on("end", () => ok(d));
          s.on("error", fail);
        });
        expect(raw.split("\r\n")[0], target).toBe("HTTP/1.1 400 Bad Request");
        expect(raw).toMatch(/application\/problem\+json/);
        expect(raw).toMatch(/not a valid URL/);
      }
    } finally {
      await srv.close();
    }
  });
});

describe("disk: the idempotency window is bounded by bytes as well as count", () => {
  it("stored answers stay under idempotencyWindowBytes; an answer larger than it keeps its key (retry 409, not applied twice)", async () => {
    const store = new MemoryStore();
    const limit = 20_000;
    const h = make({ store, idempotencyWindowBytes: limit });
    const storedBytes = async () => {
      let n = 0;
      for (const k of store.keys()) if (k.startsWith("resp/")) n += (await store.get(k))!.value.length;
      return n;
    };
    let answer = 0;
    for (let i = 0; i < 30; i++) {
      const r = await call(h, "POST", "/v1/score", columnar(i, "r", 2), { "idempotency-key": `k${i}` });
      expect(r.status).toBe(200);
      answer = r.text.length;
      expect(await storedBytes()).toBeLessThanOrEqual(limit);
    }
    expect(30 * answer).toBeGreaterThan(2 * limit); // the bound did cut the window
    expect((await call(h, "POST", "/v1/score", columnar(29, "r", 2), { "idempotency-key": "k29" })).headers.get("idempotent-replayed")).toBe("true");
    // k0's answer left the window with its key: a retry is a new update (as past the count window)
    expect((await call(h, "POST", "/v1/score", columnar(0, "r", 2), { "idempotency-key": "k0" })).json.seq).toBe(31);
    // one answer over the limit: applied, its key kept without it
    const big = columnar(99, "r", 200);
    const first = await call(h, "POST", "/v1/score", big, { "idempotency-key": "big" });
    expect(first.text.length).toBeGreaterThan(limit);
    expect(first.json.seq).toBe(32);
    const retry = await call(h, "POST", "/v1/score", big, { "idempotency-key": "big" });
    expect(retry.status).toBe(409);
    expect(retry.json.field).toBe("Idempotency-Key");
    const state = await call(h, "GET", "/v1/runs/r/state", undefined, { accept: "application/json" });
    expect(state.json.seq).toBe(32);
    expect(await storedBytes()).toBeLessThanOrEqual(limit);
    expect(() => make({ idempotencyWindowBytes: -1 })).toThrow(/idempotencyWindowBytes must be an integer >= 0/);
  });
});

describe("memory: large calls give the engine's memory back; the cache is bounded by bytes", () => {
  /** createEngine, counting the engines made for runs (reuseOutputs) and the others. */
  function counting() {
    const made = { run: 0, other: 0 };
    const factory = async (o: EngineOptions) => {
      if (o.reuseOutputs) made.run++;
      else made.other++;
      return createEngine(o);
    };
    return { made, factory };
  }

  it("a call over engineRecycleCells remakes its run's engine from the snapshot; small calls reuse it; the state is as if nothing happened", async () => {
    const { made, factory } = counting();
    const h = make({ createEngine: factory, engineRecycleCells: 200 });
    const small = columnar(1, "r", 2); // 8 rows x 3 = 24 scores
    const large = columnar(2, "r", 20); // 80 rows x 3 = 240 scores
    await call(h, "POST", "/v1/score", small);
    await call(h, "POST", "/v1/score", small);
    expect(made.run).toBe(1);
    await call(h, "POST", "/v1/score", large);
    expect(made.run).toBe(1); // dropped after the call, made at the next one
    const last = await call(h, "POST", "/v1/score", columnar(3, "r", 2));
    expect(made.run).toBe(2);
    expect(last.json.seq).toBe(4);
    const e = await createEngine({ rubric: { criteria: RUBRIC }, scope: "stream" });
    for (const b of [small, small, large, columnar(3, "r", 2)]) e.score(Float32Array.from(b.scores), b.groupSizes);
    expect(new Uint8Array(await (await h(new Request("http://service.test/v1/runs/r/state"))).arrayBuffer())).toEqual(e.snapshot());
    expect(() => make({ engineRecycleCells: 0 })).toThrow(/engineRecycleCells/);
  });

  it("cached runs past maxCachedBytes leave the cache (reloaded from the store when used again); under it they stay", async () => {
    for (const [maxCachedBytes, expected] of [[256 * 1024 * 1024, 3], [1, 9]] as const) {
      const { made, factory } = counting();
      const h = make({ createEngine: factory, maxCachedBytes });
      for (let i = 0; i < 9; i++) expect((await call(h, "POST", "/v1/score", columnar(i, `run${i % 3}`))).status).toBe(200);
      expect(made.run).toBe(expected);
      const s = await call(h, "GET", "/v1/runs/run1/state", undefined, { accept: "application/json" });
      expect(s.json.seq).toBe(3);
    }
  });
});
