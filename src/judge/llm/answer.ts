/**
 * Reading the judge's answer: the first balanced JSON object of the text that carries
 * `verdicts` (servers without structured output wrap it in prose, code fences or a reasoning
 * block), then validation that every criterion of the batch appears exactly once with one of its
 * allowed verdicts. Anything else is an AnswerError: the rollout is not judged, never scored 0.
 */
import type { JudgeCriterion } from "./prompt.js";

export interface Verdict {
  verdict: string;
  reason: string;
}

/** `invalid`: not the asked shape; `incomplete`: a criterion of the batch has no verdict. */
export class AnswerError extends Error {
  constructor(readonly status: "invalid" | "incomplete", message: string) {
    super(message);
  }
}

/** Most candidate objects tried in one answer (bounds the work on brace-heavy prose). */
const MAX_CANDIDATES = 256;

/** End index (exclusive) of the balanced {...} starting at `start`, or -1. Strings are skipped. */
function balancedEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) depth++;
    else if (c === 125 || c === 93) {
      depth--;
      if (depth === 0) return c === 125 ? i + 1 : -1;
      if (depth < 0) return -1;
    }
  }
  return -1;
}

/**
 * The first key repeated within one object of a valid JSON text (JSON.parse silently keeps the
 * last one, which would hide a criterion judged twice with two different verdicts).
 */
export function duplicateKey(json: string): string | undefined {
  const stack: { keys: Set<string> | undefined; expectKey: boolean }[] = [];
  for (let i = 0; i < json.length; i++) {
    const c = json[i];
    if (c === '"') {
      const end = stringEnd(json, i);
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(json.slice(i, end)) as string;
        if (top.keys.has(key)) return key;
        top.keys.add(key);
        top.expectKey = false;
      }
      i = end - 1;
    } else if (c === "{") stack.push({ keys: new Set(), expectKey: true });
    else if (c === "[") stack.push({ keys: undefined, expectKey: false });
    else if (c === "}" || c === "]") stack.pop();
    else if (c === ",") {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

function stringEnd(text: string, start: number): number {
  for (let i = start + 1; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 92) i++;
    else if (c === 34) return i + 1;
  }
  return text.length;
}

/** The first balanced JSON object in `text` with a `verdicts` key, and its source text. */
export function extractAnswer(text: string): { value: Record<string, unknown>; source: string } | undefined {
  let tried = 0;
  for (let at = text.indexOf("{"); at >= 0 && tried < MAX_CANDIDATES; at = text.indexOf("{", at + 1)) {
    const end = balancedEnd(text, at);
    if (end < 0) continue;
    tried++;
    const source = text.slice(at, end);
    let value: unknown;
    try {
      value = JSON.parse(source);
    } catch {
      continue;
    }
    if (value !== null && typeof value === "object" && !Array.isArray(value) && "verdicts" in value) {
      return { value: value as Record<string, unknown>, source };
    }
  }
  return undefined;
}

function excerpt(text: string): string {
  const t = text.replace(/\s+/g, " ").trim();
  return JSON.stringify(t.length > 160 ? `${t.slice(0, 160)}...` : t);
}

/** The verdict among `choices`: exact, else the one equal ignoring case and outer spaces. */
function choiceOf(v: string, choices: readonly string[]): string | undefined {
  if (choices.includes(v)) return v;
  const fold = v.trim().toLowerCase();
  const hits = choices.filter((c) => c.trim().toLowerCase() === fold);
  return hits.length === 1 ? hits[0] : undefined;
}

/** Validated verdicts of one batch, by criterion id. */
export function parseAnswer(content: string, criteria: readonly JudgeCriterion[]): Record<string, Verdict> {
  const found = extractAnswer(content);
  if (!found) throw new AnswerError("invalid", `no JSON object with "verdicts" in the answer ${excerpt(content)}`);
  const verdicts = found.value.verdicts;
  if (verdicts === null || typeof verdicts !== "object" || Array.isArray(verdicts)) {
    throw new AnswerError("invalid", `"verdicts" must be an object keyed by criterion id, got ${excerpt(JSON.stringify(verdicts))}`);
  }
  const dup = duplicateKey(found.source);
  if (dup !== undefined) throw new AnswerError("invalid", `the answer lists '${dup}' more than once`);
  const byId = new Map(criteria.map((c) => [c.id, c] as const));
  const out: Record<string, Verdict> = {};
  for (const [id, entry] of Object.entries(verdicts as Record<string, unknown>)) {
    const c = byId.get(id);
    if (!c) throw new AnswerError("invalid", `the answer judges unknown criterion '${id}'`);
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) {
      throw new AnswerError("invalid", `criterion '${id}': expected {"reason", "verdict"}, got ${excerpt(JSON.stringify(entry))}`);
    }
    const { verdict, reason } = entry as { verdict?: unknown; reason?: unknown };
    if (typeof verdict !== "string") throw new AnswerError("invalid", `criterion '${id}': "verdict" must be a string`);
    if (reason !== undefined && typeof reason !== "string") throw new AnswerError("invalid", `criterion '${id}': "reason" must be a string`);
    const choice = choiceOf(verdict, c.choices);
    if (choice === undefined) {
      throw new AnswerError("invalid", `criterion '${id}': verdict ${JSON.stringify(verdict)} is not one of ${c.choices.map((x) => JSON.stringify(x)).join(", ")}`);
    }
    out[id] = { verdict: choice, reason: reason ?? "" };
  }
  const missing = criteria.filter((c) => !(c.id in out)).map((c) => c.id);
  if (missing.length > 0) throw new AnswerError("incomplete", `the answer has no verdict for ${missing.map((m) => `'${m}'`).join(", ")}`);
  return out;
}

/** The raw score of a verdict: the choices spread evenly over the criterion's scale. */
export function verdictScore(c: JudgeCriterion, verdict: string): number {
  const i = c.choices.indexOf(verdict);
  const [lo, hi] = c.scale;
  return c.choices.length === 1 ? hi : lo + ((hi - lo) * i) / (c.choices.length - 1);
}
