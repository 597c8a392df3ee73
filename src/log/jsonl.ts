/**
 * Reward logs as JSONL, one rollout a line:
 *   {"step"?: any, "group": any, "scores": {"<criterion>": number | null}, "valid"?: boolean}
 * (other keys are ignored). Consecutive lines with the same step form one call; within it, rows are
 * gathered by group in order of first appearance. Errors name the line.
 *
 * Each line is parsed once, by JSON.parse, and its scores go straight into the step's buffer. (A
 * scanner written for this shape in JS measured slower than JSON.parse here, so there is none.)
 */
import { eachLine, type Lines } from "./lines.js";
import { InputError, StepBuilder, float32Problem, type Step } from "./step.js";

/** One parsed line. */
interface Row {
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

/** Splits a log into steps; `criteria` fixes the columns and rejects unknown ids. */
export async function* readSteps(lines: Lines, criteria: readonly string[]): AsyncGenerator<Step> {
  const K = criteria.length;
  const column = new Map(criteria.map((id, k) => [id, k]));
  const builder = new StepBuilder(criteria);
  const p = new LineParser(column, new Float64Array(K));
  const { row, scores } = p;
  let stepKey: string | undefined;
  let line = 0;
  for await (const item of lines) {
    const batch = typeof item === "string" ? [item] : item;
    for (let b = 0; b < batch.length; b++) {
      let text = batch[b]!;
      line++;
      if (line === 1) text = stripBom(text);
      if (text.length === 0 || (text.charCodeAt(0) !== 123 && isBlank(text))) continue;
      p.parse(text, line);
      if (row.stepKey !== stepKey) {
        if (builder.started) yield builder.flush();
        stepKey = row.stepKey;
        builder.step = row.step;
      }
      const at = builder.add(row.groupKey, row.group, row.valid, line);
      builder.values.set(scores, at);
    }
  }
  if (builder.started) yield builder.flush();
  else throw new InputError(Math.max(line, 1), "empty input: no rollouts");
}
