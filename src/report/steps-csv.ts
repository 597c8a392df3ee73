/**
 * Reward logs for `focal-reward replay`: a CSV reader yielding training steps in the same shape as the
 * JSONL reader (src/cli/steps.ts), and the shared step assembler.
 *
 * CSV: a header row, then one row per rollout. Columns `group` (required), `step` and `valid`
 * (optional); every other column is a criterion (with a rubric: the columns named by the rubric, others
 * are ignored and listed in `ignored`). Empty cells, `null`, `NA` and `NaN` mean "not judged".
 * Consecutive rows with the same `step` form one training step; within a step, rows are gathered by
 * `group` in order of first appearance. Memory is bounded by the largest step.
 */

/** A training step: the shape of src/cli/steps.ts's Step, less its `order` (which replay does not need). */
export interface Step {
  step: unknown;
  /** Group id per group, in order of first appearance within the step. */
  groups: unknown[];
  groupSizes: number[];
  criteria: readonly string[];
  /** n x K row-major, NaN = not judged. */
  scores: Float32Array;
  valid: Uint8Array;
  /** Source line number (1-based) of each row, in the regrouped order. */
  lines: number[];
}

/** Collects the rows of one step and regroups them (stable) by group. */
export class StepBuilder {
  private K: number;
  private buf: Float32Array;
  private rowGroup: Int32Array;
  private rowValid: Uint8Array;
  private rowLine: Float64Array;
  private n = 0;
  private groupIndex = new Map<string, number>();
  private groupIds: string[] = [];
  step: unknown = undefined;
  started = false;

  constructor(readonly criteria: string[]) {
    this.K = criteria.length;
    this.buf = new Float32Array(64 * Math.max(1, this.K));
    this.rowGroup = new Int32Array(64);
    this.rowValid = new Uint8Array(64);
    this.rowLine = new Float64Array(64);
  }

  get rows(): number {
    return this.n;
  }

  /** The row buffer: row i's K scores start at i * K (read it after `add`, which may grow it). */
  get values(): Float32Array {
    return this.buf;
  }

  /** Append a row; returns the offset of its K scores in `values` (pre-filled with NaN). */
  add(group: string, valid: boolean, line: number): number {
    if (this.n === this.rowGroup.length) {
      const cap = this.n * 2;
      const b = new Float32Array(cap * this.K);
      b.set(this.buf);
      this.buf = b;
      const g = new Int32Array(cap);
      g.set(this.rowGroup);
      this.rowGroup = g;
      const v = new Uint8Array(cap);
      v.set(this.rowValid);
      this.rowValid = v;
      const l = new Float64Array(cap);
      l.set(this.rowLine);
      this.rowLine = l;
    }
    let gi = this.groupIndex.get(group);
    if (gi === undefined) {
      gi = this.groupIds.length;
      this.groupIndex.set(group, gi);
      this.groupIds.push(group);
    }
    const i = this.n++;
    this.rowGroup[i] = gi;
    this.rowValid[i] = valid ? 1 : 0;
    this.rowLine[i] = line;
    this.buf.fill(NaN, i * this.K, (i + 1) * this.K);
    this.started = true;
    return i * this.K;
  }

  /** The step so far, regrouped; the builder is emptied. */
  flush(): Step {
    const G = this.groupIds.length;
    const n = this.n;
    const K = this.K;
    const sizes = new Array<number>(G).fill(0);
    for (let i = 0; i < n; i++) sizes[this.rowGroup[i]!]!++;
    const start = new Array<number>(G);
    for (let g = 0, s = 0; g < G; s += sizes[g]!, g++) start[g] = s;
    const scores = new Float32Array(n * K);
    const valid = new Uint8Array(n);
    const lines = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      const j = start[this.rowGroup[i]!]!++;
      scores.set(this.buf.subarray(i * K, (i + 1) * K), j * K);
      valid[j] = this.rowValid[i]!;
      lines[j] = this.rowLine[i]!;
    }
    const out: Step = { step: this.step, groups: this.groupIds, groupSizes: sizes, criteria: this.criteria, scores, valid, lines };
    this.n = 0;
    this.groupIndex = new Map();
    this.groupIds = [];
    this.started = false;
    return out;
  }
}

/** Fields of one CSV record, or null if a quoted field is still open at the end of `text`. */
export function parseCsvRecord(text: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  for (;;) {
    if (i < n && text.charCodeAt(i) === 34) {
      let v = "";
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) return null;
        v += text.slice(i, q);
        if (text.charCodeAt(q + 1) === 34) {
          v += '"';
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      out.push(v);
      if (i >= n) return out;
      if (text.charCodeAt(i) !== 44) throw new Error(`unexpected character after a quoted field`);
      i++;
    } else {
      const c = text.indexOf(",", i);
      if (c < 0) {
        out.push(text.slice(i));
        return out;
      }
      out.push(text.slice(i, c));
      i = c + 1;
    }
  }
}

const NULLS = new Set(["", "null", "NULL", "NA", "NaN", "nan", "None"]);

export function parseValid(cell: string | undefined, line: number): boolean {
  if (cell === undefined) return true;
  const v = cell.trim().toLowerCase();
  if (v === "" || v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new Error(`line ${line}: column 'valid': expected true/false/1/0, got '${cell}'`);
}

export interface CsvOptions {
  /** Criteria in engine order (e.g. from the rubric). Without it: every non-special column. */
  criteria?: string[];
  /** Called once with the header's columns that are neither criteria nor step/group/valid. */
  onIgnored?: (columns: string[]) => void;
}

/** Criteria of a CSV header (every column except step, group, valid). */
export function csvHeaderCriteria(header: string): string[] {
  const cols = parseCsvRecord(header.replace(/^\uFEFF/, ""));
  if (!cols) throw new Error("line 1: unterminated quoted field in the header");
  return cols.map((c) => c.trim()).filter((c) => c !== "step" && c !== "group" && c !== "valid");
}

/**
 * Steps of a CSV log. `lines` yields lines, or arrays of lines (batches are cheaper: one await per
 * batch instead of one per line).
 */
export async function* readCsvSteps(lines: AsyncIterable<string | readonly string[]> | Iterable<string | readonly string[]>, opts: CsvOptions = {}): AsyncGenerator<Step> {
  let lineNo = 0;
  let header: string[] | null = null;
  let colOf: Int32Array = new Int32Array(0);
  let stepCol = -1, groupCol = -1, validCol = -1;
  let builder: StepBuilder | null = null;
  let pending = "";
  let pendingStart = 0;
  const ready: Step[] = [];
  const one = (raw: string): void => {
    lineNo++;
    let text = raw;
    let at = lineNo;
    if (pending !== "") {
      text = `${pending}\n${raw}`;
      at = pendingStart;
    }
    if (text.endsWith("\r")) text = text.slice(0, -1);
    if (pending === "" && text.length === 0) return;
    let fields: string[] | null;
    if (pending === "" && text.indexOf('"') < 0) fields = text.split(",");
    else {
      try {
        fields = parseCsvRecord(text);
      } catch (e) {
        throw new Error(`line ${at}: ${(e as Error).message}`);
      }
    }
    if (fields === null) {
      if (pending === "") pendingStart = lineNo;
      pending = text;
      return;
    }
    pending = "";
    if (header === null) {
      if (text.trim() === "") return;
      header = fields.map((c, j) => (j === 0 ? c.replace(/^\uFEFF/, "") : c).trim());
      const seen = new Set<string>();
      for (const h of header) {
        if (seen.has(h)) throw new Error(`line ${at}: duplicate column '${h}'`);
        seen.add(h);
      }
      stepCol = header.indexOf("step");
      groupCol = header.indexOf("group");
      validCol = header.indexOf("valid");
      if (groupCol < 0) throw new Error(`line ${at}: the header has no 'group' column`);
      const criteria = opts.criteria ?? header.filter((_, j) => j !== stepCol && j !== groupCol && j !== validCol);
      if (criteria.length === 0) throw new Error(`line ${at}: no criterion columns`);
      colOf = Int32Array.from(criteria, (c) => header!.indexOf(c));
      const used = new Set(criteria);
      const ignored = header.filter((h, j) => j !== stepCol && j !== groupCol && j !== validCol && !used.has(h));
      if (ignored.length > 0) opts.onIgnored?.(ignored);
      builder = new StepBuilder(criteria);
      return;
    }
    if (fields.length !== header.length) {
      if (fields.length === 1 && text.trim() === "") return;
      throw new Error(`line ${at}: ${fields.length} fields, the header has ${header.length}`);
    }
    const b = builder!;
    const step = stepCol >= 0 ? fields[stepCol]! : undefined;
    if (b.started && step !== b.step) ready.push(b.flush());
    b.step = step;
    const off = b.add(fields[groupCol]!, parseValid(validCol >= 0 ? fields[validCol] : undefined, at), at);
    const row = b.values;
    for (let k = 0; k < colOf.length; k++) {
      const j = colOf[k]!;
      if (j < 0) continue;
      const cell = fields[j]!;
      if (cell.length === 0) continue;
      const v = +cell;
      if (v - v === 0) {
        if (v === 0 && cell.trim() === "") continue; // whitespace only: not judged
        row[off + k] = v; // finite
      }
      else if (!NULLS.has(cell.trim())) throw new Error(`line ${at}: column '${header[j]}': not a number: '${cell}'`);
    }
  };
  for await (const item of lines) {
    if (typeof item === "string") one(item);
    else for (let i = 0; i < item.length; i++) one(item[i]!);
    while (ready.length > 0) yield ready.shift()!;
  }
  if (pending !== "") throw new Error(`line ${pendingStart}: unterminated quoted field`);
  if (header === null) throw new Error("empty input: no CSV header");
  if (builder!.started) yield builder!.flush();
}
