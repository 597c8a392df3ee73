// Where score() puts its outputs (fresh, reuseOutputs, into) and the one compiled module per kind.
import { afterEach, describe, expect, it, vi } from "vitest";
import { createEngine, type Engine, type ScoreResult } from "../../dist/index.js";
import { prng } from "../support/prng.js";

const BACKENDS = ["simd", "scalar", "js"] as const;
const FIELDS = ["rewards", "direct", "advantages", "weights", "saturation"] as const;
const rubric = [{ id: "a", weight: 2 }, { id: "b" }, { id: "c", weight: -1 }, { id: "d", scale: [1, 5] as [number, number] }];
const K = rubric.length;

function batch(seed: number, groups: number, size: number) {
  const rnd = prng(seed);
  const scores = Float32Array.from({ length: groups * size * K }, (_, i) => (i % K === 3 ? 1 + 4 * rnd() : rnd()));
  return { scores, sizes: Array(groups).fill(size) as number[] };
}

const copy = (r: ScoreResult) => Object.fromEntries(FIELDS.map((f) => [f, Array.from(r[f])]));

afterEach(() => vi.restoreAllMocks());

describe.each(BACKENDS)("outputs (%s)", (backend) => {
  for (const scope of ["group", "stream"] as const) {
    it(`${scope}: reuseOutputs and into give the fresh path's bits, call after call`, async () => {
      const fresh = await createEngine({ rubric, backend, scope });
      const reuse = await createEngine({ rubric, backend, scope, reuseOutputs: true });
      const into = await createEngine({ rubric, backend, scope });
      // Growing batches: the engine's buffers (and wasm memory) grow between calls.
      for (const [i, [groups, size]] of [[2, 4], [8, 16], [3, 5], [64, 16]].entries()) {
        const { scores, sizes } = batch(i + 1, groups, size);
        const want = fresh.score(scores, sizes);
        const got = reuse.score(scores, sizes);
        const wLen = scope === "group" ? groups * K : K;
        const n = groups * size;
        const bufs = { rewards: new Float32Array(n), direct: new Float32Array(n), advantages: new Float32Array(n), weights: new Float32Array(wLen), saturation: new Float32Array(wLen) };
        const written = into.score(scores, sizes, { into: bufs });
        for (const f of FIELDS) {
          expect(written[f]).toBe(bufs[f]);
          expect(Array.from(got[f])).toEqual(Array.from(want[f]));
          expect(Array.from(written[f])).toEqual(Array.from(want[f]));
        }
        expect(got.metrics).toEqual(want.metrics);
        expect(written.metrics).toEqual(want.metrics);
      }
      expect(reuse.snapshot()).toEqual(fresh.snapshot());
      expect(into.snapshot()).toEqual(fresh.snapshot());
    });
  }

  it("fresh results outlive later calls and share one allocation; reused ones are overwritten", async () => {
    const fresh = await createEngine({ rubric, backend });
    const reuse = await createEngine({ rubric, backend, reuseOutputs: true });
    const one = batch(7, 4, 8), two = batch(8, 4, 8);
    const f1 = fresh.score(one.scores, one.sizes);
    const kept = copy(f1);
    fresh.score(two.scores, two.sizes);
    expect(copy(f1)).toEqual(kept);
    if (backend !== "js") for (const f of FIELDS) expect(f1[f].buffer).toBe(f1.rewards.buffer);

    const r1 = reuse.score(one.scores, one.sizes);
    const metrics = r1.metrics;
    const r2 = reuse.score(two.scores, two.sizes);
    expect(r1.metrics).toBe(metrics); // read before the next call: kept
    const r3 = reuse.score(one.scores, one.sizes);
    expect(() => r2.metrics).toThrow(/metrics of an earlier call are gone/);
    if (backend !== "js") expect(Array.from(r1.rewards)).toEqual(Array.from(r3.rewards)); // same buffer, rewritten
    expect(copy(r3)).toEqual(kept);
  });

  it("a bad `into` is refused before any state changes", async () => {
    const e = await createEngine({ rubric, backend, scope: "stream" });
    const { scores, sizes } = batch(3, 2, 4);
    const before = e.snapshot();
    const ok = () => ({ rewards: new Float32Array(8), direct: new Float32Array(8), advantages: new Float32Array(8), weights: new Float32Array(K), saturation: new Float32Array(K) });
    const bad: [string, unknown, RegExp][] = [
      ["short rewards", { ...ok(), rewards: new Float32Array(7) }, /into\.rewards must have length 8/],
      ["group-sized weights in the stream scope", { ...ok(), weights: new Float32Array(2 * K) }, /into\.weights must have length 4/],
      ["a plain array", { ...ok(), direct: Array(8).fill(0) }, /into\.direct must be a Float32Array/],
      ["a missing field", { ...ok(), saturation: undefined }, /into\.saturation must be a Float32Array/],
      ["an unknown field", { ...ok(), reward: new Float32Array(8) }, /unknown field "reward": did you mean "rewards"/],
      ["not an object", 5, /into must be/],
    ];
    for (const [, into, message] of bad) {
      expect(() => e.score(scores, sizes, { into } as never)).toThrow(message);
      expect(e.snapshot()).toEqual(before);
    }
    await expect(createEngine({ rubric, backend, reuseOutputs: "yes" as never })).rejects.toThrow(/reuseOutputs must be true or false/);
  });
});

describe("compiled modules", () => {
  it("one WebAssembly.Module per kind serves every engine; each engine keeps its own state", async () => {
    const engines: Engine[] = [];
    for (const backend of ["simd", "scalar"] as const) engines.push(await createEngine({ rubric, backend, scope: "stream" }));
    const compile = vi.spyOn(WebAssembly, "compile");
    const compileStreaming = vi.spyOn(WebAssembly, "compileStreaming");
    for (let i = 0; i < 8; i++) {
      for (const backend of ["simd", "scalar"] as const) engines.push(await createEngine({ rubric, backend, scope: "stream" }));
    }
    expect(compile).not.toHaveBeenCalled();
    expect(compileStreaming).not.toHaveBeenCalled();
    const { scores, sizes } = batch(5, 4, 4);
    engines[0]!.score(scores, sizes);
    expect(engines[0]!.snapshot()).not.toEqual(engines[2]!.snapshot());
    engines[2]!.score(scores, sizes);
    expect(engines[0]!.snapshot()).toEqual(engines[2]!.snapshot());
  });
});
