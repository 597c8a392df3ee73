/** The JSON answers of the service: score replies and /get_reward's lists (NaN as null, or left out). */
import type { ScoreResult } from "../types.js";
import type { RowAnswer } from "./grouping.js";
import type { Batch } from "./parse.js";

export function arr(a: ArrayLike<number>): (number | null)[] {
  const out = new Array<number | null>(a.length);
  for (let i = 0; i < a.length; i++) {
    const v = a[i]!;
    out[i] = Number.isFinite(v) ? v : null;
  }
  return out;
}

export function byCriterion(criteria: readonly string[], a: ArrayLike<number>, offset = 0): Record<string, number | null> {
  const o: Record<string, number | null> = {};
  for (let k = 0; k < criteria.length; k++) {
    const v = a[offset + k]!;
    o[criteria[k]!] = Number.isFinite(v) ? v : null;
  }
  return o;
}

function cleanMetrics(m: Record<string, number>): Record<string, number | null> {
  const o: Record<string, number | null> = {};
  for (const k in m) o[k] = Number.isFinite(m[k]!) ? m[k]! : null;
  return o;
}

/** The reply of `POST /v1/score`; the group scope (`perGroup`) has weights and saturation per group. */
export function renderScore(criteria: readonly string[], perGroup: boolean, batch: Batch, r: ScoreResult, seq: number | undefined): unknown {
  const K = criteria.length;
  const G = batch.groupSizes.length;
  const out: Record<string, unknown> = { run: batch.run };
  if (batch.step !== undefined) out.step = batch.step;
  if (seq !== undefined) out.seq = seq;
  if (batch.groupIds) out.groups = batch.groupIds;
  out.criteria = criteria;
  out.rewards = arr(r.rewards);
  out.direct = arr(r.direct);
  out.advantages = arr(r.advantages);
  out.weights = perGroup && r.weights.length >= G * K && G > 0
    ? Array.from({ length: G }, (_, g) => byCriterion(criteria, r.weights, g * K))
    : byCriterion(criteria, r.weights);
  out.saturation = perGroup && r.saturation.length >= G * K && G > 0
    ? Array.from({ length: G }, (_, g) => byCriterion(criteria, r.saturation, g * K))
    : byCriterion(criteria, r.saturation);
  out.metrics = cleanMetrics(r.metrics);
  return out;
}

/** `extra_logs` of a call: finite numbers only (OpenRLHF turns every value into torch.tensor([value])). */
export function rewardLogs(criteria: readonly string[], stream: boolean, r: ScoreResult, seq: number | undefined): Record<string, number> {
  const extra: Record<string, number> = {};
  for (const key in r.metrics) if (Number.isFinite(r.metrics[key]!)) extra[key] = r.metrics[key]!;
  // A criterion without a stream estimate yet has no weight here (the engine's metrics leave it out too).
  for (let k = 0; k < criteria.length; k++) {
    const w = r.weights[k];
    if (stream && w !== undefined && Number.isFinite(w) && !Number.isNaN(r.saturation[k]!)) extra[`focal/${criteria[k]}/weight`] = w;
  }
  if (seq !== undefined) extra.seq = seq;
  return extra;
}

/** The reply of /get_reward: OpenRLHF's lists, or slime's one-sample object with `reward`. */
export function rewardReply(output: "reward" | "advantage", slime: boolean, answers: readonly RowAnswer[], failureLogs: Record<string, number>): unknown {
  const out = (a: RowAnswer) => (output === "advantage" ? a.advantage : a.reward);
  const extra_logs = { ...failureLogs, ...answers[0]?.logs };
  if (slime) {
    const a = answers[0]!;
    return { reward: out(a), direct: a.direct, advantage: a.advantage, extra_logs };
  }
  // An invalid rollout's direct reward is reported as 0 in `scores` (lists of numbers); its reward is its group's mean.
  return { rewards: answers.map(out), scores: answers.map((a) => a.direct ?? 0), extra_logs };
}
