/**
 * The Redis state store against a real redis-server: compare-and-set, binary values, prefixes,
 * TTLs, Redis going away and coming back, and two service handlers sharing one run through it.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { RedisStore } from "../../dist/service/redis-store.js";
import { createHandler, decodeRunRecord, type FetchHandler } from "../../dist/service/index.js";
import type { HandlerOptions } from "../../dist/service/handler.js";
import { prng } from "../support/prng.js";
import { type RedisServer, startRedis } from "../support/redis-server.js";

let redis: RedisServer;
const opened: RedisStore[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const s of opened) await s.close();
  await redis?.stop();
});
async function open(prefix: string, ttlSeconds = 0): Promise<RedisStore> {
  const s = await RedisStore.open(redis.url, { prefix, ttlSeconds, commandTimeoutMs: 2000 });
  opened.push(s);
  return s;
}

describe("RedisStore", () => {
  it("compare-and-set: versions from 1, stale expectations write nothing, binary values round-trip", async () => {
    const s = await open("t1:");
    const bytes = Uint8Array.from([0, 1, 2, 255, 13, 10, 0]);
    expect(await s.get("run/a")).toBeUndefined();
    expect(await s.put("run/a", bytes, 0)).toBe(1);
    expect(await s.put("run/a", Uint8Array.of(9), 0)).toBeUndefined();
    expect(await s.get("run/a")).toEqual({ value: bytes, version: 1 });
    expect(await s.put("run/a", Uint8Array.of(7), 1)).toBe(2);
    expect(await s.put("run/a", Uint8Array.of(8))).toBe(3); // unconditional
    expect((await s.get("run/a"))!.value).toEqual(Uint8Array.of(8));
    await s.delete("run/a");
    expect(await s.get("run/a")).toBeUndefined();
    expect(await s.put("run/a", Uint8Array.of(1), 0)).toBe(1);
  });

  it("of many concurrent writers of one version exactly one wins", async () => {
    const stores = await Promise.all([open("t2:"), open("t2:"), open("t2:")]);
    const wins = await Promise.all(Array.from({ length: 30 }, (_, i) => stores[i % 3]!.put("k", Uint8Array.of(i), 0)));
    expect(wins.filter((w) => w === 1)).toHaveLength(1);
    expect(wins.filter((w) => w === undefined)).toHaveLength(29);
  });

  it("prefixes keep services apart; a TTL expires idle keys", async () => {
    const a = await open("svcA:");
    const b = await open("svcB:");
    await a.put("run/x", Uint8Array.of(1));
    expect(await b.get("run/x")).toBeUndefined();
    const t = await open("ttl:", 1);
    await t.put("run/y", Uint8Array.of(1));
    expect(await t.get("run/y")).toBeDefined();
    // Redis expires keys on access once their time passed; poll (bounded) rather than sleep a guess.
    let gone = false;
    for (let i = 0; i < 60 && !gone; i++) {
      await new Promise((r) => setTimeout(r, 100));
      gone = (await t.get("run/y")) === undefined;
    }
    expect(gone).toBe(true);
  });

  it("Redis down: calls fail at once (no queue); it reconnects by itself and nothing was half-written", async () => {
    const s = await open("down:");
    expect(await s.put("run/z", Uint8Array.of(1), 0)).toBe(1);
    await redis.kill();
    const failed = await s.put("run/z", Uint8Array.of(2), 1).then(() => "applied", (e: Error) => e.message);
    expect(failed).not.toBe("applied");
    await expect(s.get("run/z")).rejects.toThrow();
    await redis.start();
    let back: { version: number } | undefined;
    for (let i = 0; i < 100 && !back; i++) {
      back = await s.get("run/z").catch(() => undefined);
      if (!back) await new Promise((r) => setTimeout(r, 50));
    }
    expect(back).toEqual({ value: Uint8Array.of(1), version: 1 }); // AOF kept the acknowledged write only
  });
});

const RUBRIC = [{ id: "accuracy", weight: 2 }, { id: "format" }, { id: "length" }, { id: "toxicity", weight: -1 }];
const IDS = RUBRIC.map((c) => c.id);
function columnar(seed: number, run: string) {
  const r = prng(seed);
  const scores = Array.from({ length: 12 * IDS.length }, () => Math.round(r() * 1000) / 1000);
  return { run, criteria: IDS, scores, groupSizes: [4, 4, 4] };
}
async function post(h: FetchHandler, body: unknown, key?: string) {
  const headers: Record<string, string> = { "content-type": "application/json" };
  if (key) headers["idempotency-key"] = key;
  const res = await h(new Request("http://service.test/v1/score", { method: "POST", headers, body: JSON.stringify(body) }));
  return { status: res.status, json: (await res.json()) as { seq: number } };
}

describe("service handlers sharing one Redis", () => {
  it("three handlers, interleaved and keyed retries: every update applied once, state = sequential replay", async () => {
    const stores = await Promise.all([open("svc:"), open("svc:"), open("svc:")]);
    const hs = stores.map((store) => createHandler({ rubric: RUBRIC, createEngine, scope: "stream", store } as HandlerOptions));
    const bodies = Array.from({ length: 36 }, (_, i) => columnar(500 + i, "shared"));
    const seqs: number[] = [];
    for (let w = 0; w < bodies.length; w += 6) {
      const wave = bodies.slice(w, w + 6).map((b, i) => post(hs[(w + i) % 3]!, b, `shared/${w + i}`));
      const replies = await Promise.all(wave);
      // every third request retried on another handler under its key: answered, not applied again
      const retries = await Promise.all(replies.map((_, i) => (i % 3 === 0 ? post(hs[(w + i + 1) % 3]!, bodies[w + i], `shared/${w + i}`) : undefined)));
      replies.forEach((r, i) => {
        expect(r.status).toBe(200);
        seqs[w + i] = r.json.seq;
        if (retries[i]) expect(retries[i]!.json.seq).toBe(r.json.seq);
      });
    }
    expect([...seqs].sort((a, b) => a - b)).toEqual(bodies.map((_, i) => i + 1));
    const e = await createEngine({ rubric: RUBRIC, scope: "stream" });
    const order: number[] = [];
    seqs.forEach((s, i) => (order[s - 1] = i));
    for (const i of order) e.score(Float32Array.from(bodies[i]!.scores), bodies[i]!.groupSizes);
    const rec = await stores[0]!.get("run/shared");
    expect(decodeRunRecord(rec!.value).snapshot).toEqual(e.snapshot());
  });

  it("a run deleted and recreated through one handler: another caching it at the same version reloads, never overwrites it (no ABA)", async () => {
    const [sa, sb] = await Promise.all([open("aba:"), open("aba:")]);
    const [a, b] = [sa, sb].map((store) => createHandler({ rubric: RUBRIC, createEngine, scope: "stream", store } as HandlerOptions));
    const bodies = Array.from({ length: 5 }, (_, i) => columnar(700 + i, "aba"));
    await post(a!, bodies[0]!);
    await post(a!, bodies[1]!); // a caches the run at version 2
    const del = await b!(new Request("http://service.test/v1/runs/aba", { method: "DELETE" }));
    expect(del.status).toBe(200);
    expect((await post(b!, bodies[2]!)).json.seq).toBe(1);
    expect((await post(b!, bodies[3]!)).json.seq).toBe(2);
    expect((await sb.get("run/aba"))!.version).toBe(5); // the delete was version 3: versions go on
    const late = await post(a!, bodies[4]!);
    expect(late).toMatchObject({ status: 200, json: { seq: 3 } });
    const e = await createEngine({ rubric: RUBRIC, scope: "stream" });
    for (const x of bodies.slice(2)) e.score(Float32Array.from(x.scores), x.groupSizes);
    expect(decodeRunRecord((await sa.get("run/aba"))!.value).snapshot).toEqual(e.snapshot());
  });

  it("Redis down: a request answers 503 store-unavailable with Retry-After and applies nothing; the service recovers by itself", async () => {
    const h = createHandler({ rubric: RUBRIC, createEngine, scope: "stream", store: await open("outage:") } as HandlerOptions);
    const [a, b] = [columnar(900, "outage"), columnar(901, "outage")];
    expect((await post(h, a, "outage/0")).json.seq).toBe(1);
    await redis.kill();
    const res = await h(new Request("http://service.test/v1/score", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(b) }));
    // 503 when the client knew Redis was gone before sending; 500 outcome-unknown when the write
    // went out on a socket that then closed (it may not be known to have failed): both say what is true.
    const type = ((await res.json()) as { type: string }).type;
    if (res.status === 503) {
      expect(res.headers.get("retry-after")).toBe("1");
      expect(type).toBe("urn:focal-reward:problem:store-unavailable");
    } else {
      expect(res.status).toBe(500);
      expect(type).toBe("urn:focal-reward:problem:outcome-unknown");
    }
    await redis.start();
    let back = { status: 0, json: { seq: 0 } };
    for (let i = 0; i < 100 && back.status !== 200; i++) {
      back = await post(h, b, "outage/1");
      if (back.status !== 200) await new Promise((r) => setTimeout(r, 50));
    }
    expect(back).toMatchObject({ status: 200, json: { seq: 2 } }); // the refused call left no trace
    const e = await createEngine({ rubric: RUBRIC, scope: "stream" });
    for (const x of [a, b]) e.score(Float32Array.from(x.scores), x.groupSizes);
    const stored = await (await open("outage:")).get("run/outage");
    expect(decodeRunRecord(stored!.value).snapshot).toEqual(e.snapshot());
  });
});
