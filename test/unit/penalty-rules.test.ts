/** The warning for a penalty whose only rule is a negation (docs/service.md's quick start once had one). */
import { describe, expect, it } from "vitest";
import { negatedPenaltyRules } from "../../dist/service/index.js";

describe("negatedPenaltyRules", () => {
  it("warns for a penalty with notContains or maxLength alone, names the criterion", () => {
    const w = negatedPenaltyRules([
      { id: "toxicity", weight: -1, rule: { notContains: ["idiot"] } },
      { id: "ramble", polarity: "penalty", rule: [{ maxLength: 400 }] },
      { id: "ok-penalty", weight: -1, rule: { contains: ["idiot"] } },
      { id: "range", weight: -1, rule: { minLength: 5, maxLength: 10 } },
      { id: "reward", rule: { notContains: ["x"] } },
      { id: "mixed", weight: -1, rule: [{ notContains: ["a"] }, { contains: ["b"] }] },
    ]);
    expect(w).toHaveLength(2);
    expect(w[0]).toMatch(/'toxicity'.*notContains.*contains/);
    expect(w[1]).toMatch(/'ramble'.*maxLength/);
  });
  it("the service quick start's rubric no longer triggers it", () => {
    expect(negatedPenaltyRules([
      { id: "accuracy", weight: 2 },
      { id: "toxicity", weight: -1, rule: { contains: ["idiot"], ignoreCase: true } },
    ])).toEqual([]);
  });
});

describe("the browser page's default example", () => {
  it("no longer rewards the unsafe rollout: below the group mean on every backend", async () => {
    const { readFileSync } = await import("node:fs");
    const { createEngine } = await import("../../dist/index.js");
    const src = readFileSync(new URL("../../examples/browser/app.js", import.meta.url), "utf8");
    const literal = (name: string) => new Function(`return ${src.match(new RegExp(`const ${name} = ([\\s\\S]*?\\n[}\\]]);`))![1]}`)();
    const rubric = literal("DEFAULT_RUBRIC") as { criteria: { id: string }[] };
    const rows = literal("DEFAULT_ROWS") as Record<string, number | null>[];
    const ids = rubric.criteria.map((c) => c.id);
    const unsafe = rows.findIndex((r) => r.unsafe === 1);
    expect(unsafe).toBeGreaterThanOrEqual(0);
    const scores = rows.flatMap((r) => ids.map((id) => r[id] ?? NaN));
    for (const backend of ["simd", "scalar", "js"] as const) {
      const e = await createEngine({ rubric, backend });
      const out = e.score(scores, [rows.length]);
      expect(out.advantages[unsafe], backend).toBeLessThan(0);
      // with the guard off, focal starves the penalty and the unsafe rollout gets a positive advantage
      const off = await createEngine({ rubric: { criteria: rubric.criteria.map((c) => (c.id === "unsafe" ? { ...c, fixed: false } : c)) }, backend });
      expect(off.score(scores, [rows.length]).advantages[unsafe], backend).toBeGreaterThan(0);
    }
  });
});
