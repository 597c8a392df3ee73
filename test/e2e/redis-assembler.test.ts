/**
 * Group assembly across replicas through a real redis-server: rows of one group submitted to
 * different assemblers (replicas) are scored once, as one group, and each submitter gets its rows'
 * answers; groups close by count or by deadline whichever replica holds them; caps and a Redis
 * outage refuse with nothing held.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { AssemblerBusy } from "../../dist/service/assembler.js";
import { HttpError } from "../../dist/service/problem.js";
import { RedisGroupAssembler } from "../../dist/service/redis-assembler.js";
import { StoreUnavailableError } from "../../dist/service/store.js";
import { prng } from "../support/prng.js";
import { type RedisServer, startRedis } from "../support/redis-server.js";

interface Row { prompt: string; sample: number; score: number }
let redis: RedisServer;
const opened: RedisGroupAssembler<Row, unknown>[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  for (const a of opened) await a.close();
  await redis?.stop();
});

/** A scorer that records its calls and answers each row with its rank in the group and the group's size. */
function recorder() {
  const calls: { key: string; rows: Row[]; reason: string }[] = [];
  const score = (_run: string, key: string, rows: readonly Row[], reason: string) => {
    calls.push({ key, rows: [...rows], reason });
    const sorted = [...rows].sort((a, b) => a.score - b.score);
    return rows.map((r) => ({ rank: sorted.indexOf(r), of: rows.length }));
  };
  return { calls, score };
}

async function replicas(n: number, prefix: string, score: ReturnType<typeof recorder>["score"], opts: Partial<{ waitMs: number; maxHeldRows: number }> = {}) {
  const out = await Promise.all(Array.from({ length: n }, () =>
    RedisGroupAssembler.open<Row, unknown>(redis.url, { groupSize: 4, waitMs: 10_000, maxHeldRows: 64, maxHeldGroups: 16, prefix, order: (a, b) => a.sample - b.sample, ...opts }, score)));
  opened.push(...out);
  return out;
}

describe("RedisGroupAssembler", () => {
  it("16 single-row submissions of 4 groups, shuffled over 3 replicas: each group scored once, whole, in canonical order", async () => {
    const rec = recorder();
    const reps = await replicas(3, "a1:", rec.score);
    const r = prng(7);
    const rows: Row[] = [];
    for (const p of ["p0", "p1", "p2", "p3"]) for (let s = 0; s < 4; s++) rows.push({ prompt: p, sample: s, score: Math.round(r() * 1000) });
    const order = rows.map((_, i) => i).sort(() => r() - 0.5);
    const answers = await Promise.all(order.map((i, j) => reps[j % 3]!.submit("run", [{ key: rows[i]!.prompt, row: rows[i]! }]).then(([a]) => [i, a] as const)));
    expect(rec.calls.map((c) => c.key).sort()).toEqual(["p0", "p1", "p2", "p3"]);
    for (const c of rec.calls) {
      expect(c.reason).toBe("full");
      expect(c.rows.map((x) => x.sample)).toEqual([0, 1, 2, 3]);
    }
    for (const [i, a] of answers) {
      const group = rows.filter((x) => x.prompt === rows[i]!.prompt).sort((x, y) => x.score - y.score);
      expect(a).toEqual({ rank: group.indexOf(rows[i]!), of: 4 });
    }
    const closed = reps.reduce((n, x) => n + x.stats().closed.full, 0);
    expect(closed).toBe(4);
    expect(reps.map((x) => x.stats().heldRows)).toEqual([0, 0, 0]);
  });

  it("a partial group closes at its deadline, once, even when the replica that opened it is gone", async () => {
    const rec = recorder();
    const [a, b, c] = await replicas(3, "a2:", rec.score, { waitMs: 300 });
    void a!.submit("run", [{ key: "q", row: { prompt: "q", sample: 0, score: 1 } }]).catch(() => {});
    await new Promise((r) => setTimeout(r, 50));
    await a!.close(); // the opener dies; its row stays in the group
    const [fromB, fromC] = await Promise.all([
      b!.submit("run", [{ key: "q", row: { prompt: "q", sample: 1, score: 5 } }]),
      c!.submit("run", [{ key: "q", row: { prompt: "q", sample: 2, score: 3 } }]),
    ]);
    expect(rec.calls).toHaveLength(1);
    expect(rec.calls[0]!.reason).toBe("timeout");
    expect(rec.calls[0]!.rows.map((x) => x.sample)).toEqual([0, 1, 2]);
    expect([fromB, fromC]).toEqual([[{ rank: 2, of: 3 }], [{ rank: 1, of: 3 }]]);
    // the next row of the same key opens a new group
    const next = b!.submit("run", [{ key: "q", row: { prompt: "q", sample: 9, score: 0 } }]);
    expect(await next).toEqual([{ rank: 0, of: 1 }]);
    expect(rec.calls).toHaveLength(2);
  });

  it("over its cap a replica refuses the whole request (AssemblerBusy) and holds nothing", async () => {
    const rec = recorder();
    const [a] = await replicas(1, "a3:", rec.score, { maxHeldRows: 3, waitMs: 200 });
    const rows = [0, 1, 2, 3].map((s) => ({ key: `k${s}`, row: { prompt: `k${s}`, sample: s, score: s } }));
    await expect(a!.submit("run", rows)).rejects.toBeInstanceOf(AssemblerBusy);
    expect(a!.stats().heldRows).toBe(0);
    expect(await a!.submit("run", rows.slice(0, 3))).toHaveLength(3); // closed by their deadlines
    expect(rec.calls.map((c) => c.reason)).toEqual(["timeout", "timeout", "timeout"]);
  });

  it("a scoring error reaches the other replicas' submitters as what it is: an HttpError keeps its status, field and type, a store failure its outcome", async () => {
    const thrown: Record<string, Error> = {
      step: new HttpError(409, "step 3 is closed", "step", { "x-test": "1" }, "closed", "urn:test:stale"),
      store: new StoreUnavailableError("store write: outcome unknown", true),
      bug: new TypeError("a bug"),
    };
    const score = (_run: string, key: string) => {
      throw thrown[key]!;
    };
    const [a, b] = await replicas(2, "a5:", score);
    for (const key of Object.keys(thrown)) {
      // One row from a, the three that fill the group from b: b scores it, a hears the error over Redis.
      const fromA = a!.submit("run", [{ key, row: { prompt: key, sample: 0, score: 0 } }]).then(() => undefined, (e: Error) => e);
      await new Promise((r) => setTimeout(r, 30));
      const fromB = b!.submit("run", [1, 2, 3].map((s) => ({ key, row: { prompt: key, sample: s, score: s } }))).then(() => undefined, (e: Error) => e);
      const [ea, eb] = await Promise.all([fromA, fromB]);
      for (const e of [ea, eb]) expect(e?.message).toBe(thrown[key]!.message);
      if (key === "step") {
        expect(ea).toBeInstanceOf(HttpError);
        expect(ea).toMatchObject({ status: 409, field: "step", headers: { "x-test": "1" }, reason: "closed", type: "urn:test:stale" });
      } else if (key === "store") {
        expect(ea).toBeInstanceOf(StoreUnavailableError);
        expect((ea as StoreUnavailableError).unknownOutcome).toBe(true);
      } else {
        expect(ea).not.toBeInstanceOf(HttpError);
        expect(ea).not.toBeInstanceOf(StoreUnavailableError);
      }
    }
  });

  it("Redis down: a submission fails as store-unavailable; it works again when Redis is back", async () => {
    const rec = recorder();
    const [a] = await replicas(1, "a4:", rec.score, { waitMs: 100 });
    await redis.kill();
    const err = await a!.submit("run", [{ key: "x", row: { prompt: "x", sample: 0, score: 0 } }]).then(() => undefined, (e: Error) => e);
    expect(err?.name).toBe("StoreUnavailableError");
    expect(a!.stats().heldRows).toBe(0);
    await redis.start();
    let ok: unknown;
    for (let i = 0; i < 100 && !ok; i++) {
      ok = await a!.submit("run", [{ key: "x", row: { prompt: "x", sample: 0, score: 0 } }]).catch(() => undefined);
      if (!ok) await new Promise((r) => setTimeout(r, 50));
    }
    expect(ok).toEqual([{ rank: 0, of: 1 }]);
  });
});
