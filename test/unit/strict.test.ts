// Spec "Validation ranges and strictness": unknown keys name the nearest valid one, numbers stay
// inside float32 and the formulas' ranges, reserved criterion ids are refused; on every backend,
// and a refused call leaves the stream state untouched.
import { describe, expect, it } from "vitest";
import { createEngine, type EngineOptions } from "../../dist/index.js";
import { checkCriterionId, nearest } from "../../dist/validate.js";

const BACKENDS = ["simd", "scalar", "js"] as const;
const rubric = [{ id: "accuracy", weight: 2 }, { id: "tone" }, { id: "harm", weight: -1 }];

async function refused(options: unknown, message: RegExp, type: ErrorConstructor = Error) {
  for (const backend of BACKENDS) {
    const o = options !== null && typeof options === "object" && !Array.isArray(options) ? { ...options, backend } : options;
    const err = await createEngine(o as EngineOptions).then(() => undefined, (e: unknown) => e);
    expect(err, `${backend}: ${JSON.stringify(options)}`).toBeInstanceOf(type);
    expect((err as Error).message, backend).toMatch(message);
  }
}

describe("unknown keys: did you mean", () => {
  it("options: the issue's typos", async () => {
    await refused({ rubric, gama: 0.5 }, /^createEngine: unknown option "gama": did you mean "gamma"\?$/, TypeError);
    await refused({ rubric, min_weight: 0.2 }, /unknown option "min_weight": did you mean "minWeight"\?/, TypeError);
    await refused({ rubric, tempreature: 1 }, /did you mean "temperature"/, TypeError);
    await refused({ rubric, zzzzzzzz: 1 }, /unknown option "zzzzzzzz" \(known: "rubric", "method", .*"fGrpo"\)/, TypeError);
    // an unknown key is refused even when its value is undefined (a typo in a spread)
    await refused({ rubric, gama: undefined }, /did you mean "gamma"/, TypeError);
    await refused({ rubric, wasm: { smid: new Uint8Array(8) } }, /createEngine: wasm: unknown key "smid": did you mean "simd"\?/, TypeError);
  });

  it("rubric and criteria, as JSON files give them", async () => {
    const parse = (s: string) => JSON.parse(s) as EngineOptions["rubric"];
    await refused({ rubric: parse('{"criteria": [{"id": "a", "wieght": 5}]}') }, /rubric: criterion 'a': unknown key "wieght": did you mean "weight"\?/, TypeError);
    await refused({ rubric: parse('{"criteria": [{"id": "a"}], "gama": 0}') }, /rubric: unknown rubric key "gama"/, TypeError);
    await refused({ rubric: parse('{"criteria": [{"id": "a", "polarty": "penalty"}]}') }, /did you mean "polarity"/, TypeError);
    await refused({ rubric: parse('{"criteria": [{"id": "a", "__proto__": {"weight": 9}}]}') }, /unknown key "__proto__"/, TypeError);
    // description is documentation: accepted, not read
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric: [{ id: "a", description: "is it right?" }, { id: "b" }], backend });
      expect(Array.from(e.score([1, 0], [1]).direct)).toEqual([0.5]);
    }
  });

  it("score options", async () => {
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric, backend });
      expect(() => e.score([1, 1, 0], [1], { vaild: [1] } as never)).toThrow(/score: unknown option "vaild": did you mean "valid"\?/);
      expect(() => e.score([1, 1, 0], [1], null as never)).toThrow(TypeError);
    }
  });

  it("nearest ignores case, '_' and '-', and only suggests near names", () => {
    expect(nearest("min-weight", ["minWeight", "maxWeight"])).toBe("minWeight");
    expect(nearest("MAXWEIGHT", ["minWeight", "maxWeight"])).toBe("maxWeight");
    expect(nearest("colour", ["gamma", "tau"])).toBeUndefined();
  });
});

describe("contradictions and types", () => {
  it("weight -1 with polarity reward is refused; with polarity penalty it is a penalty", async () => {
    await refused({ rubric: [{ id: "a", weight: -1, polarity: "reward" }] }, /criterion 'a': weight -1 with polarity "reward" contradicts itself/, RangeError);
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric: [{ id: "a", weight: -1, polarity: "penalty" }, { id: "b" }], backend });
      expect(e.score([1, 1], [1]).direct[0]).toBeCloseTo(0.5, 6);
    }
  });

  it("options = null, an array, a string: named", async () => {
    await refused(null, /createEngine: expected an options object \{ rubric, \.\.\. \}, got null/, TypeError);
    await refused([], /got an array/, TypeError);
    await refused("focal", /got string/, TypeError);
  });

  it("scale as an object, a string, three numbers", async () => {
    await refused({ rubric: [{ id: "a", scale: { 0: 0, 1: 1 } }] }, /criterion 'a': scale must be an array \[lo, hi\] of two numbers, got \{"0":0,"1":1\}/, TypeError);
    await refused({ rubric: [{ id: "a", scale: "0-1" }] }, /scale must be an array/, TypeError);
    await refused({ rubric: [{ id: "a", scale: [0, 1, 2] }] }, /scale must be an array/, TypeError);
    await refused({ rubric: [{ id: "a", fixed: "yes" }] }, /fixed must be true or false/, TypeError);
    await refused({ rubric: [{ id: "a", required: 1 }] }, /required must be true or false/, TypeError);
  });

  it("a BigInt64Array of scores names its type", async () => {
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric, backend });
      expect(() => e.score(new BigInt64Array(3) as never, [1])).toThrow(/score: scores is a BigInt64Array \(BigInts\)/);
    }
  });

  it("a foreign view of the engine's memory is a RangeError that says what to pass", async () => {
    for (const backend of ["simd", "scalar"] as const) {
      const e = await createEngine({ rubric, backend });
      const view = e.input(2);
      const foreign = new Float32Array(view.buffer, view.byteOffset + 4 * 3, 3);
      foreign.set([1, 0.5, 0]);
      expect(() => e.score(foreign, [1])).toThrow(RangeError);
      expect(() => e.score(foreign, [1])).toThrow(/views the engine's own memory at byte \d+, but input\(1\) is at byte \d+: pass the view input\(\) returned/);
    }
  });
});

describe("ranges: every number survives float32", () => {
  const cases: [string, Partial<EngineOptions>, RegExp][] = [
    ["weight 1e39", { rubric: [{ id: "a", weight: 1e39 }] }, /weight must satisfy 0 < \|weight\| <= 1e30, got 1e\+39/],
    ["weight -1e31", { rubric: [{ id: "a", weight: -1e31 }] }, /0 < \|weight\| <= 1e30/],
    ["weight 0", { rubric: [{ id: "a", weight: 0 }, { id: "b" }] }, /got 0 \(leave the criterion out/],
    ["scale [0, 1e-46]", { rubric: [{ id: "a", scale: [0, 1e-46] }] }, /needs lo < hi|narrower than 1 \/ 1e30/],
    ["scale [0, 1e-31]", { rubric: [{ id: "a", scale: [0, 1e-31] }] }, /narrower than 1 \/ 1e30/],
    ["scale [0, 1e39]", { rubric: [{ id: "a", scale: [0, 1e39] }] }, /scale ends must be finite with \|x\| <= 1e30/],
    ["tau 1e-46", { tau: 1e-46 }, /tau must be in \[1e-6, 1e6\], got 1e-46/],
    ["tau 1e7", { tau: 1e7 }, /tau must be in \[1e-6, 1e6\]/],
    ["eps 1e308", { eps: 1e308 }, /eps must be in \[0, 1e3\], got 1e\+308/],
    ["gamma 65", { gamma: 65 }, /gamma must be in \[0, 64\], got 65/],
    ["decay -0.1", { decay: -0.1 }, /decay must be in \[0, 1\)/],
    ["advEps 1e9", { advEps: 1e9 }, /advEps must be in \[0, 1e3\]/],
    ["temperature 1e-9", { method: "soft-min", temperature: 1e-9 }, /temperature must be in \[1e-6, 1e6\]/],
    ["fGrpo 100", { fGrpo: 100 }, /fGrpo must be in \[0, 64\]/],
    ["stream minWeight * K > 1", { scope: "stream", minWeight: 0.4 }, /minWeight \* K <= 1 <= maxWeight \* K must hold for the 3 criteria/],
    ["stream maxWeight * K < 1", { scope: "stream", maxWeight: 0.3 }, /for the 3 criteria of the rubric, got minWeight 0, maxWeight 0.3/],
  ];
  for (const [name, options, message] of cases) {
    it(`refuses ${name}`, async () => {
      await refused({ rubric, ...options }, message, RangeError);
    });
  }

  it("the group scope keeps the per-group fallback for infeasible bounds (spec step 5)", async () => {
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric: [{ id: "a" }, { id: "b" }, { id: "c" }], minWeight: 0.4, backend });
      const w = e.score([1, 0.5, 0, 0.5, 0.5, 1], [2]).weights;
      for (const x of w) expect(x).toBeCloseTo(1 / 3, 6);
    }
  });

  it("a score beyond float32 (1e39, finite as a double) is refused, naming row and criterion; the state is untouched", async () => {
    for (const backend of BACKENDS) {
      const e = await createEngine({ rubric, scope: "stream", backend });
      e.score([1, 0.5, 0, 0.5, 0.5, 1], [2]);
      const before = e.snapshot();
      expect(() => e.score([1, 0.5, 0, 0.5, 1e39, 1], [2])).toThrow(/score: row 1: criterion 1 is 1e\+39, outside float32's range/);
      expect(() => e.score(Float64Array.from([1, 0.5, 0, 0.5, -1e39, 1]), [2])).toThrow(/row 1: criterion 1 is -1e\+39/);
      expect(() => e.scoreOne({ accuracy: 1e39 })).toThrow(/outside float32's range/);
      expect(() => e.score([1, 0.5, 0, 0.5, 0.5, 1], [2], { weights: [1, 1e39, 1] } as never)).toThrow(/instance weights need scope "group"/);
      expect(e.snapshot()).toEqual(before);
    }
    const g = await createEngine({ rubric });
    expect(() => g.score([1, 0.5, 0], [1], { weights: [1, 1e39, 1] })).toThrow(/weights\[1\] \(group 0, criterion 'tone'\) must be a number in \[0, 1e30\], got 1e\+39/);
  });
});

describe("criterion ids that every JavaScript object has", () => {
  for (const id of ["__proto__", "constructor", "prototype", "toString", "hasOwnProperty"]) {
    it(`'${id}' is refused with a reason and what to do`, async () => {
      const message = new RegExp(`criterion id "${id}" is reserved .*rename the criterion`);
      await refused({ rubric: [{ id }, { id: "b" }] }, message, TypeError);
      await refused({ rubric: JSON.parse(`{"criteria": [{"id": "${id}"}]}`) }, message, TypeError);
      expect(() => checkCriterionId(id, "CSV header, column 3")).toThrow(new RegExp(`^CSV header, column 3: criterion id "${id}" is reserved`));
    });
  }
  it("ordinary ids pass; empty and non-string ids are refused", () => {
    for (const id of ["q40/Comprehensive Coverage", "proto", "__proto", "Constructor", "ünïcode"]) expect(checkCriterionId(id, "x")).toBe(id);
    expect(() => checkCriterionId("", "line 4")).toThrow(/^line 4: a criterion id must be a non-empty string, got ""/);
    expect(() => checkCriterionId(7, "line 4")).toThrow(TypeError);
  });
});

describe("service options", () => {
  it("createHandler refuses unknown options and criterion keys (rule is one of its own)", async () => {
    const { createHandler, rulesJudge } = await import("../../dist/service/index.js");
    const base = { rubric: [{ id: "a" }, { id: "b" }], createEngine };
    expect(() => createHandler({ ...base, gama: 0 } as never)).toThrow(/createHandler: unknown option "gama": did you mean "gamma"\?/);
    expect(() => createHandler({ ...base, judgeTimeout: 5 } as never)).toThrow(/did you mean "judgeTimeoutMs"\?/);
    await expect(createHandler({ ...base, rubric: [{ id: "a", rulle: { json: true } }] } as never).ready).rejects.toThrow(/criterion 'a': unknown key "rulle": did you mean "rule"\?/);
    expect(() => rulesJudge({ a: { regex: "x", flag: "i" } as never })).toThrow(/rules\.a: unknown key "flag": did you mean "flags"\?/);
    expect(() => rulesJudge({ a: { maxLength: 5, units: "words" } as never })).toThrow(/did you mean "unit"\?/);
    const h = createHandler({ ...base, rubric: [{ id: "a", rule: { json: true } }, { id: "b", description: "free text" }], gamma: 1 });
    await h.ready;
    await h.close();
  });
});
