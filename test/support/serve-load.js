/**
 * Load helpers for `focal-reward serve`, shared by test/e2e/service-e2e.test.ts and
 * bench/serve.bench.js: the bench rubric and request bodies, a spawned server on 127.0.0.1
 * (port 0 unless told), autocannon load, trainer-like retrying clients, and the check that the
 * server's final state equals a sequential replay of what it acknowledged. Needs dist/.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import { Rng } from "../../dist/demo/rng.js";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));

export const K = 16;
export const GROUPS = 8;
export const GROUP_SIZE = 8;
export const ROWS = GROUPS * GROUP_SIZE;
export const CRITERIA = Array.from({ length: K }, (_, k) => ({
  id: `c${String(k).padStart(2, "0")}`,
  weight: k === 15 ? -1 : 1 + (k % 3),
}));
/**
 * The rubric file the server is started with (engine options included).
 * @type {{ criteria: typeof CRITERIA; scope: "stream"; gamma: number; decay: number; advantage: "grpo" }}
 */
export const RUBRIC = { criteria: CRITERIA, scope: "stream", gamma: 3, decay: 0.9, advantage: "grpo" };

const POOL = 256;
const pool = [];
/** The scores of request i (columnar, rubric order, 3 decimals, ~3% not judged). */
export function scoresOf(i) {
  const p = i % POOL;
  if (!pool[p]) {
    const rng = new Rng(1000 + p);
    const r = () => rng.uniform();
    const s = new Array(ROWS * K);
    for (let j = 0; j < s.length; j++) {
      const k = j % K;
      s[j] = r() < 0.03 ? null : Math.round(Math.min(1, Math.max(0, r() * 0.6 + (k / K) * 0.5)) * 1000) / 1000;
    }
    pool[p] = JSON.stringify(s);
  }
  return pool[p];
}

const CRIT_JSON = JSON.stringify(CRITERIA.map((c) => c.id));
const SIZES_JSON = JSON.stringify(Array.from({ length: GROUPS }, () => GROUP_SIZE));
/** The body of request i: `step` = i identifies it in the response. */
export function bodyOf(i, run = "bench") {
  return `{"run":"${run}","step":${i},"criteria":${CRIT_JSON},"scores":${scoresOf(i)},"groupSizes":${SIZES_JSON}}`;
}

/** Pulls `step` and `seq` out of a /v1/score response without parsing all of it. */
export function stepSeq(body) {
  const head = body.slice(0, 200);
  const step = /"step":(\d+)/.exec(head);
  const seq = /"seq":(\d+)/.exec(head);
  return step && seq ? { step: Number(step[1]), seq: Number(seq[1]) } : undefined;
}

/**
 * Starts `node dist/cli/main.js serve` on 127.0.0.1 (free port), waits for its "listening" line.
 * Returns {url, port, child, output(), stop(signal) -> exit code/signal}.
 * @param {{ stateDir?: string; rubricFile: string; port?: number; args?: string[]; ulimit?: string }} options
 */
export async function startServer({ stateDir, rubricFile, port = 0, args = [], ulimit }) {
  const argv = [join(root, "dist/cli/main.js"), "serve", "--rubric", rubricFile, "--port", String(port), "--host", "127.0.0.1", ...args];
  if (stateDir) argv.push("--state-dir", stateDir);
  // `ulimit` (e.g. "-n 64" open files, "-f 64" KiB per file): set by a shell that then execs node.
  const child = ulimit
    ? spawn("/bin/sh", ["-c", `ulimit ${ulimit} && exec "$0" "$@"`, process.execPath, ...argv], { stdio: ["ignore", "pipe", "pipe"] })
    : spawn(process.execPath, argv, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const exited = new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
  const url = await new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`server did not start:\n${out}`)), 20_000);
    const onData = (d) => {
      out += d;
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    };
    child.stdout.on("data", onData);
    child.stderr.on("data", onData);
    exited.then((e) => {
      clearTimeout(timer);
      fail(new Error(`server exited ${JSON.stringify(e)} before listening:\n${out}`));
    });
  });
  return {
    url,
    port: Number(new URL(url).port),
    child,
    output: () => out,
    exited,
    async stop(signal = "SIGTERM") {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export function writeRubric(dir, rubric = RUBRIC) {
  const file = join(dir, "rubric.json");
  writeFileSync(file, JSON.stringify(rubric));
  return file;
}

/**
 * autocannon against /v1/score for `duration` s, or for exactly `amount` requests when given (the
 * tests use a count so that a slow machine does the same work, only slower). Request bodies are
 * numbered from `first`; returns the autocannon result plus `acks` (step -> seq of every 200) and
 * `issued` (steps handed to autocannon).
 */
export async function runLoad({ url, duration = 10, amount, connections = 32, run = "bench", first = 0, idempotency = true }) {
  let next = first;
  const acks = new Map();
  const bad = [];
  const issued = [];
  const instance = autocannon({
    url,
    connections,
    ...(amount === undefined ? { duration } : { amount }),
    pipelining: 1,
    timeout: 10,
    requests: [
      {
        method: "POST",
        path: "/v1/score",
        setupRequest(req) {
          const i = next++;
          issued.push(i);
          req.body = bodyOf(i, run);
          req.headers = { "content-type": "application/json" };
          if (idempotency) req.headers["idempotency-key"] = `${run}-${i}`;
          return req;
        },
        onResponse(status, body) {
          if (status !== 200) {
            if (bad.length < 5) bad.push(`${status} ${body.slice(0, 300)}`);
            return;
          }
          const s = stepSeq(body);
          if (s) acks.set(s.step, s.seq);
          else if (bad.length < 5) bad.push(`no step/seq in ${body.slice(0, 200)}`);
        },
      },
    ],
  });
  const result = await instance;
  return { result, acks, bad, issued, instance };
}

/**
 * Autocannon drops the responses still in flight when its time is up, and a killed server drops
 * its own: as a trainer would, send every issued request that got no 200 again, with the same
 * Idempotency-Key, until it has one (an update applied before is answered from the stored
 * response, not applied again). Fills `acks`; returns how many answers were replays.
 */
export async function settle({ url, run = "bench", issued, acks, attempts = 50, concurrency = 16 }) {
  let replays = 0;
  const todo = issued.filter((i) => !acks.has(i));
  const worker = async () => {
    for (let i = todo.shift(); i !== undefined; i = todo.shift()) {
      for (let a = 0; ; a++) {
        try {
          const res = await fetch(`${url}/v1/score`, {
            method: "POST",
            headers: { "content-type": "application/json", "idempotency-key": `${run}-${i}` },
            body: bodyOf(i, run),
          });
          const text = await res.text();
          if (res.status !== 200) throw new Error(`${res.status} ${text.slice(0, 300)}`);
          if (res.headers.get("idempotent-replayed") === "true") replays++;
          acks.set(i, stepSeq(text).seq);
          break;
        } catch (e) {
          if (a >= attempts) throw e;
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return replays;
}

/**
 * Trainer-like clients (for the fault test): `connections` loops, each sends step i with
 * Idempotency-Key and retries that same request (connection refused, reset, 503) until it gets
 * its 200, before taking the next step, as a trainer retries a timed-out reward call. They stop
 * after `duration` s, or after `steps` steps in all when given (count-bound, for the tests).
 * Returns {acks: step -> seq, retried: steps that needed a retry, replays: retries answered
 * from a stored response, i.e. updates applied before the failure but never acknowledged}.
 */
export async function runTrainers({ url, duration = 3, steps, connections = 32, run = "bench", first = 0, acks = new Map() }) {
  let next = first;
  const retried = new Set();
  let replays = 0;
  const until = Date.now() + duration * 1000;
  const more = steps === undefined ? () => Date.now() < until : () => next < first + steps;
  const base = typeof url === "function" ? url : () => url;
  const worker = async () => {
    while (more()) {
      const i = next++;
      for (let attempt = 0; ; attempt++) {
        try {
          const res = await fetch(`${base()}/v1/score`, {
            method: "POST",
            headers: { "content-type": "application/json", "idempotency-key": `${run}-${i}` },
            body: bodyOf(i, run),
            signal: AbortSignal.timeout(10_000),
          });
          const text = await res.text();
          if (res.status !== 200) throw new Error(`${res.status} ${text.slice(0, 200)}`);
          if (attempt > 0 && res.headers.get("idempotent-replayed") === "true") replays++;
          acks.set(i, stepSeq(text).seq);
          break;
        } catch (e) {
          retried.add(i);
          if (attempt > 400) throw e;
          await new Promise((r) => setTimeout(r, 25));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  return { acks, retried, replays, issued: next - first };
}

/** Scores of request i as the server sees them (Float32, NaN for null). */
export function float32Of(i) {
  const raw = JSON.parse(scoresOf(i));
  const out = new Float32Array(raw.length);
  for (let j = 0; j < raw.length; j++) out[j] = raw[j] === null ? NaN : raw[j];
  return out;
}

/**
 * Checks the order the server applied: the seqs of `acks` are exactly 1..N, and replaying the
 * requests in seq order on a fresh engine gives the server's snapshot, byte for byte.
 */
export async function replayCheck({ url, run = "bench", acks, rubric = RUBRIC }) {
  const { createEngine } = await import(join(root, "dist/index.js"));
  const res = await fetch(`${url}/v1/runs/${run}/state`);
  if (res.status !== 200) throw new Error(`GET state: ${res.status} ${await res.text()}`);
  const serverSnap = new Uint8Array(await res.arrayBuffer());
  const serverSeq = Number(res.headers.get("x-focal-seq"));
  const bySeq = new Map();
  const problems = [];
  for (const [step, seq] of acks) {
    if (bySeq.has(seq)) problems.push(`seq ${seq} given to steps ${bySeq.get(seq)} and ${step}`);
    bySeq.set(seq, step);
  }
  if (bySeq.size !== serverSeq) problems.push(`server seq ${serverSeq}, ${bySeq.size} distinct acknowledged seqs`);
  const { criteria, ...options } = rubric;
  const engine = await createEngine({ ...options, rubric: { criteria } });
  const sizes = Array.from({ length: GROUPS }, () => GROUP_SIZE);
  for (let seq = 1; seq <= serverSeq; seq++) {
    const step = bySeq.get(seq);
    if (step === undefined) {
      problems.push(`seq ${seq} missing`);
      break;
    }
    engine.score(float32Of(step), sizes);
  }
  const mine = engine.snapshot();
  const equal = mine.length === serverSnap.length && mine.every((b, j) => b === serverSnap[j]);
  if (!equal) problems.push("server state differs from the sequential replay");
  return { ok: problems.length === 0, problems, serverSeq, replayed: bySeq.size };
}
