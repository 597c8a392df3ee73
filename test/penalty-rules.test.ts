/** The warning for a penalty whose only rule is a negation (docs/service.md's quick start once had one). */
import { describe, expect, it } from "vitest";
import { negatedPenaltyRules } from "../dist/service/index.js";

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
