// Bad input gets a clear error and changes nothing: rubric, options, batches, scoreOne, snapshots.
import { describe, expect, it, vi } from "vitest";
import { createEngine, MAX_CELLS, type Engine, type EngineOptions } from "../../dist/index.js";

const BACKENDS = ["simd", "scalar", "js"] as const;
const rubric = [
  { id: "accuracy", weight: 2 },
  { id: "tone", scale: [1, 10] as [number, number] },
  { id: "harm", weight: -1 },
];
const batch = Float32Array.from([0.9, 7, 0.1, 0.4, 3, 0.8, 0.7, 9, 0, 0.2, 2, 0.5]);

function streamEngine(backend: (typeof BACKENDS)[number]) {
  return createEngine({ rubric, scope: "stream", backend });
}

describe("rubric validation", () => {
  const cases: [string, EngineOptions["rubric"], RegExp][] = [
    ["empty", [], /no criteria/],
    ["not a rubric", 42 as never, /expected/],
    ["duplicate ids", [{ id: "a" }, { id: "a" }], /duplicate criterion id 'a'/],
    ["missing id", [{ weight: 1 } as never], /criterion 0: a criterion id must be a non-empty string/],
    ["NaN weight", [{ id: "a", weight: NaN }], /weight must satisfy 0 < \|weight\| <= 1e30, got NaN/],
    ["infinite weight", [{ id: "a", weight: Infinity }], /weight must satisfy 0 < \|weight\| <= 1e30, got Infinity/],
    ["a zero weight", [{ id: "a", weight: 0 }, { id: "b" }], /criterion 'a': weight must satisfy 0 < \|weight\|.*got 0 \(leave the criterion out/],
    ["lo >= hi", [{ id: "a", scale: [1, 1] }], /lo < hi/],
    ["non-finite scale", [{ id: "a", scale: [0, Infinity] }], /scale ends must be finite/],
    ["bad polarity", [{ id: "a", polarity: "bad" as never }], /polarity/],
  ];
  for (const [name, r, message] of cases) {
    it(`rejects ${name}`, async () => {
      await expect(createEngine({ rubric: r })).rejects.toThrow(message);
    });
  }
});

describe("option validation", () => {
  const cases: [string, Partial<EngineOptions>, RegExp][] = [
    ["unknown method", { method: "mean" as never }, /method must be one of/],
    ["unknown scope", { scope: "global" as never }, /scope must be one of/],
    ["stream with weighted-mean", { scope: "stream", method: "weighted-mean" }, /applies to method "focal"/],
    ["unknown advantage", { advantage: "ppo" as never }, /advantage must be one of/],
    ["unknown backend", { backend: "gpu" as never }, /backend must be one of/],
    ["NaN gamma", { gamma: NaN }, /gamma must be in \[0, 64\], got NaN/],
    ["negative gamma", { gamma: -1 }, /gamma must be in \[0, 64\], got -1/],
    ["tau 0", { tau: 0 }, /tau must be in \[1e-6, 1e6\], got 0/],
    ["infinite tau", { tau: Infinity }, /tau must be in \[1e-6, 1e6\], got Infinity/],
    ["negative eps", { eps: -0.1 }, /eps must be in \[0, 1e3\], got -0.1/],
    ["minWeight > maxWeight", { minWeight: 0.5, maxWeight: 0.2 }, /must not exceed maxWeight/],
    ["mix above 1", { mix: 1.5 }, /mix must be in \[0, 1\]/],
    ["decay 1", { decay: 1 }, /decay must be in \[0, 1\)/],
    ["string gamma", { gamma: "3" as never }, /gamma must be a number in \[0, 64\], got string "3"/],
  ];
  for (const [name, options, message] of cases) {
    it(`rejects ${name}`, async () => {
      await expect(createEngine({ rubric, ...options })).rejects.toThrow(message);
    });
  }
});

/** Scores a known batch, then checks the engine state is exactly what it was before `bad`. */
async function expectUntouched(backend: (typeof BACKENDS)[number], bad: (e: Engine) => unknown, message: RegExp) {
  const e = await streamEngine(backend);
  e.score(batch, [2, 2]);
  const before = e.snapshot();
  const oneBefore = e.scoreOne([0.5, 5, 0.5]);
  expect(() => bad(e)).toThrow(message);
  expect(e.snapshot()).toEqual(before);
  expect(e.scoreOne([0.5, 5, 0.5])).toBe(oneBefore);
  // The next good call behaves as if the bad one never happened.
  const twin = await streamEngine(backend);
  twin.score(batch, [2, 2]);
  expect(e.score(batch, [2, 2]).rewards).toEqual(twin.score(batch, [2, 2]).rewards);
}

describe.each(BACKENDS)("rejected calls leave the %s engine untouched", (backend) => {
  it("infinite score", async () => {
    const bad = batch.slice();
    bad[7] = -Infinity;
    await expectUntouched(backend, (e) => e.score(bad, [2, 2]), /row 2, criterion 1 is -Infinity/);
  });
  it("wrong length", () => expectUntouched(backend, (e) => e.score(batch.subarray(1), [2, 2]), /expected 4 rows x 3 criteria = 12 scores, got 11/));
  it("group sizes that do not add up", () => expectUntouched(backend, (e) => e.score(batch, [2, 1]), /expected 3 rows/));
  it("empty group", () => expectUntouched(backend, (e) => e.score(batch, [2, 0, 2]), /group 1 has size 0/));
  it("no groups", () => expectUntouched(backend, (e) => e.score(new Float32Array(0), []), /no groups/));
  it("fractional group size", () => expectUntouched(backend, (e) => e.score(batch, [1.5, 2.5]), /positive integers/));
  it("non-numeric score in a plain array", () =>
    expectUntouched(backend, (e) => e.score([...batch.slice(0, 11), "x" as never], [2, 2]), /row 3: criterion 2 is string/));
  it("mask of the wrong length", () => expectUntouched(backend, (e) => e.score(batch, [2, 2], { valid: [true] }), /one entry per row \(4\)/));
  it("instance weights in the stream scope", () =>
    expectUntouched(backend, (e) => e.score(batch, [2, 2], { weights: new Array(6).fill(1) }), /need scope "group"/));
  it("oversized batch", () =>
    expectUntouched(backend, (e) => e.score(new Float32Array(3), [MAX_CELLS]), /exceed the \d+-score limit/));
  it("scoreOne with an unknown criterion", () => expectUntouched(backend, (e) => e.scoreOne({ accuracy: 1, style: 0 }), /unknown criterion 'style'/));
  it("scoreOne with the wrong length", () => expectUntouched(backend, (e) => e.scoreOne([1, 2]), /expected 3 scores, got 2/));
  it("scoreOne with an infinite score", () => expectUntouched(backend, (e) => e.scoreOne([1, Infinity, 0]), /'tone' is Infinity/));
  // A Float32Array of K takes the hot path, which looks for the infinity only once the row scored NaN.
  it("scoreOne with an infinite score in a Float32Array", () =>
    expectUntouched(backend, (e) => e.scoreOne(Float32Array.of(1, 5, -Infinity)), /'harm' is -Infinity/));
});

describe.each(BACKENDS)("scoreOne input shapes (%s)", (backend) => {
  it("takes K scores, a { criterion: score } record, or [{ name, score }] alike", async () => {
    const e = await streamEngine(backend);
    e.score(batch, [2, 2]);
    const byOrder = e.scoreOne([0.8, 6, NaN]);
    expect(e.scoreOne({ accuracy: 0.8, tone: 6, harm: null })).toBe(byOrder);
    expect(e.scoreOne([{ name: "tone", score: 6 }, { name: "accuracy", score: 0.8, metadata: { why: "ok" } }])).toBe(byOrder);
    expect(e.scoreOne(Float32Array.of(0.8, 6, NaN))).toBe(byOrder);
    expect(e.scoreOne([{ name: "harm", score: null }])).toBeNaN(); // nothing judged: no reward
  });
  it("a Float32Array with an infinity or an absent score, in either scope: the same errors and results as an array", async () => {
    for (const scope of ["group", "stream"] as const) {
      const e = await createEngine({ rubric, scope, backend });
      if (scope === "stream") e.score(batch, [2, 2]);
      for (const row of [[0.8, 6, 0.1], [0.8, NaN, 0.1], [NaN, NaN, NaN], [2, -3, 0.5]]) {
        expect(Object.is(e.scoreOne(Float32Array.from(row)), e.scoreOne(row)), `${scope} ${row}`).toBe(true);
      }
      for (const row of [[Infinity, 6, 0.1], [NaN, 6, Infinity], [0.8, -Infinity, NaN]]) {
        const which = ["accuracy", "tone", "harm"][row.findIndex((x) => Math.abs(x) === Infinity)];
        expect(() => e.scoreOne(Float32Array.from(row)), `${scope} ${row}`).toThrow(new RegExp(`'${which}' is -?Infinity`));
      }
    }
  });
  it("refuses unknown, repeated or non-numeric named scores", async () => {
    const e = await streamEngine(backend);
    expect(() => e.scoreOne([{ name: "style", score: 1 }])).toThrow(/item 0: unknown criterion 'style'/);
    expect(() => e.scoreOne([{ name: "tone", score: 1 }, { name: "tone", score: 2 }])).toThrow(/'tone' is given twice/);
    expect(() => e.scoreOne([{ name: "tone", score: "high" as never }])).toThrow(/is string, expected a number or null/);
  });
});

describe("instance weights", () => {
  it.each([[-1, /must be a number in \[0, 1e30\], got -1/], [NaN, /must be a number in \[0, 1e30\], got NaN/], [Infinity, /got Infinity/], [1e39, /got 1e\+39/]])(
    "rejects %s with the group and criterion named",
    async (w, message) => {
      const e = await createEngine({ rubric });
      const weights = [1, 1, 1, 1, w, 1];
      expect(() => e.score(batch, [2, 2], { weights })).toThrow(message);
      expect(() => e.score(batch, [2, 2], { weights })).toThrow(/group 1, criterion 'tone'/);
    },
  );
  it("rejects the wrong count", async () => {
    const e = await createEngine({ rubric });
    expect(() => e.score(batch, [2, 2], { weights: [1, 1, 1] })).toThrow(/groups x criteria = 6 numbers, got 3/);
  });
});

describe.each(BACKENDS)("snapshots (%s)", (backend) => {
  it("round-trips the stream state, into any backend", async () => {
    const a = await streamEngine(backend);
    a.score(batch, [2, 2]);
    a.score(batch.map((x) => x / 2), [1, 3]);
    const bytes = a.snapshot();
    const sa = a.score(batch, [2, 2]);
    for (const other of BACKENDS) {
      const b = await streamEngine(other);
      b.restore(bytes);
      // The same backend continues bit for bit; f32 state (wasm) and f64 state (js) agree closely.
      const sb = b.score(batch, [2, 2]);
      if ((backend === "js") === (other === "js")) expect(sb.rewards).toEqual(sa.rewards);
      else for (let i = 0; i < 4; i++) expect(sb.rewards[i]).toBeCloseTo(sa.rewards[i], 6);
    }
  });

  it("rejects corrupt snapshots and keeps the state", async () => {
    const e = await streamEngine(backend);
    e.score(batch, [2, 2]);
    const good = e.snapshot();
    const flipped = good.slice();
    flipped[30] ^= 0x10;
    const badVersion = good.slice();
    badVersion[4] = 9;
    const cases: [Uint8Array, RegExp][] = [
      [flipped, /checksum mismatch/],
      [good.subarray(0, good.length - 1), /snapshot length|too short/],
      [new Uint8Array(8), /too short/],
      [new TextEncoder().encode("not a snapshot at all, really"), /bad magic/],
      [badVersion, /unsupported snapshot version 9/],
      [[1, 2, 3] as never, /expected a Uint8Array/],
    ];
    for (const [bytes, message] of cases) {
      expect(() => e.restore(bytes)).toThrow(message);
      expect(e.snapshot()).toEqual(good);
    }
  });

  it("rejects a snapshot of another rubric", async () => {
    const e = await streamEngine(backend);
    const other = await createEngine({ rubric: [{ id: "accuracy" }, { id: "tone" }, { id: "safety" }], scope: "stream", backend });
    expect(() => e.restore(other.snapshot())).toThrow(/another rubric/);
    const pow3r = await createEngine({ rubric, method: "pow3r", backend });
    expect(() => e.restore(pow3r.snapshot())).toThrow(/another rubric or method/);
    const rescaled = await createEngine({ rubric: [rubric[0], { id: "tone", scale: [0, 10] }, rubric[2]], scope: "stream", backend });
    expect(() => e.restore(rescaled.snapshot())).toThrow(/another rubric/);
  });

  it("reset forgets the state", async () => {
    const fresh = await streamEngine(backend);
    const e = await streamEngine(backend);
    e.score(batch, [2, 2]);
    e.reset();
    expect(e.snapshot()).toEqual(fresh.snapshot());
  });
});

describe.each(["simd", "scalar"] as const)("zero-copy input (%s)", (backend) => {
  it("scores a view in place, and a view detached by growth is refused with advice", async () => {
    const e = await createEngine({ rubric, backend });
    const view = e.input(4);
    view.set(batch);
    const inPlace = e.score(view, [2, 2]);
    expect(inPlace.rewards).toEqual(e.score(batch, [2, 2]).rewards);
    e.input(200_000); // grows memory: the old view detaches
    expect(() => e.score(view, [2, 2])).toThrow(/detached .* call input\(\) again/);
    const again = e.input(4);
    again.set(batch);
    expect(e.score(again, [2, 2]).rewards).toEqual(inPlace.rewards);
  });

  it("results stay valid after later calls reuse the engine's memory", async () => {
    const e = await createEngine({ rubric, backend });
    const first = e.score(batch, [2, 2]);
    const copy = first.rewards.slice();
    e.score(batch.map((x) => x / 3), [4]);
    expect(first.rewards).toEqual(copy);
  });
});

describe("backend selection", () => {
  it("auto picks simd where WebAssembly SIMD validates, and falls back to scalar where it does not", async () => {
    expect((await createEngine({ rubric })).backend).toBe("simd");
    const validate = vi.spyOn(WebAssembly, "validate").mockReturnValue(false); // an engine without SIMD
    try {
      const e = await createEngine({ rubric });
      expect(e.backend).toBe("scalar");
      const scalar = await createEngine({ rubric, backend: "scalar" });
      expect(e.score(batch, [2, 2]).rewards).toEqual(scalar.score(batch, [2, 2]).rewards);
      await expect(createEngine({ rubric, backend: "simd" })).rejects.toThrow(/no WebAssembly SIMD/);
    } finally {
      validate.mockRestore();
    }
  });
  it("takes the caller's own wasm bytes, and reports a bad module clearly", async () => {
    const { readFile } = await import("node:fs/promises");
    const bytes = await readFile(new URL("../../dist/focal-scalar.wasm", import.meta.url));
    expect((await createEngine({ rubric, backend: "scalar", wasm: { scalar: bytes } })).backend).toBe("scalar");
    await expect(createEngine({ rubric, backend: "scalar", wasm: { scalar: new Uint8Array([0, 1, 2]) } })).rejects.toThrow();
  });
});

describe("a batch whose buffers pass 2 GiB of wasm memory", () => {
  it("scores the groups at the end exactly as on their own", async () => {
    const k = 16, rows = MAX_CELLS / k; // input(rows) lays out ~2.2 GiB: offsets past 2^31
    const big = await createEngine({ rubric: Array.from({ length: k }, (_, c) => ({ id: `c${c}` })) });
    const view = big.input(rows);
    for (let i = 0; i < view.length; i++) view[i] = ((i * 2654435761) % 1009) / 1009;
    const out = big.score(view, new Array(rows / 16).fill(16));
    const small = await createEngine({ rubric: Array.from({ length: k }, (_, c) => ({ id: `c${c}` })) });
    const tail = Array.from(view.subarray(view.length - 32 * k));
    const alone = small.score(tail, [16, 16]);
    expect(out.rewards.subarray(rows - 32)).toEqual(alone.rewards);
    expect(out.advantages.subarray(rows - 32)).toEqual(alone.advantages);
    expect(out.weights.subarray(out.weights.length - 2 * k)).toEqual(alone.weights);
  }, 60_000);
});
