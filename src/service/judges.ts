/**
 * Judges for `POST /get_reward`: turn one rollout (OpenRLHF's query, prompt, label) into
 * per-criterion scores. A judge answers `{criterion: number | null}` (null or a missing key =
 * not judged). The service marks a rollout invalid (the spec's step 8) when its judge throws,
 * times out, or answers a non-finite number or an unknown criterion; the batch still succeeds.
 */
import { checkKeys } from "../validate.js";

export type JudgeScores = Record<string, number | null | undefined>;

export interface JudgeContext {
  /** Aborted when the judge's time is up. */
  signal: AbortSignal;
  /** Index of the rollout in the request. */
  index: number;
  /** The rubric's criterion ids. */
  criteria: readonly string[];
}

export type Judge = (query: string, prompt: string, label: unknown, context: JudgeContext) => Promise<JudgeScores> | JudgeScores;

/**
 * `labels`: the label carries the scores, as a JSON object `{"criterion": score}` (a string, as
 * OpenRLHF sends labels, or an already parsed object).
 */
export function labelsJudge(): Judge {
  return (_query, _prompt, label) => {
    const expected = `the label must be a JSON object {criterion: score}; got ${JSON.stringify(label) ?? String(label)}`;
    let v: unknown = label;
    if (typeof label === "string") {
      try {
        v = JSON.parse(label);
      } catch {
        throw new Error(expected);
      }
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error(expected);
    return v as JudgeScores;
  };
}

/** Which text a rule looks at. `response` is the query without its leading prompt. */
export type RuleTarget = "response" | "query" | "prompt";

export type Rule = { target?: RuleTarget } & (
  | { regex: string; flags?: string }
  | { minLength?: number; maxLength?: number; unit?: "chars" | "words" }
  | { json: true }
  | { contains: string | readonly string[]; ignoreCase?: boolean }
  | { notContains: string | readonly string[]; ignoreCase?: boolean }
);

/** Rules per criterion id; a list scores the fraction of its rules that pass. */
export type RuleSet = Record<string, Rule | readonly Rule[]>;

type Check = (text: string) => boolean;

/** Why a regex may backtrack catastrophically (refused), or undefined (accepted). See regex-check.ts. */
export type RegexCheck = (source: string, flags: string) => string | undefined;

export interface RulesJudgeOptions {
  /** Checks every regex rule when the rules are compiled; a reason refuses the rule. */
  checkRegex?: RegexCheck;
}

function compileRule(rule: Rule, where: string, options: RulesJudgeOptions): { check: Check; target: RuleTarget } {
  if (rule === null || typeof rule !== "object") throw new Error(`${where}: a rule is an object`);
  const r = rule as Record<string, unknown>;
  const target = (r.target ?? "response") as RuleTarget;
  if (!["response", "query", "prompt"].includes(target)) throw new Error(`${where}.target: response, query or prompt`);
  const kinds = ["regex", "json", "contains", "notContains"].filter((k) => k in r);
  const isLength = "minLength" in r || "maxLength" in r;
  if (kinds.length + (isLength ? 1 : 0) !== 1) {
    throw new Error(`${where}: exactly one of regex, minLength/maxLength, json, contains, notContains`);
  }
  if (isLength) {
    checkKeys(where, r, ["target", "minLength", "maxLength", "unit"]);
    const unit = r.unit ?? "chars";
    if (unit !== "chars" && unit !== "words") throw new Error(`${where}.unit: chars or words`);
    const min = r.minLength ?? 0;
    const max = r.maxLength ?? Infinity;
    if (typeof min !== "number" || !(min >= 0)) throw new Error(`${where}.minLength: a number >= 0`);
    if (typeof max !== "number" || !(max >= min)) throw new Error(`${where}.maxLength: a number >= minLength`);
    const count = unit === "words" ? (t: string) => (t.match(/\S+/gu) ?? []).length : (t: string) => [...t].length;
    return { target, check: (t) => { const n = count(t); return n >= min && n <= max; } };
  }
  const kind = kinds[0]!;
  // The keys each kind of rule takes: a typo (`"ignorecase"`) would otherwise silently change the check.
  checkKeys(where, r, ["target", ...(kind === "regex" ? ["regex", "flags"] : kind === "json" ? ["json"] : [kind, "ignoreCase"])]);
  if (kind === "regex") {
    if (typeof r.regex !== "string") throw new Error(`${where}.regex: a string`);
    const flags = r.flags === undefined ? "u" : String(r.flags);
    let re: RegExp;
    try {
      re = new RegExp(r.regex, flags.replace(/[gy]/g, ""));
    } catch (e) {
      throw new Error(`${where}.regex: ${(e as Error).message}`);
    }
    const risk = options.checkRegex?.(r.regex, re.flags);
    if (risk !== undefined) throw new Error(`${where}.regex: ${JSON.stringify(r.regex)} ${risk}`);
    return { target, check: (t) => re.test(t) };
  }
  if (kind === "json") {
    if (r.json !== true) throw new Error(`${where}.json: true`);
    return {
      target,
      check: (t) => {
        try {
          JSON.parse(t.trim());
          return true;
        } catch {
          return false;
        }
      },
    };
  }
  const raw = r[kind];
  const list = typeof raw === "string" ? [raw] : raw;
  if (!Array.isArray(list) || list.length === 0 || !list.every((s) => typeof s === "string")) {
    throw new Error(`${where}.${kind}: a string or a non-empty list of strings`);
  }
  const fold = r.ignoreCase === true ? (s: string) => s.toLowerCase() : (s: string) => s;
  const needles = (list as string[]).map(fold);
  return kind === "contains"
    ? { target, check: (t) => { const h = fold(t); return needles.every((n) => h.includes(n)); } }
    : { target, check: (t) => { const h = fold(t); return !needles.some((n) => h.includes(n)); } };
}

/**
 * `rules`: deterministic checks named per criterion. Score = fraction of the criterion's rules
 * that pass (1 or 0 for a single rule); criteria without rules are not judged (null).
 * Rules are compiled (and rejected) when the judge is made, not per request.
 */
export function rulesJudge(rules: RuleSet, options: RulesJudgeOptions = {}): Judge {
  const compiled = Object.entries(rules).map(([id, spec]) => {
    const list = Array.isArray(spec) ? spec : [spec as Rule];
    if (list.length === 0) throw new Error(`rules.${id}: at least one rule`);
    return [id, list.map((r, i) => compileRule(r as Rule, `rules.${id}${Array.isArray(spec) ? `[${i}]` : ""}`, options))] as const;
  });
  return (query, prompt) => {
    const response = prompt !== "" && query.startsWith(prompt) ? query.slice(prompt.length) : query;
    const texts: Record<RuleTarget, string> = { response, query, prompt };
    const out: JudgeScores = {};
    for (const [id, checks] of compiled) {
      let pass = 0;
      for (const c of checks) if (c.check(texts[c.target])) pass++;
      out[id] = pass / checks.length;
    }
    return out;
  };
}

/** Whether any rule of the set is a regex (the regex check is loaded only then). */
export function hasRegexRule(rules: RuleSet): boolean {
  return Object.values(rules).some((spec) => (Array.isArray(spec) ? spec : [spec]).some((r) => r !== null && typeof r === "object" && "regex" in r));
}

/** Rules declared on the rubric's criteria (`{"id": "format", "rule": {"json": true}}`). */
export function rulesFromRubric(criteria: readonly { id: string; rule?: Rule | readonly Rule[] }[]): RuleSet {
  const set: RuleSet = {};
  for (const c of criteria) if (c.rule !== undefined) set[c.id] = c.rule;
  return set;
}

/**
 * Warnings for penalty criteria whose only rules are negations (notContains, or a length rule
 * with only maxLength): a rule says whether the criterion's statement holds, and a penalty's
 * statement is the bad thing, so `{"weight": -1, "rule": {"notContains": ["idiot"]}}` penalizes
 * the clean answers. Almost always the mistake of writing the good thing; `contains` is meant.
 */
export function negatedPenaltyRules(criteria: readonly unknown[]): string[] {
  const out: string[] = [];
  for (const c of criteria) {
    if (c === null || typeof c !== "object") continue;
    const { id, weight, polarity, rule } = c as { id?: unknown; weight?: unknown; polarity?: unknown; rule?: unknown };
    const penalty = (typeof weight === "number" && weight < 0) || polarity === "penalty";
    if (!penalty || rule === undefined) continue;
    const rules = (Array.isArray(rule) ? rule : [rule]) as Record<string, unknown>[];
    const negation = (r: Record<string, unknown>) =>
      r !== null && typeof r === "object" && ("notContains" in r || ("maxLength" in r && !("minLength" in r)));
    if (rules.length > 0 && rules.every(negation)) {
      out.push(`criterion '${String(id)}' is a penalty whose rule is a negation (${rules.map((r) => ("notContains" in r ? "notContains" : "maxLength")).join(", ")}): ` +
        "the rule passing (a clean answer) is what gets penalized; for a penalty the rule should match the bad thing (e.g. contains)");
    }
  }
  return out;
}

export class JudgeTimeout extends Error {}

/** Run `judge` with a deadline; rejects with JudgeTimeout (and aborts the context's signal). */
export async function runJudge(
  judge: Judge,
  args: [query: string, prompt: string, label: unknown],
  index: number,
  criteria: readonly string[],
  timeoutMs: number,
): Promise<JudgeScores> {
  const ctl = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const err = new JudgeTimeout(`judge timed out after ${timeoutMs} ms`);
      ctl.abort(err);
      reject(err);
    }, timeoutMs);
  });
  try {
    return await Promise.race([Promise.resolve().then(() => judge(args[0], args[1], args[2], { signal: ctl.signal, index, criteria })), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
