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
import { decode, eachLine, type Lines } from "./lines.js";
import { scanJsonBytes } from "./number.js";
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
 * The common line shape read in place, from the line's UTF-8 bytes (a byte is one load; a
 * string's charCodeAt checks the string's representation every time): parse() returns -1
 * (having changed nothing the slow path relies on) for anything but keys step (a number), group
 * (a number or a string without escapes), scores (criterion: number | null) and valid (a
 * boolean), each at most once, and other keys whose value is a string without escapes, a
 * number, true, false or null, with JSON whitespace. The group and step of the previous line are
 * reused when their bytes repeat. The line ends at a newline or at the end of b: parse() returns
 * that index.
 *
 * Lines of a log are usually written alike: the same keys in the same order, spaced the same way.
 * Such a line is the last line read in full (its Shape) with other values: it is read by comparing
 * the bytes between the values with the Shape's and parsing the values alone.
 */
export class FastLine {
  private lastGroupBytes = new Uint8Array(0);
  private lastGroupKey = "";
  private lastGroup: unknown = undefined;
  private lastStep = NaN;
  private lastStepValue: unknown = undefined;
  private lastStepKey = "";
  private next = 0;
  private readonly ids: Uint8Array[];
  /** Where a step or group number is read (see scanJsonBytes). */
  private readonly number = new Float64Array(1);
  private readonly shape: Shape;

  constructor(ids: readonly string[], private readonly column: ReadonlyMap<string, number>, private readonly scores: Float64Array, private readonly row: Row) {
    this.ids = ids.map((id) => Buffer.from(id, "utf8"));
    // `"id":` as it appears in the usual line, for ids that need no escape in JSON
    this.keys = ids.map((id) => (/^[^"\\\u0000-\u001f]*$/.test(id) ? new Word(Buffer.from(`"${id}":`, "utf8")) : undefined));
    this.shape = new Shape();
  }
  private readonly keys: (Word | undefined)[];
  /** The bytes being read, as 32-bit words too (see Word). */
  private bytes: Uint8Array | undefined;
  private view: DataView = new DataView(new ArrayBuffer(0));

  parse(b: Uint8Array, i: number): number {
    if (b !== this.bytes) {
      this.bytes = b;
      this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
    }
    const e = this.parseLikeLast(b, i);
    if (e >= 0) return e;
    const shape = this.shape;
    shape.start();
    const end = this.parseAny(b, i);
    if (end >= 0) shape.take(b, i, end, this.scores.length);
    return end;
  }

  /** A line of the last line's Shape; -1 if it is not one (or not valid as one). */
  private parseLikeLast(b: Uint8Array, i: number): number {
    const shape = this.shape, slots = shape.slots;
    if (slots < 0) return -1;
    // The shape's arrays in locals: the loop then reads them without looking at the shape again.
    const e = b.length, view = this.view, scores = this.scores, table = shape.table, words = shape.words;
    let valid = true, step = NaN, groupAt = -1, groupEnd = -1;
    if (shape.partial) for (let k = 0; k < scores.length; k++) scores[k] = NaN;
    for (let s = 0, t = 0; ; s++, t += SLOT) {
      // the bytes before value s (after the last value: the end of the line), four at a time
      const end = i + table[t + LENGTH]!;
      if (end + 3 > e) {
        if (!shape.tailAt(b, i, s)) return -1;
      } else {
        let w = table[t + WORD]!;
        for (; i + 4 <= end; i += 4, w++) if (view.getInt32(i, true) !== words[w]) return -1;
        if (i < end && (view.getInt32(i, true) & table[t + MASK]!) !== words[w]) return -1;
      }
      i = end;
      if (s === slots) break;
      switch (table[t + KIND]) {
        case A_SCORE:
          i = scoreAt(b, i, scores, table[t + ARG]!);
          break;
        case A_STEP:
          i = scanJsonBytes(b, i, this.number, 0);
          step = this.number[0]!;
          break;
        case A_GROUP_STRING:
          groupAt = i - 1;
          i = plainString(b, i, e);
          groupEnd = i + 1;
          break;
        case A_GROUP_NUMBER:
          groupAt = i;
          i = scanJsonBytes(b, i, this.number, 0);
          groupEnd = i;
          break;
        case A_VALID:
          if (same(b, i, TRUE)) i += 4;
          else if (same(b, i, FALSE)) { valid = false; i += 5; }
          else return -1;
          break;
        case AN_OTHER_STRING:
          i = plainString(b, i, e);
          break;
        default:
          i = skipScalar(b, i, e);
      }
      if (i < 0) return -1;
    }
    if (i !== e && b[i] !== 10) return -1;
    this.finish(b, groupAt, groupEnd, valid, shape.hasStep, step);
    return i;
  }

  /** Any line of the shape described above, its values marked in the Shape; -1 if it is not one. */
  private parseAny(b: Uint8Array, i: number): number {
    let seen = 0, valid = true, step = NaN;
    let groupAt = -1, groupEnd = -1;
    const e = b.length, shape = this.shape;
    i = ws(b, i + 1, e);
    if (b[i] === 125) return -1;
    const scores = this.scores;
    for (let k = 0; k < scores.length; k++) scores[k] = NaN;
    for (;;) {
      if (b[i] !== 34) return -1;
      const k0 = i + 1, q = plainString(b, k0, e);
      if (q < 0) return -1;
      i = ws(b, q + 1, e);
      if (b[i] !== 58) return -1;
      i = ws(b, i + 1, e);
      const len = q - k0, at = i;
      if (len === 6 && same(b, k0, SCORES)) {
        if (seen & 4) return -1;
        seen |= 4;
        i = this.parseScores(b, i, e);
        if (i < 0) return -1;
      } else if (len === 5 && same(b, k0, GROUP)) {
        if (seen & 2) return -1;
        seen |= 2;
        groupAt = i;
        if (b[i] === 34) {
          const end = plainString(b, i + 1, e);
          if (end < 0) return -1;
          shape.mark(A_GROUP_STRING, 0, i + 1, end);
          i = end + 1;
        } else {
          i = scanJsonBytes(b, i, this.number, 0);
          if (i < 0) return -1;
          shape.mark(A_GROUP_NUMBER, 0, at, i);
        }
        groupEnd = i;
      } else if (len === 4 && same(b, k0, STEP)) {
        if (seen & 1) return -1;
        seen |= 1;
        i = scanJsonBytes(b, i, this.number, 0);
        if (i < 0) return -1;
        step = this.number[0]!;
        shape.mark(A_STEP, 0, at, i);
      } else if (len === 5 && same(b, k0, VALID)) {
        if (seen & 8) return -1;
        seen |= 8;
        if (same(b, i, TRUE)) i += 4;
        else if (same(b, i, FALSE)) { valid = false; i += 5; }
        else return -1;
        shape.mark(A_VALID, 0, at, i);
      } else {
        // Another key (ignored): skipped when its value is a plain string, a number or a literal.
        i = skipScalar(b, i, e);
        if (i < 0) return -1;
        if (b[at] === 34) shape.mark(AN_OTHER_STRING, 0, at + 1, i - 1);
        else shape.mark(AN_OTHER, 0, at, i);
      }
      i = ws(b, i, e);
      const c = b[i];
      if (c === 44) { i = ws(b, i + 1, e); continue; }
      if (c !== 125) return -1;
      i = ws(b, i + 1, e);
      break;
    }
    if ((i !== e && b[i] !== 10) || (seen & 6) !== 6) return -1;
    this.finish(b, groupAt, groupEnd, valid, (seen & 1) !== 0, step);
    return i;
  }

  /** The row of a line read: its group (b[groupAt..groupEnd), its JSON), validity and step. */
  private finish(b: Uint8Array, groupAt: number, groupEnd: number, valid: boolean, hasStep: boolean, step: number): void {
    const row = this.row;
    const gl = groupEnd - groupAt;
    if (gl !== this.lastGroupBytes.length || !same(b, groupAt, this.lastGroupBytes)) {
      const g: unknown = b[groupAt] === 34 ? text(b, groupAt + 1, groupEnd - 1) : Number(text(b, groupAt, groupEnd));
      this.lastGroupBytes = new Uint8Array(b.subarray(groupAt, groupEnd)); // a copy: b is reused
      this.lastGroup = g;
      this.lastGroupKey = typeof g === "string" ? `"${g}` : (JSON.stringify(g) ?? "null");
    }
    // Stores of other objects into row cost a write barrier each: only when they change.
    if (row.groupKey !== this.lastGroupKey || !Object.is(row.group, this.lastGroup)) {
      row.group = this.lastGroup;
      row.groupKey = this.lastGroupKey;
    }
    row.valid = valid;
    if (hasStep) {
      if (!Object.is(step, this.lastStep)) {
        this.lastStep = step;
        this.lastStepValue = step; // boxed once, not once a row
        this.lastStepKey = `=${JSON.stringify(step)}`;
      }
      row.step = this.lastStepValue;
      row.stepKey = this.lastStepKey;
    } else {
      row.step = undefined;
      row.stepKey = "";
    }
  }

  /** The scores object at b[i] into `scores`; the index after it, or -1. */
  private parseScores(b: Uint8Array, i: number, e: number): number {
    if (b[i] !== 123) return -1;
    i = ws(b, i + 1, e);
    if (b[i] === 125) return i + 1;
    const ids = this.ids, K = ids.length, scores = this.scores;
    for (;;) {
      // Criteria usually come in the same order on every line, written the same way: try the
      // next one's `"id":` first.
      let k = this.next < K ? this.next : 0;
      const key = this.keys[k];
      if (key !== undefined && key.at(b, this.view, i)) i = ws(b, i + key.bytes.length, e);
      else {
        if (b[i] !== 34) return -1;
        const k0 = i + 1, q = plainString(b, k0, e);
        if (q < 0) return -1;
        if (K === 0 || ids[k]!.length !== q - k0 || !same(b, k0, ids[k]!)) {
          const c = this.column.get(text(b, k0, q));
          if (c === undefined) return -1;
          k = c;
        }
        i = ws(b, q + 1, e);
        if (b[i] !== 58) return -1;
        i = ws(b, i + 1, e);
      }
      this.next = k + 1;
      const at = i;
      i = scoreAt(b, i, scores, k);
      if (i < 0) return -1;
      this.shape.mark(A_SCORE, k, at, i);
      i = ws(b, i, e);
      const c = b[i];
      if (c === 44) { i = ws(b, i + 1, e); continue; }
      return c === 125 ? i + 1 : -1;
    }
  }
}

/** What a value of a Shape is (a criterion's score's `arg` is its column). */
const A_SCORE = 0, A_STEP = 1, A_GROUP_STRING = 2, A_GROUP_NUMBER = 3, A_VALID = 4, AN_OTHER_STRING = 5, AN_OTHER = 6;

/**
 * A line's shape: the bytes between its values (a string value is its text between the quotes)
 * and what each value is. Built from a line FastLine has read in full: another line with the
 * same bytes between values of the same kinds is read the same way, so it reads to the same row.
 */
class Shape {
  /** Values; -1: no shape. */
  slots = -1;
  /** Per value s (and after the last one, s = slots: the end of the line), SLOT entries (see KIND..MASK). */
  table = new Int32Array(33 * SLOT);
  /** The bytes before each value as little-endian 32-bit words (the last one masked to the bytes it has). */
  words = new Int32Array(128);
  /** Some criterion has no value (its score is NaN unless the line gives it). */
  partial = true;
  hasStep = false;
  /** Values of the line being read: kind, arg, from, to (indices into the line). */
  private marks = new Int32Array(128);
  private marked = 0;
  /** The bytes before each value, one run after the other (see FROM). */
  private bytes = new Uint8Array(256);
  /** Per criterion, whether the line being taken gives it (kept: take() runs on each new shape). */
  private seen = new Uint8Array(16);

  /** Values are marked afresh (the shape stays until take()). */
  start(): void {
    this.marked = 0;
  }

  mark(kind: number, arg: number, from: number, to: number): void {
    const n = this.marked;
    if (4 * n === this.marks.length) this.marks = grown(this.marks, 8 * n);
    const marks = this.marks;
    marks[4 * n] = kind;
    marks[4 * n + 1] = arg;
    marks[4 * n + 2] = from;
    marks[4 * n + 3] = to;
    this.marked = n + 1;
  }

  /** The marked line b[a..e) becomes the shape. */
  take(b: Uint8Array, a: number, e: number, criteria: number): void {
    const n = this.marked, marks = this.marks;
    if (this.table.length < (n + 1) * SLOT) this.table = new Int32Array(2 * (n + 1) * SLOT);
    if (this.bytes.length < e - a) this.bytes = new Uint8Array(2 * (e - a));
    if (this.words.length < (e - a) / 4 + n + 1) this.words = new Int32Array(2 * ((e - a) / 4 + n + 1));
    const bytes = this.bytes, table = this.table, words = this.words;
    let at = 0, w = 0, hasStep = false, given = 0;
    if (this.seen.length < criteria) this.seen = new Uint8Array(criteria);
    const seen = this.seen.fill(0, 0, criteria);
    for (let s = 0, t = 0; s <= n; s++, t += SLOT) {
      const x = s === 0 ? a : marks[4 * s - 1]!, y = s === n ? e : marks[4 * s + 2]!;
      table[t + FROM] = at;
      table[t + LENGTH] = y - x;
      table[t + WORD] = w;
      for (let j = x; j < y; j += 4) {
        let v = 0;
        for (let k = 0; k < 4 && j + k < y; k++) v |= b[j + k]! << (8 * k);
        words[w++] = v;
      }
      const rest = (y - x) & 3;
      table[t + MASK] = rest === 0 ? -1 : (1 << (8 * rest)) - 1;
      bytes.set(b.subarray(x, y), at);
      at += y - x;
      if (s < n) {
        const kind = marks[4 * s]!, arg = marks[4 * s + 1]!;
        table[t + KIND] = kind;
        table[t + ARG] = arg;
        if (kind === A_STEP) hasStep = true;
        else if (kind === A_SCORE && !seen[arg]) {
          seen[arg] = 1;
          given++;
        }
      }
    }
    this.hasStep = hasStep;
    this.partial = given < criteria;
    this.slots = n;
  }

  /** b holds the bytes before value s at i (near the end of b, where they are compared a byte at a time). */
  tailAt(b: Uint8Array, i: number, s: number): boolean {
    const t = s * SLOT, from = this.table[t + FROM]!, n = this.table[t + LENGTH]!, bytes = this.bytes;
    for (let j = 0; j < n; j++) if (b[i + j] !== bytes[from + j]) return false;
    return true;
  }
}

/** A Shape's table: per value, its kind and arg, then where its bytes before it are: FROM in bytes, LENGTH bytes, from WORD in words, the last word's MASK. */
const KIND = 0, ARG = 1, FROM = 2, LENGTH = 3, WORD = 4, MASK = 5, SLOT = 6;

function grown(a: Int32Array, size: number): Int32Array<ArrayBuffer> {
  const b = new Int32Array(size);
  b.set(a);
  return b;
}

const ascii = (w: string) => Uint8Array.from(w, (c) => c.charCodeAt(0));
const SCORES = ascii("scores"), GROUP = ascii("group"), STEP = ascii("step"), VALID = ascii("valid");
const TRUE = ascii("true"), FALSE = ascii("false"), NULL = ascii("null");

const scratch = new Float64Array(1);

/**
 * A key compared four bytes a load (a byte a load made the criteria's keys half the time of a
 * line): `bytes` as little-endian 32-bit words, the last one masked to the bytes it has.
 */
class Word {
  private readonly words: Int32Array;
  private readonly mask: number;
  constructor(readonly bytes: Uint8Array) {
    const padded = new Uint8Array((bytes.length + 3) & ~3);
    padded.set(bytes);
    this.words = new Int32Array(padded.buffer);
    const rest = bytes.length & 3;
    this.mask = rest === 0 ? -1 : (1 << (8 * rest)) - 1;
  }

  /** b (seen as `view`) holds the word at `at`. */
  at(b: Uint8Array, view: DataView, at: number): boolean {
    const words = this.words, last = words.length - 1;
    if (at + 4 * words.length > b.length) return same(b, at, this.bytes);
    for (let j = 0; j < last; j++) if (view.getInt32(at + 4 * j, true) !== words[j]) return false;
    return (view.getInt32(at + 4 * last, true) & this.mask) === words[last];
  }
}

/** The score (a number within float32's range, or null: NaN) at b[i] into scores[k]; the index past it, or -1. */
function scoreAt(b: Uint8Array, i: number, scores: Float64Array, k: number): number {
  if (b[i] === 110) {
    if (!same(b, i, NULL)) return -1;
    scores[k] = NaN;
    return i + 4;
  }
  i = scanJsonBytes(b, i, scores, k, true);
  const x = scores[k]!;
  return i >= 0 && x <= SCORE_MAX && x >= -SCORE_MAX ? i : -1; // not infinite, within float32
}

/** Past the plain string, number, true, false or null at b[i], or -1 (anything else). */
function skipScalar(b: Uint8Array, i: number, e: number): number {
  const c = b[i];
  if (c === 34) {
    const q = plainString(b, i + 1, e);
    return q < 0 ? -1 : q + 1;
  }
  if (c === 116) return same(b, i, TRUE) ? i + 4 : -1;
  if (c === 102) return same(b, i, FALSE) ? i + 5 : -1;
  if (c === 110) return same(b, i, NULL) ? i + 4 : -1;
  return scanJsonBytes(b, i, scratch, 0);
}

/** b holds `word` at `at` (a literal never spans a newline, so reading past the line fails in time). */
function same(b: Uint8Array, at: number, word: Uint8Array): boolean {
  for (let j = 0; j < word.length; j++) if (b[at + j] !== word[j]) return false;
  return true;
}

/** Past JSON whitespace (no newline occurs inside a line). */
function ws(b: Uint8Array, i: number, e: number): number {
  while (i < e) {
    const c = b[i]!;
    if (c !== 32 && c !== 9 && c !== 13) break;
    i++;
  }
  return i;
}

/** The closing quote of a string starting at b[i] with no escape or control character, or -1. */
function plainString(b: Uint8Array, i: number, e: number): number {
  for (; i < e; i++) {
    const c = b[i]!;
    if (c === 34) return i;
    if (c === 92 || c < 32) return -1;
  }
  return -1;
}

/** b[a..e) as text, as lineChunks decodes it. */
const text = (b: Uint8Array, a: number, e: number): string => decode(b.subarray(a, e));

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
 * lines, batches of lines, chunks of whole lines, or (lineBytes()) the bytes of whole lines,
 * read in place with no string made per line. Text is read as its UTF-8 bytes, unless it is not
 * well-formed (a lone surrogate has no UTF-8 form): then it goes to JSON.parse line by line.
 * `reuse`: a step's arrays may be reused once the next step is read.
 */
export async function* readSteps(lines: Lines | AsyncIterable<LineChunk> | AsyncIterable<Uint8Array> | Iterable<Uint8Array>, criteria: readonly string[], reuse = false): AsyncGenerator<Step> {
  const K = criteria.length;
  const column = new Map(criteria.map((id, k) => [id, k]));
  const builder = new StepBuilder(criteria, reuse);
  const p = new LineParser(column, new Float64Array(K));
  const { row, scores } = p;
  const fast = new FastLine(criteria, column, scores, row);
  let stepKey: string | undefined;
  let line = 0;
  /** The line's text through JSON.parse; false for a blank line. */
  const slow = (t: string): boolean => {
    if (line === 1) t = stripBom(t);
    if (t.charCodeAt(0) !== 123 && isBlank(t)) return false;
    p.parse(t, line);
    return true;
  };
  const add = (): Step | undefined => {
    let done: Step | undefined;
    if (row.stepKey !== stepKey) {
      if (builder.started) done = builder.flush();
      stepKey = row.stepKey;
      builder.step = row.step;
    }
    const at = builder.add(row.groupKey, row.group, row.valid, line, false); // all K written below
    const values = builder.values;
    for (let k = 0; k < K; k++) values[at + k] = scores[k]!;
    return done;
  };
  /** The line at b[a..] (to a newline or the end of b); its end. */
  const take = (b: Uint8Array, a: number): number => {
    line++;
    let e = b[a] === 123 ? fast.parse(b, a) : -1;
    if (e < 0) {
      e = b.indexOf(10, a);
      if (e < 0) e = b.length;
      if (a === e || !slow(text(b, a, e))) return e;
    }
    done = add();
    return e;
  };
  let done: Step | undefined;
  const takeText = (t: string): Step | undefined => {
    line++;
    return t !== "" && slow(t) ? add() : undefined;
  };
  for await (const item of lines) {
    if (item instanceof Uint8Array || (typeof item === "object" && "chunk" in item)) {
      let b: Uint8Array;
      if (item instanceof Uint8Array) b = item;
      else if (wellFormed(item.chunk)) b = Buffer.from(item.chunk, "utf8");
      else {
        for (const t of item.chunk.split("\n")) {
          const done = takeText(t);
          if (done) yield done;
        }
        continue;
      }
      for (let a = 0; ; ) {
        const e = take(b, a);
        if (done) {
          yield done;
          done = undefined;
        }
        if (e === b.length) break;
        a = e + 1;
      }
      continue;
    }
    const batch = typeof item === "string" ? [item] : item;
    for (let i = 0; i < batch.length; i++) {
      const t = batch[i]!;
      // A line of a batch is whole: a newline in it is JSON whitespace (JSON.parse reads it).
      const b = t.indexOf("\n") < 0 && wellFormed(t) ? Buffer.from(t, "utf8") : undefined;
      if (b) take(b, 0);
      else done = takeText(t);
      if (done) {
        yield done;
        done = undefined;
      }
    }
  }
  if (builder.started) yield builder.flush();
  else throw new InputError(Math.max(line, 1), "empty input: no rollouts");
}

/** No lone surrogate (every character has a UTF-8 form). */
function wellFormed(t: string): boolean {
  const f = (t as { isWellFormed?: () => boolean }).isWellFormed;
  return f ? f.call(t) : !/[\uD800-\uDFFF]/.test(t);
}
