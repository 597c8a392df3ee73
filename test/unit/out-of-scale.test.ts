/**
 * The out-of-scale policy (spec "Validation ranges and strictness"): every call counts the scores
 * outside their criterion's scale (`focal/frac_out_of_scale`, `focal/<id>/out_of_scale`), the same
 * on all three backends (integer counts: equal, not close), and outOfScale "error" refuses the call
 * with the row, the criterion and the value, the engine unchanged. Then the service: response
 * metrics, extra_logs, /metrics and its log, once per run and criterion.
 */
import { describe, expect, it } from "vitest";
import { createEngine, OutOfScaleError } from "../../dist/index.js";
import { createHandler, type FetchHandler } from "../../dist/service/index.js";
import type { HandlerOptions } from "../../dist/service/handler.js";
import type { BackendName, Criterion } from "../../src/types.js";
import { int, pick, prng, randomScores, randomSizes } from "../support/prng.js";

const BACKENDS: BackendName[] = ["simd", "scalar", "js"];
const f32 = Math.fround;

/** The count written out independently: unmasked rows, present scores, x < lo or x > hi (float32 ends). */
function expected(criteria: readonly Criterion[], scores: Float32Array, valid?: ArrayLike<number>) {
  const K = criteria.length, n = scores.length / K;
  const counts = new Array<number>(K).fill(0);
  let present = 0;
  for (let i = 0; i < n; i++) {
    if (valid && !valid[i]) continue;
    for (let k = 0; k < K; k++) {
      const x = scores[i * K + k]!;
      if (Number.isNaN(x)) continue;
      present++;
      const [lo, hi] = criteria[k]!.scale ?? [0, 1];
      if (x < f32(lo) || x > f32(hi)) counts[k]!++;
    }
  }
  return { counts, frac: present > 0 ? counts.reduce((a, b) => a + b, 0) / present : 0 };
}

describe("focal/frac_out_of_scale", () => {
  it("counts by hand: a score at the scale's ends is inside, NaN is absent, masked rows do not count", async () => {
    const rubric = { criteria: [{ id: "a" }, { id: "b", scale: [1, 10] as const }, { id: "harm", weight: -1 }] };
    const scores = [
      0, 10, 1, //   all inside (ends included)
      1.5, 0.5, NaN, // a above, b below, harm absent
      -0.25, 11, 2, // all three outside; this row is masked in the second call
    ];
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric, backend });
      const m = e.score(scores, [3]).metrics;
      expect(m["focal/frac_out_of_scale"], backend).toBe(5 / 8);
      expect([m["focal/a/out_of_scale"], m["focal/b/out_of_scale"], m["focal/harm/out_of_scale"]], backend).toEqual([2, 2, 1]);
      const masked = e.score(scores, [3], { valid: [1, 1, 0] }).metrics;
      expect(masked["focal/frac_out_of_scale"], backend).toBe(2 / 5);
      expect(masked["focal/harm/out_of_scale"], backend).toBeUndefined(); // a criterion with none has no count
      expect(e.score([0.5, 5, 0], [1]).metrics["focal/frac_out_of_scale"], backend).toBe(0);
    }
  });

  it("random batches: simd, scalar and js give the independent count exactly (every path: copy, input(), into, stepped)", async () => {
    for (let seed = 1; seed <= 40; seed++) {
      const r = prng(seed);
      const K = pick(r, [1, 3, 4, 5, 8, 17, 33]);
      const criteria: Criterion[] = Array.from({ length: K }, (_, k) => ({
        id: `c${k}`,
        ...(r() < 0.2 ? { weight: -1 } : {}),
        ...(r() < 0.4 ? { scale: pick(r, [[1, 10], [-5, 5], [0, 100], [0.1, 0.7]] as const) } : {}),
      }));
      const n = int(r, 1, 300);
      const sizes = randomSizes(r, n, 9);
      const scores = randomScores(r, n, criteria, 0.1, r() < 0.3);
      const valid = r() < 0.5 ? Uint8Array.from({ length: n }, () => (r() < 0.85 ? 1 : 0)) : undefined;
      const want = expected(criteria, scores, valid);
      const stream = r() < 0.3;
      for (const backend of BACKENDS) {
        const e = await createEngine({ rubric: { criteria }, backend, scope: stream ? "stream" : "group" });
        const where = `seed ${seed} ${backend}`;
        const check = (m: Record<string, number>) => {
          expect(m["focal/frac_out_of_scale"], where).toBe(want.frac);
          criteria.forEach((c, k) => expect(m[`focal/${c.id}/out_of_scale`] ?? 0, `${where} ${c.id}`).toBe(want.counts[k]));
        };
        check(e.score(scores, sizes, { valid }).metrics);
        const view = e.input(n);
        view.set(scores);
        check(e.score(view, sizes, { valid }).metrics);
        if (stream) {
          const s = await createEngine({ rubric: { criteria }, backend, scope: "stream" });
          check(s.score(scores, sizes, { valid, step: 0 }).metrics);
        } else {
          const w = sizes.length * K;
          const into = { rewards: new Float32Array(n), direct: new Float32Array(n), advantages: new Float32Array(n), weights: new Float32Array(w), saturation: new Float32Array(w) };
          check(e.score(scores, sizes, { valid, into }).metrics);
        }
      }
    }
  });
});

describe('outOfScale: "error"', () => {
  const rubric = { criteria: [{ id: "accuracy" }, { id: "depth", scale: [1, 10] as const }] };

  it("refuses with the row, the criterion and the value, and leaves the stream state untouched", async () => {
    for (const backend of BACKENDS) {
      for (const step of [undefined, 0]) {
        const e = await createEngine({ rubric, backend, scope: "stream", outOfScale: "error" });
        const twin = await createEngine({ rubric, backend, scope: "stream" });
        const good = [0.2, 3, 0.9, 8, 0.5, 5];
        e.score(good, [3], { step });
        twin.score(good, [3], { step });
        const before = e.snapshot();
        let err: unknown;
        try {
          e.score([0.2, 3, 0.9, 10.5, 1.2, 5], [3], { step: step === undefined ? undefined : 1 });
        } catch (x) {
          err = x;
        }
        expect(err, backend).toBeInstanceOf(OutOfScaleError);
        const o = err as InstanceType<typeof OutOfScaleError>;
        expect([o.row, o.criterion, o.value, o.scale], backend).toEqual([1, "depth", 10.5, [1, 10]]);
        expect(o.message).toBe(`score: row 1, criterion 'depth' is 10.5, outside its scale [1, 10] (outOfScale "error"; give the criterion its real scale in the rubric, or outOfScale "clamp" to clamp it)`);
        expect(e.snapshot(), backend).toEqual(before);
        // The next call scores exactly as on an engine that never saw the refused one.
        const next = [0.4, 2, 0.6, 9, 0.1, 4];
        const a = e.score(next, [3], { step: step === undefined ? undefined : 1 }), b = twin.score(next, [3], { step: step === undefined ? undefined : 1 });
        expect(a.rewards, backend).toEqual(b.rewards);
        expect(a.advantages, backend).toEqual(b.advantages);
      }
    }
  });

  it("a masked row, NaN and the scale's ends pass; an infinite score keeps its own error; scoreOne refuses too", async () => {
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric, backend, outOfScale: "error" });
      expect(() => e.score([0, 1, 1, 10, 5, 99, NaN, NaN], [4], { valid: [1, 1, 0, 1] })).not.toThrow();
      expect(() => e.score([0, 1, Infinity, 5], [2])).toThrow(/is Infinity; scores must be finite/);
      expect(() => e.scoreOne({ accuracy: 0.5, depth: 0 })).toThrow(/^scoreOne, criterion 'depth' is 0, outside its scale \[1, 10\]/);
      const clamp = await createEngine({ rubric, backend });
      expect(e.scoreOne({ accuracy: 0.5, depth: 10 })).toBe(clamp.scoreOne({ accuracy: 0.5, depth: 10 }));
    }
  });

  it("is a strict option", async () => {
    await expect(createEngine({ rubric, outOfScale: "refuse" as never })).rejects.toThrow(/outOfScale must be one of "clamp", "error", got "refuse"/);
    await expect(createEngine({ rubric, outOfScal: "error" } as never)).rejects.toThrow(/unknown option "outOfScal": did you mean "outOfScale"\?/);
  });
});

describe("the service reports and logs out-of-scale scores", () => {
  const RUBRIC = [{ id: "accuracy" }, { id: "depth", scale: [1, 10] }];
  const make = (options: Partial<HandlerOptions>, log: string[]): FetchHandler =>
    createHandler({ rubric: RUBRIC, createEngine, log: (l: string) => log.push(l), ...options } as HandlerOptions);
  const post = async (h: FetchHandler, path: string, body: unknown) => {
    const res = await h(new Request(`http://service.test${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }));
    return { status: res.status, json: (await res.json()) as any };
  };
  const body = (depth: number) => ({ run: "r1", groups: [{ id: "p", rows: [{ accuracy: 0.5, depth }, { accuracy: 1.5, depth: 4 }, { accuracy: 0.2, depth: 5 }] }] });

  it("/v1/score and /get_reward metrics, /metrics, one log line per run and criterion", async () => {
    for (const scope of ["group", "stream"] as const) {
      const log: string[] = [];
      const h = make({ scope }, log);
      await h.ready;
      const a = await post(h, "/v1/score", body(12));
      expect(a.status).toBe(200);
      expect(a.json.metrics["focal/frac_out_of_scale"]).toBe(2 / 6);
      expect(a.json.metrics["focal/depth/out_of_scale"]).toBe(1);
      expect(a.json.metrics["focal/accuracy/out_of_scale"]).toBe(1);
      const b = await post(h, "/v1/score", body(0));
      expect(b.json.metrics["focal/depth/out_of_scale"]).toBe(1);
      const warned = log.filter((l) => l.includes("outside its scale"));
      expect(warned, scope).toHaveLength(2); // accuracy and depth of run r1, once each
      expect(warned.find((l) => l.includes("criterion=depth"))).toMatch(/^focal-reward: warning: run=r1 criterion=depth: 1 scores outside its scale/);
      const reward = await post(h, "/get_reward?run=r2", { query: ["q a", "q b"], prompts: ["q", "q"], labels: [{ accuracy: 2, depth: 5 }, { accuracy: 1, depth: 5 }] });
      expect(reward.status).toBe(200);
      expect(reward.json.extra_logs["focal/frac_out_of_scale"]).toBe(1 / 4);
      expect(reward.json.extra_logs["focal/accuracy/out_of_scale"]).toBe(1);
      expect(log.filter((l) => l.includes("run=r2"))).toHaveLength(1);
      const text = await (await h(new Request("http://service.test/metrics"))).text();
      expect(text).toContain('focal_scores_out_of_scale_total{criterion="depth"} 2');
      expect(text).toContain('focal_scores_out_of_scale_total{criterion="accuracy"} 3');
      expect(text).toMatch(/^focal_frac_out_of_scale 0\.25$/m);
      await h.close();
    }
  });

  it('outOfScale "error": 400 naming the row, criterion and value; the run state is untouched', async () => {
    const log: string[] = [];
    const h = make({ scope: "stream", outOfScale: "error" } as Partial<HandlerOptions>, log);
    await h.ready;
    const clean = { run: "r1", groups: [{ id: "p", rows: [{ accuracy: 0.5, depth: 5 }, { accuracy: 1, depth: 10 }] }] };
    expect((await post(h, "/v1/score", clean)).status).toBe(200);
    const state = await (await h(new Request("http://service.test/v1/runs/r1/state"))).arrayBuffer();
    const bad = await post(h, "/v1/score", { run: "r1", groups: [{ id: "p", rows: [{ accuracy: 0.5, depth: 5 }, { accuracy: 0.5, depth: 12 }] }] });
    expect(bad.status).toBe(400);
    expect(bad.json.detail).toContain("row 1, criterion 'depth' is 12, outside its scale [1, 10]");
    const after = await (await h(new Request("http://service.test/v1/runs/r1/state"))).arrayBuffer();
    expect(new Uint8Array(after)).toEqual(new Uint8Array(state));
    await h.close();
  });
});
