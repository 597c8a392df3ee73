/**
 * The keys each input object may have, in one place: the engine refuses any other with the
 * nearest of these (spec "Validation ranges and strictness"), and the CLI and the service
 * extend them (rubric files add engine options at the top and `rule` on a criterion).
 */

/** createEngine's options. */
export const ENGINE_OPTION_KEYS = [
  "rubric", "method", "scope", "advantage", "backend", "wasm", "reuseOutputs",
  "gamma", "eps", "tau", "minWeight", "maxWeight", "mix", "decay", "advEps", "constant", "outOfScale",
  "power", "temperature", "alpha", "threshold", "fGrpo",
] as const;

/** score()'s options. */
export const SCORE_OPTION_KEYS = ["valid", "weights", "step", "into"] as const;

/**
 * A rubric criterion. `rule` belongs to the service's rules judge (src/service/judges.ts), `text`
 * and `choices` to the llm judge (src/judge/llm): the engine accepts and ignores them, so that one
 * rubric serves the library, the CLI and the service.
 */
export const CRITERION_KEYS = ["id", "weight", "scale", "polarity", "required", "fixed", "description", "rule", "text", "choices"] as const;
