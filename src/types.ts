/** Public types of focal-reward. The method itself is defined in docs (the spec): see README. */

/**
 * One rubric criterion. `weight < 0` or `polarity: "penalty"` marks a penalty (satisfied = bad).
 * Unknown keys are refused; `0 < |weight| <= 1e30`; a negative weight with `polarity: "reward"` is refused.
 */
export interface Criterion {
  id: string;
  /** Base weight; default 1. Negative = penalty with weight |w|. */
  weight?: number;
  /** Raw score range [lo, hi]; default [0, 1]. Scores are clamped into it. */
  scale?: readonly [number, number];
  polarity?: "reward" | "penalty";
  /** Must pass for `gated`, `hierarchical` and `all-or-nothing` aggregators. */
  required?: boolean;
  /**
   * Guarded: focal reweighting keeps this criterion's base share and reallocates only the rest
   * (spec "Guarded criteria"). Default true for penalties (a rare harm must not look saturated
   * and cheap), false for reward criteria.
   */
  fixed?: boolean;
  /** What the criterion checks, for people and judges; the engine does not read it. */
  description?: string;
  /** The service's rules judge reads it (see docs/service.md); the engine does not. */
  rule?: unknown;
  /** The statement an LLM judge checks for this criterion ("The answer cites a source"). */
  text?: string;
  /**
   * The judge's allowed verdicts, ordered from "does not hold" to "holds fully", mapped evenly onto
   * the scale (first = lo, last = hi). Default ["no", "yes"].
   */
  choices?: readonly string[];
}

/** A score as JS eval libraries (autoevals, evalite) report it; `name` is the criterion id. */
export interface NamedScore {
  name: string;
  score: number | null;
  metadata?: unknown;
}

export interface Rubric {
  criteria: readonly Criterion[];
}

export type Method =
  | "focal" | "weighted-mean" | "gdpo" | "sa-mrpo"
  // issue 3 (formulas: src/aggregators.ts, assembly/aggregators.ts, docs/aggregators.md)
  | "weighted-sum" | "min" | "power-mean" | "soft-min" | "cvar" | "points-ratio" | "all-or-nothing"
  | "gated" | "hierarchical" | "pow3r" | "dvao" | "mo-grpo";
export type Scope = "group" | "stream";
export type AdvantageMode = "grpo" | "dr-grpo" | "rloo" | "none";
export type BackendName = "simd" | "scalar" | "js";

/** Where the wasm comes from when the runtime's default loader does not fit. */
export type WasmSource =
  | WebAssembly.Module
  | ArrayBuffer
  | ArrayBufferView
  | URL
  | string
  | Response
  | Promise<Response>;

export interface FocalOptions {
  /** Focal exponent, in [0, 64]; 0 gives back the static weights exactly. Default 3 (0.5 for sa-mrpo). */
  gamma?: number;
  /** Headroom floor added to 1 - s, in [0, 1e3]. Default 0.05. */
  eps?: number;
  /** Temperature of the reward-tilted rollout weights, in [1e-6, 1e6]. Default 1. */
  tau?: number;
  /** Lower bound of every focal weight (Euclidean projection), in [0, 1]. Default none. Stream scope: minWeight * K <= 1. */
  minWeight?: number;
  /** Upper bound of every focal weight, in [0, 1]. Default none. Stream scope: maxWeight * K >= 1. */
  maxWeight?: number;
  /** f <- mix * f + (1 - mix) * b, mix in [0, 1]. Default 1. */
  mix?: number;
  /** EMA decay of the stream-scope saturation, in [0, 1). Default 0.9. */
  decay?: number;
  /** Added to the std in `grpo` and `gdpo` advantages, in [0, 1e3]. Default 1e-6. */
  advEps?: number;
  /**
   * "drop" (group scope, focal): a criterion constant within a group (max - min <= 1e-6 over its
   * valid rows, or fewer than two of them) is left out of that group's focal weights, as if
   * absent; fixed criteria never are. Default "keep" (the method as published).
   */
  constant?: ConstantMode;
  /**
   * A score outside its criterion's scale (in a row the caller did not mask): "clamp" (default)
   * clamps it into the scale and counts it (metrics `focal/frac_out_of_scale`,
   * `focal/<id>/out_of_scale`); "error" refuses the call with the row, the criterion and the
   * value, the engine unchanged.
   */
  outOfScale?: OutOfScaleMode;
}

export type ConstantMode = "keep" | "drop";

/** What a score outside its criterion's scale does: "clamp" (counted in focal/frac_out_of_scale) or "error". */
export type OutOfScaleMode = "clamp" | "error";

/** Options of the other aggregators (see docs/aggregators.md). */
export interface AggregatorOptions {
  /** power-mean exponent p: 1 = weighted mean, 0 = geometric, -Infinity = min. In [-64, 64] or +-Infinity. Default 0. */
  power?: number;
  /** soft-min temperature, in [1e-6, 1e6]. Default 0.1. */
  temperature?: number;
  /** cvar: the worst alpha share of the weight, in (0, 1]. Default 0.25. */
  alpha?: number;
  /** Pass threshold on the [0, 1] scale for gated, hierarchical, all-or-nothing and F-GRPO's success. Default 0.5. */
  threshold?: number;
  /** F-GRPO exponent, in [0, 64]: advantages times (1 - group success rate)^fGrpo, with any method. Default off. */
  fGrpo?: number;
}

/** Unknown keys are refused with the nearest valid one ("gama": did you mean "gamma"?). */
export interface EngineOptions extends FocalOptions, AggregatorOptions {
  rubric: Rubric | readonly Criterion[];
  method?: Method;
  scope?: Scope;
  advantage?: AdvantageMode;
  /** "auto" (default) picks simd where the engine validates it, else scalar. */
  backend?: BackendName | "auto";
  /**
   * true: score() returns views of engine-owned buffers instead of fresh arrays, so a call
   * allocates no output memory. They (and the result's `metrics`) stay valid until the next
   * score() on this engine, which overwrites them (or detaches them when the engine's memory
   * grows); copy what must outlive it. Default false: fresh arrays that outlive later calls.
   */
  reuseOutputs?: boolean;
  /** Wasm binaries, for runtimes where the default loader cannot find them. */
  wasm?: { simd?: WasmSource; scalar?: WasmSource };
}

export interface ScoreOptions {
  /** Caller's mask, one entry per row: falsy = invalid row. */
  valid?: ArrayLike<boolean | number>;
  /** Instance rubrics (group scope): G x K base weights, >= 0, row g for group g. */
  weights?: ArrayLike<number>;
  /**
   * Stream scope: the training step (integer >= 0) this call belongs to (spec "Step-keyed stream
   * updates"). Every call of a step gets the weights of the state before it opened; a later step
   * folds the open one in; a step older than the last 8 closed ones is refused. Once one call has
   * a step, every call of the engine needs one.
   */
  step?: number;
  /**
   * Caller-owned outputs, written in place and returned as the result's arrays: each a
   * Float32Array of exactly its output's length (rows; groups x criteria, or criteria in the
   * stream scope). The result's `metrics` must then be read before the next call.
   */
  into?: { rewards: Float32Array; direct: Float32Array; advantages: Float32Array; weights: Float32Array; saturation: Float32Array };
}

export interface ScoreResult {
  /** Scalar reward per row (focal, or the method's reward). */
  rewards: Float32Array;
  /** Static weighted-mean reward per row; NaN for an invalid row. */
  direct: Float32Array;
  /** Advantage per row (0 with advantage "none", for invalid rows and groups of < 2 valid rows). */
  advantages: Float32Array;
  /** Weights used: G x K in the group scope, K in the stream scope. Absent criterion = 0. */
  weights: Float32Array;
  /** Saturation s: G x K (group scope) or K (stream: the updated sbar). NaN = no estimate. */
  saturation: Float32Array;
  /** TRL-style metric names: `reward`, `reward_std`, `rewards/<id>/mean`, ... */
  metrics: Record<string, number>;
}

export interface Engine {
  readonly backend: BackendName;
  readonly criteria: readonly string[];
  readonly method: Method;
  readonly scope: Scope;
  /** Score a batch: `scores` is n x K row-major, NaN = not judged; groups are contiguous. */
  score(scores: Float32Array | ArrayLike<number>, groupSizes: ArrayLike<number>, options?: ScoreOptions): ScoreResult;
  /**
   * Reward of one rollout with the current weights (stream) or as a group of one; no state change.
   * The row: K scores in rubric order, a `{ criterion: score }` record, or `[{ name, score }]`.
   * A missing criterion or a null/NaN score is absent. NaN when the row has no weighted criterion.
   */
  scoreOne(row: ArrayLike<number> | Readonly<Record<string, number | null | undefined>> | readonly NamedScore[]): number;
  /** A zero-copy view of n x K floats inside the engine; fill it and pass it to score(). */
  input(rows: number): Float32Array;
  /** Versioned, checksummed stream state. */
  snapshot(): Uint8Array;
  restore(bytes: Uint8Array): void;
  /** Forget the stream state. */
  reset(): void;
}
