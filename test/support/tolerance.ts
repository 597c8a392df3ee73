/** Tolerances of the engine against the float64 oracle (test/support/oracle.ts), shared by the property tests. */
import type { OracleOutput } from "./oracle.js";

/**
 * Tolerance of js / oracle against simd on rewards, direct, weights and saturation. The engine
 * works in float32 (ulp(1) = 1.2e-7): a reward is a ratio of sums of up to K = 40 products, each
 * step rounding by <= 6e-8; the focal weights go through pow and a softmax. 1e-6 is ~8 ulp.
 */
export const TOL = 1e-6;

/**
 * Advantages divide a reward difference by the group std: A = (r - mean) / (std + advEps). With
 * rewards off by at most dr = TOL each, r - mean is off by <= 2 dr and std by <= sqrt(2) dr (std
 * is sqrt(m/(m-1))-Lipschitz in the max norm), so |dA| <= dr (2 + 1.5 |A|) / (std + advEps).
 * dr-grpo and rloo are differences of rewards: <= 2 dr. gdpo applies the same bound twice: first
 * per criterion (u off by <= TOL, group std of u_k), then over the batch (a off by <= da).
 */
export function advTol(opts: { method?: string; advantage?: string; advEps?: number }, o: OracleOutput, i: number): number {
  const method = opts.method ?? "focal";
  const advEps = opts.advEps ?? 1e-6;
  if (method === "gdpo") {
    let worst = 0;
    for (let j = 0; j < o.rowValid.length; j++) {
      if (!o.rowValid[j] || Number.isNaN(o.debug.gdpoMinCritStd[j])) continue;
      // |z| <= sqrt(m - 1) for an unbiased z-score over m rows; m <= 33 here -> |z| <= 6
      worst = Math.max(worst, (TOL * (2 + 1.5 * 6)) / o.debug.gdpoMinCritStd[j]);
    }
    const sd = Number.isNaN(o.debug.gdpoAStd) ? 0 : o.debug.gdpoAStd;
    return TOL + (worst * (2 + 1.5 * Math.abs(o.advantages[i]))) / (sd + advEps);
  }
  const adv = opts.advantage ?? "none";
  if (adv === "none" || !o.rowValid[i] || Number.isNaN(o.debug.groupStd[i])) return TOL;
  if (adv === "grpo") return TOL + (TOL * (2 + 1.5 * Math.abs(o.advantages[i]))) / (o.debug.groupStd[i] + advEps);
  return 2 * TOL;
}
