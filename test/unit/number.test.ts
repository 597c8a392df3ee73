/**
 * Numbers read in place from a line's bytes (src/log/number.ts) equal Number()'s reading of their
 * text: the same double for any number, the same float32 for a score, whose long spellings
 * (full-precision doubles, exponents) are read from a near double. Decimals a hair from the middle
 * of two float32s must still round as Number() rounds them: those are made on purpose.
 */
import { describe, expect, it } from "vitest";
import { scanJsonBytes, scanEnd, scanNumber } from "../../dist/log/number.js";
import { prng } from "../support/prng.js";

const out = new Float64Array(1);

/** [end, value] of scanJsonBytes on s followed by a comma. */
function scan(s: string, float32: boolean): [number, number] {
  const end = scanJsonBytes(Buffer.from(s + ",", "latin1"), 0, out, 0, float32);
  return [end, out[0]!];
}

/** s read from text (as the CSV reader does): the value, if the whole of s was read. */
function scanText(s: string, json: boolean, float32: boolean): number | undefined {
  const v = scanNumber(s + ",", 0, json, float32);
  return scanEnd === s.length ? v : undefined;
}

/** The texts where a reading, from bytes or from text, and Number() disagree (empty when they agree on all). */
function disagreements(texts: string[]): string[] {
  return texts.filter((s) => {
    const d = Number(s), f = Math.fround(d);
    const [e32, b32] = scan(s, true), [e64, b64] = scan(s, false);
    const bytesAgree = e32 === s.length && Object.is(Math.fround(b32), f) && e64 === s.length && Object.is(b64, d);
    const t32 = scanText(s, false, true), t64 = scanText(s, false, false);
    const textAgrees = t32 !== undefined && Object.is(Math.fround(t32), f) && t64 !== undefined && Object.is(t64, d);
    return !bytesAgree || !textAgrees;
  });
}

/** Spellings of x as JavaScript and Python write doubles, with more digits and exponents. */
const spellings = (x: number) => [String(x), x.toPrecision(16), x.toPrecision(17), x.toPrecision(21), x.toExponential(16), x.toExponential(20).replace("e", "E")];

describe("scanJsonBytes and scanNumber", () => {
  it("reads random doubles of every magnitude, in every spelling, as Number() does", () => {
    const r = prng(13), texts: string[] = [];
    for (let t = 0; t < 4000; t++) {
      const x = r() * 10 ** Math.floor(r() * 16 - 9) * (r() < 0.2 ? -1 : 1);
      texts.push(...spellings(x));
    }
    expect(disagreements(texts)).toEqual([]);
  });

  it("reads decimals next to the midpoint of two float32s as Number() rounds them", () => {
    const r = prng(17), f32 = new Float32Array(1), bits = new Uint32Array(f32.buffer), texts: string[] = [];
    for (let t = 0; t < 4000; t++) {
      f32[0] = r() * 10 ** Math.floor(r() * 10 - 5);
      const below = f32[0]!;
      bits[0]!++;
      const mid = (below + f32[0]!) / 2; // exact in float64
      for (const m of [mid, mid * (1 + 2 ** -52), mid * (1 - 2 ** -52)]) texts.push(...spellings(m), m.toPrecision(25));
    }
    expect(disagreements(texts)).toEqual([]);
  });

  it("reads the edges: many digits, leading zeros, large and tiny powers of ten, signs", () => {
    expect(disagreements([
      "0.00000000000000001", "-0.0000000000000000", "-0", "1.0000000000000000000000001", "12345678901234567890123",
      "1e22", "1e23", "1.5e-22", "123456789012345678e-30", "9007199254740993", "0.1e1", "1E+2", "1e+400", "-1e-400",
      "3.4e38", "3.40000000001e38", "1e30", "1.0000000000000001e30", "0.3402823466385288598e39",
    ])).toEqual([]);
    for (const s of ["01", "1.", "1e", "1e+", "-", ".5"]) expect(scan(s, true)[0], s).not.toBe(s.length);
  });
});
