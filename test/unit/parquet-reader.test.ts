/**
 * The Parquet reader decodes flat numeric and string columns itself (src/log/columnar.ts: the
 * scores as float32, checked, the step as doubles, the group as codes): on files with
 * nulls, NaN, -0, dictionary and plain encodings, several pages and row groups, FLOAT, DOUBLE,
 * INT32 and INT64, optional and required, in data pages of version 2 (hyparquet-writer's) and
 * version 1 (pyarrow's default; made here by rewriting the version 2 pages), every value equals
 * hyparquet's own reading, bit for bit (null as NaN, scores as float32), and the fast path is the
 * one that ran.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parquetMetadata, parquetReadObjects } from "hyparquet";
import { parquetHeader } from "hyparquet/src/column.js";
import { ByteWriter, parquetWriteBuffer } from "hyparquet-writer";
import { writePageHeader } from "hyparquet-writer/src/datapage.js";
import { writeMetadata } from "hyparquet-writer/src/metadata.js";
import { afterAll, describe, expect, it } from "vitest";
import { parquetSource, type ColumnBatch } from "../../dist/log/columnar.js";
import { prng } from "../support/prng.js";

const dir = mkdtempSync(join(tmpdir(), "focal-parquet-reader-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const N = 3000;
const r = prng(13);
const few = [0, 0.25, 0.5, 1, -1e-3, 0.1, 3.4e38]; // (a dictionary writer takes -0 for 0)
const col = (f: (i: number) => number | null) => Array.from({ length: N }, (_, i) => f(i));
const COLUMNS = {
  dict: col(() => (r() < 0.1 ? null : few[Math.floor(r() * few.length)]!)),
  plain: col((i) => (r() < 0.05 ? null : r() < 0.01 ? NaN : i % 97 === 0 ? -0 : r() * 2 - 1)),
  float: col(() => (r() < 0.1 ? null : Math.fround(r()))),
  int: col(() => (r() < 0.1 ? null : Math.floor(r() * 10) - 5)),
  dense: col(() => Math.round(r() * 100) / 100),
  none: col(() => null),
  one: col(() => 0.5), // a dictionary of one value: indices of width 0
};
const IDS = Object.keys(COLUMNS) as (keyof typeof COLUMNS)[];

function write(file: string, nullable: boolean): void {
  const buf = parquetWriteBuffer({
    rowGroupSize: 1000,
    pageSize: 512, // several pages per column chunk
    codec: "UNCOMPRESSED",
    columnData: [
      { name: "step", data: Int32Array.from({ length: N }, (_, i) => i >> 7), type: "INT32", nullable },
      // strings dictionary-encoded (optional) and plain (required: its values decoded where they change)
      { name: "group", data: col((i) => i >> 3).map((g) => `g\u00e9${g}`), type: "STRING", nullable, ...(nullable ? {} : { encoding: "PLAIN" as const }) },
      { name: "dict", data: COLUMNS.dict, type: "DOUBLE" },
      { name: "plain", data: COLUMNS.plain, type: "DOUBLE", encoding: "PLAIN" },
      { name: "float", data: COLUMNS.float, type: "FLOAT" },
      { name: "int", data: COLUMNS.int, type: "INT32" },
      { name: "dense", data: Float64Array.from(COLUMNS.dense), type: "DOUBLE", nullable },
      { name: "none", data: COLUMNS.none, type: "DOUBLE" },
      { name: "one", data: Float64Array.from(COLUMNS.one as number[]), type: "DOUBLE", nullable },
    ],
  });
  writeFileSync(file, new Uint8Array(buf));
}

/** The same file with its version 2 data pages rewritten as version 1 (levels with their length, then the values). */
function toVersion1(buf: ArrayBuffer): Uint8Array {
  const metadata = parquetMetadata(buf);
  const w = new ByteWriter();
  w.appendUint32(0x31524150); // "PAR1"
  for (const rg of metadata.row_groups) {
    for (const chunk of rg.columns) {
      const m = chunk.meta_data!;
      const start = Number(m.dictionary_page_offset || m.data_page_offset), end = start + Number(m.total_compressed_size);
      const reader = { view: new DataView(buf, start, end - start), offset: 0 };
      const at = w.offset;
      let dataAt = -1;
      while (reader.offset < end - start) {
        const ph = parquetHeader(reader);
        const body = new Uint8Array(buf, start + reader.offset, ph.compressed_page_size);
        reader.offset += ph.compressed_page_size;
        if (ph.type === "DATA_PAGE_V2") {
          if (dataAt < 0) dataAt = w.offset;
          const v2 = ph.data_page_header_v2!;
          const dl = v2.definition_levels_byte_length;
          const page = new ByteWriter();
          if (dl > 0) {
            page.appendUint32(dl);
            page.appendBytes(body.subarray(0, dl));
          }
          page.appendBytes(body.subarray(dl));
          const bytes = new Uint8Array(page.getBuffer());
          writePageHeader(w, {
            type: "DATA_PAGE", uncompressed_page_size: bytes.length, compressed_page_size: bytes.length,
            data_page_header: { num_values: v2.num_values, encoding: v2.encoding, definition_level_encoding: "RLE", repetition_level_encoding: "RLE" },
          } as never); // (hyparquet-writer has its own copy of hyparquet's types)
          w.appendBytes(bytes);
        } else {
          writePageHeader(w, ph as never);
          w.appendBytes(body);
        }
      }
      if (m.dictionary_page_offset) m.dictionary_page_offset = BigInt(at);
      m.data_page_offset = BigInt(dataAt);
      m.total_compressed_size = m.total_uncompressed_size = BigInt(w.offset - at);
      m.encoding_stats = undefined;
      chunk.file_offset = BigInt(at);
    }
  }
  const metaAt = w.offset;
  writeMetadata(w, metadata as never);
  w.appendUint32(w.offset - metaAt);
  w.appendUint32(0x31524150);
  return new Uint8Array(w.getBuffer());
}

const files: [string, string][] = [];
for (const nullable of [true, false]) {
  const f = join(dir, `v2-${nullable ? "optional" : "required"}.parquet`);
  write(f, nullable);
  files.push([`version 2, step and group ${nullable ? "optional" : "required"}`, f]);
  const { readFileSync } = await import("node:fs");
  const b = readFileSync(f);
  const f1 = join(dir, `v1-${nullable ? "optional" : "required"}.parquet`);
  writeFileSync(f1, toVersion1(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
  files.push([`version 1, step and group ${nullable ? "optional" : "required"}`, f1]);
}

const bits = (x: unknown) => (x === null || x === undefined ? "NaN" : Object.is(x, -0) ? "-0" : String(x));
const f32 = (x: unknown) => bits(typeof x === "number" ? Math.fround(x) : x);
/** Row i's group value, from the batch's codes or values. */
const groupAt = (b: ColumnBatch, i: number) => ("codes" in b.group ? b.group.values[b.group.codes[i]!] : b.group[i]);
/** Criterion k's scores of the batch, from its rows (read in step) or its column. */
const scoresOf = (b: ColumnBatch, k: number): unknown[] => (b.matrix ? Array.from({ length: b.rows }, (_, i) => b.matrix![i * b.scores.length + k]) : Array.from(b.scores[k]!));

describe("Parquet reader: flat numeric columns decoded in place", () => {
  for (const [name, file] of files) {
    it(`equals hyparquet's reading (${name})`, async () => {
      const { readFileSync } = await import("node:fs");
      const b = readFileSync(file);
      const rows = await parquetReadObjects({ file: b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) });
      expect(rows.length).toBe(N);
      const src = await parquetSource(file);
      let at = 0, batches = 0;
      for await (const batch of src.batches(IDS)) {
        batches++;
        // the fast path ran: the score columns read in step into the rows, the step column decoded numbers, the group codes
        expect(batch.matrix).toBeInstanceOf(Float32Array);
        expect(batch.matrix!.length).toBe(batch.rows * IDS.length);
        const scores = IDS.map((_, k) => scoresOf(batch, k));
        expect(batch.step).toBeInstanceOf(Float64Array);
        expect("codes" in batch.group).toBe(true);
        for (let i = 0; i < batch.rows; i++) {
          const row = rows[at + i]!;
          expect(batch.step![i]).toBe(row.step);
          expect(groupAt(batch, i)).toBe(row.group);
          IDS.forEach((id, k) => expect(bits(scores[k]![i]), `${id} row ${at + i}`).toBe(f32(row[id])));
        }
        at += batch.rows;
      }
      expect([at, batches]).toEqual([N, 3]);
      // and the values are the ones written (floats as float32)
      IDS.forEach((id) => expect(rows.map((x) => bits(x[id]))).toEqual(COLUMNS[id].map(bits)));
    });
  }

  it("a step column with nulls is left to hyparquet (a null step is no step, not NaN)", async () => {
    const f = join(dir, "null-step.parquet");
    writeFileSync(f, new Uint8Array(parquetWriteBuffer({ columnData: [
      { name: "step", data: [1, null, 2], type: "INT32" },
      { name: "group", data: ["a", "a", "b"], type: "STRING" },
      { name: "x", data: [0.5, null, 1], type: "DOUBLE" },
    ] })));
    const src = await parquetSource(f);
    for await (const batch of src.batches(["x"])) {
      expect(Array.from(batch.step!)).toEqual([1, null, 2]);
      expect(scoresOf(batch, 0)).toEqual([0.5, NaN, 1]);
    }
  });

  it("a score column with a value outside float32 is read as doubles, unchecked (for its row's error); the others as checked float32", async () => {
    const f = join(dir, "range.parquet");
    writeFileSync(f, new Uint8Array(parquetWriteBuffer({ columnData: [
      { name: "group", data: ["a", "a", "b"], type: "STRING" },
      { name: "x", data: [0.5, 1e39, 1], type: "DOUBLE" },
      { name: "y", data: [0.25, null, 1], type: "DOUBLE" },
    ] })));
    for await (const batch of (await parquetSource(f)).batches(["x", "y", "z"])) {
      expect(batch.scores[0]).toEqual(Float64Array.from([0.5, 1e39, 1]));
      expect(batch.scores[1]).toEqual(Float32Array.from([0.25, NaN, 1]));
      expect([batch.scores[2], batch.usable]).toEqual([undefined, [false, true, false]]);
    }
  });

  it("int64 steps and groups (pyarrow's integers) read as numbers when they are safe integers, else as hyparquet reads them", async () => {
    const f = join(dir, "int64.parquet");
    const big = 2n ** 60n;
    writeFileSync(f, new Uint8Array(parquetWriteBuffer({ rowGroupSize: 2, columnData: [
      { name: "step", data: BigInt64Array.from([1n, 1n, -7n, big]), type: "INT64" },
      { name: "group", data: BigInt64Array.from([5n, 5n, 9007199254740991n, 6n]), type: "INT64" },
      { name: "x", data: BigInt64Array.from([0n, 1n, 1n, 0n]), type: "INT64" },
    ] })));
    const got: unknown[][] = [];
    for await (const batch of (await parquetSource(f)).batches(["x"])) {
      got.push([batch.step, Array.from({ length: batch.rows }, (_, i) => groupAt(batch, i)), scoresOf(batch, 0)]);
    }
    expect(got[0]).toEqual([Float64Array.from([1, 1]), [5, 5], [0, 1]]);
    expect(got[1]![0]).toEqual([-7n, big]); // 2^60 is no safe integer: hyparquet's bigints
    expect(got[1]!.slice(1)).toEqual([[9007199254740991, 6], [1, 0]]);
  });
});
