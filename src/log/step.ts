import { OutOfScaleError } from "../rubric.js";

/**
 * A training step of a reward log, as every reader (JSONL, CSV, Parquet, Arrow) yields it, and the
 * builder they share: rows are appended in input order and regrouped by group at the end of the
 * step. When the rows of each group are already contiguous (the usual layout), the step takes the
 * builder's buffers as they are: no copy. Otherwise they are regrouped in one copy.
 */

export interface Step {
  /** The `step` value of the rows (undefined when they have none). */
  step: unknown;
  /** Group values, one per group, in order of first appearance. */
  groups: unknown[];
  groupSizes: number[];
  criteria: readonly string[];
  /** Rows gathered by group, n x K, NaN = null or missing. */
  scores: Float32Array;
  valid: Uint8Array;
  /** Line number (1-based; for columnar files the row number) of each gathered row. */
  lines: number[];
  /** order[j] = gathered row of the step's j-th row in input order. */
  order: Int32Array;
}

/** Bad input, with the line (or row) it is on. */
export class InputError extends Error {
  /** `unit`: "line" for text logs, "row" for columnar files. */
  constructor(readonly line: number, reason: string, unit: "line" | "row" = "line") {
    super(`${unit} ${line}: ${reason}`);
  }
}

/**
 * An engine error on a step as an InputError: at the row's own line when the error names a row
 * (outOfScale "error"), else at the step's first line.
 */
export function stepError(step: Step, e: unknown, prefix = ""): InputError {
  const line = e instanceof OutOfScaleError ? step.lines[e.row] ?? step.lines[0]! : step.lines[0]!;
  return new InputError(line, `step ${JSON.stringify(step.step) ?? "(none)"}: ${prefix}${(e as Error).message}`);
}

/** The largest score magnitude (spec "Validation ranges": float32-safe, as the engine checks it). */
export const SCORE_MAX = 3.4e38;

/** The reason a finite score cannot be used (outside float32's range), or undefined. */
export function float32Problem(id: string, x: number): string | undefined {
  return x > SCORE_MAX || x < -SCORE_MAX ? `score '${id}' is ${x}: outside the float32 range (magnitude at most 3.4e38)` : undefined;
}

export class StepBuilder {
  private readonly k: number;
  private buf: Float32Array;
  private rowGroup: Int32Array;
  private rowValid: Uint8Array;
  private rowLine: number[] = [];
  private n = 0;
  private groupIndex = new Map<string, number>();
  private groupValues: unknown[] = [];
  /** Rows of each group are contiguous so far (no regrouping needed). */
  private contiguous = true;
  private lastGroup = -1;
  private lastKey: string | undefined = undefined;
  step: unknown = undefined;
  started = false;

  /** reuse: the buffers of step N are written again for step N + 2 (see Log.steps). */
  private spare: { buf: Float32Array; valid: Uint8Array; lines: number[]; order: Int32Array } | undefined;

  /**
   * `reuse`: a step's arrays may be reused once the next step is read (fresh buffers for every
   * step cost their page faults and garbage collections); else each step keeps its own.
   */
  constructor(readonly criteria: readonly string[], private readonly reuse = false) {
    this.k = criteria.length;
    this.buf = new Float32Array(64 * Math.max(1, this.k));
    this.rowGroup = new Int32Array(64);
    this.rowValid = new Uint8Array(64);
  }

  get rows(): number {
    return this.n;
  }

  /** The row buffer: row i's K scores start at i * K (read it after `add`, which may grow it). */
  get values(): Float32Array {
    return this.buf;
  }

  /** The index of group `key`, or -1 if the step has no such group yet. */
  groupOf(key: string): number {
    return this.groupIndex.get(key) ?? -1;
  }

  /**
   * Appends a row of group `key` (`group` is the value reported; a function is called only for a
   * new group); returns the offset of its K scores in `values`, pre-filled with NaN (unless `nan` is false).
   */
  add(key: string, group: unknown, valid: boolean, line: number, nan = true): number {
    if (this.n === this.rowGroup.length) this.grow(this.n * 2);
    // The rows of a group usually follow each other: the same key needs no lookup.
    if (key !== this.lastKey) {
      let g = this.groupIndex.get(key);
      if (g === undefined) {
        g = this.groupValues.length;
        this.groupIndex.set(key, g);
        this.groupValues.push(typeof group === "function" ? (group as () => unknown)() : group);
      } else if (g !== this.lastGroup) this.contiguous = false;
      this.lastGroup = g;
      this.lastKey = key; // only when it changes (a store of a string is a write barrier)
    }
    const g = this.lastGroup;
    const i = this.n++;
    this.rowGroup[i] = g;
    this.rowValid[i] = valid ? 1 : 0;
    this.rowLine[i] = line;
    const buf = this.buf; // a loop: the row is short, a call to fill() costs more
    if (nan) for (let j = i * this.k, end = j + this.k; j < end; j++) buf[j] = NaN;
    this.started = true;
    return i * this.k;
  }

  /**
   * `count` valid rows of group `key` on lines `line`, `line + 1`, ...: as many `add` calls, at
   * once. `nan` false: their scores are left as they are (the caller writes every one).
   */
  addRun(key: string, group: unknown, count: number, line: number, nan = true): number {
    const at = this.add(key, group, true, line, nan);
    const from = this.n, to = from + count - 1;
    if (to > this.rowGroup.length) this.grow(Math.max(to, 2 * this.rowGroup.length));
    this.rowGroup.fill(this.lastGroup, from, to);
    this.rowValid.fill(1, from, to);
    for (let i = from; i < to; i++) this.rowLine[i] = ++line;
    if (nan) this.buf.fill(NaN, from * this.k, to * this.k);
    this.n = to;
    return at;
  }

  private grow(cap: number): void {
    const grow = <T extends Float32Array | Int32Array | Uint8Array>(a: T, size: number): T => {
      const b = new (a.constructor as new (n: number) => T)(size);
      b.set(a.subarray(0, Math.min(a.length, size)));
      return b;
    };
    this.buf = grow(this.buf, cap * this.k);
    this.rowGroup = grow(this.rowGroup, cap);
    this.rowValid = grow(this.rowValid, cap);
  }

  /** The step so far, regrouped; the builder is emptied and starts on fresh (or spare) buffers. */
  flush(): Step {
    const groups = this.groupValues.length, n = this.n, k = this.k;
    const groupSizes = new Array<number>(groups).fill(0);
    for (let i = 0; i < n; i++) groupSizes[this.rowGroup[i]!]!++;
    let scores: Float32Array, valid: Uint8Array, lines: number[];
    const spare = this.spare;
    const orderBuf = spare && spare.order.length >= n ? spare.order : new Int32Array(n);
    const order = orderBuf.subarray(0, n);
    if (this.contiguous) {
      // The step keeps the buffers (no copy); the builder goes on with new ones of the same size,
      // or (reuse) with the spare set: the step before this one's, which the reader is done with.
      scores = this.buf.subarray(0, n * k);
      valid = this.rowValid.subarray(0, n);
      lines = this.rowLine;
      lines.length = n;
      for (let i = 0; i < n; i++) order[i] = i;
      const cap = this.rowGroup.length;
      const next = spare && spare.buf.length >= cap * Math.max(1, k) && spare.valid.length >= cap ? spare : undefined;
      if (this.reuse) this.spare = { buf: this.buf, valid: this.rowValid, lines, order: orderBuf };
      if (next) {
        this.buf = next.buf;
        this.rowValid = next.valid;
        this.rowLine = next.lines;
      } else {
        this.buf = new Float32Array(cap * Math.max(1, k));
        this.rowValid = new Uint8Array(cap);
        this.rowLine = [];
      }
    } else {
      const next = new Array<number>(groups);
      for (let g = 0, at = 0; g < groups; at += groupSizes[g]!, g++) next[g] = at;
      scores = new Float32Array(n * k);
      valid = new Uint8Array(n);
      lines = new Array<number>(n);
      for (let i = 0; i < n; i++) {
        const j = next[this.rowGroup[i]!]!++;
        scores.set(this.buf.subarray(i * k, (i + 1) * k), j * k);
        valid[j] = this.rowValid[i]!;
        lines[j] = this.rowLine[i]!;
        order[i] = j;
      }
    }
    const step: Step = { step: this.step, groups: this.groupValues, groupSizes, criteria: this.criteria, scores, valid, lines, order };
    this.n = 0;
    this.groupIndex = new Map();
    this.groupValues = [];
    this.started = false;
    this.contiguous = true;
    this.lastGroup = -1;
    this.lastKey = undefined;
    return step;
  }
}
