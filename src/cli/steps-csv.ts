/**
 * Reward logs as CSV: a reader yielding training steps in the same shape as the JSONL reader
 * (steps.ts), built by the same StepBuilder.
 *
 * CSV: a header row, then one row per rollout. Columns `group` (required), `step` and `valid`
 * (optional); every other column is a criterion (with a rubric: the columns named by the rubric, others
 * are ignored and listed in `ignored`). Empty cells, `null`, `NA` and `NaN` mean "not judged".
 * Consecutive rows with the same `step` form one training step; within a step, rows are gathered by
 * `group` in order of first appearance. Memory is bounded by the largest step.
 */

import { StepBuilder, type Step } from "./steps.js";

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
  const cols = parseCsvRecord(header.replace(/^\uFEFF/, "").replace(/\r$/, ""));
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
    const off = b.add(fields[groupCol]!, fields[groupCol]!, parseValid(validCol >= 0 ? fields[validCol] : undefined, at), at);
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
