import type { BackendName, ConstantMode, Method, OutOfScaleMode, Scope, AdvantageMode } from "./types.js";
import type { CompiledRubric } from "./rubric.js";
import type { AggregatorSettings } from "./aggregators.js";

/** Engine settings after validation, shared by every backend. */
export interface Settings {
  method: Method;
  scope: Scope;
  advantage: AdvantageMode;
  gamma: number;
  eps: number;
  tau: number;
  /** undefined = no bounds */
  minWeight: number | undefined;
  maxWeight: number | undefined;
  mix: number;
  decay: number;
  advEps: number;
  constant: ConstantMode;
  /** Scores outside their scale: clamped (and counted) or refused, the call unchanged. */
  outOfScale: OutOfScaleMode;
  /** Options of the issue-3 aggregators and F-GRPO (src/aggregators.ts); undefined = defaults. */
  aggregator?: AggregatorSettings;
}

/** A validated batch: every length checked, every group size a positive integer. */
export interface Batch {
  n: number;
  scores: Float32Array;
  sizes: Int32Array;
  /** The largest group size (found while the sizes are checked: no second pass over them). */
  widest: number;
  valid: Uint8Array | undefined;
  weights: Float32Array | undefined;
  /** The caller's output buffers, checked; undefined = the engine's choice. */
  into: OutputBuffers | undefined;
}

export interface RawResult {
  rewards: Float32Array;
  direct: Float32Array;
  advantages: Float32Array;
  weights: Float32Array;
  saturation: Float32Array;
  /** Stat.End x K, field-major (src/abi.ts Stat). */
  stats: Float64Array;
  zeroStdGroups: number;
  activeGroups: number;
  /** Per criterion: scores of unmasked rows outside the scale (clamped into it). */
  outOfScale: Float64Array;
  /** Present scores of unmasked rows: the denominator of focal/frac_out_of_scale. */
  scalePresent: number;
}

/** Caller-owned output arrays for `score(..., { into })`, each exactly its output's length. */
export interface OutputBuffers {
  rewards: Float32Array;
  direct: Float32Array;
  advantages: Float32Array;
  weights: Float32Array;
  saturation: Float32Array;
}

/**
 * Where a backend puts a call's outputs: "fresh" arrays that outlive later calls (one allocation),
 * "reuse" views of engine-owned buffers valid until the next call, or the caller's buffers.
 */
export type Outputs = "fresh" | "reuse" | OutputBuffers;

export const OUTPUT_FIELDS = ["rewards", "direct", "advantages", "weights", "saturation"] as const;

/** Copies a result's five arrays into `into` (sizes already checked) and returns it in their place. */
export function deliver(raw: RawResult, into: OutputBuffers): RawResult {
  for (const f of OUTPUT_FIELDS) into[f].set(raw[f]);
  return { ...raw, ...into };
}

export interface StreamState {
  sbar: Float64Array;
  seen: Uint8Array;
}

export interface Backend {
  readonly name: BackendName;
  /** Scores a batch; throws (and changes nothing) when a score is infinite. */
  score(batch: Batch, outputs: Outputs): RawResult;
  /** One row of K raw scores (NaN = absent); NaN when the row is invalid or has an infinite score. */
  scoreOne(row: Float32Array): number;
  /** A view of n x K floats where score() reads its input without a copy, if the backend has one. */
  input(n: number): Float32Array;
  getState(): StreamState;
  setState(state: StreamState): void;
}

export type BackendFactory = (rubric: CompiledRubric, settings: Settings) => Backend;
