// writeFloat32 writes the bytes of String(x) for float32 outputs (score's JSONL and CSV).
import { describe, expect, it } from "vitest";
import { writeFloat32 } from "../../dist/cli/float-text.js";
import { ByteRows } from "../../dist/cli/io.js";
import { prng } from "../support/prng.js";

const out = Buffer.alloc(64);
const text = (x: number) => {
  const end = writeFloat32(out, 0, x);
  return end < 0 ? undefined : out.toString("latin1", 0, end);
};

describe("writeFloat32", () => {
  it("writes String(x) of float32 values: random bits and the edges of the digit loop", () => {
    const f = new Float32Array(1), u = new Uint32Array(f.buffer);
    const rnd = prng(13);
    const xs: number[] = [0, -0, 1, -1, 0.5, 0.1, 0.2, 0.3, 1e-5, 9.999999, 99.99999, 8388607.5, 3.4028234663852886e38, 1e-6, 1.4e-45, Infinity, NaN];
    for (let i = 0; i < 100_000; i++) {
      u[0] = Math.floor(rnd() * 2 ** 32);
      xs.push(f[0]!);
      // near 1 (the carry into a new digit: 0.99999994 -> "0.9999999403953552", 9.999999 -> ...) and exact short decimals
      xs.push(Math.fround(1 - rnd() * 1e-6), Math.fround(10 - rnd() * 1e-5), Math.fround(Math.round(rnd() * 1000) / 64));
    }
    let fast = 0;
    const wrong: string[] = [];
    for (const x of xs) {
      const t = text(Math.fround(x));
      if (t === undefined) continue;
      fast++;
      if (t !== String(Math.fround(x))) wrong.push(`${Math.fround(x)}: ${t}`);
    }
    expect(wrong).toEqual([]);
    expect(fast).toBeGreaterThan(150_000);
  });

  it("leaves what it does not do to String(): non-float32 doubles, NaN, infinities, |x| < 1e-5, |x| >= 2^23, powers of two", () => {
    for (const x of [0.1, NaN, Infinity, -Infinity, 1e-6, 2 ** 23, 2 ** 30, 0.25, -4, 2 ** -20]) expect(text(x), String(x)).toBeUndefined();
  });

  it("ByteRows.number writes String(x), or null for what is not finite", () => {
    const rows = new ByteRows();
    for (const x of [0.25, Math.fround(0.1), NaN, Infinity, -0, 1e-7, Math.fround(-2.5e-3)]) {
      rows.number(x);
      rows.ascii(",");
    }
    expect(rows.take().toString("latin1")).toBe(`0.25,${Math.fround(0.1)},null,null,0,1e-7,${Math.fround(-2.5e-3)},`);
  });
});
