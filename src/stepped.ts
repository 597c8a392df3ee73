import { Stat } from "./abi.js";
import type { Backend, Batch, RawResult, Settings } from "./backend.js";

/**
 * Step-keyed stream updates (spec "Step-keyed stream updates"): calls that carry a training step.
 * Every call of the open step t is scored with the weights of `sbar` as it stood before t opened;
 * its groups' saturations go into an integer accumulator (q = round(s * 2^32), so the sum is the
 * same in any order of arrival), folded into `sbar` by the EMA rule when a later step opens. A call
 * of an earlier step (late) is scored with that step's weights and not accumulated; one older than
 * the last WINDOW closed steps is refused as stale. Nothing changes until a call has been scored.
 *
 * Built on one group-scope weighted-mean backend, so no kernel knows about steps: a pass with the
 * rubric's weights gives each group's saturation (steps 2-3 are the same for every method), the
 * direct rewards and the statistics; a pass with the step's weights as instance weights gives
 * r_i = sum f u / sum f, the stream reward, and the advantages.
 */

/** Closed steps whose weights a late call may still use. */
export const WINDOW = 8;
const Q_SCALE = 2 ** 32;
/** q splits into two 16-bit halves summed as doubles: exact for up to 2^37 groups per call. */
const HALF = 2 ** 16;

/** A closed step: its number and the saturation its weights came from. */
export interface ClosedStep {
  step: number;
  sbar: Float64Array;
  seen: Uint8Array;
}

/** What the snapshot carries besides sbar and seen. */
export interface SteppedState {
  /** The open step. */
  step: number;
  /** Per criterion: exact sum of q over the open step's groups, and their count. */
  qSum: bigint[];
  count: number[];
  /** Oldest first, at most WINDOW. */
  window: ClosedStep[];
}

/** The group-scope backend a stepped engine scores with, and the weights of a state. */
export interface StepBackends {
  group: Backend;
  /** Stream weights f (K) for sbar, criteria not seen counted as 0. */
  weights(sbar: Float64Array, seen: Uint8Array): Float64Array;
}

/** Settings of the group-scope backend, derived from the stream engine's own. */
export function stepSettings(s: Settings): Settings {
  return { ...s, method: "weighted-mean", scope: "group", constant: "keep", minWeight: undefined, maxWeight: undefined, mix: 1 };
}

/** A step the state cannot take: stale, or a stepped call on a state advanced without steps (or back). */
export class StepConflictError extends RangeError {
  override name = "StepConflictError";
}

export interface SteppedScore {
  raw: RawResult;
  lateRows: number;
}

/**
 * The step bookkeeping of one stream engine. `sbar`/`seen` are the committed state (through the
 * last closed step); they live here while the engine is stepped.
 */
export class StepTracker {
  constructor(
    private readonly k: number,
    private readonly decay: number,
    public sbar: Float64Array,
    public seen: Uint8Array,
    public state: SteppedState | undefined,
  ) {}

  get open(): number | undefined {
    return this.state?.step;
  }

  /** sbar after closing the open step (the state is not changed). */
  private closed(): { sbar: Float64Array; seen: Uint8Array } {
    const sbar = this.sbar.slice(), seen = this.seen.slice(), st = this.state;
    if (st === undefined) return { sbar, seen };
    for (let c = 0; c < this.k; c++) {
      if (st.count[c] === 0) continue;
      const shat = (Number(st.qSum[c]) / st.count[c]) / Q_SCALE;
      sbar[c] = seen[c] ? this.decay * sbar[c] + (1 - this.decay) * shat : shat;
      seen[c] = 1;
    }
    return { sbar, seen };
  }

  /** The saturation a call of `step` is weighted with; throws StepConflictError past the window. */
  private sbarFor(step: number): { sbar: Float64Array; seen: Uint8Array; late: boolean } {
    const st = this.state;
    if (st === undefined || step > st.step) return { ...this.closed(), late: false };
    if (step === st.step) return { sbar: this.sbar, seen: this.seen, late: false };
    const w = st.window;
    if (w.length === WINDOW && step < w[0].step) {
      throw new StepConflictError(`step ${step} is stale: the state keeps the weights of its last ${WINDOW} closed steps (${w[0].step}..${w[w.length - 1].step}) and step ${st.step} is open`);
    }
    // The weights of the first step at or after it that this state has run (steps need not be consecutive).
    const at = w.find((c) => c.step >= step);
    if (at === undefined) return { sbar: this.sbar, seen: this.seen, late: true };
    return { sbar: at.sbar, seen: at.seen, late: true };
  }

  /**
   * Scores a validated batch of `step` and commits the step bookkeeping. Throws, changing nothing,
   * for a stale step or an infinite score.
   */
  score(batch: Batch, step: number, backends: StepBackends): SteppedScore {
    const k = this.k, groups = batch.sizes.length;
    const use = this.sbarFor(step);
    const f = backends.weights(use.sbar, use.seen);
    const instance = new Float32Array(groups * k);
    for (let g = 0; g < groups; g++) instance.set(f, g * k);
    // Two fresh results of the same backend, each batch built field by field (nothing else of the
    // caller's call, such as its output buffers, reaches the helper).
    const { n, scores, sizes, widest, valid } = batch;
    const sat = backends.group.score({ n, scores, sizes, widest, valid, weights: undefined, into: undefined }, "fresh");
    const rew = backends.group.score({ n, scores, sizes, widest, valid, weights: instance, into: undefined }, "fresh");

    // Commit: close the open step if this one is later, then accumulate unless late.
    if (!use.late) {
      if (this.state === undefined || step > this.state.step) this.openStep(step, use.sbar, use.seen);
      this.accumulate(sat.saturation, groups);
    }
    const stats = sat.stats.slice();
    const weights = Float32Array.from(f), saturation = new Float32Array(k);
    for (let c = 0; c < k; c++) {
      saturation[c] = use.seen[c] ? use.sbar[c] : NaN;
      stats[Stat.Weight * k + c] = weights[c];
      stats[Stat.Saturation * k + c] = use.seen[c] ? use.sbar[c] : 0;
    }
    const raw: RawResult = {
      rewards: rew.rewards, direct: sat.direct, advantages: rew.advantages, weights, saturation, stats,
      zeroStdGroups: rew.zeroStdGroups, activeGroups: rew.activeGroups, outOfScale: sat.outOfScale, scalePresent: sat.scalePresent,
    };
    return { raw, lateRows: use.late ? batch.n : 0 };
  }

  /** One row with the open step's weights (no state change); NaN when no criterion of it weighs. */
  scoreOne(row: Float32Array, backends: StepBackends): number {
    const f = Float32Array.from(backends.weights(this.sbar, this.seen));
    const out = backends.group.score({ n: 1, scores: row, sizes: Int32Array.of(1), widest: 1, valid: undefined, weights: f, into: undefined }, "fresh");
    return Number.isNaN(out.direct[0]) ? NaN : out.rewards[0];
  }

  private openStep(step: number, sbar: Float64Array, seen: Uint8Array): void {
    const st = this.state;
    if (st !== undefined) {
      st.window.push({ step: st.step, sbar: this.sbar, seen: this.seen });
      if (st.window.length > WINDOW) st.window.shift();
    }
    this.sbar = sbar;
    this.seen = seen;
    this.state = { step, qSum: new Array<bigint>(this.k).fill(0n), count: new Array<number>(this.k).fill(0), window: st?.window ?? [] };
  }

  private accumulate(saturation: Float32Array, groups: number): void {
    const st = this.state!, k = this.k;
    for (let c = 0; c < k; c++) {
      let hi = 0, lo = 0, count = 0;
      for (let g = 0; g < groups; g++) {
        const s = saturation[g * k + c];
        if (s !== s) continue;
        const q = Math.round(s * Q_SCALE);
        hi += Math.floor(q / HALF);
        lo += q % HALF;
        count++;
      }
      if (count === 0) continue;
      st.qSum[c] += BigInt(hi) * BigInt(HALF) + BigInt(lo);
      st.count[c] += count;
    }
  }
}

/** Checks a `step` option. */
export function checkStep(step: unknown): number {
  if (typeof step !== "number" || !Number.isSafeInteger(step) || step < 0) {
    throw new RangeError(`step must be an integer >= 0, got ${JSON.stringify(step) ?? String(step)}`);
  }
  return step;
}
