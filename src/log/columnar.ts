/**
 * Reward logs in columnar files, Parquet (read by `hyparquet`) and Arrow IPC (read by
 * `apache-arrow`): the columns of the CSV form, `group` (required), `step` and `valid`
 * (optional) and one numeric column per criterion (null = not judged). Both readers are optional
 * dependencies, imported only when such a file is read. Each batch of rows (a Parquet row group,
 * an Arrow record batch) is turned into steps column by column; errors name the row (1-based).
 */
import { InputError, StepBuilder, float32Problem, type Step } from "./step.js";

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

/** Steps of a columnar source (consecutive equal `step` values form one step). */
export async function* columnSteps(source: ColumnarSource, criteria: readonly string[]): AsyncGenerator<Step> {
  const K = criteria.length;
  const builder = new StepBuilder(criteria);
  let row = 0, stepKey: string | undefined, lastStep: unknown = Symbol("none");
  let lastGroup: unknown = Symbol("none"), lastGroupKey = "";
  for await (const b of source.batches(criteria)) {
    for (let i = 0; i < b.rows; i++) {
      row++;
      if (b.step) {
        const s = b.step[i];
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
      const g = b.group[i];
      if (g === null || g === undefined) throw new InputError(row, "'group' is null", "row");
      if (g !== lastGroup) {
        lastGroup = g;
        lastGroupKey = keyOf(g);
      }
      const v = b.valid?.[i];
      const at = builder.add(lastGroupKey, plain(g), v === undefined || v === null || v === true || v === 1 || v === 1n, row);
      if (v !== undefined && v !== null && typeof v !== "boolean" && v !== 0 && v !== 1 && v !== 0n && v !== 1n) {
        throw new InputError(row, `'valid' must be true or false, got ${String(v)}`, "row");
      }
      const out = builder.values;
      for (let k = 0; k < K; k++) {
        const col = b.scores[k];
        if (!col) continue;
        const x = col[i];
        if (x === null || x === undefined) continue;
        const n = typeof x === "number" ? x : typeof x === "bigint" ? Number(x) : NaN;
        if (typeof x !== "number" && typeof x !== "bigint") throw new InputError(row, `score '${criteria[k]}' is ${JSON.stringify(x)}, expected a number or null`, "row");
        if (n !== n) continue; // NaN: not judged, as in the engine
        if (n === Infinity || n === -Infinity) throw new InputError(row, `score '${criteria[k]}' is not finite`, "row");
        if (n > 3.4e38 || n < -3.4e38) throw new InputError(row, float32Problem(criteria[k]!, n)!, "row");
        out[at + k] = n;
      }
    }
  }
  if (builder.started) yield builder.flush();
  else throw new InputError(1, "empty input: no rows", "row");
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
  const columns = hy.parquetSchema(metadata).children.map((c) => c.element.name);
  return {
    columns,
    async *batches(criteria) {
      const wanted = ["step", "group", "valid", ...criteria].filter((c) => columns.includes(c));
      let start = 0;
      for (const rg of metadata.row_groups) {
        const rows = Number(rg.num_rows);
        const data: Record<string, ArrayLike<unknown>> = {};
        await hy.parquetRead({
          file, metadata, columns: wanted, rowStart: start, rowEnd: start + rows,
          onChunk: (c) => {
            // A column may arrive in several chunks (pages); join them in order.
            const prev = data[c.columnName];
            data[c.columnName] = prev === undefined && c.rowStart === start && c.rowEnd === start + rows ? c.columnData : concat(prev, c.columnData, c.rowStart - start, rows);
          },
        });
        start += rows;
        yield { rows, step: data.step, group: data.group!, valid: data.valid, scores: criteria.map((c) => data[c]) };
      }
    },
  };
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
  const { createReadStream } = await import("node:fs");
  const open = () => ar.RecordBatchReader.from(path === undefined ? process.stdin : createReadStream(path)) as unknown as Promise<AsyncIterable<InstanceType<Ar["RecordBatch"]>> & { schema: InstanceType<Ar["Schema"]>; open(): Promise<unknown> }>;
  const head = await open();
  await head.open();
  const columns = head.schema.fields.map((f) => f.name);
  return {
    columns,
    async *batches(criteria) {
      for await (const batch of head) {
        const col = (name: string) => {
          const v = batch.getChild(name);
          return v ? arrowColumn(v) : undefined;
        };
        yield { rows: batch.numRows, step: col("step"), group: col("group")!, valid: col("valid"), scores: criteria.map(col) };
      }
    },
  };
}

/** An Arrow vector as an array-like: int and float columns without nulls as their typed array (no copy). */
function arrowColumn(v: { data: readonly { values: unknown; nullCount: number; length: number; offset: number }[]; length: number; get(i: number): unknown; type: { typeId: number } }): ArrayLike<unknown> {
  const d = v.data;
  const t = v.type.typeId; // 2 Int, 3 Float (apache-arrow's Type enum)
  if ((t === 2 || t === 3) && d.length === 1 && d[0]!.nullCount === 0 && ArrayBuffer.isView(d[0]!.values)) {
    const vals = d[0]!.values as Float64Array;
    return vals.subarray(d[0]!.offset, d[0]!.offset + d[0]!.length);
  }
  const out = new Array<unknown>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v.get(i);
  return out;
}
