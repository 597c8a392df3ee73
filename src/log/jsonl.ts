/**
 * Reward logs as JSONL, one rollout a line:
 *   {"step"?: any, "group": any, "scores": {"<criterion>": number | null}, "valid"?: boolean}
 * (other keys are ignored). Consecutive lines with the same step form one call; within it, rows are
 * gathered by group in order of first appearance. Errors name the line.
 *
 * Each line is parsed once and its scores go straight into the step's buffer. Lines of the usual
 * shape (keys step, group, scores, valid, others with a scalar value) are read in place by
 * FastLine, with no object or string made per line; any other line, and any line FastLine finds
 * wrong, goes to JSON.parse, which decides (so values and errors are JSON.parse's).
 */
import { eachLine, type Lines } from "./lines.js";
import { scanEnd, scanJson } from "./number.js";
import { InputError, SCORE_MAX, StepBuilder, float32Problem, type Step } from "./step.js";

/** One parsed line. */
export interface Row {
  /** "" without a step, else "=" + the step's JSON. */
  stepKey: string;
  step: unknown;
  groupKey: string;
  group: unknown;
  valid: boolean;
}

/**
 * Parses one line into `row` and `scores` (K slots, NaN = not judged). `column` maps criterion ids
 * to slots; `unknown` receives ids not in it (scan mode) or, when undefined, they are an error.
 */
class LineParser {
  readonly row: Row = { stepKey: "", step: undefined, groupKey: "", group: undefined, valid: true };
  private lastStep: unknown = undefined;
  private lastStepKey = "";

  constructor(private readonly column: ReadonlyMap<string, number>, readonly scores: Float64Array, private readonly unknown?: Set<string>) {}

  parse(text: string, line: number): void {
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
    if (o.valid !== undefined && typeof o.valid !== "boolean") throw new InputError(line, "'valid' must be true or false");
    this.scores.fill(NaN);
    const sc = scores as Record<string, unknown>;
    for (const id in sc) {
      if (!Object.prototype.hasOwnProperty.call(sc, id)) continue;
      const x = sc[id];
      if (x !== null && typeof x !== "number") throw new InputError(line, `score '${id}' is ${JSON.stringify(x)}, expected a number or null`);
      if (x !== null && !Number.isFinite(x)) throw new InputError(line, `score '${id}' is not finite`);
      if (x !== null && (x > 3.4e38 || x < -3.4e38)) {
        const p = float32Problem(id, x);
        if (p) throw new InputError(line, p);
      }
      const k = this.column.get(id);
      if (k === undefined) {
        if (!this.unknown) throw new InputError(line, `unknown criterion '${id}'`);
        this.unknown.add(id);
      } else this.scores[k] = x === null ? NaN : (x as number);
    }
    const row = this.row;
    row.valid = o.valid !== false;
    const g = o.group;
    row.groupKey = typeof g === "string" ? `"${g}` : (JSON.stringify(g) ?? "null");
    row.group = g;
    const st = o.step;
    if (st === undefined) row.stepKey = "";
    else if (st !== this.lastStep || typeof st === "object") {
      // The key of a step is its JSON (1 and 1.0 are one step), made once per run of equal values.
      this.lastStep = st;
      this.lastStepKey = `=${JSON.stringify(st)}`;
      row.stepKey = this.lastStepKey;
    } else row.stepKey = this.lastStepKey;
    row.step = st;
  }
}

/** Text of whole lines joined by "\n" (a chunk of a file), as lineChunks() yields it. */
export interface LineChunk {
  chunk: string;
}

/**
 * The common line shape read in place: parse() returns false (having changed nothing the slow
 * path relies on) for anything but keys step (a number), group (a number or a string without
 * escapes), scores (criterion: number | null) and valid (a boolean), each at most once, and
 * other keys whose value is a string without escapes, a number, true, false or null, with JSON
 * whitespace. The group and step of the previous line are reused when their text repeats.
 */
export class FastLine {
  private lastGroupText = "";
  private lastGroupKey = "";
  private lastGroup: unknown = undefined;
  private lastStep = NaN;
  private lastStepKey = "";
  private next = 0;

  constructor(private readonly ids: readonly string[], private readonly column: ReadonlyMap<string, number>, private readonly scores: Float64Array, private readonly row: Row) {}

  parse(s: string, i: number, e: number): boolean {
    let seen = 0, valid = true, step = NaN;
    let groupAt = -1, groupEnd = -1;
    i = ws(s, i + 1, e);
    if (s.charCodeAt(i) === 125) return false;
    const scores = this.scores;
    for (let k = 0; k < scores.length; k++) scores[k] = NaN;
    for (;;) {
      if (s.charCodeAt(i) !== 34) return false;
      const k0 = i + 1, q = plainString(s, k0, e);
      if (q < 0) return false;
      i = ws(s, q + 1, e);
      if (s.charCodeAt(i) !== 58) return false;
      i = ws(s, i + 1, e);
      const len = q - k0;
      if (len === 6 && same(s, k0, "scores")) {
        if (seen & 4) return false;
        seen |= 4;
        i = this.parseScores(s, i, e);
        if (i < 0) return false;
      } else if (len === 5 && same(s, k0, "group")) {
        if (seen & 2) return false;
        seen |= 2;
        groupAt = i;
        if (s.charCodeAt(i) === 34) {
          const end = plainString(s, i + 1, e);
          if (end < 0) return false;
          i = end + 1;
        } else {
          if (Number.isNaN(scanJson(s, i))) return false;
          i = scanEnd;
        }
        groupEnd = i;
      } else if (len === 4 && same(s, k0, "step")) {
        if (seen & 1) return false;
        seen |= 1;
        step = scanJson(s, i);
        if (Number.isNaN(step)) return false;
        i = scanEnd;
      } else if (len === 5 && same(s, k0, "valid")) {
        if (seen & 8) return false;
        seen |= 8;
        if (s.startsWith("true", i)) i += 4;
        else if (s.startsWith("false", i)) { valid = false; i += 5; }
        else return false;
      } else {
        // Another key (ignored): skipped when its value is a plain string, a number or a literal.
        i = skipScalar(s, i, e);
        if (i < 0) return false;
      }
      i = ws(s, i, e);
      const c = s.charCodeAt(i);
      if (c === 44) { i = ws(s, i + 1, e); continue; }
      if (c !== 125) return false;
      i = ws(s, i + 1, e);
      break;
    }
    if (i !== e || (seen & 6) !== 6) return false;
    const row = this.row;
    const gl = groupEnd - groupAt;
    if (gl !== this.lastGroupText.length || !same(s, groupAt, this.lastGroupText)) {
      const text = s.slice(groupAt, groupEnd);
      const g: unknown = s.charCodeAt(groupAt) === 34 ? text.slice(1, -1) : Number(text);
      this.lastGroupText = text;
      this.lastGroup = g;
      this.lastGroupKey = typeof g === "string" ? `"${g}` : (JSON.stringify(g) ?? "null");
    }
    row.group = this.lastGroup;
    row.groupKey = this.lastGroupKey;
    row.valid = valid;
    if (seen & 1) {
      if (step !== this.lastStep) {
        this.lastStep = step;
        this.lastStepKey = `=${JSON.stringify(step)}`;
      }
      row.step = step;
      row.stepKey = this.lastStepKey;
    } else {
      row.step = undefined;
      row.stepKey = "";
    }
    return true;
  }

  /** The scores object at s[i] into `scores`; the index after it, or -1. */
  private parseScores(s: string, i: number, e: number): number {
    if (s.charCodeAt(i) !== 123) return -1;
    i = ws(s, i + 1, e);
    if (s.charCodeAt(i) === 125) return i + 1;
    const ids = this.ids, K = ids.length;
    for (;;) {
      if (s.charCodeAt(i) !== 34) return -1;
      const k0 = i + 1, q = plainString(s, k0, e);
      if (q < 0) return -1;
      // Criteria usually come in the same order on every line: try the next one first.
      let k = this.next < K ? this.next : 0;
      if (K === 0 || ids[k]!.length !== q - k0 || !same(s, k0, ids[k]!)) {
        const c = this.column.get(s.slice(k0, q));
        if (c === undefined) return -1;
        k = c;
      }
      this.next = k + 1;
      i = ws(s, q + 1, e);
      if (s.charCodeAt(i) !== 58) return -1;
      i = ws(s, i + 1, e);
      if (s.charCodeAt(i) === 110) {
        if (!s.startsWith("null", i)) return -1;
        this.scores[k] = NaN;
        i += 4;
      } else {
        const x = scanJson(s, i);
        if (!(x <= SCORE_MAX && x >= -SCORE_MAX)) return -1; // NaN (no number), infinite or outside float32
        this.scores[k] = x;
        i = scanEnd;
      }
      i = ws(s, i, e);
      const c = s.charCodeAt(i);
      if (c === 44) { i = ws(s, i + 1, e); continue; }
      return c === 125 ? i + 1 : -1;
    }
  }
}

/** Past the plain string, number, true, false or null at s[i], or -1 (anything else). */
function skipScalar(s: string, i: number, e: number): number {
  const c = s.charCodeAt(i);
  if (c === 34) {
    const q = plainString(s, i + 1, e);
    return q < 0 ? -1 : q + 1;
  }
  if (c === 116) return s.startsWith("true", i) ? i + 4 : -1;
  if (c === 102) return s.startsWith("false", i) ? i + 5 : -1;
  if (c === 110) return s.startsWith("null", i) ? i + 4 : -1;
  return Number.isNaN(scanJson(s, i)) ? -1 : scanEnd;
}

/** s has `word` at `at` (a loop the compiler inlines, quicker here than startsWith). */
function same(s: string, at: number, word: string): boolean {
  for (let j = 0; j < word.length; j++) if (s.charCodeAt(at + j) !== word.charCodeAt(j)) return false;
  return true;
}

/** Past JSON whitespace (no newline occurs inside a line). */
function ws(s: string, i: number, e: number): number {
  while (i < e) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13) break;
    i++;
  }
  return i;
}

/** The closing quote of a string starting at s[i] with no escape or control character, or -1. */
function plainString(s: string, i: number, e: number): number {
  for (; i < e; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) return i;
    if (c === 92 || c < 32) return -1;
  }
  return -1;
}

function isBlank(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13 && c !== 10 && c !== 0xfeff) return false;
  }
  return true;
}

/** Criterion ids in order of first appearance (for logs scored without a rubric). */
export async function scanCriteria(lines: Lines): Promise<string[]> {
  const seen = new Set<string>();
  const p = new LineParser(new Map(), new Float64Array(0), seen);
  let line = 0;
  for await (const text of eachLine(lines)) {
    line++;
    if (!isBlank(text)) p.parse(line === 1 ? stripBom(text) : text, line);
  }
  return [...seen];
}

function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * Splits a log into steps; `criteria` fixes the columns and rejects unknown ids. The input is
 * lines, batches of lines, or chunks of whole lines (lineChunks(): no string made per line).
 */
export async function* readSteps(lines: Lines | AsyncIterable<LineChunk>, criteria: readonly string[]): AsyncGenerator<Step> {
  const K = criteria.length;
  const column = new Map(criteria.map((id, k) => [id, k]));
  const builder = new StepBuilder(criteria);
  const p = new LineParser(column, new Float64Array(K));
  const { row, scores } = p;
  const fast = new FastLine(criteria, column, scores, row);
  let stepKey: string | undefined;
  let line = 0;
  const take = (text: string, a: number, e: number): Step | undefined => {
    line++;
    if (a === e) return undefined;
    if (text.charCodeAt(a) !== 123 || !fast.parse(text, a, e)) {
      let t = a === 0 && e === text.length ? text : text.slice(a, e);
      if (line === 1) t = stripBom(t);
      if (t.charCodeAt(0) !== 123 && isBlank(t)) return undefined;
      p.parse(t, line);
    }
    let done: Step | undefined;
    if (row.stepKey !== stepKey) {
      if (builder.started) done = builder.flush();
      stepKey = row.stepKey;
      builder.step = row.step;
    }
    const at = builder.add(row.groupKey, row.group, row.valid, line);
    const values = builder.values;
    for (let k = 0; k < K; k++) values[at + k] = scores[k]!;
    return done;
  };
  for await (const item of lines) {
    if (typeof item === "object" && "chunk" in item) {
      const text = item.chunk;
      for (let a = 0; ; ) {
        let e = text.indexOf("\n", a);
        if (e < 0) e = text.length;
        const done = take(text, a, e);
        if (done) yield done;
        if (e === text.length) break;
        a = e + 1;
      }
      continue;
    }
    const batch = typeof item === "string" ? [item] : item;
    for (let b = 0; b < batch.length; b++) {
      const text = batch[b]!;
      const done = take(text, 0, text.length);
      if (done) yield done;
    }
  }
  if (builder.started) yield builder.flush();
  else throw new InputError(Math.max(line, 1), "empty input: no rollouts");
}
