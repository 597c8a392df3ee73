/**
 * Reward logs in columnar files, Parquet (read by `hyparquet`) and Arrow IPC (read by
 * `apache-arrow`): the columns of the CSV form, `group` (required), `step` and `valid`
 * (optional) and one numeric column per criterion (null = not judged). Both readers are optional
 * dependencies, imported only when such a file is read. Each batch of rows (a Parquet row group,
 * an Arrow record batch) is turned into steps column by column; errors name the row (1-based).
 */
import { InputError, SCORE_MAX, StepBuilder, float32Problem, type Step } from "./step.js";

/** One batch of rows as columns; a score column is numbers with nulls, or a typed array. */
export interface ColumnBatch {
  rows: number;
  step?: ArrayLike<unknown>;
  group: ArrayLike<unknown>;
  valid?: ArrayLike<unknown>;
  /** In criterion order; undefined for a criterion the file lacks. */
  scores: (ArrayLike<unknown> | undefined)[];
}

export interface ColumnarSource {
  /** Every column name, in the file's order. */
  columns: string[];
  batches(criteria: readonly string[]): AsyncIterable<ColumnBatch>;
}

const SPECIAL = new Set(["step", "group", "valid"]);

/** The criteria of a columnar file: every column but step, group, valid. */
export function columnCriteria(source: ColumnarSource, where: string): string[] {
  if (!source.columns.includes("group")) throw new Error(`${where}: no 'group' column (columns: ${source.columns.join(", ")})`);
  const criteria = source.columns.filter((c) => !SPECIAL.has(c));
  if (criteria.length === 0) throw new Error(`${where}: no criterion columns`);
  return criteria;
}

function keyOf(v: unknown): string {
  return typeof v === "string" ? `"${v}` : typeof v === "bigint" ? `${v}` : (JSON.stringify(v) ?? "null");
}

function plain(v: unknown): unknown {
  return typeof v === "bigint" ? (Number.isSafeInteger(Number(v)) ? Number(v) : String(v)) : v;
}

/** Steps of a columnar source (consecutive equal `step` values form one step); `reuse` as StepBuilder's. */
export async function* columnSteps(source: ColumnarSource, criteria: readonly string[], reuse = false): AsyncGenerator<Step> {
  const K = criteria.length;
  const builder = new StepBuilder(criteria, reuse);
  let row = 0, stepKey: string | undefined, lastStep: unknown = Symbol("none");
  let lastGroup: unknown = Symbol("none"), lastGroupKey = "";
  for await (const b of source.batches(criteria)) {
    // Segments of rows with one step value (a step can end only at a segment's first row): when
    // all their scores are usable, the rows are added first and the scores copied column by
    // column; else row by row, which finds the first bad value in row order.
    for (let i = 0; i < b.rows; ) {
      let j = i + 1;
      if (b.step) {
        const s0 = b.step[i];
        while (j < b.rows && b.step[j] === s0) j++;
      } else j = b.rows;
      const clean = b.scores.every((col) => col === undefined || usable(col, i, j));
      for (let r = i; r < j; r++) {
        row++;
        if (b.step) {
          const s = b.step[r];
          if (s !== lastStep) {
            const key = s === null || s === undefined ? "" : keyOf(s);
            lastStep = s;
            if (key !== stepKey) {
              if (builder.started) yield builder.flush();
              stepKey = key;
              builder.step = s === null || s === undefined ? undefined : plain(s);
            }
          }
        }
        const g = b.group[r];
        if (g === null || g === undefined) throw new InputError(row, "'group' is null", "row");
        if (g !== lastGroup) {
          lastGroup = g;
          lastGroupKey = keyOf(g);
        }
        const v = b.valid?.[r];
        const at = builder.add(lastGroupKey, plain(g), v === undefined || v === null || v === true || v === 1 || v === 1n, row);
        if (v !== undefined && v !== null && typeof v !== "boolean" && v !== 0 && v !== 1 && v !== 0n && v !== 1n) {
          throw new InputError(row, `'valid' must be true or false, got ${String(v)}`, "row");
        }
        if (!clean) rowScores(b.scores, r, builder.values, at, criteria, row);
      }
      if (clean) {
        const out = builder.values, base = (builder.rows - (j - i)) * K;
        for (let k = 0; k < K; k++) {
          const col = b.scores[k];
          if (col) copyColumn(col, i, j, out, base + k, K);
        }
      }
      i = j;
    }
  }
  if (builder.started) yield builder.flush();
  else throw new InputError(1, "empty input: no rows", "row");
}

/** Typed arrays of numbers (a column decoded here, or an Arrow column without nulls). */
function numeric(col: ArrayLike<unknown>): col is Float64Array | Float32Array | Int32Array {
  return col instanceof Float64Array || col instanceof Float32Array || col instanceof Int32Array;
}

/** Every value of col[i..j) is null, NaN (not judged) or a number rowScores takes without error. */
function usable(col: ArrayLike<unknown>, i: number, j: number): boolean {
  if (col instanceof Int32Array) return true;
  if (numeric(col)) {
    for (let r = i; r < j; r++) {
      const x = col[r]!;
      if (!(x <= SCORE_MAX && x >= -SCORE_MAX) && x === x) return false;
    }
    return true;
  }
  for (let r = i; r < j; r++) {
    const x = col[r];
    if (x === null || x === undefined) continue;
    const n = typeof x === "number" ? x : typeof x === "bigint" ? Number(x) : undefined;
    if (n === undefined || (!(n <= SCORE_MAX && n >= -SCORE_MAX) && n === n)) return false;
  }
  return true;
}

/** col[i..j) into out[at], out[at + stride], ... (usable values: null and NaN stay NaN). */
function copyColumn(col: ArrayLike<unknown>, i: number, j: number, out: Float32Array, at: number, stride: number): void {
  if (numeric(col)) {
    for (let r = i; r < j; r++, at += stride) out[at] = col[r]!;
    return;
  }
  for (let r = i; r < j; r++, at += stride) {
    const x = col[r];
    if (typeof x === "number") out[at] = x;
    else if (typeof x === "bigint") out[at] = Number(x);
  }
}

/** Row r's scores into out[at..], with the errors (in criterion order) that name the row. */
function rowScores(cols: readonly (ArrayLike<unknown> | undefined)[], r: number, out: Float32Array, at: number, criteria: readonly string[], row: number): void {
  for (let k = 0; k < cols.length; k++) {
    const col = cols[k];
    if (!col) continue;
    const x = col[r];
    if (x === null || x === undefined) continue;
    const n = typeof x === "number" ? x : typeof x === "bigint" ? Number(x) : NaN;
    if (typeof x !== "number" && typeof x !== "bigint") throw new InputError(row, `score '${criteria[k]}' is ${JSON.stringify(x)}, expected a number or null`, "row");
    if (n !== n) continue; // NaN: not judged, as in the engine
    if (n === Infinity || n === -Infinity) throw new InputError(row, `score '${criteria[k]}' is not finite`, "row");
    if (n > 3.4e38 || n < -3.4e38) throw new InputError(row, float32Problem(criteria[k]!, n)!, "row");
    out[at + k] = n;
  }
}

/** Imports an optional reader, with a message that says how to get it. */
async function optional<T>(name: string, format: string): Promise<T> {
  try {
    return (await import(name)) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND") {
      throw new Error(`reading ${format} needs the optional package '${name}': npm install ${name}`);
    }
    throw e;
  }
}

/** A Parquet file, one row group at a time (hyparquet). */
export async function parquetSource(path: string): Promise<ColumnarSource> {
  type Hy = typeof import("hyparquet");
  const hy = await optional<Hy>("hyparquet", "Parquet");
  const file = await hy.asyncBufferFromFile(path);
  const metadata = await hy.parquetMetadataAsync(file);
  const top = hy.parquetSchema(metadata).children;
  const columns = top.map((c) => c.element.name);
  const pages = await pageReader();
  return {
    columns,
    async *batches(criteria) {
      const wanted = ["step", "group", "valid", ...criteria].filter((c) => columns.includes(c));
      const scoreColumns = new Set(criteria);
      const reused = new Map<string, Float64Array>();
      let start = 0;
      for (const rg of metadata.row_groups) {
        const rows = Number(rg.num_rows);
        const data: Record<string, ArrayLike<unknown>> = {};
        // Score and step columns of plain numbers are decoded here into typed arrays; the rest by hyparquet.
        const rest: string[] = [];
        for (const name of wanted) {
          const chunk = rg.columns.find((c) => c.meta_data?.path_in_schema.length === 1 && c.meta_data.path_in_schema[0] === name);
          const element = top.find((c) => c.element.name === name)!.element;
          const meta = chunk?.meta_data;
          const score = scoreColumns.has(name);
          if (pages && meta && (score || name === "step") && plainNumbers(element)) {
            const at = Number(meta.dictionary_page_offset || meta.data_page_offset);
            const bytes = new Uint8Array(await file.slice(at, at + Number(meta.total_compressed_size)));
            // a step column only without nulls (a null step is "no step", not NaN)
            // The column's buffer is reused by the next row group (columnSteps is done with this
            // one by then): fresh memory per row group costs its page faults.
            let out = reused.get(name);
            if (!out || out.length < rows) reused.set(name, (out = new Float64Array(rows)));
            const values = numberChunk(pages, bytes, meta.type, meta.codec, element.repetition_type !== "REQUIRED", out.subarray(0, rows), score);
            if (values) {
              data[name] = values;
              continue;
            }
          }
          rest.push(name);
        }
        if (rest.length > 0) {
          await hy.parquetRead({
            file, metadata, columns: rest, rowStart: start, rowEnd: start + rows,
            onChunk: (c) => {
              // A column may arrive in several chunks (pages); join them in order.
              const prev = data[c.columnName];
              data[c.columnName] = prev === undefined && c.rowStart === start && c.rowEnd === start + rows ? c.columnData : concat(prev, c.columnData, c.rowStart - start, rows);
            },
          });
        }
        start += rows;
        yield { rows, step: data.step, group: data.group!, valid: data.valid, scores: criteria.map((c) => data[c]) };
      }
    },
  };
}

/**
 * hyparquet's page-level functions (its exported src/*.js modules): page headers, decompression
 * and plain decoding. With them a flat numeric column chunk is decoded into a Float64Array (NaN =
 * null); parquetRead gives such a column as JavaScript arrays (dictionary indices, definition
 * levels, the values as boxed numbers assembled one by one), ~95% of the reading time on a log
 * of dictionary-encoded scores. Undefined if this hyparquet lacks them (then parquetRead reads all).
 */
interface PageFunctions {
  parquetHeader(reader: Reader): PageHeader;
  decompressPage(bytes: Uint8Array, size: number, codec: string, compressors: undefined): Uint8Array;
  readPlain(reader: Reader, type: string, count: number, fixedLength: undefined): ArrayLike<number>;
}
interface Reader { view: DataView; offset: number }
interface PageHeader {
  type: string;
  uncompressed_page_size: number;
  compressed_page_size: number;
  data_page_header?: { num_values: number; encoding: string; definition_level_encoding: string };
  dictionary_page_header?: { num_values: number };
  data_page_header_v2?: { num_values: number; encoding: string; definition_levels_byte_length: number; repetition_levels_byte_length: number; is_compressed?: boolean };
}

async function pageReader(): Promise<PageFunctions | undefined> {
  try {
    const [column, datapage, plain] = (await Promise.all([import("hyparquet/src/column.js"), import("hyparquet/src/datapage.js"), import("hyparquet/src/plain.js")])) as Record<string, unknown>[];
    const f = { parquetHeader: column!.parquetHeader, decompressPage: datapage!.decompressPage, readPlain: plain!.readPlain };
    return Object.values(f).every((x) => typeof x === "function") ? (f as unknown as PageFunctions) : undefined;
  } catch {
    return undefined;
  }
}

/** A top-level column of doubles, floats or int32 with no conversion (hyparquet gives them as numbers, unchanged). */
function plainNumbers(e: { type?: string; repetition_type?: string; converted_type?: string; logical_type?: unknown; num_children?: number }): boolean {
  return (e.type === "DOUBLE" || e.type === "FLOAT" || e.type === "INT32") && e.repetition_type !== "REPEATED" && e.converted_type === undefined && e.logical_type === undefined && !e.num_children;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** Scratch of numberChunk (definition levels and dictionary indices of a page), grown as needed. */
let levels: Int32Array = new Int32Array(0), indices: Int32Array = new Int32Array(0);
const fit = (a: Int32Array, n: number): Int32Array => (a.length >= n ? a : new Int32Array(Math.max(n, 2 * a.length)));

/**
 * A numeric column chunk (out.length values) into out, NaN where null (for a score, a null
 * and a NaN are both "not judged"; `nulls` false: a null makes it undefined); undefined for
 * anything unusual (an encoding other than plain or dictionary, a page that does not add up, a
 * decoding error), which hyparquet then reads as before.
 */
function numberChunk(h: PageFunctions, bytes: Uint8Array, type: string, codec: string, optional: boolean, out: Float64Array, nulls: boolean): Float64Array | undefined {
  try {
    const rows = out.length;
    const reader = { view: view(bytes), offset: 0 };
    let dict: Float64Array | undefined;
    let filled = 0;
    while (filled < rows) {
      if (reader.offset >= bytes.length) return undefined;
      const ph = h.parquetHeader(reader);
      const raw = bytes.subarray(reader.offset, reader.offset + ph.compressed_page_size);
      reader.offset += ph.compressed_page_size;
      if (ph.type === "DICTIONARY_PAGE") {
        const page = h.decompressPage(raw, Number(ph.uncompressed_page_size), codec, undefined);
        dict = Float64Array.from(h.readPlain({ view: view(page), offset: 0 }, type, ph.dictionary_page_header!.num_values, undefined));
        continue;
      }
      let n: number, encoding: string, page: Uint8Array, at = 0;
      let present = -1; // -1: no definition levels (every value present)
      if (ph.type === "DATA_PAGE" && ph.data_page_header && (!optional || ph.data_page_header.definition_level_encoding === "RLE")) {
        ({ num_values: n, encoding } = ph.data_page_header);
        page = h.decompressPage(raw, Number(ph.uncompressed_page_size), codec, undefined);
        if (optional) {
          // version 1: the definition levels (0 null, 1 present) lead the page, after their length
          if (page.length < 4) return undefined;
          const len = view(page).getUint32(0, true);
          levels = fit(levels, n);
          present = hybrid(page, 4, 4 + len, 1, levels, n);
          at = 4 + len;
        }
      } else if (ph.type === "DATA_PAGE_V2" && ph.data_page_header_v2) {
        const d = ph.data_page_header_v2;
        ({ num_values: n, encoding } = d);
        if (d.repetition_levels_byte_length) return undefined;
        // version 2: the levels are not compressed, the values after them may be
        const dl = d.definition_levels_byte_length;
        if (optional) {
          levels = fit(levels, n);
          present = hybrid(raw, 0, dl, 1, levels, n);
        }
        const body = raw.subarray(dl), size = Number(ph.uncompressed_page_size) - dl;
        page = d.is_compressed !== false && size > 0 ? h.decompressPage(body, size, codec, undefined) : body;
      } else return undefined;
      if (filled + n > rows || present < -1) return undefined;
      const count = present < 0 ? n : present;
      if (!nulls && count !== n) return undefined;
      if (encoding === "PLAIN") {
        const v = h.readPlain({ view: view(page), offset: at }, type, count, undefined);
        if (v.length !== count) return undefined;
        const vals = v instanceof Float64Array ? v : Float64Array.from(v);
        if (present < 0) out.set(vals, filled);
        else spread(out, filled, n, levels, vals);
      } else if ((encoding === "RLE_DICTIONARY" || encoding === "PLAIN_DICTIONARY") && dict) {
        if (at >= page.length) return undefined;
        const width = page[at]!;
        indices = fit(indices, count);
        if (width > 0 && hybrid(page, at + 1, page.length, width, indices, count) < 0) return undefined;
        if (width === 0) indices.fill(0, 0, count);
        lookup(out, filled, n, present < 0 ? undefined : levels, indices, dict);
      } else return undefined;
      filled += n;
    }
    return out;
  } catch {
    return undefined;
  }
}

/**
 * Parquet's RLE / bit-packed hybrid: `n` values of `width` bits (at most 24) from b[pos..end) into
 * out; returns the sum of the values (for definition levels: the values present), or -2 if the
 * data does not add up (hyparquet then decides).
 */
function hybrid(b: Uint8Array, pos: number, end: number, width: number, out: Int32Array, n: number): number {
  if (width > 24 || end > b.length) return -2;
  const mask = (1 << width) - 1, bytes = (width + 7) >> 3;
  let i = 0, sum = 0;
  while (i < n) {
    let header = 0, shift = 0, c: number;
    do {
      if (pos >= end || shift > 28) return -2;
      c = b[pos++]!;
      header |= (c & 0x7f) << shift;
      shift += 7;
    } while (c & 0x80);
    if (header & 1) {
      // bit-packed: groups of 8 values, least significant bits first
      const count = (header >>> 1) * 8;
      if (pos + (count * width) / 8 > end) return -2;
      let acc = 0, bits = 0;
      for (let k = 0; k < count; k++) {
        while (bits < width) {
          acc |= b[pos++]! << bits;
          bits += 8;
        }
        if (i < n) {
          const x = acc & mask;
          out[i++] = x;
          sum += x;
        }
        acc >>>= width;
        bits -= width;
      }
    } else {
      // a run: one value, repeated
      const count = Math.min(header >>> 1, n - i);
      if (pos + bytes > end) return -2;
      let x = 0;
      for (let k = 0; k < bytes; k++) x |= b[pos++]! << (8 * k);
      if (x > mask) return -2;
      out.fill(x, i, i + count);
      i += count;
      sum += x * count;
    }
  }
  return sum;
}

/** out[at + i] = the next value where levels[i] is 1, else NaN (null). */
function spread(out: Float64Array, at: number, n: number, levels: Int32Array, vals: Float64Array): void {
  for (let i = 0, j = 0; i < n; i++) out[at + i] = levels[i] ? vals[j++]! : NaN;
}

/** out[at + i] = dict[the next index] where present (levels undefined: everywhere), else NaN. */
function lookup(out: Float64Array, at: number, n: number, levels: Int32Array | undefined, idx: Int32Array, dict: Float64Array): void {
  const m = dict.length;
  if (levels === undefined) {
    for (let i = 0; i < n; i++) {
      const x = idx[i]!;
      out[at + i] = x < m ? dict[x]! : NaN; // hyparquet: an index past the dictionary is null
    }
    return;
  }
  for (let i = 0, j = 0; i < n; i++) {
    if (levels[i]) {
      const x = idx[j++]!;
      out[at + i] = x < m ? dict[x]! : NaN;
    } else out[at + i] = NaN;
  }
}

function concat(prev: ArrayLike<unknown> | undefined, part: ArrayLike<unknown>, at: number, rows: number): ArrayLike<unknown> {
  const out = (prev as unknown[] | undefined) && Array.isArray(prev) && prev.length === rows ? (prev as unknown[]) : Array.from({ length: rows }, (_, i) => (prev ? prev[i] : undefined));
  for (let i = 0; i < part.length; i++) out[at + i] = part[i];
  return out;
}

/** An Arrow IPC file or stream (undefined: stdin), one record batch at a time (apache-arrow). */
export async function arrowSource(path: string | undefined): Promise<ColumnarSource> {
  type Ar = typeof import("apache-arrow");
  const ar = await optional<Ar>("apache-arrow", "Arrow IPC");
  // A file is given as a file handle: apache-arrow then reads the IPC file format a record
  // batch at a time (random access); from a stream it reads the whole file into memory first.
  const { open } = await import("node:fs/promises");
  const source = path === undefined ? process.stdin : await open(path, "r");
  const head = await (ar.RecordBatchReader.from(source as never) as unknown as Promise<AsyncIterable<InstanceType<Ar["RecordBatch"]>> & { schema: InstanceType<Ar["Schema"]>; open(): Promise<unknown> }>);
  await head.open();
  const columns = head.schema.fields.map((f) => f.name);
  return {
    columns,
    async *batches(criteria) {
      try {
        for await (const batch of head) {
          const col = (name: string) => {
            const v = batch.getChild(name);
            return v ? arrowColumn(v) : undefined;
          };
          yield { rows: batch.numRows, step: col("step"), group: col("group")!, valid: col("valid"), scores: criteria.map(col) };
        }
      } finally {
        if (source !== process.stdin) await (source as { close(): Promise<void> }).close().catch(() => {});
      }
    },
  };
}

const utf8 = new TextDecoder("utf-8"); // as apache-arrow decodes Utf8 values

function sameBytes(b: Uint8Array, x: number, y: number, n: number): boolean {
  for (let j = 0; j < n; j++) if (b[x + j] !== b[y + j]) return false;
  return true;
}

/** An Arrow vector as an array-like: int and float columns without nulls as their typed array (no copy). */
function arrowColumn(v: { data: readonly { values: unknown; nullCount: number; length: number; offset: number }[]; length: number; get(i: number): unknown; type: { typeId: number } }): ArrayLike<unknown> {
  const d = v.data;
  const t = v.type.typeId; // 2 Int, 3 Float, 5 Utf8 (apache-arrow's Type enum)
  if ((t === 2 || t === 3) && d.length === 1 && d[0]!.nullCount === 0 && ArrayBuffer.isView(d[0]!.values)) {
    const vals = d[0]!.values as Float64Array;
    return vals.subarray(d[0]!.offset, d[0]!.offset + d[0]!.length);
  }
  const out = new Array<unknown>(v.length);
  if (t === 5 && d.every((c) => c.nullCount === 0 && c.offset === 0 && (c as { valueOffsets?: unknown }).valueOffsets instanceof Int32Array)) {
    // Utf8 without nulls (a group column): a value whose bytes repeat the row before's reuses its
    // string (groups are runs of rows), else it is decoded as apache-arrow's get() decodes it.
    let i = 0;
    for (const c of d) {
      const offsets = (c as unknown as { valueOffsets: Int32Array }).valueOffsets, bytes = c.values as Uint8Array;
      let px = 0, py = -1, last: string | undefined;
      for (let r = 0; r < c.length; r++, i++) {
        const x = offsets[r]!, y = offsets[r + 1]!;
        if (last === undefined || y - x !== py - px || !sameBytes(bytes, x, px, y - x)) last = utf8.decode(bytes.subarray(x, y));
        out[i] = last;
        px = x; py = y;
      }
    }
    return out;
  }
  for (let i = 0; i < v.length; i++) out[i] = v.get(i);
  return out;
}
