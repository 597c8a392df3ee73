#!/usr/bin/env node
/**
 * Generates the conformance vectors (test/vectors/vectors.json: inputs only, deterministic, no
 * engine needed) and their expected digests (test/vectors/expected.json: computed by the Node
 * build in dist/, once per backend, with test/runtimes/harness.js).
 *
 *   node scripts/gen-vectors.js            # both files, from ./dist
 *   node scripts/gen-vectors.js --dist DIR --out DIR
 *
 * Scores are Float32-exact decimals (most on a 1/16 grid, like judge scores), NaN = null.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runVectors, toFloat32 } from "../test/runtimes/harness.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const args = process.argv.slice(2);
const arg = (name, fallback) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
};
const dist = resolve(arg("--dist", resolve(root, "dist")));
const out = resolve(arg("--out", resolve(root, "test/vectors")));

// xorshift32: deterministic, seedable, good enough for test inputs.
function rng(seed) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/**
 * n x K scores. `profile[k]` in [0, 1] = how saturated criterion k is (mean score);
 * `nan` = share of NaN cells; `grid` = quantization steps (0 = continuous Float32);
 * `lo`/`hi` per criterion = raw scale; `spill` = share of out-of-scale values.
 */
function scores(rand, n, K, { profile, nan = 0, grid = 16, scale, spill = 0 } = {}) {
  const s = [];
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < K; k++) {
      if (nan > 0 && rand() < nan) {
        s.push(null);
        continue;
      }
      const p = profile ? profile[k % profile.length] : 0.5;
      let u = Math.min(1, Math.max(0, p + (rand() - 0.5) * 0.6));
      u = grid > 0 ? Math.round(u * grid) / grid : Math.fround(u);
      const [lo, hi] = scale ? scale[k % scale.length] : [0, 1];
      let x = lo + u * (hi - lo);
      if (spill > 0 && rand() < spill) x = rand() < 0.5 ? lo - (hi - lo) * 0.25 : hi + (hi - lo) * 0.25;
      s.push(Math.fround(x));
    }
  }
  return s;
}

const crit = (K, extra = () => ({})) => Array.from({ length: K }, (_, k) => ({ id: `c${k}`, ...extra(k) }));
const sum = (a) => a.reduce((x, y) => x + y, 0);

function buildVectors() {
  const v = [];
  let r;

  r = rng(1);
  v.push({
    name: "focal-k3-grpo",
    options: { rubric: { criteria: crit(3) }, method: "focal", scope: "group", advantage: "grpo" },
    calls: [{ scores: scores(r, 16, 3, { profile: [0.95, 0.5, 0.1] }), groupSizes: [4, 4, 4, 4] }],
  });

  r = rng(2);
  v.push({
    name: "focal-k1",
    options: { rubric: [{ id: "only", weight: 2 }], advantage: "grpo" },
    calls: [{ scores: scores(r, 12, 1, { profile: [0.6] }), groupSizes: [3, 5, 4] }],
    scoreOne: [[0.25], [null]],
  });

  r = rng(3);
  v.push({
    name: "focal-k16-tau-gamma",
    options: {
      rubric: { criteria: crit(16, (k) => ({ weight: 1 + (k % 4) })) },
      gamma: 2,
      tau: 0.5,
      eps: 0.02,
      advantage: "dr-grpo",
    },
    calls: [
      {
        scores: scores(r, 64, 16, { profile: Array.from({ length: 16 }, (_, k) => k / 15), grid: 0 }),
        groupSizes: Array(8).fill(8),
      },
    ],
  });

  r = rng(4);
  const g33 = [5, 3, 8, 1, 7];
  v.push({
    name: "focal-k33-uneven-groups",
    options: { rubric: { criteria: crit(33, (k) => ({ weight: (k % 5) + 0.5 })) }, advantage: "rloo" },
    calls: [
      {
        scores: scores(r, sum(g33), 33, { profile: Array.from({ length: 33 }, (_, k) => ((k * 7) % 33) / 32) }),
        groupSizes: g33,
      },
    ],
  });

  // NaN: scattered cells, a row with every score NaN, a criterion absent from a whole group.
  r = rng(5);
  {
    const K = 5;
    const s = scores(r, 15, K, { profile: [0.9, 0.7, 0.5, 0.3, 0.1], nan: 0.2 });
    for (let k = 0; k < K; k++) s[2 * K + k] = null; // row 2 all NaN
    for (let i = 5; i < 10; i++) s[i * K + 3] = null; // c3 absent from group 1
    v.push({
      name: "focal-nan",
      options: { rubric: { criteria: crit(K) }, advantage: "grpo" },
      calls: [{ scores: s, groupSizes: [5, 5, 5] }],
      scoreOne: [[1, null, 0.5, null, 0]],
    });
  }

  // Caller's mask: invalid rows, a group with no valid row; zero-weight criterion row.
  r = rng(6);
  {
    const K = 4;
    const s = scores(r, 14, K, { profile: [0.8, 0.2, 0.5, 0.6] });
    s[13 * K + 0] = null;
    s[13 * K + 1] = null;
    s[13 * K + 2] = null; // row 13: only z (weight 0) present
    const valid = Array.from({ length: 14 }, (_, i) => (i === 1 || i === 6 || (i >= 8 && i < 11) ? 0 : 1));
    // A rubric refuses a weight of 0 (spec "Validation ranges"): z gets 0 through instance weights.
    const weights = Array.from({ length: 4 }, () => [1, 2, 1, 0]).flat();
    v.push({
      name: "focal-invalid-rows",
      options: {
        rubric: { criteria: [{ id: "a" }, { id: "b", weight: 2 }, { id: "c" }, { id: "z" }] },
        advantage: "rloo",
      },
      calls: [{ scores: s, groupSizes: [4, 4, 3, 3], valid, weights }],
    });
  }

  // Penalties (negative weight and polarity), scales, out-of-scale values clamped.
  r = rng(7);
  {
    const scale = [
      [0, 10],
      [-1, 1],
      [0, 1],
      [1, 5],
      [0, 100],
      [0, 1],
    ];
    v.push({
      name: "focal-penalties-scales",
      options: {
        rubric: {
          criteria: [
            { id: "accuracy", weight: 3, scale: [0, 10] },
            { id: "tone", scale: [-1, 1] },
            { id: "unsafe", weight: -2 },
            { id: "depth", weight: 1.5, scale: [1, 5] },
            { id: "verbosity", polarity: "penalty", scale: [0, 100] },
            { id: "format", weight: 0.5, required: true },
          ],
        },
        advantage: "grpo",
        advEps: 1e-4,
      },
      calls: [{ scores: scores(r, 18, 6, { profile: [0.7, 0.5, 0.1, 0.4, 0.3, 0.95], scale, spill: 0.1 }), groupSizes: [6, 6, 6] }],
    });
  }

  // Bounds (feasible for K=6, infeasible for a group with K_g = 12 > 1 / minWeight) and mixing.
  r = rng(8);
  {
    const K = 12;
    const s = scores(r, 16, K, { profile: [0.99, 0.95, 0.9, 0.2, 0.1, 0.05, 0.5, 0.6, 0.7, 0.8, 0.3, 0.4] });
    for (let i = 0; i < 8; i++) for (let k = 6; k < K; k++) s[i * K + k] = null; // group 0: K_g = 6
    v.push({
      name: "focal-bounds-mix",
      options: { rubric: { criteria: crit(K) }, gamma: 5, minWeight: 0.1, maxWeight: 0.3, mix: 0.8, advantage: "grpo" },
      calls: [{ scores: s, groupSizes: [8, 8] }],
    });
  }

  // Instance rubrics: per-group base weights (G x K).
  r = rng(9);
  {
    const K = 7;
    const G = 4;
    const weights = [];
    for (let g = 0; g < G; g++) for (let k = 0; k < K; k++) weights.push((g + k) % 3 === 0 ? 0 : ((g * K + k) % 4) + 1);
    v.push({
      name: "focal-instance-weights",
      options: { rubric: { criteria: crit(K) }, advantage: "grpo" },
      calls: [{ scores: scores(r, 20, K, { profile: [0.9, 0.1, 0.5, 0.7, 0.3, 0.8, 0.2] }), groupSizes: [5, 5, 5, 5], weights }],
    });
  }

  // Stream scope: state carried over calls, one rejected call (must leave the state alone).
  r = rng(10);
  {
    const K = 8;
    const profile = [0.9, 0.8, 0.7, 0.6, 0.4, 0.3, 0.2, 0.1];
    const call = (groups, nan = 0) => ({ scores: scores(r, sum(groups), K, { profile, nan }), groupSizes: groups });
    const bad = call([4, 4]);
    bad.scores = bad.scores.slice(0, bad.scores.length - 3); // wrong length: rejected
    v.push({
      name: "focal-stream",
      options: { rubric: { criteria: crit(K, (k) => ({ weight: k < 4 ? 2 : 1 })) }, scope: "stream", decay: 0.8, advantage: "grpo" },
      calls: [call([4, 4, 4]), call([6, 6], 0.1), { ...bad, throws: true }, call([3, 3, 3, 3])],
      scoreOne: [[1, 1, 1, 1, 0, 0, 0, 0]],
      snapshot: true,
    });
  }

  r = rng(11);
  v.push({
    name: "weighted-mean-nan",
    options: { rubric: { criteria: crit(7, (k) => ({ weight: k + 1 })) }, method: "weighted-mean", advantage: "none" },
    calls: [{ scores: scores(r, 21, 7, { profile: [0.5], nan: 0.15 }), groupSizes: [7, 7, 7] }],
  });

  r = rng(12);
  v.push({
    name: "gdpo",
    options: { rubric: { criteria: [{ id: "a", weight: 2 }, { id: "b" }, { id: "c", weight: -1 }, { id: "d" }] }, method: "gdpo" },
    calls: [{ scores: scores(r, 24, 4, { profile: [0.8, 0.4, 0.2, 0.6], nan: 0.1 }), groupSizes: [6, 6, 6, 1, 5] }],
  });

  // gamma = 0 must give the static weights; eps = 0 with a fully saturated group (denominator 0).
  r = rng(13);
  {
    const K = 4;
    const s = scores(r, 12, K, { profile: [0.7, 0.3, 0.5, 0.9] });
    v.push({
      name: "focal-gamma0",
      options: { rubric: { criteria: crit(K, (k) => ({ weight: k + 1 })) }, gamma: 0, advantage: "grpo" },
      calls: [{ scores: s, groupSizes: [4, 4, 4] }],
    });
    const sat = s.slice();
    for (let i = 0; i < 4 * K; i++) sat[i] = 1;
    v.push({
      name: "focal-eps0-saturated",
      options: { rubric: { criteria: crit(K) }, eps: 0, advantage: "grpo" },
      calls: [{ scores: sat, groupSizes: [4, 4, 4] }],
    });
  }

  // A larger batch: exercises the SIMD loops over many rows.
  r = rng(14);
  v.push({
    name: "focal-k16-batch512",
    options: { rubric: { criteria: crit(16) }, advantage: "grpo" },
    calls: [{ scores: scores(r, 512, 16, { profile: Array.from({ length: 16 }, (_, k) => (k * 5) % 16 / 15) }), groupSizes: Array(64).fill(8) }],
  });

  return v;
}

function formatVectors(vectors) {
  // One vector per line group, arrays kept on one line: diffable and compact.
  return `[\n${vectors.map((v) => `  ${JSON.stringify(v)}`).join(",\n")}\n]\n`;
}

/** Every call must succeed except those marked `throws`; prints what each vector produced. */
async function check(createEngine, vectors) {
  for (const v of vectors) {
    const engine = await createEngine({ ...v.options, backend: "simd" });
    const seen = [];
    v.calls.forEach((call, i) => {
      let result;
      try {
        result = engine.score(toFloat32(call.scores), call.groupSizes, { valid: call.valid, weights: call.weights });
      } catch (e) {
        if (!call.throws) throw new Error(`${v.name}: call ${i} threw: ${e.message}`);
        seen.push(`call ${i} rejected (${e.message})`);
        return;
      }
      if (call.throws) throw new Error(`${v.name}: call ${i} should have been rejected`);
      const r = result.rewards;
      const nan = r.filter((x) => Number.isNaN(x)).length;
      seen.push(`n=${r.length} reward[0..2]=${[...r.slice(0, 3)].map((x) => x.toFixed(4)).join(",")}${nan ? ` NaN=${nan}` : ""}`);
    });
    process.stdout.write(`  ${v.name.padEnd(26)} ${seen.join("; ")}\n`);
  }
}

async function main() {
  const vectors = buildVectors();
  const { createEngine } = await import(pathToFileURL(resolve(dist, "index.js")).href);
  await check(createEngine, vectors);
  mkdirSync(out, { recursive: true });
  writeFileSync(resolve(out, "vectors.json"), formatVectors(vectors));
  const expected = { generatedBy: "node", node: process.version };
  for (const backend of ["simd", "scalar"]) {
    const r = await runVectors(createEngine, vectors, backend);
    if (r.backend !== backend) throw new Error(`asked for ${backend}, engine runs ${r.backend}`);
    expected[backend] = { digests: r.digests, metrics: r.metrics };
  }
  writeFileSync(resolve(out, "expected.json"), `${JSON.stringify(expected, null, 2)}\n`);
  const same = vectors.filter((v) => expected.simd.digests[v.name] === expected.scalar.digests[v.name]).length;
  process.stdout.write(`${vectors.length} vectors -> ${out}; simd and scalar agree on ${same}/${vectors.length}\n`);
}

await main();
