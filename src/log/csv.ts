/**
 * Reward logs as CSV: a header row, then one row per rollout. Columns `group` (required), `step`
 * and `valid` (optional); every other column is a criterion (with a rubric: the columns it names,
 * others are ignored and reported). Empty cells, `null`, `NA`, `NaN` and `None` mean "not
 * judged"; a score is a decimal number (no hex, binary, octal, Infinity). Blank lines (also before
 * the header) are skipped; a byte order mark is dropped. Steps and groups as in JSONL; memory is
 * bounded by the largest step. A record whose quoted field spans lines is parsed once, when its
 * last line arrives (linear in its length).
 */
import { InputError, StepBuilder, float32Problem, type Step } from "./step.js";
import type { Lines } from "./lines.js";
import { scanEnd, scanNumber } from "./number.js";

/** Fields of one CSV record, or null if a quoted field is still open at the end of `text`. */
export function parseCsvRecord(text: string): string[] | null {
  const out: string[] = [];
  let i = 0;
  const n = text.length;
  for (;;) {
    if (i < n && text.charCodeAt(i) === 34) {
      const parts: string[] = [];
      i++;
      for (;;) {
        const q = text.indexOf('"', i);
        if (q < 0) return null;
        parts.push(text.slice(i, q));
        if (text.charCodeAt(q + 1) === 34) {
          parts.push('"');
          i = q + 2;
        } else {
          i = q + 1;
          break;
        }
      }
      out.push(parts.join(""));
      if (i >= n) return out;
      if (text.charCodeAt(i) !== 44) throw new Error("unexpected character after a quoted field");
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

/**
 * The decimal number in text[a..e) (spaces around it allowed); NaN for a not-judged cell (empty,
 * blank, null-like) and for anything else, which the caller refuses unless it is not-judged.
 */
function cellNumber(text: string, a: number, e: number): number {
  while (a < e && (text.charCodeAt(a) === 32 || text.charCodeAt(a) === 9)) a++;
  while (e > a && (text.charCodeAt(e - 1) === 32 || text.charCodeAt(e - 1) === 9)) e--;
  if (a === e) return NaN;
  const v = scanNumber(text, a, false, true);
  return scanEnd === e && Number.isFinite(v) ? v : NaN;
}

export function parseValid(cell: string | undefined, line: number): boolean {
  if (cell === undefined) return true;
  const v = cell.trim().toLowerCase();
  if (v === "" || v === "1" || v === "true") return true;
  if (v === "0" || v === "false") return false;
  throw new InputError(line, `column 'valid': expected true/false/1/0, got '${cell}'`);
}

export interface CsvOptions {
  /** Criteria in engine order (e.g. from the rubric). Without it: every column but step, group, valid. */
  criteria?: readonly string[];
  /** Called once with the header's columns that are neither criteria nor step/group/valid. */
  onIgnored?: (columns: string[]) => void;
}

export interface CsvLog {
  /** The criteria: the option's, or the header's. */
  criteria: readonly string[];
  steps: AsyncGenerator<Step>;
}

function parseQuiet(text: string): string[] | null | undefined {
  try {
    return parseCsvRecord(text);
  } catch {
    return undefined; // reported when the record is parsed
  }
}

/**
 * The CSV state machine: line() takes one line at a time (no await per line) and queues the steps
 * it completes in `ready`. Lines without quotes are read in place, without splitting.
 */
class CsvReader {
  header: string[] | null = null;
  headerLine = 0;
  criteria: readonly string[] = [];
  readonly ready: Step[] = [];
  private lineNo = 0;
  private pending: string[] = [];
  private pendingStart = 0;
  private quotes = 0;
  private colOf = new Int32Array(0);
  /** Per header column: the criterion slot, or -1 (step, group, valid, ignored). */
  private slotOf = new Int32Array(0);
  private stepCol = -1;
  private groupCol = -1;
  private validCol = -1;
  private b: StepBuilder | null = null;

  constructor(private readonly opts: CsvOptions) {}

  line(raw: string): void {
    let text = raw;
    const lineNo = ++this.lineNo;
    if (lineNo === 1 && text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    if (text.charCodeAt(text.length - 1) === 13) text = text.slice(0, -1);
    let q = 0;
    for (let i = text.indexOf('"'); i >= 0; i = text.indexOf('"', i + 1)) q++;
    if (this.pending.length > 0) {
      this.pending.push(text);
      this.quotes += q;
      if (this.quotes % 2 === 1) return; // the quoted field is still open
      text = this.pending.join("\n");
      this.pending = [];
      this.quotes = 0;
      q = 1;
    } else {
      if (text.length === 0 || (text.charCodeAt(0) <= 32 && text.trim() === "")) return;
      this.pendingStart = lineNo;
      if (q % 2 === 1 && parseQuiet(text) === null) {
        this.pending = [text];
        this.quotes = q;
        return;
      }
    }
    const at = this.pendingStart;
    if (q === 0 && this.header !== null) return this.plainRow(text, at);
    let fields: string[] | null;
    try {
      fields = parseCsvRecord(text);
    } catch (e) {
      throw new InputError(at, (e as Error).message);
    }
    if (fields === null) throw new InputError(at, "unterminated quoted field");
    if (this.header === null) this.setHeader(fields, at);
    else this.row(fields, at);
  }

  end(): void {
    if (this.pending.length > 0) throw new InputError(this.pendingStart, "unterminated quoted field");
    if (this.header === null) throw new InputError(Math.max(1, this.lineNo), "empty input: no CSV header");
    if (this.b!.started) this.ready.push(this.b!.flush());
    else throw new InputError(this.headerLine, "the CSV has a header but no rows");
  }

  private setHeader(raw: string[], at: number): void {
    const header = raw.map((c) => c.trim());
    const where = new Map<string, number>();
    header.forEach((h, j) => {
      if (h === "") throw new InputError(at, `the header's column ${j + 1} has no name`);
      const prev = where.get(h);
      if (prev !== undefined) throw new InputError(at, `duplicate column '${h}' (columns ${prev + 1} and ${j + 1} of the header)`);
      where.set(h, j);
    });
    this.stepCol = where.get("step") ?? -1;
    this.groupCol = where.get("group") ?? -1;
    this.validCol = where.get("valid") ?? -1;
    if (this.groupCol < 0) throw new InputError(at, `the header has no 'group' column (columns: ${header.join(", ")})`);
    const special = (j: number) => j === this.stepCol || j === this.groupCol || j === this.validCol;
    const criteria = this.opts.criteria ?? header.filter((_, j) => !special(j));
    if (criteria.length === 0) throw new InputError(at, "the header has no criterion columns");
    this.colOf = Int32Array.from(criteria, (c) => where.get(c) ?? -1);
    this.slotOf = new Int32Array(header.length).fill(-1);
    this.colOf.forEach((j, k) => { if (j >= 0) this.slotOf[j] = k; });
    const used = new Set(criteria);
    const ignored = header.filter((h, j) => !special(j) && !used.has(h));
    if (ignored.length > 0) this.opts.onIgnored?.(ignored);
    this.header = header;
    this.headerLine = at;
    this.criteria = criteria;
    // No buffer reuse: a chunk's lines can close several steps before the first is read (the
    // ready queue), and a step's buffers may only be written again once it has been used.
    this.b = new StepBuilder(criteria);
  }

  private startRow(step: string | undefined, group: string, valid: string | undefined, at: number): number {
    const b = this.b!;
    if (b.started && step !== b.step) this.ready.push(b.flush());
    b.step = step;
    return b.add(group, group, parseValid(valid, at), at);
  }

  private cell(k: number, j: number, v: number, text: string, at: number): void {
    if (Number.isNaN(v) && !isNotJudged(text)) {
      throw new InputError(at, `column '${this.header![j]}': not a number: '${text}' (a decimal number is expected)`);
    }
    const p = float32Problem(this.header![j]!, v);
    if (p) throw new InputError(at, p);
    this.b!.values[this.rowAt + k] = v;
  }

  private rowAt = 0;

  private row(fields: string[], at: number): void {
    const header = this.header!;
    if (fields.length !== header.length) throw new InputError(at, `${fields.length} fields, the header has ${header.length}`);
    this.rowAt = this.startRow(this.stepCol >= 0 ? fields[this.stepCol] : undefined, fields[this.groupCol]!, this.validCol >= 0 ? fields[this.validCol] : undefined, at);
    for (let k = 0; k < this.colOf.length; k++) {
      const j = this.colOf[k]!;
      if (j < 0) continue;
      const cell = fields[j]!;
      if (cell.length === 0) continue;
      this.cell(k, j, cellNumber(cell, 0, cell.length), cell, at);
    }
  }

  /** A line without quotes: fields located with indexOf, numbers read in place. */
  private plainRow(text: string, at: number): void {
    const header = this.header!;
    const m = header.length;
    // The special columns first (they decide the step and the group).
    let step: string | undefined, group = "", valid: string | undefined;
    let fields = 1;
    for (let i = text.indexOf(","); i >= 0; i = text.indexOf(",", i + 1)) fields++;
    if (fields !== m) throw new InputError(at, `${fields} fields, the header has ${m}`);
    const starts = this.starts.length >= m + 1 ? this.starts : (this.starts = new Int32Array(m + 1));
    starts[0] = 0;
    for (let j = 1, i = -1; j < m; j++) starts[j] = (i = text.indexOf(",", i + 1)) + 1;
    starts[m] = text.length + 1;
    const field = (j: number) => text.slice(starts[j]!, starts[j + 1]! - 1);
    if (this.stepCol >= 0) step = field(this.stepCol);
    group = field(this.groupCol);
    if (this.validCol >= 0) valid = field(this.validCol);
    this.rowAt = this.startRow(step, group, valid, at);
    const slotOf = this.slotOf;
    for (let j = 0; j < m; j++) {
      const k = slotOf[j]!;
      if (k < 0) continue;
      const a = starts[j]!, e = starts[j + 1]! - 1;
      if (a === e) continue;
      const v = cellNumber(text, a, e);
      if (v !== v) this.cell(k, j, v as number, text.slice(a, e), at);
      else this.cell(k, j, v, "", at);
    }
  }

  private starts = new Int32Array(0);
}

function isNotJudged(text: string): boolean {
  return NULLS.has(text.trim());
}

/** Reads the header (so that the criteria are known) and returns the steps to come. */
export async function openCsv(lines: Lines, opts: CsvOptions = {}): Promise<CsvLog> {
  const r = new CsvReader(opts);
  const it = (async function* () {
    for await (const item of lines) yield typeof item === "string" ? [item] : item;
  })();
  while (r.header === null) {
    const next = await it.next();
    if (next.done) {
      r.end();
      break;
    }
    for (const l of next.value) r.line(l);
  }
  const steps = (async function* (): AsyncGenerator<Step> {
    while (r.ready.length > 0) yield r.ready.shift()!;
    for await (const batch of it) {
      for (let i = 0; i < batch.length; i++) r.line(batch[i]!);
      while (r.ready.length > 0) yield r.ready.shift()!;
    }
    r.end();
    while (r.ready.length > 0) yield r.ready.shift()!;
  })();
  return { criteria: r.criteria, steps };
}

/** Steps of a CSV log (the header is read on the first step). */
export async function* readCsvSteps(lines: Lines, opts: CsvOptions = {}): AsyncGenerator<Step> {
  yield* (await openCsv(lines, opts)).steps;
}
