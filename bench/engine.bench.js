// Engine benchmark: focal (group and stream scope) on simd, scalar and js, side by side per
// configuration, plus copy-in vs zero-copy input and scoreOne. Run: npm run bench
// (QUICK=1 for a short smoke run). Machines are shared and noisy: compare the ratios, which are
// measured in the same run, rather than absolute times across runs.
import { Bench } from "tinybench";
import { Rng } from "../dist/demo/rng.js";
import { createEngine } from "../dist/index.js";

const QUICK = process.env.QUICK === "1";
const BACKENDS = ["simd", "scalar", "js"];
const KS = [4, 16, 32];
const NS = QUICK ? [1, 64, 4096] : [1, 64, 4096, 65536];
const GROUP = 16;

const rng = new Rng(42);
const random = () => rng.uniform();
const rubricOf = (k) => Array.from({ length: k }, (_, c) => ({ id: `c${c}`, weight: 1 + (c % 3) }));
const scoresOf = (n, k) => Float32Array.from({ length: n * k }, () => random());
const sizesOf = (n) => (n < GROUP ? [n] : Array(n / GROUP).fill(GROUP));

function bench() {
  // Few iterations suffice for the slow cases; fast ones still run for `time` ms.
  return new Bench({ time: QUICK ? 60 : 250, warmupTime: QUICK ? 20 : 80, iterations: 5, warmupIterations: 2 });
}
const median = (task) => task.result.latency.p50; // ms

const fmtTime = (ms) => (ms >= 1 ? `${ms.toFixed(2)} ms` : ms >= 1e-3 ? `${(ms * 1e3).toFixed(1)} us` : `${(ms * 1e6).toFixed(0)} ns`);
const gbps = (bytes, ms) => (bytes / (ms * 1e-3) / 1e9).toFixed(2);

const rows = [];
const progress = (text) => process.stderr.write(`\r${text.padEnd(60)}`);

for (const scope of ["group", "stream"]) {
  for (const k of KS) {
    for (const n of NS) {
      progress(`focal ${scope} K=${k} n=${n}`);
      const scores = scoresOf(n, k);
      const sizes = sizesOf(n);
      const b = bench();
      for (const backend of BACKENDS) {
        const engine = await createEngine({ rubric: rubricOf(k), scope, backend });
        b.add(backend, () => engine.score(scores, sizes));
      }
      await b.run();
      const t = Object.fromEntries(b.tasks.map((task) => [task.name, median(task)]));
      rows.push({ scope, k, n, ...t, gbps: gbps(n * k * 4, t.simd) });
    }
  }
}

// Copy-in vs zero-copy: the same batch passed as a JS array (copied into wasm memory) or written
// straight into engine.input(n).
const copyRows = [];
for (const n of QUICK ? [4096] : [4096, 65536]) {
  const k = 16;
  progress(`copy vs zero-copy n=${n}`);
  const scores = scoresOf(n, k);
  const sizes = sizesOf(n);
  const engine = await createEngine({ rubric: rubricOf(k), backend: "simd" });
  const view = engine.input(n);
  view.set(scores);
  const b = bench();
  b.add("copy-in", () => engine.score(scores, sizes));
  b.add("zero-copy", () => engine.score(view, sizes));
  await b.run();
  const [copy, zero] = b.tasks.map(median);
  copyRows.push({ n, k, copy, zero });
}

// scoreOne: one rollout against the stream weights, the low-latency path.
const oneRows = [];
for (const k of KS) {
  progress(`scoreOne K=${k}`);
  const b = new Bench({ time: QUICK ? 60 : 300, warmupTime: 100 });
  const row = scoresOf(1, k);
  for (const backend of BACKENDS) {
    const engine = await createEngine({ rubric: rubricOf(k), scope: "stream", backend });
    engine.score(scoresOf(64, k), sizesOf(64));
    b.add(backend, () => engine.scoreOne(row));
  }
  await b.run();
  oneRows.push({ k, ...Object.fromEntries(b.tasks.map((task) => [task.name, median(task)])) });
}
process.stderr.write(`\r${" ".repeat(60)}\r`);

const x = (a, b) => `${(a / b).toFixed(1)}x`;
console.log(`## focal, groups of ${GROUP}: median time per call (Node ${process.versions.node})\n`);
console.log("| scope | K | n | simd | scalar | js | simd vs js | simd vs scalar | simd GB/s |");
console.log("|---|---|---|---|---|---|---|---|---|");
for (const r of rows) {
  console.log(`| ${r.scope} | ${r.k} | ${r.n} | ${fmtTime(r.simd)} | ${fmtTime(r.scalar)} | ${fmtTime(r.js)} | ${x(r.js, r.simd)} | ${x(r.scalar, r.simd)} | ${r.gbps} |`);
}
console.log("\n## input path (simd, K = 16)\n");
console.log("| n | copy-in | zero-copy | copy / zero-copy |");
console.log("|---|---|---|---|");
for (const r of copyRows) console.log(`| ${r.n} | ${fmtTime(r.copy)} | ${fmtTime(r.zero)} | ${x(r.copy, r.zero)} |`);
console.log("\n## scoreOne (stream weights), median per call\n");
console.log("| K | simd | scalar | js |");
console.log("|---|---|---|---|");
for (const r of oneRows) console.log(`| ${r.k} | ${fmtTime(r.simd)} | ${fmtTime(r.scalar)} | ${fmtTime(r.js)} |`);

// The targets, checked on this run's numbers.
const big = rows.find((r) => r.scope === "group" && r.k === 16 && r.n === Math.max(...NS));
const one = oneRows.find((r) => r.k === 16);
const checks = [
  [`focal group K=16 n=${big.n}: simd >= 5x js`, big.js / big.simd >= 5, x(big.js, big.simd)],
  [`focal group K=16 n=${big.n}: simd >= 2x scalar`, big.scalar / big.simd >= 2, x(big.scalar, big.simd)],
  [`focal group K=16 n=${big.n}: simd >= 4 GB/s`, Number(big.gbps) >= 4, `${big.gbps} GB/s`],
  ["scoreOne K=16 simd < 150 ns", one.simd * 1e6 < 150, fmtTime(one.simd)],
  ["scoreOne K=16 simd no slower than js", one.simd <= one.js, `${fmtTime(one.simd)} vs ${fmtTime(one.js)}`],
];
console.log("\n## targets\n");
for (const [name, ok, value] of checks) console.log(`- ${ok ? "met" : "MISSED"}: ${name} (${value})`);
