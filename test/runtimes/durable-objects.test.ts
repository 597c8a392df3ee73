/**
 * The Workers example (examples/workers) in the real workerd: each run a Durable Object with
 * SQLite storage on disk. It answers the service conformance script with the same bytes as the
 * handler in Node, keeps every update of concurrent clients exactly once, and its state survives a
 * restart of workerd. Loopback only; needs `npm run build` first.
 */
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { createHandler } from "../../dist/service/index.js";
import { bundle } from "../../examples/workers/bundle.js";
import { prng } from "../support/prng.js";
import { freePort, killSpawned, spawnUntil, waitHttp } from "../support/processes.js";
import { type Answer, OPTIONS, STEPS, play, viaUrl } from "../support/service-conformance.js";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), "focal-durable-objects-"));
let port = 0;
let workerd: ChildProcess | undefined;
let base = "";

async function startWorkerd(): Promise<void> {
  const config = join(dir, "out/config.capnp");
  const { child, out } = await spawnUntil(join(root, "node_modules/.bin/workerd"), ["serve", config], undefined, "workerd");
  workerd = child;
  await waitHttp(`${base}/healthz`).catch((e) => {
    throw new Error(`workerd did not answer: ${e}\n${out()}`);
  });
}

async function stopWorkerd(): Promise<void> {
  const child = workerd!;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((ok) => child.once("exit", ok));
  child.kill("SIGKILL"); // no graceful shutdown: whatever was acknowledged must already be on disk
  await exited;
}

beforeAll(async () => {
  port = await freePort();
  base = `http://127.0.0.1:${port}`;
  writeFileSync(join(dir, "service.json"), JSON.stringify(OPTIONS));
  bundle({ out: join(dir, "out"), port, storage: join(dir, "storage"), options: join(dir, "service.json") });
  await startWorkerd();
}, 60_000);

afterAll(() => {
  killSpawned();
  rmSync(dir, { recursive: true, force: true });
});

const RUBRIC = OPTIONS.rubric.criteria;
const IDS = RUBRIC.map((c) => c.id);
function body(seed: number, run: string) {
  const r = prng(seed);
  return { run, criteria: IDS, scores: Array.from({ length: 8 * IDS.length }, () => Math.round(r() * 1000) / 1000), groupSizes: [4, 4] };
}

async function post(b: unknown, key: string): Promise<{ status: number; seq: number }> {
  const res = await fetch(`${base}/v1/score`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key }, body: JSON.stringify(b) });
  const json = (await res.json()) as { seq: number };
  return { status: res.status, seq: json.seq };
}

async function stateOf(run: string): Promise<Uint8Array> {
  const res = await fetch(`${base}/v1/runs/${run}/state`);
  expect(res.status).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

/** The snapshot of one engine fed `bodies` in the order of their seqs. */
async function sequentialReplay(bodies: ReturnType<typeof body>[], seqs: number[]): Promise<Uint8Array> {
  const e = await createEngine({ rubric: RUBRIC, scope: "stream" });
  const order: number[] = [];
  seqs.forEach((s, i) => (order[s - 1] = i));
  for (const i of order) e.score(Float32Array.from(bodies[i]!.scores), bodies[i]!.groupSizes);
  return e.snapshot();
}

describe("Durable Objects in workerd (examples/workers)", () => {
  it("answers the service conformance script with the bytes of the handler in Node", async () => {
    const expected: Answer[] = await play(createHandler({ ...OPTIONS, createEngine } as Parameters<typeof createHandler>[0]));
    const got = await play(viaUrl(base));
    // /healthz was not the first request of this isolate's life (startWorkerd polled it)
    expect(got.slice(1)).toEqual(expected.slice(1));
    expect(JSON.parse(got[0]!.body)).toMatchObject({ status: "ok", scope: "stream" });
  }, 60_000);

  it("16 concurrent clients on one run, keyed retries, a kill -9 of workerd: every update once, state = sequential replay", async () => {
    const CLIENTS = 16;
    const PER_CLIENT = 6;
    const bodies = Array.from({ length: CLIENTS * PER_CLIENT }, (_, i) => body(100 + i, "crowd"));
    const other = Array.from({ length: 8 }, (_, i) => body(900 + i, "other"));
    const seqs: number[] = [];
    const client = async (c: number) => {
      for (let j = 0; j < PER_CLIENT; j++) {
        const i = c * PER_CLIENT + j;
        const first = await post(bodies[i], `crowd/${i}`);
        expect(first.status).toBe(200);
        seqs[i] = first.seq;
        if (i % 5 === 0) expect((await post(bodies[i], `crowd/${i}`)).seq).toBe(first.seq); // a retry is answered, not applied
      }
    };
    const others = (async () => {
      for (let i = 0; i < other.length; i++) expect((await post(other[i], `other/${i}`)).seq).toBe(i + 1);
    })();
    await Promise.all([...Array.from({ length: CLIENTS }, (_, c) => client(c)), others]);
    expect([...seqs].sort((a, b) => a - b)).toEqual(bodies.map((_, i) => i + 1));
    const want = await sequentialReplay(bodies, seqs);
    expect(await stateOf("crowd")).toEqual(want);

    await stopWorkerd();
    await startWorkerd();
    expect(await stateOf("crowd")).toEqual(want);
    expect(await stateOf("other")).toEqual(await sequentialReplay(other, other.map((_, i) => i + 1)));
    expect((await post(bodies[0], "crowd/0")).seq).toBe(seqs[0]); // the idempotency window survived too
    expect((await post(body(5000, "crowd"), "crowd/next")).seq).toBe(bodies.length + 1);
  }, 120_000);

  it("DELETE in a run's object: the run starts afresh at seq 1, its store version goes on (no ABA)", async () => {
    const bodies = Array.from({ length: 3 }, (_, i) => body(7000 + i, "gone"));
    expect((await post(bodies[0], "gone/0")).seq).toBe(1);
    expect((await post(bodies[1], "gone/1")).seq).toBe(2);
    expect((await fetch(`${base}/v1/runs/gone`, { method: "DELETE" })).status).toBe(200);
    expect((await fetch(`${base}/v1/runs/gone/state`)).status).toBe(404);
    expect((await post(bodies[2], "gone/2")).seq).toBe(1);
    const res = await fetch(`${base}/v1/runs/gone/state`);
    expect(res.headers.get("etag")).toBe('"4"'); // 1, 2, the tombstone 3, then 4; not "1" again
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(await sequentialReplay([bodies[2]!], [1]));
  }, 60_000);
});
