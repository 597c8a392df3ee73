/**
 * Three `focal-reward serve` replicas on one real Redis (issue 15): 32 concurrent clients spread
 * over them, one run in the stream scope with step-keyed updates (`--stepped`, 20 requests a
 * training step, so each step's requests reach all three replicas), 2,000 requests of which 10% are sent twice under their
 * Idempotency-Key, while a replica is killed with SIGKILL and restarted every second and Redis
 * itself is killed and restarted once (AOF, appendfsync always). Every request is retried (same
 * key, next replica) until answered. Then: the seqs are exactly 1..2000, each request's retry got
 * its first answer back, and the state in Redis equals the 2,000 updates replayed one by one in
 * seq order, byte for byte.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { RedisStore } from "../../dist/service/redis-store.js";
import { decodeRunRecord } from "../../dist/service/index.js";
import { RUBRIC, bodyOf, float32Of, startServer, writeRubric } from "../support/serve-load.js";
import { type RedisServer, startRedis } from "../support/redis-server.js";

type Server = { url: string; stop(signal?: string): Promise<unknown> };
const REQUESTS = 2000;
const CLIENTS = 32;
const PER_STEP = 20;
const stepOf = (i: number) => Math.floor(i / PER_STEP);

let redis: RedisServer | undefined;
const servers: Server[] = [];
const dirs: string[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop("SIGKILL");
  await redis?.stop();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function post(url: string, body: string, key: string): Promise<{ status: number; seq?: number; text: string }> {
  const res = await fetch(`${url}/v1/score`, {
    method: "POST",
    headers: { "content-type": "application/json", "idempotency-key": key },
    body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  const json = (text.startsWith("{") ? JSON.parse(text) : {}) as { seq?: number };
  return { status: res.status, seq: json.seq, text };
}

describe("three replicas on one Redis", () => {
  it("kill -9 of a replica every second and a Redis restart: no acknowledged update lost, none doubled", async () => {
    redis = await startRedis();
    const dir = mkdtempSync(join(tmpdir(), "focal-replicas-"));
    dirs.push(dir);
    const rubricFile = writeRubric(dir);
    const args = ["--store", redis.url, "--store-prefix", "e2e:", "--stepped"];
    const start = async () => {
      const s = (await startServer({ rubricFile, args })) as Server;
      servers.push(s);
      return s;
    };
    const live: Server[] = await Promise.all([start(), start(), start()]);

    const bodies = Array.from({ length: REQUESTS }, (_, i) => (bodyOf(i, "shared") as string).replace(`"step":${i},`, `"step":${stepOf(i)},`));
    const seqs = new Array<number>(REQUESTS);
    let retried = 0;
    let next = 0;
    let calls = 0;
    const send = async (i: number): Promise<number> => {
      // Bounded: 200 tries, each to the next live replica; connection errors and 503s are retried.
      for (let attempt = 0; attempt < 200; attempt++) {
        const s = live[(i + attempt) % live.length]!;
        calls++;
        const r = await post(s.url, bodies[i]!, `shared/${i}`).catch(() => ({ status: 0, seq: undefined, text: "" }));
        if (r.status === 200 && r.seq !== undefined) return r.seq;
        const unknown = r.status === 500 && r.text.includes("outcome unknown");
        if (r.status !== 0 && r.status !== 503 && !unknown) throw new Error(`request ${i}: HTTP ${r.status}: ${r.text}`);
        await new Promise((res) => setTimeout(res, 20 + 10 * attempt));
      }
      throw new Error(`request ${i} never answered`);
    };
    const client = async () => {
      while (next < REQUESTS) {
        const i = next++;
        seqs[i] = await send(i);
        if (i % 10 === 0) {
          retried++;
          expect(await send(i)).toBe(seqs[i]); // the retry gets the first answer back
        }
      }
    };

    let chaos = true;
    const faults = (async () => {
      let kills = 0;
      while (chaos) {
        await new Promise((r) => setTimeout(r, 1000));
        if (!chaos) break;
        const victim = kills % live.length;
        await live[victim]!.stop("SIGKILL");
        if (kills === 2) await redis!.crashAndRestart(300);
        live[victim] = await start();
        kills++;
      }
      return kills;
    })();
    await Promise.all(Array.from({ length: CLIENTS }, client));
    chaos = false;
    const kills = await faults;
    console.log(`replicas: ${REQUESTS} requests (${retried} sent twice), ${calls} HTTP calls, ${kills} replica kills, 1 Redis restart`);
    expect(kills).toBeGreaterThanOrEqual(3); // the Redis restart happened during the load

    expect([...seqs].sort((a, b) => a - b)).toEqual(Array.from({ length: REQUESTS }, (_, i) => i + 1));
    const order: number[] = [];
    seqs.forEach((s, i) => (order[s - 1] = i));
    const e = await createEngine({ rubric: RUBRIC.criteria, scope: "stream", gamma: RUBRIC.gamma, decay: RUBRIC.decay, advantage: RUBRIC.advantage });
    for (const i of order) {
      const b = JSON.parse(bodies[i]!);
      expect(b.step).toBe(stepOf(i));
      e.score(float32Of(i), b.groupSizes, { step: b.step });
    }
    const store = await RedisStore.open(redis.url, { prefix: "e2e:" });
    const rec = await store.get("run/shared");
    await store.close();
    const r = decodeRunRecord(rec!.value);
    expect(r.seq).toBe(REQUESTS);
    expect(r.snapshot).toEqual(e.snapshot());
  }, 180_000);

  it("a step split over three replicas in shuffled order: same rewards and state as one engine fed in any order", async () => {
    redis ??= await startRedis();
    const dir = mkdtempSync(join(tmpdir(), "focal-replicas-steps-"));
    dirs.push(dir);
    const rubricFile = writeRubric(dir);
    const args = ["--store", redis.url, "--store-prefix", "steps:", "--stepped"];
    const live = await Promise.all([0, 1, 2].map(async () => {
      const s = (await startServer({ rubricFile, args })) as Server;
      servers.push(s);
      return s;
    }));
    const STEPS = 4;
    const SPLIT = 6;
    const e = await createEngine({ rubric: RUBRIC.criteria, scope: "stream", gamma: RUBRIC.gamma, decay: RUBRIC.decay, advantage: RUBRIC.advantage });
    for (let step = 0; step < STEPS; step++) {
      const ids = Array.from({ length: SPLIT }, (_, j) => step * SPLIT + j);
      const shuffled = [...ids].sort((a, b) => ((a * 7919 + step) % 13) - ((b * 7919 + step) % 13));
      const replies = await Promise.all(shuffled.map(async (i, j) => {
        const body = (bodyOf(i, "steps") as string).replace(`"step":${i},`, `"step":${step},`);
        const r = await post(live[j % 3]!.url, body, `steps/${i}`);
        expect(r.status).toBe(200);
        return [i, JSON.parse(r.text).rewards as number[]] as const;
      }));
      // the reference: the same calls of this step in rubric order, on one engine
      for (const i of ids) {
        const want = e.score(float32Of(i), JSON.parse(bodyOf(i, "steps")).groupSizes, { step });
        const got = replies.find(([k]) => k === i)![1];
        got.forEach((g, r) => expect(Math.abs(g - want.rewards[r]!)).toBeLessThanOrEqual(1e-6));
      }
    }
    const store = await RedisStore.open(redis.url, { prefix: "steps:" });
    const rec = await store.get("run/steps");
    await store.close();
    expect(decodeRunRecord(rec!.value).snapshot).toEqual(e.snapshot());
  }, 120_000);
});

