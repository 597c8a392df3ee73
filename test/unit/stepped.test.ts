/**
 * Step-keyed stream updates (spec "Step-keyed stream updates"): the weights of a step do not depend
 * on how its calls are split or ordered, the state folds once per step, late calls use their step's
 * weights, stale ones and stepped/unstepped mixing are refused with the state untouched, and the
 * snapshot resumes an open step exactly. simd == scalar bit for bit, js within 1e-6, both checked
 * against the float64 oracle (test/support/oracle.ts) run through the spec's step rules here.
 */
import { describe, expect, it } from "vitest";
import { createEngine, StepConflictError } from "../../dist/index.js";
import type { BackendName, Criterion, Engine, EngineOptions, ScoreResult } from "../../src/types.js";
import { oracleScore, oracleScoreOne, oracleStreamWeights, type OracleState } from "../support/oracle.js";
import { int, pick, prng, randomScores, randomSizes } from "../support/prng.js";

const TOL = 1e-6;
const BACKENDS: BackendName[] = ["simd", "scalar", "js"];
const u32 = (a: Float32Array) => Array.from(new Uint32Array(a.buffer, a.byteOffset, a.length));
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

interface Call { step: number; scores: Float32Array; sizes: number[]; valid?: number[] }

/** A random stream rubric, options and a run of steps, each step split into 1-3 calls. */
function randomRun(seed: number) {
  const r = prng(seed);
  const K = int(r, 1, 9);
  const criteria: Criterion[] = Array.from({ length: K }, (_, k) => {
    const c: { -readonly [P in keyof Criterion]: Criterion[P] } = { id: `c${k}`, weight: Math.fround(0.25 + r() * 3) };
    if (r() < 0.2) c.weight = -c.weight!;
    if (r() < 0.2) c.scale = [0, 10];
    if (r() < 0.15) c.fixed = !(c.weight! < 0);
    return c;
  });
  const opts: Omit<EngineOptions, "backend"> = { rubric: criteria, scope: "stream", advantage: pick(r, ["grpo", "dr-grpo", "rloo", "none"] as const) };
  if (r() < 0.5) opts.gamma = pick(r, [0, 1, 2, 3, 5]);
  if (r() < 0.5) opts.decay = Math.fround(0.5 + r() * 0.45);
  if (r() < 0.3) opts.minWeight = 0.02;
  if (r() < 0.3) opts.mix = 0.7;
  const calls: Call[] = [];
  const steps = int(r, 2, 5);
  for (let step = 0; step < steps; step++) {
    const parts = int(r, 1, 3);
    for (let p = 0; p < parts; p++) {
      const n = int(r, 1, 40);
      const sizes = randomSizes(r, n, pick(r, [1, 2, 4, 8]));
      const call: Call = { step: step * 2, scores: randomScores(r, n, criteria, pick(r, [0, 0.1, 0.3]), r() < 0.5), sizes };
      if (r() < 0.3) call.valid = Array.from({ length: n }, () => (r() < 0.1 ? 0 : 1));
      calls.push(call);
    }
  }
  return { criteria, opts, calls };
}

/** The spec's step rules over the oracle: per call, the expected rewards (NaN = invalid row) and weights. */
function oracleRun(criteria: readonly Criterion[], opts: Omit<EngineOptions, "backend">, calls: readonly Call[]) {
  const cfg = { ...opts, criteria, method: "focal" } as Parameters<typeof oracleStreamWeights>[0];
  const K = criteria.length, decay = opts.decay ?? 0.9;
  let committed: OracleState = { sbar: new Array(K).fill(0), seen: new Array(K).fill(false) };
  let open: number | undefined;
  let acc: number[][] = [];
  const closed = new Map<number, OracleState>();
  return calls.map((c) => {
    if (open === undefined || c.step > open) {
      if (open !== undefined) {
        closed.set(open, committed);
        const next = { sbar: [...committed.sbar], seen: [...committed.seen] };
        acc.forEach((s, k) => {
          if (s.length === 0) return;
          const shat = s.reduce((a, b) => a + b, 0) / s.length;
          next.sbar[k] = next.seen[k] ? decay * next.sbar[k] + (1 - decay) * shat : shat;
          next.seen[k] = true;
        });
        committed = next;
      }
      open = c.step;
      acc = Array.from({ length: K }, () => []);
    }
    const late = c.step < open;
    const state = late ? closed.get(c.step)! : committed;
    const group = oracleScore({ ...cfg, scope: "group", scores: c.scores, groupSizes: c.sizes, valid: c.valid });
    if (!late) group.saturation.forEach((s, i) => { if (!Number.isNaN(s)) acc[i % K].push(s); });
    const n = c.sizes.reduce((a, b) => a + b, 0);
    const rewards = Array.from({ length: n }, (_, i) =>
      c.valid && !c.valid[i] ? NaN : oracleScoreOne(cfg, c.scores.subarray(i * K, i * K + K), state));
    return { rewards, weights: oracleStreamWeights(cfg, state), late };
  });
}

async function engines(opts: Omit<EngineOptions, "backend">): Promise<Record<BackendName, Engine>> {
  const out = {} as Record<BackendName, Engine>;
  for (const b of BACKENDS) out[b] = await createEngine({ ...opts, backend: b });
  return out;
}

function run(e: Engine, calls: readonly Call[]): ScoreResult[] {
  return calls.map((c) => e.score(c.scores, c.sizes, { step: c.step, valid: c.valid }));
}

describe("step-keyed stream updates", () => {
  it("agree across backends (simd == scalar bit for bit, js within 1e-6) and with the spec's step rules on the oracle", async () => {
    for (let seed = 1; seed <= 30; seed++) {
      const { criteria, opts, calls } = randomRun(seed);
      const e = await engines(opts);
      const out = Object.fromEntries(BACKENDS.map((b) => [b, run(e[b], calls)])) as Record<BackendName, ScoreResult[]>;
      const expected = oracleRun(criteria, opts, calls);
      calls.forEach((_, j) => {
        for (const f of ["rewards", "direct", "advantages", "weights", "saturation"] as const) {
          expect(u32(out.scalar[j][f]), `seed ${seed} call ${j} ${f}`).toEqual(u32(out.simd[j][f]));
        }
        for (const b of ["simd", "js"] as const) {
          const o = out[b][j];
          expected[j].weights.forEach((w, k) => expect(Math.abs(o.weights[k] - w), `seed ${seed} ${b} call ${j} weight ${k}`).toBeLessThanOrEqual(TOL));
          expected[j].rewards.forEach((r, i) => {
            if (!Number.isNaN(r)) expect(Math.abs(o.rewards[i] - r), `seed ${seed} ${b} call ${j} reward ${i}: ${o.rewards[i]} vs ${r}`).toBeLessThanOrEqual(TOL);
          });
        }
        expect(out.simd[j].metrics["focal/late_rows"]).toBe(0);
      });
      expect(hex(e.scalar.snapshot())).toBe(hex(e.simd.snapshot()));
    }
  });

  it("give a step the same rewards and the same state bytes whatever the split and the order of its calls", async () => {
    const { opts, calls } = randomRun(7);
    const criteria = opts.rubric as Criterion[];
    const K = criteria.length;
    const r = prng(99);
    // Step 0 as one call, then step 1 as one call of 3 x 8 rows, and as its three parts in every order.
    const part = (m: number) => ({ scores: randomScores(r, m, criteria, 0.1, false), sizes: [4, 4].slice(0, m / 4) });
    const parts = [part(8), part(8), part(8)];
    const whole = { step: 1, scores: Float32Array.from(parts.flatMap((p) => Array.from(p.scores))), sizes: parts.flatMap((p) => p.sizes) };
    const next = { step: 2, scores: parts[0].scores, sizes: parts[0].sizes };
    for (const backend of BACKENDS) {
      const ref = await createEngine({ ...opts, backend });
      ref.score(calls[0].scores, calls[0].sizes, { step: 0 });
      const all = ref.score(whole.scores, whole.sizes, { step: 1 });
      const after = ref.score(next.scores, next.sizes, { step: 2 });
      for (const order of [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]]) {
        const e = await createEngine({ ...opts, backend });
        e.score(calls[0].scores, calls[0].sizes, { step: 0 });
        const got: number[][] = [];
        for (const p of order) got[p] = Array.from(e.score(parts[p].scores, parts[p].sizes, { step: 1 }).rewards);
        expect(got.flat(), `${backend} order ${order}`).toEqual(Array.from(all.rewards));
        const a = e.score(next.scores, next.sizes, { step: 2 });
        // The fold of step 1 is exact (integer accumulator), so step 2's weights match bit for bit.
        expect(u32(a.weights), `${backend} order ${order}: step 2 weights`).toEqual(u32(after.weights));
        // Same state bytes, but for the call count (one call of step 1 against three).
        const bytes = (x: Engine) => { const s = x.snapshot(); s.fill(0, 16, 24); return hex(s.subarray(0, s.length - 4)); };
        expect(bytes(e), `${backend} order ${order}: state`).toBe(bytes(ref));
      }
      expect(K).toBeGreaterThan(0);
    }
  });

  it("score a late call with its step's weights without accumulating it, and refuse a stale one leaving the state as it was", async () => {
    const criteria: Criterion[] = [{ id: "a", weight: 2 }, { id: "b" }];
    const r = prng(5);
    const batch = () => ({ scores: randomScores(r, 8, criteria, 0, false), sizes: [4, 4] });
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric: criteria, scope: "stream", backend });
      const twin = await createEngine({ rubric: criteria, scope: "stream", backend });
      const byStep: { b: ReturnType<typeof batch>; rewards: Float32Array }[] = [];
      for (let step = 0; step < 12; step++) {
        const b = batch();
        const out = e.score(b.scores, b.sizes, { step });
        twin.score(b.scores, b.sizes, { step });
        byStep.push({ b, rewards: out.rewards });
      }
      // Step 3 is within the last 8 closed steps (3..10; 11 is open): its weights, no accumulation.
      const late = e.score(byStep[3].b.scores, byStep[3].b.sizes, { step: 3 });
      expect(u32(late.rewards)).toEqual(u32(byStep[3].rewards));
      expect(late.metrics["focal/late_rows"]).toBe(8);
      const b = batch();
      expect(u32(e.score(b.scores, b.sizes, { step: 12 }).weights)).toEqual(u32(twin.score(b.scores, b.sizes, { step: 12 }).weights));
      // Steps 0..3 are now older than the window (4..11 closed, 12 open).
      const before = hex(e.snapshot());
      expect(() => e.score(byStep[3].b.scores, byStep[3].b.sizes, { step: 3 })).toThrow(StepConflictError);
      expect(() => e.score(byStep[3].b.scores, byStep[3].b.sizes, { step: 3 })).toThrow(/step 3 is stale: .*last 8 closed steps \(4\.\.11\)/);
      expect(hex(e.snapshot())).toBe(before);
      // A bad step, an infinite score: refused, nothing changes.
      expect(() => e.score(b.scores, b.sizes, { step: -1 })).toThrow(/step must be an integer >= 0/);
      expect(() => e.score(b.scores, b.sizes, { step: 1.5 })).toThrow(/step must be an integer >= 0/);
      const inf = b.scores.slice();
      inf[3] = Infinity;
      expect(() => e.score(inf, b.sizes, { step: 13 })).toThrow(/finite/);
      expect(hex(e.snapshot())).toBe(before);
    }
  });

  it("refuse mixing stepped and unstepped calls on one state, and steps outside the stream scope", async () => {
    const rubric = [{ id: "a" }, { id: "b" }];
    const e = await createEngine({ rubric, scope: "stream" });
    e.score([0.5, 1, 0.2, 0], [2]);
    expect(() => e.score([0.5, 1, 0.2, 0], [2], { step: 0 })).toThrow(/advanced by calls without a step/);
    e.reset();
    e.score([0.5, 1, 0.2, 0], [2], { step: 0 });
    const before = hex(e.snapshot());
    expect(() => e.score([0.5, 1, 0.2, 0], [2])).toThrow(/step-keyed \(step 0 is open\); every call needs a step/);
    expect(hex(e.snapshot())).toBe(before);
    const g = await createEngine({ rubric });
    expect(() => g.score([0.5, 1, 0.2, 0], [2], { step: 0 })).toThrow(/step applies to scope "stream"/);
  });

  it("carry the open step in the snapshot: a restored engine resumes it exactly; a bad snapshot is refused", async () => {
    const { opts, calls } = randomRun(11);
    for (const backend of BACKENDS) {
      const whole = await createEngine({ ...opts, backend });
      const first = await createEngine({ ...opts, backend });
      const cut = Math.floor(calls.length / 2);
      const expected = run(whole, calls);
      run(first, calls.slice(0, cut));
      const resumed = await createEngine({ ...opts, backend });
      resumed.restore(first.snapshot());
      const rest = run(resumed, calls.slice(cut));
      rest.forEach((o, j) => expect(u32(o.rewards), `${backend} call ${cut + j}`).toEqual(u32(expected[cut + j].rewards)));
      expect(hex(resumed.snapshot())).toBe(hex(whole.snapshot()));
      // scoreOne: the open step's weights, no state change.
      const K = (opts.rubric as Criterion[]).length;
      const last = calls[calls.length - 1];
      const row = last.scores.subarray(0, K);
      if (!(last.valid && !last.valid[0])) {
        expect(Math.abs(resumed.scoreOne(row) - expected[calls.length - 1].rewards[0])).toBeLessThanOrEqual(TOL);
      }
      expect(hex(resumed.snapshot())).toBe(hex(whole.snapshot()));
      const bad = whole.snapshot();
      bad[bad.length - 10] ^= 1;
      expect(() => resumed.restore(bad)).toThrow(/checksum/);
      expect(() => resumed.restore(whole.snapshot().subarray(0, 40))).toThrow(/restore:/);
    }
    // A state from before steps (version 1) is still read, and can go on without steps.
    const plain = await createEngine({ rubric: [{ id: "a" }], scope: "stream" });
    plain.score([0.3, 0.9], [2]);
    const v1 = plain.snapshot();
    expect(new DataView(v1.buffer).getUint16(4, true)).toBe(1);
    const again = await createEngine({ rubric: [{ id: "a" }], scope: "stream" });
    again.restore(v1);
    expect(hex(again.snapshot())).toBe(hex(v1));
  });
});
