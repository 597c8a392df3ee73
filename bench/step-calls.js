// One fresh process, scoring the way a trainer does: one score() per training step with a pause
// between steps, then back-to-back calls for the steady state. Prints one JSON line.
// Run by engine.bench.js: node bench/step-calls.js <simd|scalar|js> <fresh|reuse> <group|stream> <k> <n> <group size>
import { createEngine } from "../dist/index.js";

const [backend, outputs, scope, k, n, group] = process.argv.slice(2).map((a, i) => (i >= 3 ? Number(a) : a));
const STEPS = 10, PAUSE_MS = 30, STEADY = backend === "js" ? 15 : 150;

const rubric = Array.from({ length: k }, (_, c) => ({ id: `c${c}`, weight: 1 + (c % 3) }));
let seed = 42;
const random = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
const scores = new Float32Array(n * k);
const sizes = Array(n / group).fill(group);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const t0 = performance.now();
const engine = await createEngine({ rubric, backend, scope, reuseOutputs: outputs === "reuse" });
const create = performance.now() - t0;
let sink = 0;
const call = () => {
  const t = performance.now();
  const r = engine.score(scores, sizes);
  const ms = performance.now() - t;
  sink += r.rewards[0] + r.advantages[n - 1];
  return ms;
};
const first = [];
for (let step = 0; step < STEPS; step++) {
  for (let i = 0; i < scores.length; i++) scores[i] = random(); // this step's judge scores
  first.push(call());
  await sleep(PAUSE_MS);
}
const steady = [];
for (let i = 0; i < STEADY; i++) steady.push(call());
steady.sort((a, b) => a - b);
console.log(JSON.stringify({ backend, outputs, scope, create, first, steady: steady[steady.length >> 1], sink: Number.isFinite(sink) }));
