import type { RawResult } from "./backend.js";
import { Stat } from "./abi.js";

/** Metric names of one criterion, made once per engine. */
export interface CriterionNames {
  mean: string;
  std: string;
  weight: string;
  saturation: string;
  outOfScale: string;
}

export function criterionNames(ids: readonly string[]): CriterionNames[] {
  return ids.map((id) => ({
    mean: `rewards/${id}/mean`,
    std: `rewards/${id}/std`,
    weight: `focal/${id}/weight`,
    saturation: `focal/${id}/saturation`,
    outOfScale: `focal/${id}/out_of_scale`,
  }));
}

/**
 * Per-call diagnostics with TRL's names where TRL has one (`reward`, `reward_std`,
 * `frac_reward_zero_std`, `rewards/<id>/mean|std`), the rest under `focal/`.
 * Per-criterion values come from the valid rows; a criterion seen nowhere is left out.
 * `focal/frac_out_of_scale`: the share of present scores (unmasked rows) outside their scale,
 * clamped into it; `focal/<id>/out_of_scale` counts them, for a criterion that has any.
 */
export function buildMetrics(names: readonly CriterionNames[], raw: RawResult, perBatch: boolean): Record<string, number> {
  const k = names.length;
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
    const at = (f: Stat) => stats[f * k + c];
    const s = at(Stat.Sum), sq = at(Stat.Sq), count = at(Stat.Count), cst = at(Stat.Constant);
    const pres = at(Stat.Present), weight = at(Stat.Weight), sat = at(Stat.Saturation);
    const name = names[c];
    constant += cst;
    present += pres;
    if (count > 0) {
      const mu = s / count;
      m[name.mean] = mu;
      m[name.std] = count > 1 ? Math.sqrt(Math.max(0, (sq - s * mu) / (count - 1))) : 0;
    }
    if (perBatch) {
      // Stream scope: weight and saturation only once the criterion has an estimate. Until then its
      // weight (from sbar = 0, all headroom) is large but says nothing about the criterion.
      if (!Number.isNaN(raw.saturation[c])) {
        m[name.weight] = weight;
        m[name.saturation] = sat;
      }
    } else if (pres > 0) {
      m[name.weight] = weight / pres;
      m[name.saturation] = sat / pres;
    }
  }
  m["focal/frac_constant_criteria"] = present > 0 ? constant / present : 0;
  let outside = 0;
  for (let c = 0; c < k; c++) {
    const count = raw.outOfScale[c];
    if (count > 0) m[names[c].outOfScale] = count;
    outside += count;
  }
  m["focal/frac_out_of_scale"] = raw.scalePresent > 0 ? outside / raw.scalePresent : 0;
  return m;
}
