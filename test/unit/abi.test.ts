// The host and the kernels are built from one ABI (src/abi.ts): the built wasm must report the
// same enum sizes and lay its fixed region out as the enums say, for simd and scalar alike.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { AbiQuery, AdvantageCode, Call, Head, MethodCode, Region, ScopeCode, Setting, Stat, Summary } from "../../dist/abi.js";
import { METHOD_CODES } from "../../dist/codes.js";
import { createEngine, METHODS } from "../../dist/index.js";

const ends: Record<AbiQuery, number> = {
  [AbiQuery.Methods]: MethodCode.End, [AbiQuery.Advantages]: AdvantageCode.End, [AbiQuery.Scopes]: ScopeCode.End,
  [AbiQuery.Stats]: Stat.End, [AbiQuery.Settings]: Setting.End, [AbiQuery.Calls]: Call.End,
  [AbiQuery.Summaries]: Summary.End, [AbiQuery.HeadEnd]: Head.End, [AbiQuery.RegionEnd]: Region.End,
  [AbiQuery.End]: -1,
};

describe.each(["simd", "scalar"])("the %s build agrees with src/abi.ts", (kind) => {
  const bytes = readFileSync(new URL(`../../dist/focal-${kind}.wasm`, import.meta.url));
  const k = () => new WebAssembly.Instance(new WebAssembly.Module(bytes), {}).exports as Record<string, CallableFunction>;

  it("enum sizes", () => {
    const e = k();
    for (let q = 0; q <= AbiQuery.End; q++) expect([q, e.abi(q)]).toEqual([q, ends[q as AbiQuery]]);
  });

  it("layout: head slots, then Region.End vectors of KP lanes", () => {
    const e = k();
    (e.memory as unknown as WebAssembly.Memory).grow(4);
    for (const criteria of [1, 3, 4, 5, 16, 79, 256]) {
      const kp = (criteria + 3) & ~3;
      const base = 1 << 16;
      expect(e.fixedSize(criteria)).toBe(Head.End * 8 + Region.End * kp * 4);
      e.layout(base, criteria);
      expect(e.slot(0)).toBe(base);
      expect(e.slot(Head.SummaryAt + Summary.ActiveGroups)).toBe(base + 8 * (Head.SummaryAt + Summary.ActiveGroups));
      for (const r of [Region.Lo, Region.Sbar, Region.Seen, Region.Row, Region.Stats, Region.ZScale]) {
        expect(e.region(r)).toBe(base + Head.End * 8 + r * kp * 4);
      }
      expect(e.region(Region.End)).toBe(base + e.fixedSize(criteria));
    }
  });
});

describe("public names come from the ABI", () => {
  it("every method code has a name the engine takes, and the names are the methods", async () => {
    expect(Object.values(METHOD_CODES).sort((a, b) => a - b)).toEqual([...Array(MethodCode.End).keys()]);
    expect([...METHODS].sort()).toEqual(Object.keys(METHOD_CODES).sort());
    expect(METHOD_CODES["weighted-mean"]).toBe(MethodCode.WeightedMean);
    expect(METHOD_CODES["sa-mrpo"]).toBe(MethodCode.SaMrpo);
    for (const method of METHODS) {
      const e = await createEngine({ rubric: [{ id: "a" }, { id: "b" }], method, backend: "scalar" });
      expect(e.method).toBe(method);
    }
  });
});
