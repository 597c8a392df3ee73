/**
 * Load test of `focal-reward serve` (issue 5): autocannon against POST /v1/score, stream scope,
 * one run, 64 rollouts (8 groups of 8) x 16 criteria per request, 32 connections, 10 s.
 * Reports req/s, p50/p99 latency and errors (must be 0: errors, timeouts and non-2xx), then
 * checks that the run's final state equals a sequential replay of the same requests in the order
 * the server applied them (the `seq` each response carries).
 *
 *   npm run bench:serve                       (10 s, fsync on: the server's default)
 *   node bench/serve.bench.js --duration 2 --no-fsync --json
 *   node bench/serve.bench.js --fault [--duration 10 --every 2]   (SIGKILL + restart during the load)
 *
 * The load helpers live in test/support/serve-load.js (the e2e tests use them too).
 * Traffic goes to 127.0.0.1 only. Needs `npm run build` first (dist/).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { benchArgs } from "./args.js";
import { K, ROWS, replayCheck, runLoad, runTrainers, settle, startServer, writeRubric } from "../test/support/serve-load.js";

/**
 * `--fault`: trainer-like clients (runTrainers) for `duration` s while the server is killed with
 * SIGKILL every `every` s and restarted from its state dir on the same port.
 */
async function fault({ duration, connections, every, noFsync, json }) {
  const dir = mkdtempSync(join(tmpdir(), "focal-serve-fault-"));
  const stateDir = join(dir, "state");
  const rubricFile = writeRubric(dir);
  const args = noFsync ? ["--no-fsync"] : [];
  let server = await startServer({ stateDir, rubricFile, args });
  const port = server.port;
  const acks = new Map();
  const load = runTrainers({ url: () => server.url, duration, connections, acks });
  let kills = 0;
  const lostAtKill = [];
  try {
    for (let t = every; t < duration - 0.5; t += every) {
      await new Promise((r) => setTimeout(r, every * 1000));
      const acked = new Map(acks);
      await server.stop("SIGKILL");
      kills++;
      server = await startServer({ stateDir, rubricFile, port, args });
      const seq = Number((await fetch(`${server.url}/v1/runs/bench/state`)).headers.get("x-focal-seq"));
      const maxAcked = Math.max(0, ...acked.values());
      if (seq < maxAcked) lostAtKill.push(`kill ${kills}: state at seq ${seq} < ${maxAcked} acknowledged`);
    }
    const result = await load;
    const check = await replayCheck({ url: server.url, acks: result.acks });
    const figures = {
      duration_s: duration,
      connections,
      kills,
      requests: result.issued,
      retried: result.retried.size,
      applied_before_kill_replayed: result.replays,
      final_seq: check.serverSeq,
      no_acknowledged_update_lost: lostAtKill.length === 0 && check.ok,
      none_applied_twice: check.ok && check.serverSeq === result.issued,
      state_matches_sequential_replay: check.ok,
    };
    if (json) process.stdout.write(JSON.stringify(figures) + "\n");
    else {
      process.stdout.write(
        `fault test: ${connections} trainer-like clients for ${duration} s, SIGKILL + restart every ${every} s (${kills} kills), fsync ${noFsync ? "off" : "on"}\n` +
          `  ${result.issued} requests, ${result.retried.size} retried (same Idempotency-Key), ${result.replays} of them answered from the stored response (applied before the kill, never acknowledged)\n` +
          `  final seq ${check.serverSeq} for ${result.issued} distinct requests; state after each restart >= every acknowledged update: ${lostAtKill.length === 0 ? "yes" : "NO"}\n` +
          `  final state = sequential replay in seq order: ${check.ok ? "yes" : "NO"}\n`,
      );
    }
    for (const p of [...lostAtKill, ...check.problems]) process.stderr.write(`  ${p}\n`);
    process.exitCode = figures.no_acknowledged_update_lost && figures.none_applied_twice ? 0 : 1;
  } finally {
    await server.stop("SIGTERM");
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const { values, number } = benchArgs(
    {
      duration: { default: "10", help: "seconds of load" },
      connections: { default: "32", help: "connections (with --fault: trainer-like clients)" },
      fault: { boolean: true, help: "SIGKILL and restart the server every --every seconds during the load" },
      every: { default: "2", help: "with --fault: seconds between kills" },
      "no-fsync": { boolean: true, help: "start the server with --no-fsync" },
      json: { boolean: true, help: "also print the figures as one JSON line" },
    },
    "npm run bench:serve -- [flags]: load test of focal-reward serve",
  );
  if (values.fault) {
    return fault({
      duration: number("duration", { min: 0.1 }),
      connections: number("connections", { min: 1, integer: true }),
      every: number("every", { min: 0.05 }),
      noFsync: values["no-fsync"],
      json: values.json,
    });
  }
  const duration = number("duration", { min: 0.1 });
  const connections = number("connections", { min: 1, integer: true });
  const noFsync = values["no-fsync"];
  const dir = mkdtempSync(join(tmpdir(), "focal-serve-bench-"));
  const server = await startServer({
    stateDir: join(dir, "state"),
    rubricFile: writeRubric(dir),
    args: noFsync ? ["--no-fsync"] : [],
  });
  try {
    const { result, acks, bad, issued } = await runLoad({ url: server.url, duration, connections });
    const inFlight = issued.length - acks.size;
    const replays = await settle({ url: server.url, issued, acks });
    const check = await replayCheck({ url: server.url, acks });
    const figures = {
      duration_s: duration,
      connections,
      rollouts_per_request: ROWS,
      criteria: K,
      fsync: !noFsync,
      requests: result.requests.total,
      req_per_s: Math.round(result.requests.average),
      rollouts_per_s: Math.round(result.requests.average * ROWS),
      latency_p50_ms: result.latency.p50,
      latency_p99_ms: result.latency.p99,
      latency_max_ms: result.latency.max,
      errors: result.errors,
      timeouts: result.timeouts,
      non2xx: result.non2xx,
      state_matches_sequential_replay: check.ok,
      final_seq: check.serverSeq,
      in_flight_at_end: inFlight,
      in_flight_already_applied: replays,
    };
    if (values.json) process.stdout.write(JSON.stringify(figures) + "\n");
    else {
      process.stdout.write(
        `focal-reward serve, /v1/score, stream scope, one run: ${ROWS} rollouts x ${K} criteria per request, ` +
          `${connections} connections, ${duration} s, fsync ${noFsync ? "off" : "on"}\n` +
          `  ${figures.req_per_s} req/s (${figures.rollouts_per_s} rollouts/s), ${figures.requests} requests\n` +
          `  latency p50 ${figures.latency_p50_ms} ms, p99 ${figures.latency_p99_ms} ms, max ${figures.latency_max_ms} ms\n` +
          `  errors ${figures.errors}, timeouts ${figures.timeouts}, non-2xx ${figures.non2xx}\n` +
          `  final state = sequential replay of ${check.replayed} requests in seq order: ${check.ok ? "yes" : "NO"}` +
          ` (${inFlight} requests in flight when autocannon stopped, sent again with their Idempotency-Key: ${replays} had been applied)\n`,
      );
    }
    for (const b of bad) process.stderr.write(`  bad response: ${b}\n`);
    for (const p of check.problems) process.stderr.write(`  ${p}\n`);
    const pass = check.ok && result.errors === 0 && result.timeouts === 0 && result.non2xx === 0;
    process.exitCode = pass ? 0 : 1;
  } finally {
    const exit = await server.stop("SIGTERM");
    if (exit.code !== 0) process.stderr.write(`server exit ${JSON.stringify(exit)}\n${server.output()}`);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
