/**
 * The Arrow IPC reader (src/log/columnar.ts) reads score columns of every float and int type,
 * with and without nulls, in several record batches, as apache-arrow's own `get()` reads them
 * (null as NaN): half-precision floats as their values, not their raw bits. Record batches are
 * read into one reused buffer; a group value that apache-arrow gives as a view of a batch's bytes
 * (binary) still holds its bytes after the next batch is read.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Binary, Dictionary, Float16, Float32, Float64, Int32, RecordBatch, Table, Utf8, tableFromIPC, tableToIPC, vectorFromArray } from "apache-arrow";
import { Readable } from "node:stream";
import { afterAll, describe, expect, it } from "vitest";
import { arrowSource, columnSteps } from "../../dist/log/columnar.js";
import { prng } from "../support/prng.js";

const dir = mkdtempSync(join(tmpdir(), "focal-arrow-reader-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const N = 2000;
const r = prng(16);
const col = (f: () => number | null) => Array.from({ length: N }, f);
const halves = [0, 0.25, 0.5, 0.75, 1, -2, 1 / 3, 0.1, 65504]; // 1/3 and 0.1 round to their nearest half
const COLUMNS = {
  half: { type: new Float16(), data: col(() => halves[Math.floor(r() * halves.length)]!) },
  halfNulls: { type: new Float16(), data: col(() => (r() < 0.1 ? null : halves[Math.floor(r() * halves.length)]!)) },
  float: { type: new Float32(), data: col(() => Math.fround(r())) },
  floatNulls: { type: new Float32(), data: col(() => (r() < 0.1 ? null : Math.fround(r()))) },
  double: { type: new Float64(), data: col(() => r() * 2 - 1) },
  doubleNulls: { type: new Float64(), data: col(() => (r() < 0.1 ? null : r() < 0.01 ? NaN : r())) },
  int: { type: new Int32(), data: col(() => Math.floor(r() * 10) - 5) },
};
const IDS = Object.keys(COLUMNS) as (keyof typeof COLUMNS)[];

const file = join(dir, "log.arrow");
{
  const t = new Table({
    step: vectorFromArray(col(() => 0).map((_, i) => i >> 8), new Int32()),
    group: vectorFromArray(col(() => 0).map((_, i) => `g${i >> 4}`), new Utf8()),
    ...Object.fromEntries(IDS.map((id) => [id, vectorFromArray(COLUMNS[id].data, COLUMNS[id].type)])),
  });
  // record batches of 700 rows: slices of one table (offsets into shared buffers)
  const batches = [0, 700, 1400].map((s) => t.slice(s, Math.min(s + 700, N)).batches).flat() as RecordBatch[];
  writeFileSync(file, tableToIPC(new Table(batches), "file"));
}

const bits = (x: unknown) => (x === null || x === undefined ? "NaN" : Object.is(x, -0) ? "-0" : String(x));

describe("Arrow reader", () => {
  it("reads every score column as apache-arrow's get() does (float16 as values; null as NaN)", async () => {
    const table = tableFromIPC(readFileSync(file));
    const src = await arrowSource(file);
    let at = 0, batches = 0;
    for await (const batch of src.batches(IDS)) {
      batches++;
      for (let i = 0; i < batch.rows; i++) {
        IDS.forEach((id, k) => expect(bits(batch.scores[k]![i]), `${id} row ${at + i}`).toBe(bits(table.getChild(id)!.get(at + i))));
      }
      at += batch.rows;
    }
    expect([at, batches]).toEqual([N, 3]);
    // and half precision is what was written, rounded to the nearest half
    expect(Array.from({ length: 9 }, (_, i) => table.getChild("half")!.get(i))).toEqual(COLUMNS.half.data.slice(0, 9).map((x) => (x === 1 / 3 ? 0.333251953125 : x === 0.1 ? 0.0999755859375 : x)));
  });

  it("binary group values of a step that spans record batches keep their bytes", async () => {
    const f = join(dir, "binary.arrow");
    const n = 3000, group = Array.from({ length: n }, (_, i) => new TextEncoder().encode(`b${i >> 4}`));
    const t = new Table({
      step: vectorFromArray(Array.from({ length: n }, (_, i) => Math.floor(i / 1000)), new Int32()),
      group: vectorFromArray(group, new Binary()),
      x: vectorFromArray(Array.from({ length: n }, () => 0.5), new Float64()),
    });
    writeFileSync(f, tableToIPC(new Table([0, 700, 1400, 2100, 2800].map((s) => t.slice(s, Math.min(s + 700, n)).batches).flat() as RecordBatch[]), "file"));
    const steps = [];
    for await (const s of columnSteps(await arrowSource(f), ["x"])) steps.push(s);
    expect(steps.length).toBe(3);
    // step s has the rows 1000 s ... 1000 s + 999: their groups in order
    const expected = [0, 1, 2].map((s) => [...new Set(Array.from({ length: 1000 }, (_, i) => `b${(1000 * s + i) >> 4}`))]);
    expect(steps.map((s) => s.groups.map((g) => new TextDecoder().decode(g as Uint8Array)))).toEqual(expected);
  });

  it("scores are checked as they are copied: the first bad value in row order names its row; a criterion the file lacks is NaN", async () => {
    const f = join(dir, "bad.arrow");
    const x = [0.5, 0.25, 1, 0, 0.5, 1e39, 0.5, 0.5], y = [0, 1, 0.5, Infinity, 0, 0, 1, 1];
    writeFileSync(f, tableToIPC(new Table({ group: vectorFromArray(x.map((_, i) => `g${i >> 2}`), new Utf8()), x: vectorFromArray(x, new Float64()), y: vectorFromArray(y, new Float64()) }), "file"));
    const read = async (criteria: string[]) => {
      const steps = [];
      for await (const s of columnSteps(await arrowSource(f), criteria)) steps.push(s);
      return steps;
    };
    await expect(read(["x", "y"])).rejects.toThrow("row 4: score 'y' is not finite");
    await expect(read(["x"])).rejects.toThrow("row 6: score 'x' is 1e+39");
    writeFileSync(f, tableToIPC(new Table({ group: vectorFromArray(["a", "a", "b"], new Utf8()), x: vectorFromArray([0.5, null, 1], new Float64()) }), "file"));
    const [only] = await read(["z", "x"]);
    expect(Array.from(only!.scores)).toEqual([NaN, 0.5, NaN, NaN, NaN, 1]);
  });

  it("group names as apache-arrow decodes them: short ASCII, non-ASCII and long ones", async () => {
    const f = join(dir, "names.arrow");
    const names = ["p0", "caf\u00e9", "x".repeat(40), "\u65e5\u672c", "", "p0", "a\u0000b", "\u007f"];
    writeFileSync(f, tableToIPC(new Table({ group: vectorFromArray(names, new Utf8()), x: vectorFromArray(names.map(() => 1), new Float64()) }), "file"));
    const groups = [];
    for await (const s of columnSteps(await arrowSource(f), ["x"])) groups.push(...s.groups);
    expect(groups).toEqual([...new Set(names)]);
  });

  it("a stream in a file: each record batch with the dictionaries sent before it (a replacement applies from where it comes)", async () => {
    const f = join(dir, "dicts.arrows");
    // three batches, each with a dictionary of its own: the stream replaces the group dictionary twice
    const parts = [0, 1, 2].map((b) => new Table({
      group: vectorFromArray(Array.from({ length: 40 }, (_, i) => `s${b}-g${i >> 3}`), new Dictionary(new Utf8(), new Int32())),
      x: vectorFromArray(Array.from({ length: 40 }, (_, i) => (b * 40 + i) / 200), new Float64()),
    }).batches[0]!);
    writeFileSync(f, tableToIPC(new Table(parts.map((p) => new RecordBatch(parts[0]!.schema, p.data))), "stream"));
    const table = tableFromIPC(readFileSync(f));
    const [step] = await (async () => { const out = []; for await (const s of columnSteps(await arrowSource(f), ["x"])) out.push(s); return out; })();
    expect(step!.groups).toEqual([...new Set(Array.from({ length: 120 }, (_, i) => table.getChild("group")!.get(i)))]);
    expect(step!.groups.length).toBe(15);
    expect(Array.from(step!.scores)).toEqual(Array.from({ length: 120 }, (_, i) => Math.fround(i / 200)));
  });
});

describe("Arrow IPC on stdin", () => {
  /** `bytes` as a stream of chunks of random sizes (as a pipe delivers them). */
  function* chunks(bytes: Uint8Array, seed: number) {
    const r = prng(seed);
    for (let at = 0; at < bytes.length; ) {
      const n = 1 + Math.floor(r() * 5000);
      yield bytes.subarray(at, at + n);
      at += n;
    }
  }
  const readAll = async (bytes: Uint8Array, criteria: string[], seed = 1) => {
    const src = await arrowSource(undefined, Readable.from(chunks(bytes, seed)));
    const rows: string[][] = [], buffers = new Set<ArrayBufferLike>();
    for await (const b of src.batches(criteria)) {
      for (let i = 0; i < b.rows; i++) rows.push(criteria.map((_, k) => bits(b.scores[k]![i])));
      const s = b.scores[0] as Float64Array;
      if (ArrayBuffer.isView(s)) buffers.add(s.buffer);
    }
    return { columns: src.columns, rows, buffers };
  };
  const expected = (bytes: Uint8Array, criteria: string[]) => {
    const t = tableFromIPC(bytes);
    return Array.from({ length: t.numRows }, (_, i) => criteria.map((id) => bits(t.getChild(id)!.get(i))));
  };

  it("a stream, cut anywhere, reads as from a file: every batch into one reused buffer", async () => {
    const t = tableFromIPC(readFileSync(file));
    const stream = tableToIPC(t, "stream");
    for (const seed of [1, 2, 3]) {
      const got = await readAll(stream, IDS, seed);
      expect(got.columns).toEqual(t.schema.fields.map((f) => f.name));
      expect(got.rows).toEqual(expected(stream, IDS));
      // the double column has no nulls: its values are views of the batch's bytes, all in one buffer
      expect((await readAll(stream, ["double"], seed)).buffers.size).toBe(1);
    }
  });

  it("a stream whose dictionaries are replaced between batches; an IPC file (copied aside, then read as a file)", async () => {
    const parts = [0, 1, 2].map((b) => new Table({
      group: vectorFromArray(Array.from({ length: 40 }, (_, i) => `s${b}-g${i >> 3}`), new Dictionary(new Utf8(), new Int32())),
      x: vectorFromArray(Array.from({ length: 40 }, (_, i) => (b * 40 + i) / 200), new Float64()),
    }).batches[0]!);
    const table = new Table(parts.map((p) => new RecordBatch(parts[0]!.schema, p.data)));
    const groups = async (bytes: Uint8Array) => {
      const out: unknown[] = [];
      for await (const s of columnSteps(await arrowSource(undefined, Readable.from(chunks(bytes, 5))), ["x"])) out.push(...s.groups);
      return out;
    };
    const names = Array.from({ length: 120 }, (_, i) => table.getChild("group")!.get(i));
    expect(await groups(tableToIPC(table, "stream"))).toEqual([...new Set(names)]);
    expect((await readAll(readFileSync(file), IDS)).rows).toEqual(expected(readFileSync(file), IDS));
  });

  it("a stream cut inside a message, or not Arrow at all, is an error naming the byte", async () => {
    const stream = tableToIPC(tableFromIPC(readFileSync(file)), "stream");
    await expect(readAll(stream.subarray(0, stream.length - 1000), IDS)).rejects.toThrow(/the input ends inside the message at byte \d+/);
    await expect(readAll(new TextEncoder().encode('{"group":"g","scores":{}}\n'), IDS)).rejects.toThrow("does not start with a schema");
    await expect(readAll(new Uint8Array(0), IDS)).rejects.toThrow("does not start with a schema");
    // a corrupt length after the schema is refused before anything is allocated for it
    const bad = stream.slice(), second = 8 + new DataView(bad.buffer).getInt32(4, true);
    expect(new DataView(bad.buffer).getInt32(second, true)).toBe(-1);
    new DataView(bad.buffer).setInt32(second + 4, 2 ** 30, true);
    await expect(readAll(bad, IDS)).rejects.toThrow(`metadata of 1073741824 bytes at byte ${second}`);
  });
});
