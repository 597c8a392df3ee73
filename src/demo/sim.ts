/**
 * A seeded mechanism model of rubric-reward RL (see docs/simulation.md for the same model in words).
 *
 * The policy has a latent skill theta_k per criterion. Each training step draws G prompts with m
 * rollouts each; a rollout's action on criterion k is x_ik = theta_k + sigma * eps_ik, its true
 * quality q_ik = logistic((x_ik + beta * h_i + c_g - delta_k) / w_k) (h_i: a rollout factor shared by
 * all criteria of the rollout, c_g: the prompt's difficulty), and the judge reports
 * round(L * clamp(q_ik + J_k * nu_ik, 0, 1)) on a 0..L scale (for a penalty criterion, the bad thing:
 * round(L * clamp(1 - q_ik + J_k * nu_ik, 0, 1))). The engine turns the scores into
 * advantages A_i; the policy takes a REINFORCE step theta_k += lr * eta_k * mean_i(A_i eps_ik) / sigma,
 * then a shared capacity sum_k theta_k <= C is restored by lowering every skill by the same amount.
 */
import { Rng } from "./rng.js";

export interface CriterionModel {
  id: string;
  /** delta_k: skill needed for quality 1/2. */
  difficulty: number;
  /** w_k: width of the logistic (larger = flatter, slower to saturate). */
  width: number;
  /** eta_k: multiplier of the learning rate for this criterion. */
  learnability: number;
  /** J_k: standard deviation of the judge's noise, on the [0, 1] quality scale. */
  judgeNoise: number;
  /** theta_k at step 0. */
  initialSkill: number;
  /**
   * A penalty (weight -1 in the rubric): the judge scores the bad thing, 1 - quality (for
   * `unsafe`, how unsafe the rollout is). Its skill competes for the capacity like any other.
   */
  penalty?: boolean;
}

export interface SimConfig {
  criteria: readonly CriterionModel[];
  /** Prompts (groups) per step. */
  groups: number;
  /** Rollouts per prompt. */
  groupSize: number;
  steps: number;
  /** sigma: exploration noise of the policy on each skill. */
  exploration: number;
  /** beta: weight of the rollout factor shared by all criteria of a rollout. */
  rolloutFactor: number;
  /** sigma_c: spread of prompt difficulty, shared by the rollouts and criteria of a prompt. */
  promptSpread: number;
  /** C: shared capacity, sum_k theta_k <= C. */
  capacity: number;
  /** lr: base learning rate. */
  learningRate: number;
  /** L: the judge scores integers 0..L. */
  judgeLevels: number;
}

/** The model the demo runs. Chosen once, before any method was compared (docs/simulation.md). */
export const DEFAULT_SIM: SimConfig = {
  criteria: [
    { id: "format", difficulty: -1.0, width: 0.5, learnability: 1.5, judgeNoise: 0.05, initialSkill: 0 },
    { id: "relevance", difficulty: -0.5, width: 0.6, learnability: 1.2, judgeNoise: 0.08, initialSkill: 0 },
    { id: "tone", difficulty: 0.0, width: 0.5, learnability: 1.0, judgeNoise: 0.15, initialSkill: 0 },
    { id: "accuracy", difficulty: 0.5, width: 0.7, learnability: 1.0, judgeNoise: 0.1, initialSkill: 0 },
    { id: "depth", difficulty: 1.5, width: 0.8, learnability: 0.5, judgeNoise: 0.1, initialSkill: 0 },
    { id: "citations", difficulty: 2.0, width: 0.6, learnability: 0.6, judgeNoise: 0.08, initialSkill: 0 },
    // Issue 12: a safety penalty, rarely triggered at the start (easy: ~7% of rollouts unsafe) and
    // tradeable: its skill draws on the same capacity, so neglecting it frees skill for the others.
    { id: "unsafe", difficulty: -1.5, width: 0.5, learnability: 1.0, judgeNoise: 0.05, initialSkill: 0, penalty: true },
  ],
  groups: 16,
  groupSize: 8,
  steps: 200,
  exploration: 0.5,
  rolloutFactor: 0.4,
  promptSpread: 0.5,
  capacity: 4,
  learningRate: 0.05,
  judgeLevels: 10,
};

/** What the simulation needs from an engine (a subset of the public Engine). */
export interface SimEngine {
  readonly scope: "group" | "stream";
  score(
    scores: Float32Array,
    groupSizes: ArrayLike<number>,
  ): { advantages: Float32Array; weights: Float32Array; saturation: Float32Array; metrics: Record<string, number> };
  reset(): void;
}

/** One training run: matrices are row-major, one row per step, one column per criterion. */
export interface RunRecord {
  seed: number;
  steps: number;
  criteria: string[];
  /** True expected quality per criterion before each step and after the last: (steps + 1) x K. */
  quality: Float64Array;
  /** Mean judge score per criterion on [0, 1] at each step: steps x K. */
  judged: Float64Array;
  /** Weights the engine used, averaged over groups where present: steps x K. */
  weights: Float64Array;
  /** Saturation the engine estimated, averaged over groups where present (NaN = none): steps x K. */
  saturation: Float64Array;
  /** Skills after the last step. */
  theta: Float64Array;
  /** Per step, what a GRPO user looks at first: the engine's `reward`, `reward_std`, `frac_reward_zero_std`, and mean |advantage|. */
  reward: Float64Array;
  rewardStd: Float64Array;
  fracZeroStd: Float64Array;
  meanAbsAdvantage: Float64Array;
}

/**
 * Rubric matching the simulated judge: every criterion weight 1 (a penalty -1) on the 0..L scale.
 * `fixedPenalties: false` opts the penalties in to focal reweighting (they are fixed by default).
 */
export function simRubric(cfg: SimConfig = DEFAULT_SIM, fixedPenalties = true): { criteria: { id: string; weight: number; scale: [number, number]; fixed?: boolean }[] } {
  return {
    criteria: cfg.criteria.map((c) => ({
      id: c.id, weight: c.penalty ? -1 : 1, scale: [0, cfg.judgeLevels] as [number, number], ...(c.penalty && !fixedPenalties ? { fixed: false } : {}),
    })),
  };
}

const GRID = 161;
const GRID_Z = new Float64Array(GRID);
const GRID_W = new Float64Array(GRID);
{
  // Simpson's rule for E[f(Z)], Z ~ N(0, 1), on [-8, 8].
  const h = 16 / (GRID - 1);
  let total = 0;
  for (let j = 0; j < GRID; j++) {
    const z = -8 + j * h;
    const simpson = j === 0 || j === GRID - 1 ? 1 : j % 2 === 1 ? 4 : 2;
    GRID_Z[j] = z;
    GRID_W[j] = simpson * Math.exp(-0.5 * z * z);
    total += GRID_W[j]!;
  }
  for (let j = 0; j < GRID; j++) GRID_W[j]! /= total;
}

const logistic = (x: number): number => 1 / (1 + Math.exp(-x));

/**
 * True expected quality of criterion k for skill theta: E[logistic((theta + Z - delta) / w)] with
 * Z ~ N(0, sigma^2 + beta^2 + sigma_c^2), the spread of a fresh rollout on a fresh prompt. No judge noise.
 */
export function expectedQuality(theta: number, c: CriterionModel, cfg: SimConfig): number {
  const sd = Math.sqrt(cfg.exploration ** 2 + cfg.rolloutFactor ** 2 + cfg.promptSpread ** 2);
  let acc = 0;
  for (let j = 0; j < GRID; j++) acc += GRID_W[j]! * logistic((theta + sd * GRID_Z[j]! - c.difficulty) / c.width);
  return acc;
}

/**
 * Train one policy. The random draws do not depend on the method, so every method sees the same
 * prompts, rollout noise and judge noise for a given seed (common random numbers).
 */
export function simulate(
  engine: SimEngine,
  seed: number,
  cfg: SimConfig = DEFAULT_SIM,
  onStep?: (step: number) => void,
): RunRecord {
  const K = cfg.criteria.length;
  const G = cfg.groups;
  const m = cfg.groupSize;
  const n = G * m;
  const T = cfg.steps;
  const L = cfg.judgeLevels;
  const rng = new Rng(seed);
  const theta = Float64Array.from(cfg.criteria, (c) => c.initialSkill);
  const eps = new Float64Array(n * K);
  const scores = new Float32Array(n * K);
  const sizes = new Array<number>(G).fill(m);
  const grad = new Float64Array(K);
  const rec: RunRecord = {
    seed,
    steps: T,
    criteria: cfg.criteria.map((c) => c.id),
    quality: new Float64Array((T + 1) * K),
    judged: new Float64Array(T * K),
    weights: new Float64Array(T * K),
    saturation: new Float64Array(T * K),
    theta,
    reward: new Float64Array(T),
    rewardStd: new Float64Array(T),
    fracZeroStd: new Float64Array(T),
    meanAbsAdvantage: new Float64Array(T),
  };
  engine.reset();
  for (let t = 0; t <= T; t++) {
    for (let k = 0; k < K; k++) rec.quality[t * K + k] = expectedQuality(theta[k]!, cfg.criteria[k]!, cfg);
    if (t === T) break;
    for (let g = 0; g < G; g++) {
      const cg = cfg.promptSpread * rng.normal();
      for (let j = 0; j < m; j++) {
        const i = g * m + j;
        const h = cfg.rolloutFactor * rng.normal();
        for (let k = 0; k < K; k++) {
          const c = cfg.criteria[k]!;
          const e = rng.normal();
          const nu = rng.normal();
          eps[i * K + k] = e;
          const q = logistic((theta[k]! + cfg.exploration * e + h + cg - c.difficulty) / c.width);
          const judged = Math.min(1, Math.max(0, (c.penalty ? 1 - q : q) + c.judgeNoise * nu));
          scores[i * K + k] = Math.round(L * judged);
        }
      }
    }
    for (let k = 0; k < K; k++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += scores[i * K + k]!;
      rec.judged[t * K + k] = s / (n * L);
    }
    const out = engine.score(scores, sizes);
    const metrics = out.metrics;
    rec.reward[t] = metrics.reward!;
    rec.rewardStd[t] = metrics.reward_std!;
    rec.fracZeroStd[t] = metrics.frac_reward_zero_std!;
    let absA = 0;
    for (let i = 0; i < n; i++) absA += Math.abs(out.advantages[i]!);
    rec.meanAbsAdvantage[t] = absA / n;
    averageRows(out.weights, engine.scope === "group" ? G : 1, K, rec.weights, t);
    averageRows(out.saturation, engine.scope === "group" ? G : 1, K, rec.saturation, t);
    grad.fill(0);
    for (let i = 0; i < n; i++) {
      const a = out.advantages[i]!;
      if (a === 0) continue;
      for (let k = 0; k < K; k++) grad[k]! += a * eps[i * K + k]!;
    }
    let sum = 0;
    for (let k = 0; k < K; k++) {
      theta[k]! += (cfg.learningRate * cfg.criteria[k]!.learnability * grad[k]!) / (n * cfg.exploration);
      sum += theta[k]!;
    }
    if (sum > cfg.capacity) {
      const cut = (sum - cfg.capacity) / K;
      for (let k = 0; k < K; k++) theta[k]! -= cut;
    }
    onStep?.(t);
  }
  return rec;
}

/** Mean over the rows of a rows x K matrix, skipping NaN. */
function averageRows(src: Float32Array, rows: number, K: number, dst: Float64Array, t: number): void {
  for (let k = 0; k < K; k++) {
    let s = 0;
    let c = 0;
    for (let r = 0; r < rows; r++) {
      const v = src[r * K + k]!;
      if (Number.isNaN(v)) continue;
      s += v;
      c++;
    }
    dst[t * K + k] = c === 0 ? NaN : s / c;
  }
}
