/**
 * The service's fetch handler in-process (issue 5): endpoints, input validation, per-run
 * serialization, compare-and-set, Idempotency-Key, judges, metrics and the file store.
 * Runs against the real engine in dist/ (`npm run build` first).
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { FileStore } from "../../dist/service/file-store.js";
import { KeyWindow, MemoryStore, createHandler, decodeRunRecord, type FetchHandler, type StateStore } from "../../dist/service/index.js";
import { keyEntry } from "../../dist/service/window.js";
import type { HandlerOptions } from "../../dist/service/handler.js";
import type { Engine, EngineOptions } from "../../src/types.js";
import { call } from "../support/handler-call.js";
import { prng } from "../support/prng.js";

const RUBRIC = [
  { id: "accuracy", weight: 2 },
  { id: "format", rule: { json: true as const } },
  { id: "length", rule: { minLength: 2, maxLength: 5, unit: "words" as const } },
  { id: "toxicity", weight: -1 },
];
const IDS = RUBRIC.map((c) => c.id);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "focal-service-test-"));
  dirs.push(d);
  return d;
}

function make(options: Partial<HandlerOptions> = {}): FetchHandler {
  return createHandler({ rubric: RUBRIC, createEngine, scope: "stream", ...options } as HandlerOptions);
}



/** A columnar batch (rubric order) of `groups` groups of 4, seeded. */
function columnar(seed: number, run = "r", groups = 3) {
  const r = prng(seed);
  const n = groups * 4;
  const scores = Array.from({ length: n * IDS.length }, () => Math.round(r() * 1000) / 1000);
  return { run, criteria: IDS, scores, groupSizes: Array.from({ length: groups }, () => 4) };
}

async function stateBytes(h: FetchHandler, run = "r"): Promise<Uint8Array | undefined> {
  const res = await h(new Request(`http://service.test/v1/runs/${run}/state`));
  return res.status === 200 ? new Uint8Array(await res.arrayBuffer()) : undefined;
}

/** The real engine, throwing `error()` on a batch whose first score is `first`. */
function throwingOn(first: number, error: () => Error) {
  return async (o: EngineOptions) => {
    const e = await createEngine(o);
    const score = e.score.bind(e);
    e.score = (s, g, opt) => {
      if (s[0] === Math.fround(first)) throw error();
      return score(s, g, opt);
    };
    return e;
  };
}

async function replay(bodies: { scores: number[]; groupSizes: number[] }[], options: Partial<EngineOptions> = {}): Promise<Engine> {
  const e = await createEngine({ rubric: RUBRIC.map(({ rule: _r, ...c }) => c), scope: "stream", ...options });
  for (const b of bodies) e.score(Float32Array.from(b.scores), b.groupSizes);
  return e;
}

describe("POST /v1/score", () => {
  it("record and columnar forms give the same result; the reply carries seq, weights and saturation", async () => {
    const b = columnar(1, "forms");
    const groups = b.groupSizes.map((size, g) => ({
      id: `p${g}`,
      rows: Array.from({ length: size }, (_, i) => Object.fromEntries(IDS.map((id, k) => [id, b.scores[(g * 4 + i) * IDS.length + k]]))),
    }));
    const h1 = make();
    const h2 = make();
    const a = await call(h1, "POST", "/v1/score", b);
    const c = await call(h2, "POST", "/v1/score", { run: "forms", step: 7, groups });
    expect(a.status).toBe(200);
    expect(c.status).toBe(200);
    expect(c.json.step).toBe(7);
    expect(c.json.groups).toEqual(["p0", "p1", "p2"]);
    for (const key of ["rewards", "direct", "advantages", "weights", "saturation", "metrics", "criteria"]) {
      expect(c.json[key]).toEqual(a.json[key]);
    }
    expect(a.json.seq).toBe(1);
    expect(a.json.rewards).toHaveLength(12);
    expect(Object.keys(a.json.weights)).toEqual(IDS);
    const e = await replay([b]);
    expect(await stateBytes(h1, "forms")).toEqual(e.snapshot());
  });

  it("columnar criteria may be a subset in any order; null = not judged", async () => {
    const h = make();
    const res = await call(h, "POST", "/v1/score", { criteria: ["toxicity", "accuracy"], scores: [0, 1, 1, null, 0.5, 0.5], groupSizes: [3] });
    expect(res.status).toBe(200);
    expect(res.json.run).toBe("default");
    expect(res.json.weights.format).toBeGreaterThan(0); // stream scope: no estimate yet = sbar 0
    const e = await createEngine({ rubric: RUBRIC.map(({ rule: _r, ...c }) => c), scope: "stream" });
    const nan = NaN;
    const r = e.score(Float32Array.from([1, nan, nan, 0, nan, nan, nan, 1, 0.5, nan, nan, 0.5]), [3]);
    expect(res.json.rewards).toEqual(Array.from(r.rewards));
  });

  it("the group scope keeps no state and accepts instance weights", async () => {
    const h = make({ scope: "group" });
    const res = await call(h, "POST", "/v1/score", {
      groups: [
        { id: "a", rows: [{ accuracy: 1, format: 0 }, { accuracy: 0, format: 1 }], weights: { accuracy: 1 } },
        { id: "b", rows: [{ accuracy: 1, format: 0 }, { accuracy: 0, format: 1 }] },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.json.seq).toBeUndefined();
    expect(res.json.weights).toHaveLength(2);
    expect(res.json.weights[0].format).toBe(0);
    expect(res.json.weights[1].format).toBeGreaterThan(0);
    expect((await call(h, "GET", "/v1/runs/default/state")).status).toBe(404);
  });

  it("the group scope refuses a method with state across calls (pow3r): it would share that state across runs and never save it", async () => {
    const h = make({ scope: "group", method: "pow3r" });
    await expect(h.ready).rejects.toThrow(/"pow3r" cannot be served.*share across all runs/);
    expect((await call(h, "POST", "/v1/score", { groups: [{ rows: [{ accuracy: 1 }, { accuracy: 0 }] }] })).status).toBe(500);
  });
});

describe("bad input: problem+json naming the field, state untouched", () => {
  const cases: [string, unknown, number, string][] = [
    ["malformed JSON", '{"groups": [', 400, "body"],
    ["empty body", "", 400, "body"],
    ["not an object", "[1,2]", 400, "body"],
    ["no form", { run: "r" }, 400, "groups"],
    ["both forms", { groups: [{ rows: [{}] }], scores: [] }, 400, "scores"],
    ["bad run id", { ...columnar(2), run: "../etc" }, 400, "run"],
    ["bad step", { ...columnar(2), step: -1 }, 400, "step"],
    ["unknown criterion (record)", { run: "r", groups: [{ id: "g", rows: [{ accuracy: 1, wit: 0.5 }] }] }, 400, "groups[0].rows[0].wit"],
    ["string score", { run: "r", groups: [{ id: "g", rows: [{ accuracy: "1" }] }] }, 400, "groups[0].rows[0].accuracy"],
    ["non-finite score", '{"run":"r","groups":[{"id":"g","rows":[{"accuracy":1e999}]}]}', 400, "groups[0].rows[0].accuracy"],
    ["empty rows", { run: "r", groups: [{ id: "g", rows: [] }] }, 400, "groups[0].rows"],
    ["unknown criterion (columnar)", { ...columnar(2), criteria: ["accuracy", "wit", "length", "toxicity"] }, 400, "criteria[1]"],
    ["duplicate criterion", { ...columnar(2), criteria: ["accuracy", "accuracy", "length", "toxicity"] }, 400, "criteria[1]"],
    ["wrong scores length", { ...columnar(2), scores: [1, 2, 3] }, 400, "scores"],
    ["bad group size", { ...columnar(2), groupSizes: [4, 0, 8] }, 400, "groupSizes[1]"],
    ["non-finite in columnar", '{"run":"r","criteria":["accuracy"],"scores":[1,-1e999],"groupSizes":[2]}', 400, "scores[1]"],
    ["bad valid mask", { ...columnar(2), valid: [true] }, 400, "valid"],
    ["negative instance weight", { run: "r", groups: [{ id: "g", rows: [{ accuracy: 1 }], weights: { accuracy: -1 } }] }, 400, "groups[0].weights.accuracy"],
  ];
  it.each(cases)("%s", async (_name, body, status, field) => {
    const h = make();
    expect((await call(h, "POST", "/v1/score", columnar(9))).status).toBe(200);
    const before = await stateBytes(h);
    const res = await call(h, "POST", "/v1/score", body);
    expect(res.status).toBe(status);
    expect(res.headers.get("content-type")).toBe("application/problem+json");
    expect(res.json.status).toBe(status);
    expect(res.json.field).toBe(field);
    expect(res.json["invalid-params"][0].name).toBe(field);
    expect(await stateBytes(h)).toEqual(before);
    const after = await call(h, "GET", "/v1/runs/r/state", undefined, { accept: "application/json" });
    expect(after.json.seq).toBe(1);
  });

  it("413 over the body limit, by Content-Length and by a streamed body", async () => {
    const h = make({ maxBodyBytes: 1000 });
    const big = JSON.stringify(columnar(3, "r", 20));
    const a = await call(h, "POST", "/v1/score", big);
    expect(a.status).toBe(413);
    expect(a.json.field).toBe("body");
    const chunks = [big.slice(0, 600), big.slice(600)];
    const stream = new ReadableStream({
      pull(c) {
        const next = chunks.shift();
        if (next === undefined) c.close();
        else c.enqueue(new TextEncoder().encode(next));
      },
    });
    const res = await h(new Request("http://service.test/v1/score", { method: "POST", body: stream, duplex: "half" } as RequestInit));
    expect(res.status).toBe(413);
    expect(await stateBytes(h)).toBeUndefined();
  });

  it("instance weights need the group scope", async () => {
    const h = make();
    const res = await call(h, "POST", "/v1/score", { ...columnar(5), weights: Array(12).fill(1) });
    expect(res.status).toBe(400);
    expect(res.json.field).toBe("weights");
  });

  it("an engine rejection is a 400 for that request only; the others of its batch apply", async () => {
    // The real engine, made to refuse one batch (first score 0.123) the way it refuses bad calls.
    const picky = throwingOn(0.123, () => new RangeError("score: refused"));
    const h = make({ createEngine: picky });
    const good = [columnar(6), columnar(7)];
    const refused = { ...columnar(8), scores: [0.123, ...columnar(8).scores.slice(1)] };
    const [a, b, c] = await Promise.all([good[0], refused, good[1]].map((x) => call(h, "POST", "/v1/score", x)));
    expect(b!.status).toBe(400);
    expect(b!.json.detail).toMatch(/refused/);
    expect([a!.json.seq, c!.json.seq]).toEqual([1, 2]);
    expect(await stateBytes(h)).toEqual((await replay(good)).snapshot());
  });

  it("a bug (an exception that is no input error) answers 500 and is logged, never 400; the run keeps serving", async () => {
    // The real engine, with a fault that is not a refusal of the input (a TypeError from inside).
    const faulty = throwingOn(0.321, () => new TypeError("cannot read properties of undefined"));
    const lines: string[] = [];
    for (const scope of ["stream", "group"] as const) {
      const h = make({ createEngine: faulty, scope, log: (l) => lines.push(l) });
      const res = await call(h, "POST", "/v1/score", { ...columnar(8), scores: [0.321, ...columnar(8).scores.slice(1)] });
      expect(res.status).toBe(500);
      expect(res.headers.get("content-type")).toBe("application/problem+json");
      expect(res.json.detail).toMatch(/internal error: cannot read properties/);
      expect((await call(h, "POST", "/v1/score", columnar(6))).status).toBe(200);
    }
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^focal-reward: internal error on POST \/v1\/score: TypeError: cannot read properties/);
  });

  it("404 for unknown routes, 405 with Allow for wrong methods", async () => {
    const h = make();
    const a = await call(h, "GET", "/v2/nothing");
    expect(a.status).toBe(404);
    expect(a.headers.get("content-type")).toBe("application/problem+json");
    const b = await call(h, "GET", "/v1/score");
    expect(b.status).toBe(405);
    expect(b.headers.get("allow")).toBe("POST");
    const c = await call(h, "DELETE", "/v1/runs/r/state");
    expect(c.status).toBe(405);
    expect(c.headers.get("allow")).toBe("GET, PUT, HEAD");
    expect((await call(h, "POST", "/healthz", {})).status).toBe(405);
  });

  it("HEAD answers like GET, without a body", async () => {
    const h = make();
    const get = await h(new Request("http://localhost/healthz"));
    const head = await h(new Request("http://localhost/healthz", { method: "HEAD" }));
    expect(head.status).toBe(get.status);
    expect(head.headers.get("content-type")).toBe(get.headers.get("content-type"));
    expect(await head.text()).toBe("");
    expect((await h(new Request("http://localhost/v1/score", { method: "HEAD" }))).status).toBe(405);
  });
});

describe("per-run stream state", () => {
  it("N concurrent requests end in the state of the same requests applied one by one, in seq order", async () => {
    const h = make({ store: new MemoryStore() });
    const bodies = Array.from({ length: 40 }, (_, i) => columnar(100 + i, "conc"));
    const replies = await Promise.all(bodies.map((b) => call(h, "POST", "/v1/score", b)));
    const order: number[] = [];
    replies.forEach((r, i) => {
      expect(r.status).toBe(200);
      order[r.json.seq - 1] = i;
    });
    expect(order.filter((x) => x !== undefined)).toHaveLength(40);
    const e = await replay(order.map((i) => bodies[i]!));
    expect(await stateBytes(h, "conc")).toEqual(e.snapshot());
  });

  it("two handlers on one store (two isolates): compare-and-set keeps every update exactly once", async () => {
    const store = new MemoryStore();
    const h1 = make({ store });
    const h2 = make({ store });
    const bodies = Array.from({ length: 30 }, (_, i) => columnar(200 + i, "shared"));
    const replies: Awaited<ReturnType<typeof call>>[] = [];
    for (let w = 0; w < 30; w += 6) {
      // waves: each handler's cached version is stale after the other one wrote
      const wave = bodies.slice(w, w + 6).map((b, i) => call(i % 2 ? h2 : h1, "POST", "/v1/score", b));
      replies.push(...(await Promise.all(wave)));
    }
    const seqs = replies.map((r) => r.json.seq as number);
    expect(new Set(seqs).size).toBe(30);
    expect(Math.max(...seqs)).toBe(30);
    const order: number[] = [];
    seqs.forEach((s, i) => (order[s - 1] = i));
    const e = await replay(order.map((i) => bodies[i]!));
    const rec = await store.get("run/shared");
    expect(decodeRunRecord(rec!.value).snapshot).toEqual(e.snapshot());
    const m = await (await h1(new Request("http://service.test/metrics"))).text();
    const m2 = await (await h2(new Request("http://service.test/metrics"))).text();
    const conflicts = (t: string) => Number(/focal_state_conflicts_total (\d+)/.exec(t)![1]);
    expect(conflicts(m) + conflicts(m2)).toBeGreaterThan(0);
  });

  it("runs are independent", async () => {
    const h = make();
    await call(h, "POST", "/v1/score", columnar(1, "a"));
    await call(h, "POST", "/v1/score", columnar(2, "b"));
    const r = await call(h, "POST", "/v1/score", columnar(3, "a"));
    expect(r.json.seq).toBe(2);
    expect(await stateBytes(h, "a")).toEqual((await replay([columnar(1), columnar(3)])).snapshot());
    expect(await stateBytes(h, "b")).toEqual((await replay([columnar(2)])).snapshot());
  });

  it("GET and PUT the state: snapshot round trip, JSON view, If-Match, corrupt bytes and other rubrics refused", async () => {
    const h = make();
    expect((await call(h, "GET", "/v1/runs/r/state")).status).toBe(404);
    await call(h, "POST", "/v1/score", columnar(1));
    const snap1 = (await stateBytes(h))!;
    const j = await call(h, "GET", "/v1/runs/r/state", undefined, { accept: "application/json" });
    expect(j.json).toMatchObject({ run: "r", version: 1, seq: 1, criteria: IDS });
    expect(Object.keys(j.json.saturation)).toEqual(IDS);
    expect(j.headers.get("etag")).toBe('"1"');
    await call(h, "POST", "/v1/score", columnar(2));
    expect(await stateBytes(h)).not.toEqual(snap1);

    // corrupt bytes: 400, state untouched
    const bad = snap1.slice();
    bad[bad.length - 1] ^= 0xff;
    const before = await stateBytes(h);
    const c = await call(h, "PUT", "/v1/runs/r/state", bad, { "content-type": "application/octet-stream" });
    expect(c.status).toBe(400);
    expect(c.json.field).toBe("body");
    expect(await stateBytes(h)).toEqual(before);
    // a snapshot of another rubric
    const other = await createEngine({ rubric: [{ id: "x" }, { id: "y" }], scope: "stream" });
    other.score(Float32Array.from([1, 0, 0, 1]), [2]);
    const o = await call(h, "PUT", "/v1/runs/r/state", other.snapshot(), { "content-type": "application/octet-stream" });
    expect(o.status).toBe(400);
    // stale If-Match
    const p412 = await call(h, "PUT", "/v1/runs/r/state", snap1, { "content-type": "application/octet-stream", "if-match": '"1"' });
    expect(p412.status).toBe(412);
    // restore (raw bytes, matching If-Match), then (JSON base64)
    const ok = await call(h, "PUT", "/v1/runs/r/state", snap1, { "content-type": "application/octet-stream", "if-match": '"2"' });
    expect(ok.status).toBe(200);
    expect(await stateBytes(h)).toEqual(snap1);
    const ok2 = await call(h, "PUT", "/v1/runs/r/state", { snapshot: j.json.snapshot });
    expect(ok2.status).toBe(200);
    // the next update continues from the restored state
    expect(ok2.json).toMatchObject({ run: "r", version: 4, seq: 2 }); // a restore is no update: seq stays
    const next = await call(h, "POST", "/v1/score", columnar(3));
    expect(next.status).toBe(200);
    expect(next.json.seq).toBe(3);
    expect(await stateBytes(h)).toEqual((await replay([columnar(1), columnar(3)])).snapshot());
  });

  it("a failing store write answers 503, acknowledges nothing and keeps the state", async () => {
    const inner = new MemoryStore();
    let fail = false;
    const store: StateStore = {
      get: (k) => inner.get(k),
      put: (k, v, e) => (fail ? Promise.reject(new Error("disk full")) : inner.put(k, v, e)),
      delete: (k) => inner.delete(k),
    };
    const h = make({ store });
    await call(h, "POST", "/v1/score", columnar(1));
    const before = await stateBytes(h);
    fail = true;
    const r = await call(h, "POST", "/v1/score", columnar(2));
    expect(r.status).toBe(503);
    expect(r.headers.get("retry-after")).toBe("1");
    fail = false;
    expect(await stateBytes(h)).toEqual(before);
    const ok = await call(h, "POST", "/v1/score", columnar(3));
    expect(ok.json.seq).toBe(2);
    expect(await stateBytes(h)).toEqual((await replay([columnar(1), columnar(3)])).snapshot());
  });
});

describe("Idempotency-Key", () => {
  it("a retried request gets the first response back and does not update twice", async () => {
    const h = make();
    const b = columnar(11);
    const first = await call(h, "POST", "/v1/score", b, { "idempotency-key": "step-1" });
    const again = await call(h, "POST", "/v1/score", b, { "idempotency-key": "step-1" });
    expect(again.status).toBe(200);
    expect(again.text).toBe(first.text);
    expect(again.headers.get("idempotent-replayed")).toBe("true");
    expect(await stateBytes(h)).toEqual((await replay([b])).snapshot());
    // same key, other body: 422
    const other = await call(h, "POST", "/v1/score", columnar(12), { "idempotency-key": "step-1" });
    expect(other.status).toBe(422);
    expect(other.json.field).toBe("Idempotency-Key");
    // keys are per run
    const otherRun = await call(h, "POST", "/v1/score", { ...b, run: "r2" }, { "idempotency-key": "step-1" });
    expect(otherRun.json.seq).toBe(1);
    expect(otherRun.headers.get("idempotent-replayed")).toBeNull();
  });

  it("duplicates in flight at the same time are applied once", async () => {
    const h = make();
    const b = columnar(13);
    const replies = await Promise.all(Array.from({ length: 8 }, () => call(h, "POST", "/v1/score", b, { "idempotency-key": "dup" })));
    expect(new Set(replies.map((r) => r.text)).size).toBe(1);
    expect(replies.filter((r) => r.headers.get("idempotent-replayed") === "true")).toHaveLength(7);
    expect(await stateBytes(h)).toEqual((await replay([b])).snapshot());
  });

  it("replays survive a restart (file store) and old keys leave the window", async () => {
    const dir = tempDir();
    const b = columnar(14);
    const store1 = await FileStore.open(dir);
    const h1 = make({ store: store1, idempotencyWindow: 3 });
    const first = await call(h1, "POST", "/v1/score", b, { "idempotency-key": "k0" });
    await h1.close();
    const store2 = await FileStore.open(dir);
    const h2 = make({ store: store2, idempotencyWindow: 3 });
    const again = await call(h2, "POST", "/v1/score", b, { "idempotency-key": "k0" });
    expect(again.text).toBe(first.text);
    for (let i = 1; i <= 3; i++) await call(h2, "POST", "/v1/score", columnar(20 + i), { "idempotency-key": `k${i}` });
    // k0 fell out of the 3-key window: its stored response was deleted, a retry is a new update
    const late = await call(h2, "POST", "/v1/score", b, { "idempotency-key": "k0" });
    expect(late.json.seq).toBe(5);
    await h2.close();
    const files = readdirSync(dir).filter((f) => !f.startsWith(".")).map((f) => Buffer.from(f, "base64url").toString());
    expect(files.filter((f) => f.startsWith("resp/")).length).toBeLessThanOrEqual(3);
  });

  it("a crash after the commit but before the answer: the retry is answered from the store, not applied again", async () => {
    const disk = new MemoryStore(); // outlives the "process"
    let crashed = false;
    const dying: StateStore = {
      get: (k) => disk.get(k),
      delete: (k) => disk.delete(k),
      // the run record is written, then the process dies before anything else happens
      put: async (k, v, e) => {
        const version = await disk.put(k, v, e);
        if (k.startsWith("run/")) {
          crashed = true;
          return new Promise<number | undefined>(() => {});
        }
        return version;
      },
    };
    const h1 = make({ store: dying });
    const b = columnar(15);
    const lost = call(h1, "POST", "/v1/score", b, { "idempotency-key": "step-9" });
    // Wait for the write (bounded by a count, not a time: a loaded machine is only slower).
    for (let i = 0; i < 2000 && !crashed; i++) await new Promise((r) => setTimeout(r, 5));
    expect(crashed).toBe(true);
    void lost; // never answered
    const h2 = make({ store: disk }); // the restarted process
    const retry = await call(h2, "POST", "/v1/score", b, { "idempotency-key": "step-9" });
    expect(retry.status).toBe(200);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.json.seq).toBe(1);
    expect(await stateBytes(h2)).toEqual((await replay([b])).snapshot());
    const next = await call(h2, "POST", "/v1/score", columnar(16));
    expect(next.json.seq).toBe(2);
  });

  it("rejects an empty or overlong key", async () => {
    const h = make();
    const r = await call(h, "POST", "/v1/score", columnar(1), { "idempotency-key": "x".repeat(300) });
    expect(r.status).toBe(400);
    expect(r.json.field).toBe("Idempotency-Key");
  });
});

describe("POST /get_reward (OpenRLHF) and judges", () => {
  it("labels judge: scores from the label JSON; groups = runs of equal prompts", async () => {
    const h = make();
    const labels = [
      { accuracy: 1, format: 1 },
      { accuracy: 0, format: 1 },
      { accuracy: 1, format: 0 },
      { accuracy: 0.5, format: 0.5 },
    ].map((l) => JSON.stringify(l));
    const res = await call(h, "POST", "/get_reward?run=orl", { query: ["p1 a", "p1 b", "p2 c", "p2 d"], prompts: ["p1", "p1", "p2", "p2"], labels });
    expect(res.status).toBe(200);
    expect(res.json.rewards).toHaveLength(4);
    expect(res.json.scores).toHaveLength(4);
    expect(res.json.extra_logs.judge_failures).toBe(0);
    expect(res.json.extra_logs.seq).toBe(1);
    const direct = await call(make(), "POST", "/v1/score", {
      run: "orl",
      criteria: ["accuracy", "format"],
      scores: [1, 1, 0, 1, 1, 0, 0.5, 0.5],
      groupSizes: [2, 2],
    });
    expect(res.json.rewards).toEqual(direct.json.rewards);
  });

  it("rules judge: regex, length in words, valid JSON, contains / not-contains", async () => {
    const h = make({
      judge: "rules",
      rules: {
        accuracy: [{ regex: "answer", flags: "i" }, { contains: ["42"] }],
        format: { json: true },
        length: { minLength: 2, maxLength: 5, unit: "words" },
        toxicity: { notContains: ["idiot"], ignoreCase: true },
      },
    });
    const res = await call(h, "POST", "/get_reward", {
      query: ['Q: {"Answer": 42}', "Q: answer: 41 you IDIOT"],
      prompts: ["Q:", "Q:"],
      group_sizes: [1, 1],
    });
    expect(res.status).toBe(200);
    // row 0 (response ` {"Answer": 42}`): accuracy 1, format 1, length 2 words -> 1, no insult -> 1
    // row 1 (response ` answer: 41 you IDIOT`): accuracy 1/2, format 0, 4 words -> 1, insult -> 0
    const e = await createEngine({ rubric: RUBRIC.map(({ rule: _r, ...c }) => c), scope: "stream" });
    const r = e.score(Float32Array.from([1, 1, 1, 1, 0.5, 0, 1, 0]), [1, 1]);
    expect(res.json.rewards).toEqual(Array.from(r.rewards));
  });

  it("the rubric's own rule fields feed the rules judge", async () => {
    const h = make({ judge: "rules" });
    const res = await call(h, "POST", "/get_reward", { query: ['P {"a": 1}', "P not json at all here ok"], prompts: ["P", "P"] });
    expect(res.status).toBe(200);
    expect(res.json.extra_logs.judge_failures).toBe(0);
  });

  it("a judge that throws, times out or answers garbage marks its rollout invalid; the batch succeeds", async () => {
    let calls = 0;
    const h = make({
      judgeTimeoutMs: 50,
      judge: async (query) => {
        calls++;
        if (query === "throw") throw new Error("judge down");
        if (query === "slow") return new Promise((r) => setTimeout(() => r({ accuracy: 1 }), 2000));
        if (query === "garbage") return { accuracy: Infinity };
        if (query === "unknown") return { wit: 1 };
        return { accuracy: query === "good" ? 1 : 0, format: 1 };
      },
    });
    const t0 = Date.now();
    const res = await call(h, "POST", "/get_reward", {
      query: ["good", "bad", "throw", "slow", "garbage", "unknown"],
      prompts: ["p", "p", "p", "p", "p", "p"],
    });
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(res.status).toBe(200);
    expect(calls).toBe(6);
    expect(res.json.extra_logs.judge_failures).toBe(4);
    // invalid rows get the mean reward of the valid rows of their group (spec step 8)
    const [good, bad, ...invalid] = res.json.rewards as number[];
    for (const v of invalid) expect(v).toBeCloseTo((good! + bad!) / 2, 6);
    const m = await (await h(new Request("http://service.test/metrics"))).text();
    expect(m).toMatch(/focal_judge_failures_total\{reason="timeout"\} 1/);
    expect(m).toMatch(/focal_judge_failures_total\{reason="error"\} 1/);
    expect(m).toMatch(/focal_judge_failures_total\{reason="invalid"\} 2/);
  });

  it("bad /get_reward bodies name the field", async () => {
    const h = make();
    const cases: [unknown, string][] = [
      [{}, "query"],
      [{ query: ["a", 1] }, "query[1]"],
      [{ query: ["a", "b"], prompts: ["a"] }, "prompts"],
      [{ query: ["a"], labels: [] }, "labels"],
      [{ query: ["a"], labels: ["{}"], run: "bad run" }, "run"],
      [{ query: ["a", "b"], group_sizes: [1] }, "group_sizes"],
      [{ query: ["a"], run: "bad run" }, "run"],
      [{ query: ["a"], prompts: ["a"] }, "labels"], // the labels judge needs labels
    ];
    for (const [body, field] of cases) {
      const r = await call(h, "POST", "/get_reward", body);
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.json.field).toBe(field);
    }
  });

  it("an invalid rule is refused when the handler is made", () => {
    expect(() => make({ judge: "rules", rules: { accuracy: { regex: "(" } } })).toThrow(/rules.accuracy.regex/);
    expect(() => make({ judge: "rules", rules: { accuracy: { json: true, contains: "x" } as never } })).toThrow(/exactly one/);
  });
});

describe("/healthz and /metrics", () => {
  it("healthz reports the scope and backend; metrics are Prometheus text with per-run weights", async () => {
    const h = make();
    const hz = await call(h, "GET", "/healthz");
    expect(hz.status).toBe(200);
    expect(hz.json).toMatchObject({ status: "ok", scope: "stream", criteria: IDS });
    await call(h, "POST", "/v1/score", columnar(1, 'run"x'.replace('"', "-")));
    await call(h, "POST", "/v1/score", "{");
    const res = await h(new Request("http://service.test/metrics"));
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0.0.4/);
    const text = await res.text();
    expect(text).toMatch(/^focal_requests_total\{route="\/v1\/score",method="POST",status="200"\} 1$/m);
    expect(text).toMatch(/^focal_requests_total\{route="\/v1\/score",method="POST",status="400"\} 1$/m);
    expect(text).toMatch(/^focal_request_duration_seconds_bucket\{route="\/v1\/score",le="\+Inf"\} 2$/m);
    expect(text).toMatch(/^focal_request_duration_seconds_count\{route="\/v1\/score"\} 2$/m);
    expect(text).toMatch(/^focal_run_weight\{run="run-x",criterion="accuracy"\} 0\.\d+/m);
    expect(text).toMatch(/^focal_run_saturation\{run="run-x",criterion="toxicity"\} /m);
    expect(text).toMatch(/^focal_run_updates\{run="run-x"\} 1$/m);
    // every sample line is `name{labels} value`
    for (const line of text.trim().split("\n")) {
      if (!line.startsWith("#")) expect(line).toMatch(/^[a-z_]+(\{[^}]*\})? (-?[\d.e+-]+|NaN|\+Inf)$/);
    }
  });

  it("after close(): 503 for new requests, queued updates finished first", async () => {
    const h = make();
    const pending = Promise.all(Array.from({ length: 5 }, (_, i) => call(h, "POST", "/v1/score", columnar(i))));
    await h.close();
    for (const r of await pending) expect(r.status).toBe(200);
    expect((await call(h, "GET", "/healthz")).status).toBe(503);
  });
});

describe("KeyWindow (the idempotency window in the run record)", () => {
  it("plans, encodes and applies without changing itself before the commit; frees batches no key refers to", () => {
    const h = (i: number) => i.toString(16).padStart(16, "0");
    const w = new KeyWindow();
    const a = [keyEntry(h(1), h(100)), keyEntry(h(2), h(100))];
    const p1 = w.plan(a, 3);
    expect(p1).toEqual({ drop: 0, freed: [] });
    const rec1 = w.encode(2, a, p1.drop, Uint8Array.of(9, 9));
    expect(w.size).toBe(0); // not applied yet
    w.apply(a, p1.drop);
    const b = [keyEntry(h(3), h(200)), keyEntry(h(4), h(200))];
    const p2 = w.plan(b, 3);
    expect(p2).toEqual({ drop: 1, freed: [] }); // batch 100 still has key 2
    const rec2 = w.encode(4, b, p2.drop, Uint8Array.of(7));
    w.apply(b, p2.drop);
    expect(w.batchOf(h(1))).toBeUndefined();
    expect(w.batchOf(h(2))).toBe(h(100));
    expect(w.plan([keyEntry(h(5), h(300))], 3)).toEqual({ drop: 1, freed: [h(100)] });
    const d1 = decodeRunRecord(rec1);
    expect(d1.seq).toBe(2);
    expect(d1.snapshot).toEqual(Uint8Array.of(9, 9));
    expect(d1.window.entries.map((e: { hash: string }) => e.hash)).toEqual([h(1), h(2)]);
    const d2 = decodeRunRecord(rec2);
    expect(d2.window.entries.map((e: { hash: string; batch: string }) => [e.hash, e.batch])).toEqual([[h(2), h(100)], [h(3), h(200)], [h(4), h(200)]]);
    expect(() => decodeRunRecord(Uint8Array.of(1, 2, 3))).toThrow(/run record/);
  });
});

describe("FileStore", () => {
  it("compare-and-set, versions survive reopening, corrupt records are detected", async () => {
    const dir = tempDir();
    const s = await FileStore.open(dir, { durable: false });
    expect(await s.get("run/a")).toBeUndefined();
    expect(await s.put("run/a", Uint8Array.of(1, 2, 3), 0)).toBe(1);
    expect(await s.put("run/a", Uint8Array.of(4), 0)).toBeUndefined();
    expect(await s.put("run/a", Uint8Array.of(4, 5), 1)).toBe(2);
    const racers = await Promise.all([s.put("run/a", Uint8Array.of(6), 2), s.put("run/a", Uint8Array.of(7), 2)]);
    expect(racers.filter((v) => v === 3)).toHaveLength(1);
    expect(racers.filter((v) => v === undefined)).toHaveLength(1);
    // A second opener is told who else uses the directory (a note: writes stay safe).
    const other = await FileStore.open(dir);
    expect(other.sharedWith).toBe(process.pid);
    await other.close();
    await s.close();
    const s2 = await FileStore.open(dir);
    const got = await s2.get("run/a");
    expect(got!.version).toBe(3);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    // flip a byte of the value: the CRC catches it
    const sub = readdirSync(dir).find((f) => !f.startsWith("."))!;
    // older versions keep their names (never written twice) but not their values
    expect(readdirSync(join(dir, sub)).map((f) => [f, statSync(join(dir, sub, f)).size > 0])).toEqual([["1.rec", false], ["2.rec", false], ["3.rec", true]]);
    const file = join(sub, "3.rec");
    const { readFileSync } = await import("node:fs");
    const bytes = readFileSync(join(dir, file));
    bytes[bytes.length - 1]! ^= 1;
    writeFileSync(join(dir, file), bytes);
    await expect(s2.get("run/a")).rejects.toThrow(/checksum/);
    await s2.close();
  });

  it("takes over the lock of a dead process and removes its temporary files", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, ".lock"), "999999999");
    writeFileSync(join(dir, "x.rec.1.0.tmp"), "half a write");
    const s = await FileStore.open(dir);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    await s.close();
  });
});

describe("/get_reward as OpenRLHF calls it", () => {
  it('{"query": []} (a shard with no sample) answers 200 with empty lists', async () => {
    const res = await call(make(), "POST", "/get_reward", { query: [], prompts: [], labels: [] });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ rewards: [], scores: [], extra_logs: {} });
    expect((await call(make(), "POST", "/get_reward", { query: [] })).status).toBe(200);
  });

  it("extra_logs holds finite numbers only, with focal/<id>/weight per criterion judged so far", async () => {
    const res = await call(make(), "POST", "/get_reward?run=x", { query: ["p a"], prompts: ["p"], labels: ['{"accuracy": 1}'] });
    expect(res.status).toBe(200);
    const logs = res.json.extra_logs as Record<string, unknown>;
    expect(Object.keys(logs).length).toBeGreaterThan(5);
    for (const [k, v] of Object.entries(logs)) expect(typeof v === "number" && Number.isFinite(v), k).toBe(true);
    // Only accuracy was judged: the others have no estimate yet, so no weight to show (issue 12).
    for (const id of IDS) expect(typeof logs[`focal/${id}/weight`], id).toBe(id === "accuracy" ? "number" : "undefined");
  });

  it("all rollouts failed judging: 502 problem+json with the first error; partial failure: 200, logged once per run and criterion", async () => {
    const lines: string[] = [];
    const h = make({ log: (l) => lines.push(l) });
    const all = await call(h, "POST", "/get_reward?run=r1", { query: ["p a", "p b"], prompts: ["p", "p"], labels: ["4", "4"] });
    expect(all.status).toBe(502);
    expect(all.headers.get("content-type")).toBe("application/problem+json");
    expect(all.json.detail).toBe('the judge failed on all 2 rollouts; first error: the label must be a JSON object {criterion: score}; got "4"');
    const part = await call(h, "POST", "/get_reward?run=r1", { query: ["p a", "p b"], prompts: ["p", "p"], labels: ['{"accuracy": 1}', '{"wit": 1}'] });
    expect(part.status).toBe(200);
    expect(part.json.extra_logs.judge_failures).toBe(1);
    expect(lines).toEqual([
      'focal-reward: judge failure: run=r1 criterion=* reason=error: the label must be a JSON object {criterion: score}; got "4"',
      "focal-reward: judge failure: run=r1 criterion=wit reason=invalid: judge scored unknown criterion 'wit'",
    ]);
  });
});
