/**
 * The Parquet reader's RLE / bit-packed hybrid decoder (src/log/columnar.ts `hybrid`, with its
 * eight-values-a-group unpacking for widths 1..8) reads what hyparquet's own decoder reads: every
 * bit width 1..12, runs of lengths that are not multiples of 8, RLE runs between them, a last
 * group cut short by the value count, data that ends right after the last group (the groups near
 * the end go through the value-at-a-time path), as indices and as their dictionary values; and
 * read on in pieces of any length (a run split between calls), its values placed at a stride.
 */
import { readRleBitPackedHybrid } from "hyparquet/src/encoding.js";
import { describe, expect, it } from "vitest";
import { hybrid, hybridNext, hybridRun } from "../../dist/log/columnar.js";
import { int, prng } from "../support/prng.js";

const varint = (x: number, out: number[]) => {
  for (; x >= 0x80; x >>>= 7) out.push((x & 0x7f) | 0x80);
  out.push(x);
};

/** Runs of `width`-bit values, bit-packed (in groups of 8) or repeated (any length), and the first n values they hold. */
function encode(r: () => number, width: number, n: number): { bytes: Uint8Array; values: number[] } {
  const out: number[] = [], values: number[] = [];
  const value = () => Math.floor(r() * 2 ** width);
  while (values.length < n) {
    const left = n - values.length;
    if (r() < 0.3) {
      const count = Math.min(int(r, 1, 40), left), x = value();
      varint(count << 1, out);
      for (let k = 0; k < (width + 7) >> 3; k++) out.push((x >>> (8 * k)) & 0xff);
      for (let k = 0; k < count; k++) values.push(x);
    } else {
      const count = Math.min(int(r, 1, 300), left), groups = Math.ceil(count / 8);
      varint((groups << 1) | 1, out);
      const packed = new Uint8Array(groups * width);
      for (let k = 0; k < groups * 8; k++) {
        const x = value();
        if (values.length < n) values.push(x); // (a run's padding is values too, but past n)
        for (let q = 0; q < width; q++) if ((x >>> q) & 1) packed[(k * width + q) >> 3]! |= 1 << ((k * width + q) & 7);
      }
      out.push(...packed);
    }
  }
  return { bytes: Uint8Array.from(out), values };
}

describe("Parquet reader: the RLE / bit-packed hybrid", () => {
  it("decodes every bit width, as indices and as dictionary values, as hyparquet does", () => {
    const r = prng(8);
    for (let width = 1; width <= 12; width++) {
      for (const n of [1, 7, 8, 9, 63, 1001, 5003]) {
        const { bytes, values } = encode(r, width, n);
        const theirs = new Int32Array(n);
        readRleBitPackedHybrid({ view: new DataView(bytes.buffer), offset: 0 }, width, theirs, bytes.length);
        expect(Array.from(theirs)).toEqual(values);
        const ours = new Int32Array(n);
        expect(hybrid(bytes, 0, bytes.length, width, ours, n)).toBe(values.reduce((a, b) => a + b, 0));
        expect(ours).toEqual(theirs);
        // dictionary values placed from `at`, with a dictionary of every index of the width
        const dict = Float32Array.from({ length: 2 ** width }, (_, i) => i / 7), to = new Float32Array(n + 3).fill(-1);
        expect(hybrid(bytes, 0, bytes.length, width, new Int32Array(0), n, { to, at: 3, dict })).toBeGreaterThanOrEqual(0);
        expect(Array.from(to.subarray(3))).toEqual(Array.from(theirs, (x) => dict[x]!));
        expect(Array.from(to.subarray(0, 3))).toEqual([-1, -1, -1]);
      }
    }
  });

  it("reads on from where the last call stopped, placing dictionary values at a stride", () => {
    const r = prng(10), stride = 5;
    for (const width of [1, 3, 5, 8, 11]) {
      const n = 3001, { bytes, values } = encode(r, width, n);
      const dict = Float32Array.from({ length: 2 ** width }, (_, i) => i / 3), to = new Float32Array(n * stride).fill(-1);
      const indices = new Int32Array(n), run = hybridRun(bytes, 0, bytes.length, width), run2 = hybridRun(bytes, 0, bytes.length, width);
      for (let i = 0; i < n; ) {
        const m = Math.min(n - i, int(r, 1, 70));
        expect(hybridNext(run, new Int32Array(0), m, { to, at: i * stride + 2, dict, stride })).toBeGreaterThanOrEqual(0);
        expect(hybridNext(run2, indices.subarray(i), m)).toBe(values.slice(i, i + m).reduce((a, b) => a + b, 0));
        i += m;
      }
      expect(Array.from(indices)).toEqual(values);
      expect(Array.from({ length: n }, (_, i) => to[i * stride + 2])).toEqual(values.map((x) => dict[x]));
      expect(to.filter((x) => x === -1).length).toBe(n * (stride - 1));
    }
  });

  it("refuses runs that go past the end of the data", () => {
    const { bytes } = encode(prng(9), 5, 100);
    expect(hybrid(bytes.subarray(0, bytes.length - 1), 0, bytes.length - 1, 5, new Int32Array(100), 100)).toBe(-2);
  });
});
