/**
 * Reward logs as JSONL, one rollout a line:
 *   {"step"?: any, "group": any, "scores": {"<criterion>": number | null}, "valid"?: boolean}
 * Consecutive lines with the same step form one call; within it, rows are gathered by group in
 * order of first appearance. Errors name the line.
 */

export interface Step {
  /** The `step` value of the lines (undefined when they have none). */
  step: unknown;
  /** Group values, one per group, in order of first appearance. */
  groups: unknown[];
  groupSizes: number[];
  criteria: readonly string[];
  /** Rows gathered by group, n x K, NaN = null or missing. */
  scores: Float32Array;
  valid: Uint8Array;
  /** Line number (1-based) of each gathered row. */
  lines: number[];
  /** order[j] = gathered row of the step's j-th row in input order. */
  order: Int32Array;
}

export class InputError extends Error {
  constructor(readonly line: number, reason: string) {
    super(`line ${line}: ${reason}`);
  }
}

interface Row {
  line: number;
  step: unknown;
  group: unknown;
  scores: Record<string, unknown>;
  valid: boolean;
}

export function parseLine(text: string, line: number): Row {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new InputError(line, `malformed JSON (${(e as Error).message})`);
  }
  if (v === null || typeof v !== "object" || Array.isArray(v)) throw new InputError(line, "expected a JSON object");
  const o = v as Record<string, unknown>;
  if (!("group" in o)) throw new InputError(line, "missing 'group'");
  const scores = o.scores;
  if (scores === null || typeof scores !== "object" || Array.isArray(scores)) {
    throw new InputError(line, "'scores' must be an object of criterion: number | null");
  }
  for (const [id, x] of Object.entries(scores)) {
    if (x === null) continue;
    if (typeof x !== "number") throw new InputError(line, `score '${id}' is ${JSON.stringify(x)}, expected a number or null`);
    if (!Number.isFinite(x)) throw new InputError(line, `score '${id}' is not finite`);
  }
  if (o.valid !== undefined && typeof o.valid !== "boolean") throw new InputError(line, "'valid' must be true or false");
  return { line, step: o.step, group: o.group, scores: scores as Record<string, unknown>, valid: o.valid !== false };
}

/** Lines, or batches of lines (one await per batch instead of one per line). */
export type Lines = AsyncIterable<string | readonly string[]> | Iterable<string | readonly string[]>;

async function* eachLine(lines: Lines): AsyncGenerator<string> {
  for await (const item of lines) {
    if (typeof item === "string") yield item;
    else yield* item;
  }
}

/** Criterion ids in order of first appearance (for logs scored without a rubric). */
export async function scanCriteria(lines: Lines): Promise<string[]> {
  const seen = new Set<string>();
  let line = 0;
  for await (const text of eachLine(lines)) {
    line++;
    if (text.trim() === "") continue;
    for (const id of Object.keys(parseLine(text, line).scores)) seen.add(id);
  }
  return [...seen];
}

/** Splits a log into steps; `criteria` fixes the columns and rejects unknown ids. */
export async function* readSteps(lines: Lines, criteria: readonly string[]): AsyncGenerator<Step> {
  const column = new Map(criteria.map((id, k) => [id, k]));
  const builder = new StepBuilder(criteria);
  let stepKey: string | undefined;
  let line = 0;
  for await (const text of eachLine(lines)) {
    line++;
    if (text.trim() === "") continue;
    const row = parseLine(text, line);
    const key = keyOf(row.step);
    if (builder.started && key !== stepKey) yield builder.flush();
    stepKey = key;
    builder.step = row.step;
    const at = builder.add(JSON.stringify(row.group) ?? "null", row.group, row.valid, line);
    const values = builder.values;
    for (const id in row.scores) {
      const k = column.get(id);
      if (k === undefined) throw new InputError(line, `unknown criterion '${id}'`);
      const x = row.scores[id];
      if (x !== null) values[at + k] = x as number;
    }
  }
  if (builder.started) yield builder.flush();
  else throw new InputError(Math.max(line, 1), "empty input: no rollouts");
}

function keyOf(value: unknown): string {
  return value === undefined ? "" : `=${JSON.stringify(value)}`;
}

/**
 * Collects the rows of one step in input order and regroups them (stable) by group: shared by the
 * JSONL and CSV readers.
 */
export class StepBuilder {
  private readonly k: number;
  private buf: Float32Array;
  private rowGroup: Int32Array;
  private rowValid: Uint8Array;
  private rowLine: Float64Array;
  private n = 0;
  private groupIndex = new Map<string, number>();
  private groupValues: unknown[] = [];
  step: unknown = undefined;
  started = false;

  constructor(readonly criteria: readonly string[]) {
    this.k = criteria.length;
    this.buf = new Float32Array(64 * Math.max(1, this.k));
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

  /** Appends a row of group `key` (`group` is the value reported); returns the offset of its K
   *  scores in `values`, pre-filled with NaN. */
  add(key: string, group: unknown, valid: boolean, line: number): number {
    if (this.n === this.rowGroup.length) {
      const grow = <T extends Float32Array | Int32Array | Uint8Array | Float64Array>(a: T, size: number): T => {
        const b = new (a.constructor as new (n: number) => T)(size);
        b.set(a);
        return b;
      };
      const cap = this.n * 2;
      this.buf = grow(this.buf, cap * this.k);
      this.rowGroup = grow(this.rowGroup, cap);
      this.rowValid = grow(this.rowValid, cap);
      this.rowLine = grow(this.rowLine, cap);
    }
    let g = this.groupIndex.get(key);
    if (g === undefined) {
      g = this.groupValues.length;
      this.groupIndex.set(key, g);
      this.groupValues.push(group);
    }
    const i = this.n++;
    this.rowGroup[i] = g;
    this.rowValid[i] = valid ? 1 : 0;
    this.rowLine[i] = line;
    this.buf.fill(NaN, i * this.k, (i + 1) * this.k);
    this.started = true;
    return i * this.k;
  }

  /** The step so far, regrouped; the builder is emptied. */
  flush(): Step {
    const groups = this.groupValues.length, n = this.n, k = this.k;
    const groupSizes = new Array<number>(groups).fill(0);
    for (let i = 0; i < n; i++) groupSizes[this.rowGroup[i]]++;
    const next = new Array<number>(groups);
    for (let g = 0, at = 0; g < groups; at += groupSizes[g], g++) next[g] = at;
    const scores = new Float32Array(n * k);
    const valid = new Uint8Array(n);
    const lines = new Array<number>(n);
    const order = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const j = next[this.rowGroup[i]]++;
      scores.set(this.buf.subarray(i * k, (i + 1) * k), j * k);
      valid[j] = this.rowValid[i];
      lines[j] = this.rowLine[i];
      order[i] = j;
    }
    const step: Step = { step: this.step, groups: this.groupValues, groupSizes, criteria: this.criteria, scores, valid, lines, order };
    this.n = 0;
    this.groupIndex = new Map();
    this.groupValues = [];
    this.started = false;
    return step;
  }
}
