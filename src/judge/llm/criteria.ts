/**
 * The judge's criteria from a rubric and from a rollout's own (instance) criteria: each needs the
 * `text` the judge checks; `choices` default to ["no", "yes"]; `scale` to [0, 1]. Instance
 * criteria name a rubric criterion to override its text or choices, or bring a new one.
 */
import { CRITERION_KEYS } from "../../keys.js";
import { checkCriterionId, checkKeys } from "../../validate.js";
import { DEFAULT_CHOICES, type JudgeCriterion } from "./prompt.js";

/** One criterion for the judge; `where` names it in errors. */
export function judgeCriterion(raw: unknown, where: string, base?: JudgeCriterion, requireText = true): JudgeCriterion {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new TypeError(`${where}: expected an object {"id", "text", "choices"?}`);
  const o = raw as Record<string, unknown>;
  checkKeys(where, o, CRITERION_KEYS);
  const id = checkCriterionId(o.id, where);
  const name = `${where} '${id}'`;
  const text = o.text ?? base?.text ?? (requireText ? undefined : "");
  if (typeof text !== "string" || (text.trim() === "" && (requireText || o.text !== undefined))) {
    throw new TypeError(`${name}: "text" must be the statement the judge checks (a non-empty string)${o.text === undefined ? "; the llm judge needs it for every criterion" : ""}`);
  }
  const choices = o.choices ?? base?.choices ?? DEFAULT_CHOICES;
  if (!Array.isArray(choices) || choices.length < 2 || !choices.every((c) => typeof c === "string" && c.trim() !== "")) {
    throw new TypeError(`${name}: "choices" must list at least two verdicts (non-empty strings), lowest first`);
  }
  const folded = choices.map((c: string) => c.trim().toLowerCase());
  if (new Set(folded).size !== folded.length) throw new TypeError(`${name}: "choices" repeats a verdict (ignoring case)`);
  const scale = (o.scale ?? base?.scale ?? [0, 1]) as unknown;
  if (!Array.isArray(scale) || scale.length !== 2 || !scale.every((x) => typeof x === "number" && Number.isFinite(x)) || !(scale[0] < scale[1])) {
    throw new TypeError(`${name}: "scale" must be [lo, hi] with finite lo < hi`);
  }
  return { id, text: text.trim(), choices: [...(choices as string[])], scale: [scale[0], scale[1]] };
}

/**
 * The rubric's criteria for the judge, in rubric order. Without `requireText` a criterion may
 * leave its text to the rollouts' own criteria (text "" until then).
 */
export function rubricCriteria(criteria: readonly unknown[], requireText = true): JudgeCriterion[] {
  if (!Array.isArray(criteria) || (criteria.length === 0 && requireText)) throw new TypeError("llm judge: the rubric has no criteria");
  const seen = new Set<string>();
  return criteria.map((c, i) => {
    const jc = judgeCriterion(c, `rubric: criterion ${i}`, undefined, requireText);
    if (seen.has(jc.id)) throw new RangeError(`rubric: duplicate criterion id '${jc.id}'`);
    seen.add(jc.id);
    return jc;
  });
}

/**
 * A rollout's criteria: its own list where it has one (each overriding the rubric's criterion of
 * the same id, or new), else the rubric's.
 */
export function instanceCriteria(own: unknown, rubric: ReadonlyMap<string, JudgeCriterion>, where: string): JudgeCriterion[] {
  if (!Array.isArray(own) || own.length === 0) throw new TypeError(`${where}: "criteria" must be a non-empty list of {"id", "text", "choices"?}`);
  const seen = new Set<string>();
  return own.map((c, i) => {
    const id = (c as { id?: unknown } | null)?.id;
    const jc = judgeCriterion(c, `${where}[${i}]`, typeof id === "string" ? rubric.get(id) : undefined);
    if (seen.has(jc.id)) throw new RangeError(`${where}: criterion '${jc.id}' appears twice`);
    seen.add(jc.id);
    return jc;
  });
}
