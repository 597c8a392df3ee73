/**
 * Reward logs in columnar files, Parquet (read by `hyparquet`) and Arrow IPC (read by
 * `apache-arrow`): the columns of the CSV form, `group` (required), `step` and `valid`
 * (optional) and one numeric column per criterion (null = not judged). Both readers are optional
 * dependencies, imported only when such a file is read. Each batch of rows (a Parquet row group,
 * an Arrow record batch) is turned into steps column by column; errors name the row (1-based).
 */
import { InputError, SCORE_MAX, StepBuilder, float32Problem, type Step } from "./step.js";

/** A group column as codes: row r's group is values[codes[r]] (rows of one code have one value). */
export interface GroupCodes {
  codes: Int32Array;
  values: unknown[];
}

/** One batch of rows as columns; a score column is numbers with nulls, or a typed array. */
export interface ColumnBatch {
  rows: number;
  step?: ArrayLike<unknown>;
  group: GroupCodes | ArrayLike<unknown>;
  valid?: ArrayLike<unknown>;
  /** In criterion order; undefined for a criterion the file lacks. */
  scores: (ArrayLike<unknown> | undefined)[];
  /** usable[k]: the reader found every value of scores[k] usable (see `usable`): no need to look again. */
  usable?: boolean[];
  /** Every score, row after row (row r's from r * K), NaN where not judged, every value usable: when given, `scores` is not read. */
  matrix?: Float32Array;
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

const isCodes = (g: GroupCodes | ArrayLike<unknown>): g is GroupCodes => "codes" in g;

let scratchCodes = new Int32Array(0);

/** A group column of values as codes: a new code where the value differs from the row before's. */
function groupCodes(g: GroupCodes | ArrayLike<unknown>, rows: number): GroupCodes {
  if (isCodes(g)) return g;
  if (scratchCodes.length < rows) scratchCodes = new Int32Array(rows);
  const codes = scratchCodes, values: unknown[] = [];
  let last: unknown = Symbol("none");
  for (let r = 0; r < rows; r++) {
    const v = g[r];
    if (v !== last) values.push((last = v));
    codes[r] = values.length - 1;
  }
  return { codes, values };
}

/** Steps of a columnar source (consecutive equal `step` values form one step); `reuse` as StepBuilder's. */
export async function* columnSteps(source: ColumnarSource, criteria: readonly string[], reuse = false): AsyncGenerator<Step> {
  const K = criteria.length;
  const builder = new StepBuilder(criteria, reuse);
  let row = 0, stepKey: string | undefined, lastStep: unknown = Symbol("none");
  for await (const b of source.batches(criteria)) {
    const { codes, values } = groupCodes(b.group, b.rows);
    const keys = new Array<string | undefined>(values.length);
    const nullGroup = values.some((g) => g === null || g === undefined);
    const checked = b.scores.map((col, k) => col === undefined || b.usable?.[k] === true);
    // Segments of rows with one step value (a step can end only at a segment's first row). With no
    // null group and no valid column, the rows are added a run of one group at a time and the
    // scores copied column by column, checked as they are copied; a value that cannot be used
    // sends the segment row by row, which finds the first bad value in row order. Else row by row.
    for (let i = 0; i < b.rows; ) {
      let j = i + 1;
      if (b.step) {
        const s = b.step[i];
        while (j < b.rows && b.step[j] === s) j++;
        if (s !== lastStep) {
          const key = s === null || s === undefined ? "" : keyOf(s);
          lastStep = s;
          if (key !== stepKey) {
            if (builder.started) yield builder.flush();
            stepKey = key;
            builder.step = s === null || s === undefined ? undefined : plain(s);
          }
        }
      } else j = b.rows;
      const first = builder.rows, start = row;
      if (!b.valid && !nullGroup) {
        for (let r = i; r < j; ) {
          const c = codes[r]!;
          let e = r + 1;
          while (e < j && codes[e] === c) e++;
          builder.addRun((keys[c] ??= keyOf(values[c])), plain(values[c]), e - r, row + 1, false);
          row += e - r;
          r = e;
        }
        if (!copyScores(b, checked, i, j, builder.values, first * K)) {
          builder.values.fill(NaN, first * K, (first + j - i) * K);
          for (let r = i; r < j; r++) rowScores(b.scores, r, builder.values, (first + r - i) * K, criteria, start + r - i + 1);
        }
      } else {
        const clean = b.matrix !== undefined || b.scores.every((col, k) => checked[k] || usable(col!, i, j));
        for (let r = i; r < j; r++) {
          row++;
          const c = codes[r]!, g = values[c];
          if (g === null || g === undefined) throw new InputError(row, "'group' is null", "row");
          const v = b.valid?.[r];
          const at = builder.add((keys[c] ??= keyOf(g)), plain(g), v === undefined || v === null || v === true || v === 1 || v === 1n, row);
          if (v !== undefined && v !== null && typeof v !== "boolean" && v !== 0 && v !== 1 && v !== 0n && v !== 1n) {
            throw new InputError(row, `'valid' must be true or false, got ${String(v)}`, "row");
          }
          if (!clean) rowScores(b.scores, r, builder.values, at, criteria, row);
        }
        if (clean) copyScores(b, checked, i, j, builder.values, first * K);
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

/** A number rowScores refuses: infinite or outside float32's range (NaN is "not judged"). */
const unusable = (x: number) => !(x <= SCORE_MAX && x >= -SCORE_MAX) && x === x;

/** Every value of col[i..j) is null, NaN (not judged) or a number rowScores takes without error. */
function usable(col: ArrayLike<unknown>, i: number, j: number): boolean {
  if (col instanceof Int32Array) return true;
  if (numeric(col)) {
    for (let r = i; r < j; r++) if (unusable(col[r]!)) return false;
    return true;
  }
  for (let r = i; r < j; r++) {
    const x = col[r];
    if (x === null || x === undefined) continue;
    const n = typeof x === "number" ? x : typeof x === "bigint" ? Number(x) : undefined;
    if (n === undefined || unusable(n)) return false;
  }
  return true;
}

/**
 * Rows i..j of every score of the batch into out from `at` (every score of those rows is written; a
 * criterion the file lacks, a null: NaN), the columns not `checked` checked as they are copied:
 * false at the first value rowScores would refuse.
 */
function copyScores(b: ColumnBatch, checked: readonly boolean[], i: number, j: number, out: Float32Array, at: number): boolean {
  const cols = b.scores, K = cols.length;
  if (b.matrix) {
    out.set(b.matrix.subarray(i * K, j * K), at);
    return true;
  }
  for (let k = 0; k < K; k++) {
    const col = cols[k];
    if (!col) for (let r = i, to = at + k; r < j; r++, to += K) out[to] = NaN;
    else if (!copyColumn(col, i, j, out, at + k, K, !checked[k])) return false;
  }
  return true;
}

/** col[i..j) into out[at], out[at + stride], ... (null and NaN as NaN); false at a value rowScores refuses, if `check`. */
function copyColumn(col: ArrayLike<unknown>, i: number, j: number, out: Float32Array, at: number, stride: number, check: boolean): boolean {
  if (numeric(col)) {
    if (check && !(col instanceof Int32Array)) {
      for (let r = i; r < j; r++, at += stride) {
        const x = col[r]!;
        if (unusable(x)) return false;
        out[at] = x;
      }
    } else for (let r = i; r < j; r++, at += stride) out[at] = col[r]!;
    return true;
  }
  for (let r = i; r < j; r++, at += stride) {
    const x = col[r];
    const n = typeof x === "number" ? x : typeof x === "bigint" ? Number(x) : x === null || x === undefined ? NaN : undefined;
    if (n === undefined || (check && unusable(n))) return false;
    out[at] = n;
  }
  return true;
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
      // A column's buffer is reused by the next row group (columnSteps is done with this one by
      // then): fresh memory per row group costs its page faults.
      const reused = new Map<string, Float64Array>();
      let codes = new Int32Array(0), floats = new Float32Array(0), matrix = new Float32Array(0);
      const K = criteria.length, inStep = criteria.map(() => new ScoreColumn());
      const handle = pages ? await (await import("node:fs/promises")).open(path, "r") : undefined;
      try {
        let start = 0;
        for (const rg of metadata.row_groups) {
          const rows = Number(rg.num_rows);
          const data: Record<string, ArrayLike<unknown>> = {};
          let group: GroupCodes | undefined;
          // Score, step and group columns of plain numbers or strings are decoded here (the
          // scores as float32: in step into the rows, or else column after column in one
          // buffer); the rest by hyparquet.
          const rest: string[] = [];
          const mine: { name: string; meta: ChunkMeta; element: SchemaElement }[] = [];
          for (const name of wanted) {
            const meta = rg.columns.find((c) => c.meta_data?.path_in_schema.length === 1 && c.meta_data.path_in_schema[0] === name)?.meta_data;
            const element = top.find((c) => c.element.name === name)!.element;
            const ours = scoreColumns.has(name) || name === "step" ? plainNumbers(element) : name === "group" && (plainNumbers(element) || plainText(element));
            if (pages && handle && meta && ours) mine.push({ name, meta, element });
            else rest.push(name);
          }
          const bytes = await readChunks(handle!, mine.map((c) => c.meta));
          let inRows = false;
          if (!rest.some((name) => scoreColumns.has(name))) {
            if (matrix.length < rows * K) matrix = new Float32Array(rows * K);
            const columns = criteria.map((name, k) => {
              const i = mine.findIndex((c) => c.name === name);
              if (i < 0) return undefined;
              const { meta, element } = mine[i]!;
              inStep[k]!.open(pages!, bytes[i]!, meta.type, meta.codec, element.repetition_type !== "REQUIRED", rows);
              return inStep[k];
            });
            inRows = readInStep(columns, rows, matrix);
          }
          if (!inRows && floats.length < rows * K) floats = new Float32Array(rows * K);
          const checked = new Set<string>();
          mine.forEach(({ name, meta, element }, i) => {
            if (inRows && scoreColumns.has(name)) return;
            const optional = element.repetition_type !== "REQUIRED";
            if (name === "group" && element.type === "BYTE_ARRAY") {
              if (codes.length < rows) codes = new Int32Array(rows);
              group = textChunk(pages!, bytes[i]!, meta.codec, optional, codes.subarray(0, rows));
              if (!group) rest.push(name);
              return;
            }
            const score = scoreColumns.has(name);
            const k = criteria.indexOf(name), column = floats.subarray(k * rows, (k + 1) * rows);
            if (score && scoreChunk(pages!, bytes[i]!, meta.type, meta.codec, optional, column)) {
              data[name] = column;
              checked.add(name);
              return;
            }
            // the other numbers (and a score column that has a value out of range: it is read row by row)
            let out = reused.get(name);
            if (!out || out.length < rows) reused.set(name, (out = new Float64Array(rows)));
            // only a score may have nulls (a null step is "no step", not NaN; a null group an error)
            const got = numberChunk(pages!, bytes[i]!, meta.type, meta.codec, optional, out.subarray(0, rows), score);
            if (got) data[name] = got;
            else rest.push(name);
          });
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
          const batch: ColumnBatch = { rows, step: data.step, group: group ?? data.group!, valid: data.valid, scores: criteria.map((c) => data[c]), usable: criteria.map((c) => checked.has(c)) };
          if (inRows) batch.matrix = matrix.subarray(0, rows * K);
          yield batch;
        }
      } finally {
        await handle?.close();
      }
    },
  };
}

/** Rows of a block of the score columns read in step: ~16 KiB of rows at K = 16, in L1 while its columns are written into it. */
const BLOCK = 256;

/**
 * The score columns (in criterion order; undefined: the file lacks it) of a row group into
 * matrix, row after row (NaN where missing), a block of rows at a time: each row's scores are
 * written while its block is in cache, instead of a column at a time into the whole row group.
 * False as ScoreColumn.take (the row group is then read column after column).
 */
function readInStep(columns: readonly (ScoreColumn | undefined)[], rows: number, matrix: Float32Array): boolean {
  const K = columns.length;
  for (let r = 0; r < rows; r += BLOCK) {
    const m = Math.min(BLOCK, rows - r);
    for (let k = 0; k < K; k++) {
      const column = columns[k], at = r * K + k;
      if (!column) fillStrided(matrix, at, K, m, NaN);
      else if (!column.take(m, matrix, at, K)) return false;
    }
  }
  return true;
}

interface ChunkMeta { type: string; codec: string; data_page_offset: bigint; dictionary_page_offset?: bigint; total_compressed_size: bigint }
interface SchemaElement { type?: string; repetition_type?: string; converted_type?: string; logical_type?: { type: string; isSigned?: boolean }; num_children?: number }

let chunkBuffer = new Uint8Array(0);

/**
 * The bytes of these column chunks (of one row group), in one read per run of adjacent chunks,
 * into a buffer that the next row group reuses.
 */
async function readChunks(handle: import("node:fs/promises").FileHandle, chunks: ChunkMeta[]): Promise<Uint8Array[]> {
  const at = chunks.map((m) => Number(m.dictionary_page_offset || m.data_page_offset));
  const order = chunks.map((_, i) => i).sort((x, y) => at[x]! - at[y]!);
  const spans: { from: number; to: number; into: number }[] = [];
  const where = new Array<number>(chunks.length);
  let size = 0;
  for (const i of order) {
    const from = at[i]!, to = from + Number(chunks[i]!.total_compressed_size);
    const last = spans[spans.length - 1];
    if (last && from >= last.from && from <= last.to + 4096) {
      // adjacent (or nearly): one read
      if (to > last.to) size += to - last.to, (last.to = to);
    } else {
      spans.push({ from, to, into: size });
      size += to - from;
    }
    const span = spans[spans.length - 1]!;
    where[i] = span.into + from - span.from;
  }
  if (chunkBuffer.length < size) chunkBuffer = new Uint8Array(Math.max(size, 2 * chunkBuffer.length));
  for (const s of spans) {
    for (let done = 0; done < s.to - s.from; ) {
      const { bytesRead } = await handle.read(chunkBuffer, s.into + done, s.to - s.from - done, s.from + done);
      if (bytesRead === 0) break; // past the end: the decoder finds the chunk short
      done += bytesRead;
    }
  }
  return chunks.map((m, i) => chunkBuffer.subarray(where[i]!, where[i]! + Number(m.total_compressed_size)));
}

/**
 * hyparquet's page-level functions (its exported src/*.js modules): page headers, decompression
 * and plain decoding. With them a flat numeric column chunk is decoded into a Float64Array (NaN =
 * null) and a string one into codes; parquetRead gives such a column as JavaScript arrays
 * (dictionary indices, definition levels, the values as boxed numbers assembled one by one),
 * ~95% of the reading time on a log of dictionary-encoded scores. Undefined if this hyparquet
 * lacks them (then parquetRead reads all).
 */
interface PageFunctions {
  parquetHeader(reader: Reader): PageHeader;
  decompressPage(bytes: Uint8Array, size: number, codec: string, compressors: undefined): Uint8Array;
  snappyUncompress(bytes: Uint8Array, out: Uint8Array): void;
  readPlain(reader: Reader, type: string, count: number, fixedLength: undefined): ArrayLike<unknown>;
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
    const [column, datapage, plain, snappy] = (await Promise.all([import("hyparquet/src/column.js"), import("hyparquet/src/datapage.js"), import("hyparquet/src/plain.js"), import("hyparquet/src/snappy.js")])) as Record<string, unknown>[];
    const f = { parquetHeader: column!.parquetHeader, decompressPage: datapage!.decompressPage, snappyUncompress: snappy!.snappyUncompress, readPlain: plain!.readPlain };
    return Object.values(f).every((x) => typeof x === "function") ? (f as unknown as PageFunctions) : undefined;
  } catch {
    return undefined;
  }
}

const SIGNED = new Set(["INT_8", "INT_16", "INT_32", "INT_64"]);

/**
 * A top-level column of doubles, floats or integers that hyparquet gives as numbers unchanged
 * (int64 as bigint: taken here when every value is a safe integer, which reads the same).
 */
function plainNumbers(e: SchemaElement): boolean {
  const signed = (e.converted_type === undefined || SIGNED.has(e.converted_type)) && (e.logical_type === undefined || (e.logical_type.type === "INTEGER" && e.logical_type.isSigned === true));
  const int = e.type === "INT32" || e.type === "INT64";
  return (int ? signed : (e.type === "DOUBLE" || e.type === "FLOAT") && e.converted_type === undefined && e.logical_type === undefined) && e.repetition_type !== "REPEATED" && !e.num_children;
}

/** A top-level column of strings that hyparquet decodes as UTF-8 (TextDecoder's defaults). */
function plainText(e: SchemaElement): boolean {
  const text = e.converted_type === "UTF8" || e.logical_type?.type === "STRING" || (e.converted_type === undefined && e.logical_type === undefined);
  return e.type === "BYTE_ARRAY" && text && e.repetition_type !== "REPEATED" && !e.num_children;
}

const view = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** The buffers a column's pages are decoded into (a decompressed page, its definition levels, its dictionary indices), grown as needed. */
interface Scratch { page: Uint8Array; levels: Int32Array; indices: Int32Array }
const newScratch = (): Scratch => ({ page: new Uint8Array(0), levels: new Int32Array(0), indices: new Int32Array(0) });
/** The scratch of the decoders that read a chunk at a time. */
const shared = newScratch();
const fit = (a: Int32Array, n: number): Int32Array => (a.length >= n ? a : new Int32Array(Math.max(n, 2 * a.length)));

/** A page's bytes decompressed: snappy into the scratch's page buffer (read before its next page is). */
function decompress(h: PageFunctions, raw: Uint8Array, size: number, codec: string, s: Scratch): Uint8Array {
  if (codec !== "SNAPPY") return h.decompressPage(raw, size, codec, undefined);
  if (s.page.length < size) s.page = new Uint8Array(Math.max(size, 2 * s.page.length));
  const out = s.page.subarray(0, size);
  h.snappyUncompress(raw, out);
  return out;
}

/**
 * A data page, decompressed: n values after the `from` values of the pages before it, `present`
 * of them not null (where `levels` is 1, when fewer than n), from page[at..]; decoded into `scratch`.
 */
interface DataPage { n: number; from: number; encoding: string; page: Uint8Array; at: number; present: number; levels: Int32Array; scratch: Scratch }

/**
 * The pages of a column chunk of `rows` values, in order: `next` gives each data page, and the
 * dictionary page before it to onDictionary (its bytes, decompressed, and its size).
 */
class Pages {
  private readonly reader: Reader;
  private filled = 0;
  constructor(private readonly h: PageFunctions, private readonly bytes: Uint8Array, private readonly codec: string, private readonly optional: boolean, private readonly rows: number, private readonly scratch: Scratch, private readonly onDictionary: (page: Uint8Array, count: number) => boolean) {
    this.reader = { view: view(bytes), offset: 0 };
  }

  /** The next data page; null after the last one; undefined if the pages do not add up or are of a kind not read here (or onDictionary returned false). */
  next(): DataPage | null | undefined {
    const { h, bytes, codec, optional, reader, rows, scratch: s } = this;
    while (this.filled < rows) {
      if (reader.offset >= bytes.length) return undefined;
      const ph = h.parquetHeader(reader);
      const raw = bytes.subarray(reader.offset, reader.offset + ph.compressed_page_size);
      reader.offset += ph.compressed_page_size;
      if (ph.type === "DICTIONARY_PAGE") {
        if (!this.onDictionary(decompress(h, raw, Number(ph.uncompressed_page_size), codec, s), ph.dictionary_page_header!.num_values)) return undefined;
        continue;
      }
      let n: number, encoding: string, page: Uint8Array, at = 0, present: number;
      if (ph.type === "DATA_PAGE" && ph.data_page_header && (!optional || ph.data_page_header.definition_level_encoding === "RLE")) {
        ({ num_values: n, encoding } = ph.data_page_header);
        page = decompress(h, raw, Number(ph.uncompressed_page_size), codec, s);
        present = n;
        if (optional) {
          // version 1: the definition levels (0 null, 1 present) lead the page, after their length
          if (page.length < 4) return undefined;
          const len = view(page).getUint32(0, true);
          s.levels = fit(s.levels, n);
          present = hybrid(page, 4, 4 + len, 1, s.levels, n);
          at = 4 + len;
        }
      } else if (ph.type === "DATA_PAGE_V2" && ph.data_page_header_v2) {
        const d = ph.data_page_header_v2;
        ({ num_values: n, encoding } = d);
        if (d.repetition_levels_byte_length) return undefined;
        // version 2: the levels are not compressed, the values after them may be
        const dl = d.definition_levels_byte_length;
        present = n;
        if (optional) {
          s.levels = fit(s.levels, n);
          present = hybrid(raw, 0, dl, 1, s.levels, n);
        }
        const body = raw.subarray(dl), size = Number(ph.uncompressed_page_size) - dl;
        page = d.is_compressed !== false && size > 0 ? decompress(h, body, size, codec, s) : body;
      } else return undefined;
      if (this.filled + n > rows || present < 0) return undefined;
      const from = this.filled;
      this.filled += n;
      return { n, from, encoding, page, at, present, levels: s.levels, scratch: s };
    }
    return null;
  }
}

/** Each data page of a column chunk of `rows` values to onData (see Pages); false where Pages gives undefined or onData returns false. */
function eachPage(h: PageFunctions, bytes: Uint8Array, codec: string, optional: boolean, rows: number, onDictionary: (page: Uint8Array, count: number) => boolean, onData: (p: DataPage) => boolean): boolean {
  const pages = new Pages(h, bytes, codec, optional, rows, shared, onDictionary);
  for (let p = pages.next(); p !== null; p = pages.next()) if (!p || !onData(p)) return false;
  return true;
}

const DICTIONARY = new Set(["RLE_DICTIONARY", "PLAIN_DICTIONARY"]);

/** The bit width of a data page's dictionary indices (-1: no room for it). */
const indexWidth = (p: DataPage): number => (p.at < p.page.length ? p.page[p.at]! : -1);

/** A data page's dictionary indices (its `present` values) into its scratch's `indices`; false if they do not add up. */
function pageIndices(p: DataPage): boolean {
  const width = indexWidth(p), s = p.scratch;
  if (width < 0) return false;
  s.indices = fit(s.indices, p.present);
  if (width === 0) s.indices.fill(0, 0, p.present); // width 0: every index is 0
  return hybrid(p.page, p.at + 1, p.page.length, width, s.indices, width === 0 ? 0 : p.present) >= 0;
}

/** Plain values as doubles (int64: only if all are safe integers, else undefined), `count` of them. */
function numbers(v: ArrayLike<unknown>, count: number): Float64Array | undefined {
  if (v.length !== count) return undefined;
  if (v instanceof Float64Array) return v;
  if (v instanceof BigInt64Array) {
    const out = new Float64Array(count);
    for (let i = 0; i < count; i++) {
      const x = v[i]!;
      if (x > 9007199254740991n || x < -9007199254740991n) return undefined;
      out[i] = Number(x);
    }
    return out;
  }
  return Float64Array.from(v as ArrayLike<number>);
}

/** Every value is NaN or a number of float32's range (a score rowScores takes without error). */
function allUsable(v: Float64Array): boolean {
  for (let i = 0; i < v.length; i++) {
    const x = v[i]!;
    if (!(x <= SCORE_MAX && x >= -SCORE_MAX) && x === x) return false;
  }
  return true;
}

/**
 * A numeric column chunk (out.length values) into out, NaN where null (for a score, a null
 * and a NaN are both "not judged"; `nulls` false: a null makes it undefined); undefined for
 * anything unusual (an encoding other than plain or dictionary, a page that does not add up, a
 * decoding error), which hyparquet then reads as before.
 */
function numberChunk(h: PageFunctions, bytes: Uint8Array, type: string, codec: string, optional: boolean, out: Float64Array, nulls: boolean): Float64Array | undefined {
  try {
    let dict: Float64Array | undefined;
    const done = eachPage(h, bytes, codec, optional, out.length, (page, count) => {
      const d = plainNumbersOf(h, page, 0, type, count);
      dict = d && Float64Array.from(d); // (a copy: the page's buffer is reused)
      return dict !== undefined;
    }, (p) => {
      const dense = p.present === p.n, filled = p.from;
      if (!nulls && !dense) return false;
      if (p.encoding === "PLAIN") {
        const vals = plainNumbersOf(h, p.page, p.at, type, p.present);
        if (!vals) return false;
        if (dense) out.set(vals, filled);
        else spread(out, filled, p.n, p.levels, vals);
      } else if (DICTIONARY.has(p.encoding) && dict) {
        if (!pageIndices(p)) return false;
        lookup(out, filled, p.n, dense ? undefined : p.levels, p.scratch.indices, dict);
      } else return false;
      return true;
    });
    return done ? out : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A score column chunk into float32 (NaN where null), read on where the last `take` stopped (the
 * columns of a row group are read in step a block of rows at a time, each into buffers of its
 * own), if every value is usable (see `usable`); false if not, or for anything numberChunk leaves
 * to hyparquet: the column is then read as before. A dictionary's values are checked once.
 */
class ScoreColumn {
  private readonly scratch = newScratch();
  private h?: PageFunctions;
  private type = "";
  private pages?: Pages;
  private dict?: Float32Array;
  /** The dictionary padded with NaN to every index of the page's width (past its end: null). */
  private padded?: Float32Array;
  private page: DataPage | null | undefined = null;
  /** Of the page: the values taken, and the values present taken (a page with nulls). */
  private done = 0;
  private used = 0;
  /** A plain page's values; a dense dictionary page's indices as a run to go on with (undefined: width 0). */
  private vals?: Float64Array;
  private run?: HybridRun;

  /** Starts on a column chunk of `rows` values. */
  open(h: PageFunctions, bytes: Uint8Array, type: string, codec: string, optional: boolean, rows: number): void {
    this.h = h;
    this.type = type;
    this.dict = this.padded = this.vals = this.run = undefined;
    this.page = null;
    this.pages = new Pages(h, bytes, codec, optional, rows, this.scratch, (page, count) => {
      const d = plainNumbersOf(h, page, 0, type, count);
      this.dict = d && allUsable(d) ? Float32Array.from(d) : undefined;
      this.padded = undefined;
      return this.dict !== undefined;
    });
  }

  /** The next `count` values into out[at], out[at + stride], ...; false as above. */
  take(count: number, out: Float32Array, at: number, stride: number): boolean {
    try {
      while (count > 0) {
        if ((!this.page || this.done === this.page.n) && !this.nextPage()) return false;
        const p = this.page!, m = Math.min(count, p.n - this.done), dense = p.present === p.n;
        if (this.vals) {
          if (dense) copyStrided(out, at, stride, m, this.vals, this.done);
          else this.used = place(out, at, stride, m, p.levels, this.done, this.vals, this.used);
        } else if (!dense) this.used = placeIndexed(out, at, stride, m, p.levels, this.done, p.scratch.indices, this.used, this.padded!);
        else if (!this.run) fillStrided(out, at, stride, m, this.padded![0]!);
        else if (hybridNext(this.run, NO_INDICES, m, { to: out, at, dict: this.padded!, stride }) < 0) return false;
        this.done += m;
        at += m * stride;
        count -= m;
      }
      return true;
    } catch {
      return false;
    }
  }

  private nextPage(): boolean {
    const p = (this.page = this.pages!.next());
    if (!p) return false;
    this.done = this.used = 0;
    this.vals = this.run = undefined;
    if (p.encoding === "PLAIN") {
      const vals = plainNumbersOf(this.h!, p.page, p.at, this.type, p.present);
      this.vals = vals && allUsable(vals) ? vals : undefined;
      return this.vals !== undefined;
    }
    if (!DICTIONARY.has(p.encoding) || !this.dict) return false;
    const width = indexWidth(p);
    if (width < 0 || width > 20) return false;
    if (this.padded?.length !== 1 << width) this.padded = pad(this.dict, 1 << width);
    if (p.present < p.n) return pageIndices(p);
    if (width > 0) this.run = hybridRun(p.page, p.at + 1, p.page.length, width);
    return true;
  }
}

const NO_INDICES = new Int32Array(0);

/** The score column of scoreChunk (one at a time). */
const oneColumn = new ScoreColumn();

/** A score column chunk into out (see ScoreColumn). */
function scoreChunk(h: PageFunctions, bytes: Uint8Array, type: string, codec: string, optional: boolean, out: Float32Array): boolean {
  oneColumn.open(h, bytes, type, codec, optional, out.length);
  return oneColumn.take(out.length, out, 0, 1);
}

/** Plain values of a page as doubles (see `numbers`). */
function plainNumbersOf(h: PageFunctions, page: Uint8Array, at: number, type: string, count: number): Float64Array | undefined {
  return numbers(h.readPlain({ view: view(page), offset: at }, type, count, undefined), count);
}

/**
 * A string column chunk (codes.length values) as codes: the dictionary's values are decoded once
 * and coded by index, a plain value is decoded where its bytes differ from the value before's;
 * one code is null (absent, or an index past the dictionary, as hyparquet reads it). Undefined for
 * anything unusual, which hyparquet then reads.
 */
function textChunk(h: PageFunctions, bytes: Uint8Array, codec: string, optional: boolean, codes: Int32Array): GroupCodes | undefined {
  try {
    const values: unknown[] = [];
    let dict = -1, dictSize = 0, nullCode = -1;
    const nulled = () => (nullCode >= 0 ? nullCode : (nullCode = values.push(null) - 1));
    const done = eachPage(h, bytes, codec, optional, codes.length, (page, count) => {
      const raw = h.readPlain({ view: view(page), offset: 0 }, "BYTE_ARRAY", count, undefined) as Uint8Array[];
      dict = values.length;
      dictSize = count;
      for (let i = 0; i < count; i++) values.push(utf8.decode(raw[i]));
      return true;
    }, (p) => {
      const dense = p.present === p.n, filled = p.from, levels = p.levels;
      if (p.encoding === "PLAIN") {
        const b = p.page, v = view(b);
        let pos = p.at, before = -1, length = -1, code = 0;
        for (let i = 0; i < p.n; i++) {
          if (!dense && !levels[i]) {
            codes[filled + i] = nulled();
            continue;
          }
          if (pos + 4 > b.length) return false;
          const len = v.getUint32(pos, true);
          pos += 4;
          if (pos + len > b.length) return false;
          if (len !== length || !sameBytes(b, pos, before, len)) code = values.push(text(b, pos, pos + len)) - 1;
          before = pos;
          length = len;
          codes[filled + i] = code;
          pos += len;
        }
      } else if (DICTIONARY.has(p.encoding) && dict >= 0) {
        if (!pageIndices(p)) return false;
        const indices = p.scratch.indices;
        for (let i = 0, j = 0; i < p.n; i++) {
          if (!dense && !levels[i]) codes[filled + i] = nulled();
          else {
            const x = indices[j++]!;
            codes[filled + i] = x < dictSize ? dict + x : nulled();
          }
        }
      } else return false;
      return true;
    });
    return done ? { codes, values } : undefined;
  } catch {
    return undefined;
  }
}

/** Where `hybrid` puts dictionary indices instead of returning them: to[at + i * stride] = dict[index i] (stride 1 if not given). */
interface Placed { to: Float32Array; at: number; dict: Float32Array; stride?: number }

/**
 * Where a hybrid decoding stands, for the next call to go on from: the next run's header at `pos`;
 * of the run begun, `left` values, its value (a repeated run) or (bit-packed) where its data
 * starts and how many values of it were taken.
 */
export interface HybridRun { b: Uint8Array; pos: number; end: number; width: number; left: number; packed: boolean; value: number; data: number; taken: number }

export const hybridRun = (b: Uint8Array, pos: number, end: number, width: number): HybridRun => ({ b, pos, end, width, left: 0, packed: false, value: 0, data: 0, taken: 0 });

/**
 * Parquet's RLE / bit-packed hybrid: `n` values of `width` bits (at most 24) from b[pos..end) into
 * out (or, given `placed`, their dictionary values where it says: one pass less); returns the sum
 * of the values (for definition levels: the values present), or -2 if the data does not add up
 * (hyparquet then decides).
 */
export function hybrid(b: Uint8Array, pos: number, end: number, width: number, out: Int32Array, n: number, placed?: Placed): number {
  return hybridNext(hybridRun(b, pos, end, width), out, n, placed);
}

/** As `hybrid`, going on from `s` (left where this call stopped: a run may go on in the next call). */
export function hybridNext(s: HybridRun, out: Int32Array, n: number, placed?: Placed): number {
  const { b, end, width } = s;
  if (width > 24 || end > b.length) return -2;
  const mask = (1 << width) - 1, bytes = (width + 7) >> 3;
  const to = placed?.to, dict = placed?.dict, stride = placed?.stride ?? 1;
  let i = 0, sum = 0, at = placed?.at ?? 0, pos = s.pos;
  while (i < n) {
    if (s.left === 0) {
      let header = 0, shift = 0, c: number;
      do {
        if (pos >= end || shift > 28) return -2;
        c = b[pos++]!;
        header |= (c & 0x7f) << shift;
        shift += 7;
      } while (c & 0x80);
      if (header & 1) {
        // bit-packed: groups of 8 values, least significant bits first
        const size = (header >>> 1) * width;
        if (pos + size > end) return -2;
        s.packed = true;
        s.data = pos;
        s.taken = 0;
        s.left = (header >>> 1) * 8;
        pos += size;
      } else {
        // a run: one value, repeated
        if (pos + bytes > end) return -2;
        let x = 0;
        for (let k = 0; k < bytes; k++) x |= b[pos++]! << (8 * k);
        if (x > mask) return -2;
        s.packed = false;
        s.value = x;
        s.left = header >>> 1;
      }
      continue;
    }
    let take = Math.min(s.left, n - i);
    s.left -= take;
    if (s.packed) {
      if (width > 0 && width <= 8 && (s.taken & 7) === 0) {
        // whole groups, while 8 bytes can be read at the group's start
        const p = s.data + (s.taken >>> 3) * width;
        const groups = Math.min(take >> 3, p + 8 <= b.length ? Math.floor((b.length - 8 - p) / width) + 1 : 0);
        if (to === undefined) sum += packedIndices(b, p, groups, width, out, i);
        else packedValues(b, p, groups, width, to, at, stride, dict!);
        i += 8 * groups;
        at += 8 * groups * stride;
        take -= 8 * groups;
        s.taken += 8 * groups;
      }
      // the rest: a value from the 4 bytes it starts in (width + shift <= 31), or fewer at the end of b
      for (let k = 0, bit = s.taken * width; k < take; k++, bit += width) {
        const from = s.data + (bit >>> 3);
        let word: number;
        if (from + 3 < b.length) word = b[from]! | (b[from + 1]! << 8) | (b[from + 2]! << 16) | (b[from + 3]! << 24);
        else {
          word = 0;
          for (let q = 0; from + q < b.length; q++) word |= b[from + q]! << (8 * q);
        }
        const x = (word >>> (bit & 7)) & mask;
        if (to === undefined) out[i] = x;
        else {
          to[at] = dict![x]!;
          at += stride;
        }
        i++;
        sum += x;
      }
      s.taken += take;
    } else {
      const x = s.value;
      if (to === undefined) out.fill(x, i, i + take);
      else {
        fillStrided(to, at, stride, take, dict![x]!);
        at += take * stride;
      }
      i += take;
      sum += x * take;
    }
  }
  s.pos = pos;
  return sum;
}

/**
 * Bit-packed groups of eight values of `width` (1..8) bits from b[p..] (8 bytes readable at each
 * group's start) into out[i..]; returns their sum. A group is two 32-bit words, each four values
 * (4 * width <= 32 bits) at constant shifts: no branch per value, ~2.5x faster than a loop over
 * the bit position. packedValues is the same with their dictionary values (two functions, so
 * that each one's stores stay of one array type).
 */
function packedIndices(b: Uint8Array, p: number, groups: number, width: number, out: Int32Array, i: number): number {
  const m = (1 << width) - 1, w2 = 2 * width, w3 = 3 * width, half = width >> 1, s = (width & 1) << 2;
  let sum = 0;
  for (let g = 0; g < groups; g++, p += width, i += 8) {
    const lo = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24);
    const q = p + half, hi = (b[q]! | (b[q + 1]! << 8) | (b[q + 2]! << 16) | (b[q + 3]! << 24)) >>> s;
    const x0 = lo & m, x1 = (lo >>> width) & m, x2 = (lo >>> w2) & m, x3 = (lo >>> w3) & m;
    const x4 = hi & m, x5 = (hi >>> width) & m, x6 = (hi >>> w2) & m, x7 = (hi >>> w3) & m;
    out[i] = x0, out[i + 1] = x1, out[i + 2] = x2, out[i + 3] = x3, out[i + 4] = x4, out[i + 5] = x5, out[i + 6] = x6, out[i + 7] = x7;
    sum += x0 + x1 + x2 + x3 + x4 + x5 + x6 + x7;
  }
  return sum;
}

/** packedIndices' groups as their dictionary values: to[at + j * stride] = dict[value j]. */
function packedValues(b: Uint8Array, p: number, groups: number, width: number, to: Float32Array, at: number, stride: number, dict: Float32Array): void {
  const m = (1 << width) - 1, w2 = 2 * width, w3 = 3 * width, half = width >> 1, s = (width & 1) << 2;
  const s2 = 2 * stride, s3 = 3 * stride, s4 = 4 * stride, s5 = 5 * stride, s6 = 6 * stride, s7 = 7 * stride, s8 = 8 * stride;
  for (let g = 0; g < groups; g++, p += width, at += s8) {
    const lo = b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24);
    const q = p + half, hi = (b[q]! | (b[q + 1]! << 8) | (b[q + 2]! << 16) | (b[q + 3]! << 24)) >>> s;
    to[at] = dict[lo & m]!, to[at + stride] = dict[(lo >>> width) & m]!, to[at + s2] = dict[(lo >>> w2) & m]!, to[at + s3] = dict[(lo >>> w3) & m]!;
    to[at + s4] = dict[hi & m]!, to[at + s5] = dict[(hi >>> width) & m]!, to[at + s6] = dict[(hi >>> w2) & m]!, to[at + s7] = dict[(hi >>> w3) & m]!;
  }
}

// (The loops below choose between a value and NaN with if/else: V8 boxes the result of a
// conditional expression between a typed array's number and NaN, ~16 bytes a value of garbage.)

/** out[at + i] = the next value where levels[i] is 1, else NaN (null). */
function spread(out: Float64Array, at: number, n: number, levels: Int32Array, vals: Float64Array): void {
  for (let i = 0, j = 0; i < n; i++) {
    if (levels[i]) out[at + i] = vals[j++]!;
    else out[at + i] = NaN;
  }
}

/** out[at + i] = dict[the next index] where present (levels undefined: everywhere), else NaN. */
function lookup(out: Float64Array, at: number, n: number, levels: Int32Array | undefined, idx: Int32Array, dict: Float64Array): void {
  const m = dict.length;
  for (let i = 0, j = 0; i < n; i++) {
    const x = levels === undefined || levels[i] ? idx[j++]! : m;
    if (x < m) out[at + i] = dict[x]!;
    else out[at + i] = NaN; // null, or (hyparquet) an index past the dictionary
  }
}

/** out[at], out[at + stride], ... = vals[from..from + n). */
function copyStrided(out: Float32Array, at: number, stride: number, n: number, vals: Float64Array, from: number): void {
  if (stride === 1) out.set(vals.subarray(from, from + n), at);
  else for (let i = from; i < from + n; i++, at += stride) out[at] = vals[i]!;
}

/** out[at], out[at + stride], ... = x, n times. */
function fillStrided(out: Float32Array, at: number, stride: number, n: number, x: number): void {
  if (stride === 1) out.fill(x, at, at + n);
  else for (let i = 0; i < n; i++, at += stride) out[at] = x;
}

/** out[at], out[at + stride], ... = the next value (from vals[j]) where levels[from + i] is 1, else NaN (null), n of them; returns the next j. */
function place(out: Float32Array, at: number, stride: number, n: number, levels: Int32Array, from: number, vals: Float64Array, j: number): number {
  for (let i = from; i < from + n; i++, at += stride) {
    if (levels[i]) out[at] = vals[j++]!;
    else out[at] = NaN;
  }
  return j;
}

/** A dictionary of `size` entries (a power of two: every index of the page's bit width), NaN past its end (null, as hyparquet reads an index past it). */
function pad(dict: Float32Array, size: number): Float32Array {
  const out = new Float32Array(size).fill(NaN);
  out.set(dict.subarray(0, size));
  return out;
}

/** As `place`, the values being dict[the next index] (from idx[j]; dict padded to the indices' width). */
function placeIndexed(out: Float32Array, at: number, stride: number, n: number, levels: Int32Array, from: number, idx: Int32Array, j: number, dict: Float32Array): number {
  const mask = dict.length - 1;
  for (let i = from; i < from + n; i++, at += stride) {
    if (levels[i]) out[at] = dict[idx[j++]! & mask]!;
    else out[at] = NaN;
  }
  return j;
}

function concat(prev: ArrayLike<unknown> | undefined, part: ArrayLike<unknown>, at: number, rows: number): ArrayLike<unknown> {
  const out = (prev as unknown[] | undefined) && Array.isArray(prev) && prev.length === rows ? (prev as unknown[]) : Array.from({ length: rows }, (_, i) => (prev ? prev[i] : undefined));
  for (let i = 0; i < part.length; i++) out[at + i] = part[i];
  return out;
}

/**
 * An Arrow IPC file or stream (undefined: `input`, stdin by default), one record batch at a time
 * (apache-arrow decodes them).
 */
export async function arrowSource(path: string | undefined, input: AsyncIterable<Uint8Array> = process.stdin): Promise<ColumnarSource> {
  const ar = await optional<Arrow>("apache-arrow", "Arrow IPC");
  if (path === undefined) return piped(ar, input);
  const { open } = await import("node:fs/promises");
  return arrowFile(ar, await open(path, "r"));
}

/**
 * An IPC file or a stream in a file. It is given to apache-arrow as a file handle: apache-arrow
 * then reads the IPC file format's footer from it (and only where the messages are); from a
 * stream it reads the whole file into memory first.
 */
async function arrowFile(ar: Arrow, handle: FileHandle): Promise<ColumnarSource> {
  const head = await (ar.RecordBatchReader.from(handle as never) as unknown as Promise<ArrowReader>);
  await head.open();
  const blocks = await batchBlocks(ar, head, handle);
  const batches = blocks ? viewBatches(ar, handle, blocks) : (head as AsyncIterable<ArrowBatch>);
  return { columns: head.schema.fields.map((f) => f.name), batches: (criteria) => arrowBatches(batches, criteria, () => handle.close()) };
}

/**
 * IPC on a stream (stdin). A stream is read message by message (pipedBatches); a file, whose
 * schema may be only in its footer at the end, is first copied to a temporary file (removed once
 * open, so nothing is left behind) and read as a file.
 */
async function piped(ar: Arrow, input: AsyncIterable<Uint8Array>): Promise<ColumnarSource> {
  const bytes = new ByteReader(input);
  const first = await bytes.read(8);
  if (first.length === 8 && startsWith(first, 0, FILE_MAGIC)) return arrowFile(ar, await spooled(first, bytes));
  const m = await messageHead(ar, bytes, first).catch(() => undefined);
  if (!m || !m.header.isSchema()) throw new Error("Arrow IPC on stdin: the input does not start with a schema (is it Arrow IPC?)");
  const schema = await bytes.fill(m.head, m.head.length + m.body);
  if (schema.length < m.head.length + m.body) throw cutShort(0);
  const fields = (m.header.header() as import("apache-arrow").Schema).fields;
  const batches = pipedBatches(ar, bytes, schema, viewsOfBytes(ar, fields));
  return { columns: fields.map((f) => f.name), batches: (criteria) => arrowBatches(batches, criteria, () => bytes.close()) };
}

/** `first` and the rest of `bytes` in a temporary file, open for reading; its name is gone (where the system allows it) before it is returned. */
async function spooled(first: Uint8Array, bytes: ByteReader): Promise<FileHandle> {
  const [{ mkdtemp, open, rm }, { createWriteStream }, { tmpdir }, { join }, { pipeline }] = await Promise.all([
    import("node:fs/promises"), import("node:fs"), import("node:os"), import("node:path"), import("node:stream/promises"),
  ]);
  const dir = await mkdtemp(join(tmpdir(), "focal-arrow-")), file = join(dir, "stdin.arrow");
  try {
    await pipeline(async function* () {
      yield first;
      yield* bytes.rest();
    }, createWriteStream(file));
    return await open(file, "r");
  } finally {
    await rm(dir, { recursive: true, force: true }).catch(() => {}); // POSIX: an open file stays until closed
  }
}

/** Each batch's columns as a ColumnarBatch; `close` when done or stopped. */
async function* arrowBatches(batches: AsyncIterable<ArrowBatch>, criteria: readonly string[], close: () => Promise<void>): AsyncGenerator<ColumnBatch> {
  try {
    // a score column with nulls is spread into a buffer of its own, reused by the next batch
    const reused: Float64Array[] = criteria.map(() => new Float64Array(0));
    for await (const batch of batches) {
      const col = (name: string) => {
        const v = batch.getChild(name);
        return v ? arrowColumn(v) : undefined;
      };
      const scores = criteria.map((name, k) => {
        const v = batch.getChild(name);
        if (!v) return undefined;
        const spread = arrowNulls(v, reused[k]!);
        if (spread) reused[k] = spread;
        return spread?.subarray(0, v.length) ?? arrowColumn(v);
      });
      const g = batch.getChild("group");
      yield { rows: batch.numRows, step: col("step"), group: g ? (arrowCodes(g) ?? arrowColumn(g)) : undefined!, valid: col("valid"), scores };
    }
  } finally {
    await close().catch(() => {});
  }
}

type Arrow = typeof import("apache-arrow");
type ArrowReader = import("apache-arrow").RecordBatchReader;
type ArrowBatch = import("apache-arrow").RecordBatch;
type FileHandle = import("node:fs/promises").FileHandle;

/** Where an IPC file's record batches are, for `viewBatches`. */
interface BatchBlocks {
  /** The schema as a stream's first message (an IPC file need not hold one: apache-arrow's files do not). */
  schema: Uint8Array;
  /** The dictionary and record batch messages, in the order they apply: where they are in the file. */
  messages: Block[];
  /** Each batch into fresh memory (a step or group value may be a view of the batch's bytes). */
  fresh: boolean;
}
interface Block { offset: number; length: number; dictionary?: boolean }

/**
 * The blocks of an IPC file (from its footer) or of a stream in a file (its messages, walked);
 * undefined for anything unusual (a stream that ends inside a message, a schema that does not
 * encode back to itself): apache-arrow's reader then reads it.
 */
async function batchBlocks(ar: Arrow, head: ArrowReader, handle: FileHandle): Promise<BatchBlocks | undefined> {
  let messages: Block[] | undefined;
  const footer = head.isFile() ? head.footer : null;
  if (footer) {
    const block = (b: { offset: number; metaDataLength: number; bodyLength: number }, dictionary: boolean): Block => ({ offset: b.offset, length: b.metaDataLength + b.bodyLength, dictionary });
    messages = [
      ...Array.from({ length: footer.numDictionaries }, (_, i) => block(footer.getDictionaryBatch(i)!, true)),
      ...Array.from({ length: footer.numRecordBatches }, (_, i) => block(footer.getRecordBatch(i)!, false)),
    ];
  } else messages = await streamMessages(ar, handle);
  if (!messages) return undefined;
  // the schema message as apache-arrow's stream writer frames it: continuation, length, flatbuffer, padding to 8
  const flat = ar.Message.encode(ar.Message.from(head.schema));
  const size = (8 + flat.length + 7) & ~7;
  const schema = new Uint8Array(size);
  new DataView(schema.buffer).setInt32(0, -1, true);
  new DataView(schema.buffer).setInt32(4, size - 8, true);
  schema.set(flat, 8);
  if (!ar.util.compareSchemas(head.schema, ar.Message.decode(flat).header() as typeof head.schema)) return undefined;
  return { schema, messages, fresh: viewsOfBytes(ar, head.schema.fields) };
}

/** Whether a step, group or valid value may be a view of a batch's bytes (get() gives other types' values as numbers, strings or booleans). */
function viewsOfBytes(ar: Arrow, fields: readonly { name: string; type: { typeId: number } }[]): boolean {
  const T = ar.Type, primitive = new Set<number>([T.Null, T.Int, T.Float, T.Utf8, T.LargeUtf8, T.Bool, T.Dictionary]);
  return fields.some((f) => (f.name === "step" || f.name === "group" || f.name === "valid") && !primitive.has(f.type.typeId));
}

/** The dictionary and record batch messages of an IPC stream in a file, up to its end-of-stream marker; undefined if one is cut short. */
async function streamMessages(ar: Arrow, handle: FileHandle): Promise<Block[] | undefined> {
  const { size } = await handle.stat();
  const messages: Block[] = [], prefix = new Uint8Array(8), view = new DataView(prefix.buffer);
  for (let pos = 0; pos + 8 <= size; ) {
    await readFully(handle, prefix, 0, { offset: pos, length: 8 });
    // a length after the continuation marker (-1), or (before format 0.15) the length alone
    const at = view.getInt32(0, true) === -1 ? 8 : 4, length = view.getInt32(at - 4, true);
    if (length === 0) break;
    if (length < 0 || pos + at + length > size) return undefined;
    const meta = new Uint8Array(length);
    await readFully(handle, meta, 0, { offset: pos + at, length });
    const m = ar.Message.decode(meta), end = pos + at + length + m.bodyLength;
    if (end > size) return undefined;
    if (m.isRecordBatch() || m.isDictionaryBatch()) messages.push({ offset: pos, length: end - pos, dictionary: m.isDictionaryBatch() });
    else if (!m.isSchema()) return undefined;
    pos = end;
  }
  return messages;
}

/** The end-of-stream marker of the IPC stream format. */
const END_OF_STREAM = new Uint8Array([255, 255, 255, 255, 0, 0, 0, 0]);

/**
 * The record batches of an IPC file, each read into one reused buffer after the schema and the
 * dictionaries before it and decoded there by apache-arrow as a stream of one batch: its columns
 * are views of the buffer, valid until the next batch is read. (apache-arrow's reader reads each
 * message into fresh memory, whose page faults cost more than the rest of the reading.)
 */
async function* viewBatches(ar: Arrow, handle: FileHandle, blocks: BatchBlocks): AsyncGenerator<ArrowBatch> {
  const { schema, messages, fresh } = blocks;
  const dictionaries = messages.reduce((n, b) => n + (b.dictionary ? b.length : 0), 0);
  const longest = Math.max(0, ...messages.map((b) => (b.dictionary ? 0 : b.length)));
  let buf = new Uint8Array(schema.length + dictionaries + longest + END_OF_STREAM.length);
  buf.set(schema);
  let size = schema.length;
  for (const b of messages) {
    if (fresh && !b.dictionary) buf = buf.slice();
    await readFully(handle, buf, size, b);
    if (b.dictionary) {
      size += b.length;
      continue;
    }
    buf.set(END_OF_STREAM, size + b.length);
    const got = ar.RecordBatchReader.from(buf.subarray(0, size + b.length + END_OF_STREAM.length)).open().next();
    if (got.done) throw new Error(`no record batch at byte ${b.offset}`);
    yield got.value;
  }
}

/**
 * The record batches of an IPC stream arriving as bytes, read as viewBatches reads a
 * file's: each message into one reused buffer after the schema and the dictionaries before it.
 * (apache-arrow's reader held the whole input: 2.8 GB of memory for 10,000,000 rows x 16.)
 * The stream ends at its end-of-stream marker or at the end of the input between two messages.
 */
async function* pipedBatches(ar: Arrow, bytes: ByteReader, schema: Uint8Array, fresh: boolean): AsyncGenerator<ArrowBatch> {
  let buf: Uint8Array = new Uint8Array(schema.length + (1 << 16));
  buf.set(schema);
  let size = schema.length; // the schema and the dictionaries so far
  for (;;) {
    const m = await messageHead(ar, bytes, EMPTY);
    if (!m) return;
    const end = size + m.head.length + m.body;
    if (buf.length < end + END_OF_STREAM.length) buf = withPrefix(buf, size, Math.max(end + END_OF_STREAM.length, 2 * buf.length));
    buf.set(m.head, size);
    if ((await bytes.readInto(buf, size + m.head.length, m.body)) < m.body) throw cutShort(m.offset);
    if (m.header.isDictionaryBatch()) {
      size = end;
      continue;
    }
    if (!m.header.isRecordBatch()) throw new Error(`Arrow IPC on stdin: a message of type ${m.header.headerType} at byte ${m.offset}, where a record batch or a dictionary was expected`);
    buf.set(END_OF_STREAM, end);
    const got = ar.RecordBatchReader.from(buf.subarray(0, end + END_OF_STREAM.length)).open().next();
    if (got.done) throw new Error(`Arrow IPC on stdin: no record batch at byte ${m.offset}`);
    yield got.value;
    if (fresh) buf = withPrefix(buf, size, buf.length); // the batch's values may be views of its bytes
  }
}

/** An IPC file's first 8 bytes: its magic "ARROW1", padded to 8. */
const FILE_MAGIC = new Uint8Array([65, 82, 82, 79, 87, 49, 0, 0]);
const EMPTY = new Uint8Array(0);

/** A message's prefix and metadata (`head`), its header decoded, the length of its body, where it starts in the input. */
interface MessageHead { head: Uint8Array; header: import("apache-arrow").Message; body: number; offset: number }

/** Metadata and bodies larger than these are refused: a corrupt length must not allocate gigabytes. */
const METADATA_MAX = 2 ** 26, BODY_MAX = 2 ** 32 - 1;

const cutShort = (offset: number) => new Error(`Arrow IPC on stdin: the input ends inside the message at byte ${offset}`);

/**
 * The next message's head from `bytes` (`taken`: its first bytes, already read); undefined at the
 * end-of-stream marker or at the end of the input. A message cut short is an error.
 */
async function messageHead(ar: Arrow, bytes: ByteReader, taken: Uint8Array): Promise<MessageHead | undefined> {
  const offset = bytes.offset - taken.length;
  let prefix = await bytes.fill(taken, 4);
  if (prefix.length === 0) return undefined;
  if (prefix.length < 4) throw cutShort(offset);
  let at = 4, length = int32(prefix, 0);
  if (length === -1) {
    // the continuation marker, then the length (before format 0.15: the length alone)
    prefix = await bytes.fill(prefix, 8);
    if (prefix.length < 8) throw cutShort(offset);
    at = 8;
    length = int32(prefix, 4);
  }
  if (length === 0) return undefined;
  if (length < 0 || length > METADATA_MAX || prefix.length - at > length) throw new Error(`Arrow IPC on stdin: a message's metadata of ${length} bytes at byte ${offset} (at most ${METADATA_MAX})`);
  const head = await bytes.fill(prefix, at + length);
  if (head.length < at + length) throw cutShort(offset);
  const header = ar.Message.decode(head.subarray(at));
  const body = header.bodyLength;
  if (!(body >= 0 && body <= BODY_MAX)) throw new Error(`Arrow IPC on stdin: a message body of ${body} bytes at byte ${offset} (at most ${BODY_MAX})`);
  return { head, header, body, offset };
}

const int32 = (b: Uint8Array, at: number) => new DataView(b.buffer, b.byteOffset, b.byteLength).getInt32(at, true);

/** b holds `word` at `at`. */
function startsWith(b: Uint8Array, at: number, word: Uint8Array): boolean {
  for (let j = 0; j < word.length; j++) if (b[at + j] !== word[j]) return false;
  return true;
}

/** A new buffer of n bytes holding buf's first `keep` bytes. */
function withPrefix(buf: Uint8Array, keep: number, n: number): Uint8Array {
  const b = new Uint8Array(n);
  b.set(buf.subarray(0, keep));
  return b;
}

/** The bytes of a stream, taken in order. */
class ByteReader {
  private chunk: Uint8Array = EMPTY;
  private at = 0;
  private readonly chunks: AsyncIterator<Uint8Array>;
  /** Bytes taken so far. */
  offset = 0;
  constructor(input: AsyncIterable<Uint8Array>) {
    this.chunks = input[Symbol.asyncIterator]();
  }

  /** n bytes into out[to..]; fewer only at the end of the input. */
  async readInto(out: Uint8Array, to: number, n: number): Promise<number> {
    let done = 0;
    while (done < n) {
      if (this.at === this.chunk.length) {
        const r = await this.chunks.next();
        if (r.done) break;
        this.chunk = r.value;
        this.at = 0;
      }
      const take = Math.min(n - done, this.chunk.length - this.at);
      out.set(this.chunk.subarray(this.at, this.at + take), to + done);
      this.at += take;
      done += take;
    }
    this.offset += done;
    return done;
  }

  /** Up to n bytes. */
  async read(n: number): Promise<Uint8Array> {
    const out = new Uint8Array(n), got = await this.readInto(out, 0, n);
    return got === n ? out : out.subarray(0, got);
  }

  /** `have` and the bytes after it, up to n in all; fewer only at the end of the input. */
  async fill(have: Uint8Array, n: number): Promise<Uint8Array> {
    if (have.length >= n) return have;
    const out = new Uint8Array(n);
    out.set(have);
    const got = have.length + (await this.readInto(out, have.length, n - have.length));
    return got === n ? out : out.subarray(0, got);
  }

  /** The bytes not taken yet, as they arrive. */
  async *rest(): AsyncGenerator<Uint8Array> {
    if (this.at < this.chunk.length) yield this.chunk.subarray(this.at);
    this.chunk = EMPTY;
    this.at = 0;
    for (let r = await this.chunks.next(); !r.done; r = await this.chunks.next()) yield r.value;
  }

  async close(): Promise<void> {
    await this.chunks.return?.();
  }
}

/** A block of the file into buf[at..]. */
async function readFully(handle: FileHandle, buf: Uint8Array, at: number, { offset, length }: Block): Promise<void> {
  for (let done = 0; done < length; ) {
    const { bytesRead } = await handle.read(buf, at + done, length - done, offset + done);
    if (bytesRead === 0) throw new Error(`the file ends at byte ${offset + done}, inside a record batch`);
    done += bytesRead;
  }
}

const utf8 = new TextDecoder("utf-8"); // as apache-arrow decodes Utf8 values

/** UTF-8 bytes b[from..to) as a string; a short ASCII one char by char (a decode() call costs ~300 ns). */
function text(b: Uint8Array, from: number, to: number): string {
  if (to - from > 24) return utf8.decode(b.subarray(from, to));
  let s = "";
  for (let i = from; i < to; i++) {
    const c = b[i]!;
    if (c >= 0x80) return utf8.decode(b.subarray(from, to));
    s += String.fromCharCode(c);
  }
  return s;
}

function sameBytes(b: Uint8Array, x: number, y: number, n: number): boolean {
  for (let j = 0; j < n; j++) if (b[x + j] !== b[y + j]) return false;
  return true;
}

/** The parts of an apache-arrow Vector read here. */
interface ArrowVector {
  data: readonly ArrowData[];
  length: number;
  get(i: number): unknown;
  type: { typeId: number; precision?: number };
}
interface ArrowData { values: unknown; nullCount: number; length: number; offset: number; nullBitmap?: Uint8Array; valueOffsets?: unknown; dictionary?: ArrowVector }

/** apache-arrow's Type enum: Int, Float, Utf8, Dictionary; Float's precision 0 is half (its values are raw bits). */
const INT = 2, FLOAT = 3, UTF8 = 5, DICTIONARY_TYPE = -1, HALF = 0;

/** A float column with nulls as doubles, NaN where null, into `into` (grown if short); undefined for any other column. */
function arrowNulls(v: ArrowVector, into: Float64Array): Float64Array | undefined {
  const d = v.data;
  if (v.type.typeId !== FLOAT || v.type.precision === HALF || d.length !== 1 || d[0]!.nullCount === 0) return undefined;
  const { values, offset, length, nullBitmap } = d[0]!;
  if (!(values instanceof Float64Array || values instanceof Float32Array) || !nullBitmap) return undefined;
  const out = into.length >= length ? into : new Float64Array(Math.max(length, 2 * into.length));
  for (let i = 0; i < length; i++) {
    const at = offset + i;
    out[i] = (nullBitmap[at >> 3]! >> (at & 7)) & 1 ? values[at]! : NaN;
  }
  return out;
}

let arrowCodeBuffer = new Int32Array(0), dictCodes = new Int32Array(0);

/**
 * A string column without nulls as group codes: a value whose bytes repeat the row before's
 * keeps its code (groups are runs of rows), else it is decoded as apache-arrow's get() decodes it;
 * a dictionary column: its indices. Undefined for other columns.
 */
function arrowCodes(v: ArrowVector): GroupCodes | undefined {
  const d = v.data, t = v.type.typeId;
  if (!d.every((c) => c.nullCount === 0 && c.offset === 0)) return undefined;
  if (arrowCodeBuffer.length < v.length) arrowCodeBuffer = new Int32Array(Math.max(v.length, 2 * arrowCodeBuffer.length));
  const codes = arrowCodeBuffer.subarray(0, v.length), values: unknown[] = [];
  let i = 0;
  if (t === UTF8 && d.every((c) => c.valueOffsets instanceof Int32Array)) {
    for (const c of d) {
      const offsets = c.valueOffsets as Int32Array, bytes = c.values as Uint8Array;
      let px = 0, py = -1;
      for (let r = 0; r < c.length; r++, i++) {
        const x = offsets[r]!, y = offsets[r + 1]!;
        if (py < 0 || y - x !== py - px || !sameBytes(bytes, x, px, y - x)) values.push(text(bytes, x, y));
        codes[i] = values.length - 1;
        px = x;
        py = y;
      }
    }
    return { codes, values };
  }
  if (t === DICTIONARY_TYPE && d.length === 1 && d[0]!.dictionary && ArrayBuffer.isView(d[0]!.values) && !(d[0]!.values instanceof BigInt64Array || d[0]!.values instanceof BigUint64Array)) {
    // the batch's codes number the dictionary entries it uses (a dictionary may hold a whole file's groups)
    const dict = d[0]!.dictionary, idx = d[0]!.values as Int32Array;
    if (dictCodes.length < dict.length) dictCodes = new Int32Array(Math.max(dict.length, 2 * dictCodes.length));
    dictCodes.fill(-1, 0, dict.length);
    for (let r = 0; r < v.length; r++) {
      const x = idx[r]!;
      if (!(x >= 0 && x < dict.length)) return undefined;
      if (dictCodes[x]! < 0) dictCodes[x] = values.push(dict.get(x)) - 1;
      codes[r] = dictCodes[x]!;
    }
    return { codes, values };
  }
  return undefined;
}

/**
 * An Arrow vector as an array-like: int and float columns without nulls as their typed array (no
 * copy); half floats (their typed array holds the raw bits) and the rest as apache-arrow's get() reads them.
 */
function arrowColumn(v: ArrowVector): ArrayLike<unknown> {
  const d = v.data;
  const t = v.type.typeId;
  if ((t === INT || (t === FLOAT && v.type.precision !== HALF)) && d.length === 1 && d[0]!.nullCount === 0 && ArrayBuffer.isView(d[0]!.values)) {
    const vals = d[0]!.values as Float64Array;
    return vals.subarray(d[0]!.offset, d[0]!.offset + d[0]!.length);
  }
  const out = new Array<unknown>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v.get(i);
  return out;
}
