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
  /** order[j] = gathered row of the j-th line of the step (input order). */
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

/** Criterion ids in order of first appearance (for logs scored without a rubric). */
export async function scanCriteria(lines: AsyncIterable<string> | Iterable<string>): Promise<string[]> {
  const seen = new Set<string>();
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() === "") continue;
    for (const id of Object.keys(parseLine(text, line).scores)) seen.add(id);
  }
  return [...seen];
}

/** Splits a log into steps; `criteria` fixes the columns and rejects unknown ids. */
export async function* readSteps(
  lines: AsyncIterable<string> | Iterable<string>,
  criteria: readonly string[],
): AsyncGenerator<Step> {
  const column = new Map(criteria.map((id, k) => [id, k]));
  let pending: Row[] = [];
  let stepKey: string | undefined;
  let line = 0;
  for await (const text of lines) {
    line++;
    if (text.trim() === "") continue;
    const row = parseLine(text, line);
    for (const id of Object.keys(row.scores)) {
      if (!column.has(id)) throw new InputError(line, `unknown criterion '${id}'`);
    }
    const key = keyOf(row.step);
    if (pending.length > 0 && key !== stepKey) {
      yield gather(pending, criteria, column);
      pending = [];
    }
    stepKey = key;
    pending.push(row);
  }
  if (pending.length > 0) yield gather(pending, criteria, column);
  else if (line === 0 || stepKey === undefined) throw new InputError(Math.max(line, 1), "empty input: no rollouts");
}

function keyOf(value: unknown): string {
  return value === undefined ? "" : `=${JSON.stringify(value)}`;
}

function gather(rows: Row[], criteria: readonly string[], column: Map<string, number>): Step {
  const k = criteria.length;
  const byGroup = new Map<string, number[]>();
  const groups: unknown[] = [];
  rows.forEach((row, j) => {
    const key = JSON.stringify(row.group) ?? "null";
    let members = byGroup.get(key);
    if (!members) {
      byGroup.set(key, (members = []));
      groups.push(row.group);
    }
    members.push(j);
  });
  const n = rows.length;
  const scores = new Float32Array(n * k).fill(NaN);
  const valid = new Uint8Array(n);
  const lines: number[] = [];
  const order = new Int32Array(n);
  const groupSizes: number[] = [];
  let i = 0;
  for (const members of byGroup.values()) {
    groupSizes.push(members.length);
    for (const j of members) {
      const row = rows[j];
      for (const [id, x] of Object.entries(row.scores)) if (x !== null) scores[i * k + column.get(id)!] = x as number;
      valid[i] = row.valid ? 1 : 0;
      lines.push(row.line);
      order[j] = i++;
    }
  }
  return { step: rows[0].step, groups, groupSizes, criteria, scores, valid, lines, order };
}
