/**
 * Stream scope: a criterion never judged has no estimate, and its weight (from sbar = 0: all
 * headroom) says nothing about it, so metrics, extra_logs and /metrics leave it out until it has
 * one; the reward still uses the spec's rule (sbar = 0 for it).
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { createHandler } from "../../dist/service/index.js";
import type { HandlerOptions } from "../../dist/service/handler.js";
import type { BackendName } from "../../src/types.js";

const rubric = { criteria: [{ id: "accuracy" }, { id: "format" }, { id: "length" }] };
const BACKENDS: BackendName[] = ["simd", "scalar", "js"];

describe("weights of criteria never judged (stream scope)", () => {
  it("are absent from the metrics until the criterion has an estimate; the weights output keeps the spec's value", async () => {
    for (const backend of BACKENDS) {
      for (const stepped of [false, true]) {
        const e = await createEngine({ rubric, backend, scope: "stream" });
        const step = (t: number) => (stepped ? { step: t } : {});
        const first = e.score([0.9, 1, NaN, 0.2, 1, NaN], [2], step(0));
        const m = first.metrics;
        expect(m["focal/length/weight"], backend).toBeUndefined();
        expect(m["focal/length/saturation"], backend).toBeUndefined();
        if (!stepped) {
          expect(m["focal/accuracy/weight"], backend).toBeCloseTo(first.weights[0]!, 7);
          // The spec's rule still weighs it as sbar = 0: the largest share of the three.
          expect(first.weights[2]!, backend).toBeGreaterThan(first.weights[0]!);
        }
        e.score([0.9, 1, 0.5, 0.2, 1, 0.7], [2], step(1));
        const later = e.score([0.9, 1, 0.5, 0.2, 1, 0.7], [2], step(2)).metrics;
        expect(later["focal/length/weight"], `${backend} stepped=${stepped}`).toBeGreaterThan(0);
        expect(later["focal/length/saturation"], `${backend} stepped=${stepped}`).toBeGreaterThan(0);
      }
    }
  });

  it("the service: extra_logs and /metrics have no weight for it until it is judged", async () => {
    const h = createHandler({ rubric: rubric.criteria, createEngine, scope: "stream" } as HandlerOptions);
    await h.ready;
    const reward = async (labels: unknown[]) => {
      const res = await h(new Request("http://service.test/get_reward?run=r", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: labels.map((_, i) => `q ${i}`), prompts: labels.map(() => "q"), labels }),
      }));
      expect(res.status).toBe(200);
      return ((await res.json()) as { extra_logs: Record<string, number> }).extra_logs;
    };
    const gauge = async () => (await (await h(new Request("http://service.test/metrics"))).text()).split("\n").filter((l) => l.startsWith("focal_run_weight{"));
    const a = await reward([{ accuracy: 1, format: 1 }, { accuracy: 0, format: 1 }]);
    expect(Object.keys(a).filter((k) => k.endsWith("/weight")).sort()).toEqual(["focal/accuracy/weight", "focal/format/weight"]);
    expect(await gauge()).toEqual([expect.stringContaining('criterion="accuracy"'), expect.stringContaining('criterion="format"')]);
    const b = await reward([{ accuracy: 1, format: 1, length: 0.5 }, { accuracy: 0, format: 1, length: 1 }]);
    expect(b["focal/length/weight"]).toBeGreaterThan(0);
    expect(await gauge()).toHaveLength(3);
    await h.close();
  });
});
