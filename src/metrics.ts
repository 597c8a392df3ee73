import type { RawResult } from "./backend.js";

/**
 * Per-call diagnostics with TRL's names where TRL has one (`reward`, `reward_std`,
 * `frac_reward_zero_std`, `rewards/<id>/mean|std`), the rest under `focal/`.
 * Per-criterion values come from the valid rows; a criterion seen nowhere is left out.
 */
export function buildMetrics(ids: readonly string[], raw: RawResult, perBatch: boolean): Record<string, number> {
  const k = ids.length;
  const m: Record<string, number> = {};
  const { rewards, direct, stats } = raw;
  const n = rewards.length;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += rewards[i];
  const mean = n > 0 ? sum / n : 0;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (rewards[i] - mean) ** 2;
  m.reward = mean;
  m.reward_std = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  m.frac_reward_zero_std = raw.activeGroups > 0 ? raw.zeroStdGroups / raw.activeGroups : 0;
  let dSum = 0, dCount = 0;
  for (let i = 0; i < n; i++) if (direct[i] === direct[i]) { dSum += direct[i]; dCount++; }
  m["focal/direct_reward"] = dCount > 0 ? dSum / dCount : 0;
  m["focal/frac_valid"] = n > 0 ? dCount / n : 0;
  let constant = 0, present = 0;
  for (let c = 0; c < k; c++) {
    const [s, sq, count, cst, pres, weight, sat] = [0, 1, 2, 3, 4, 5, 6].map((f) => stats[f * k + c]);
    constant += cst;
    present += pres;
    const id = ids[c];
    if (count > 0) {
      const mu = s / count;
      m[`rewards/${id}/mean`] = mu;
      m[`rewards/${id}/std`] = count > 1 ? Math.sqrt(Math.max(0, (sq - s * mu) / (count - 1))) : 0;
    }
    if (perBatch) {
      m[`focal/${id}/weight`] = weight;
      m[`focal/${id}/saturation`] = sat;
    } else if (pres > 0) {
      m[`focal/${id}/weight`] = weight / pres;
      m[`focal/${id}/saturation`] = sat / pres;
    }
  }
  m["focal/frac_constant_criteria"] = present > 0 ? constant / present : 0;
  return m;
}
