/**
 * One replica vs three on one Redis, side by side in one run: `serve` with its state dir, one
 * `serve` on Redis, three `serve` replicas on the same Redis (round-robin clients), each taking the
 * same count-bounded load (POST /v1/score, stream scope, one run, 64 rollouts x 16 criteria, keyed)
 * in interleaved rounds; plus the Redis round trip itself (one compare-and-set of a run record).
 * Everything runs on this machine over loopback: replicas, Redis and clients share its cores.
 *
 *   npm run bench:replicas [-- --requests 600 --clients 32 --rounds 3]
 *
 * Needs `npm run build` (dist/) and redis-server on the PATH.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { bodyOf, startServer, writeRubric } from "../test/support/serve-load.js";
import { startRedis } from "../test/support/redis-server.js";
import { RedisStore } from "../dist/service/redis-store.js";

const { values } = parseArgs({ options: { requests: { type: "string", default: "600" }, clients: { type: "string", default: "32" }, rounds: { type: "string", default: "3" } } });
const REQUESTS = Number(values.requests);
const CLIENTS = Number(values.clients);
const ROUNDS = Number(values.rounds);


const quantile = (sorted, q) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** REQUESTS keyed POSTs from CLIENTS concurrent clients, spread round-robin over `urls`. */
async function load(urls, run) {
  const bodies = Array.from({ length: REQUESTS }, (_, i) => bodyOf(i, run));
  const latencies = [];
  let next = 0;
  let retried = 0;
  const client = async () => {
    for (let i = next++; i < REQUESTS; i = next++) {
      const t = performance.now();
      // As a trainer does: a 503 is sent again (same key) after its Retry-After, here at most 10 times.
      for (let attempt = 0; ; attempt++) {
        const res = await fetch(`${urls[i % urls.length]}/v1/score`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": `${run}/${i}` }, body: bodies[i] });
        const text = await res.text();
        if (res.status === 200) break;
        if (res.status !== 503 || attempt === 10) throw new Error(`${run}: request ${i} answered ${res.status}: ${text.slice(0, 300)}`);
        retried++;
        await new Promise((r) => setTimeout(r, 1000 * Number(res.headers.get("retry-after") ?? 1)));
      }
      latencies.push(performance.now() - t);
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: CLIENTS }, client));
  const seconds = (performance.now() - t0) / 1000;
  latencies.sort((a, b) => a - b);
  return { reqPerS: REQUESTS / seconds, p50: quantile(latencies, 0.5), p99: quantile(latencies, 0.99), retried };
}

/** Microseconds per compare-and-set (an AOF fsync each) and per read of a record the size of a 16-criteria run's. */
async function redisRoundTrip(url) {
  const store = await RedisStore.open(url, { prefix: "rtt:" });
  const value = new Uint8Array(1200).fill(7);
  let version = 0;
  for (let i = 0; i < 200; i++) version = await store.put("k", value, version); // warm
  const n = 2000;
  const t = performance.now();
  for (let i = 0; i < n; i++) version = await store.put("k", value, version);
  const casUs = ((performance.now() - t) * 1000) / n;
  const t1 = performance.now();
  for (let i = 0; i < n; i++) await store.get("k");
  const getUs = ((performance.now() - t1) * 1000) / n;
  await store.close();
  return { casUs, getUs };
}

const dir = mkdtempSync(join(tmpdir(), "focal-replicas-bench-"));
const redis = await startRedis();
const servers = [];
try {
  const rubricFile = writeRubric(dir);
  const start = async (args) => {
    const s = await startServer({ rubricFile, args });
    servers.push(s);
    return s.url;
  };
  const setups = {
    "1 replica, state dir (fsync)": [await start(["--state-dir", join(dir, "state")])],
    "1 replica on Redis": [await start(["--store", redis.url, "--store-prefix", "one:"])],
    "3 replicas on one Redis": await Promise.all([1, 2, 3].map(() => start(["--store", redis.url, "--store-prefix", "three:"]))),
  };
  const results = Object.fromEntries(Object.keys(setups).map((k) => [k, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, urls] of Object.entries(setups)) results[name].push(await load(urls, `r${round}`));
  }
  const rtt = await redisRoundTrip(redis.url);
  const cpu = cpus()[0]?.model ?? "unknown CPU";
  console.log(`replicas bench: ${REQUESTS} requests x ${ROUNDS} rounds (medians), ${CLIENTS} clients, 64 rollouts x 16 criteria a request, keyed; ${availableParallelism()} cores (${cpu}), loopback, all processes on this machine\n`);
  console.log("| setup | req/s | p50 ms | p99 ms | req/s vs 1 replica (state dir) | 503s retried (all rounds) |");
  console.log("|---|---:|---:|---:|---:|---:|");
  const base = median(Object.values(results)[0].map((f) => f.reqPerS));
  for (const [name, fs] of Object.entries(results)) {
    const r = median(fs.map((f) => f.reqPerS));
    console.log(`| ${name} | ${r.toFixed(0)} | ${median(fs.map((f) => f.p50)).toFixed(1)} | ${median(fs.map((f) => f.p99)).toFixed(1)} | ${(r / base).toFixed(2)}x | ${fs.reduce((n, f) => n + f.retried, 0)} |`);
  }
  console.log(`\nRedis round trip, one client, sequential, 1.2 kB record: ${rtt.casUs.toFixed(0)} us per compare-and-set (Lua script; appendfsync always: one fsync each), ${rtt.getUs.toFixed(0)} us per read`);
} finally {
  for (const s of servers) await s.stop("SIGTERM");
  await redis.stop();
  rmSync(dir, { recursive: true, force: true });
}
