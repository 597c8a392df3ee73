/**
 * Independent float64 oracle of the Focal Reward method, written from the spec text only
 * (docs: the spec, "Focal Reward: the method this engine implements"). Deliberately naive:
 * plain arrays, one loop per formula, no attempt at speed or at matching the engine's
 * summation order. Used by the tests as the ground truth for the engine and the CLI.
 *
 * Decisions the spec leaves open, mirrored from the engine's documented choices:
 *  (a) instance weights (G x K) must be finite and >= 0; they replace the rubric's |weight| for
 *      that group (penalty polarity still comes from the rubric). A 0 instance weight gives the
 *      criterion zero weight in that group, but the criterion still counts as present.
 *  (b) if, in a valid row, the focal weights of all its present criteria sum to 0, its focal
 *      reward is its direct reward d_i.
 * Further reading choices (marked "CHOICE" below) where the spec is silent.
 */

export type OracleMethod = "focal" | "weighted-mean" | "gdpo" | "sa-mrpo";

function oracleMethod(m: string): OracleMethod {
  if (m !== "focal" && m !== "weighted-mean" && m !== "gdpo" && m !== "sa-mrpo") throw new Error(`oracle: method ${m} is not in the spec`);
  return m;
}
export type OracleScope = "group" | "stream";
export type OracleAdvantage = "grpo" | "dr-grpo" | "rloo" | "none";

export interface OracleCriterion {
  id: string;
  weight?: number;
  scale?: readonly [number, number];
  polarity?: "reward" | "penalty";
  /** Guarded criterion; default: true for a penalty. */
  fixed?: boolean;
}

export interface OracleState {
  /** Stream saturation per criterion (meaningless where !seen). */
  sbar: number[];
  /** Whether criterion k has had its first update. */
  seen: boolean[];
}

export interface OracleConfig {
  criteria: readonly OracleCriterion[];
  /** The oracle implements the spec's methods only; others are refused. */
  method?: string;
  scope?: OracleScope;
  gamma?: number;
  eps?: number;
  tau?: number;
  minWeight?: number;
  maxWeight?: number;
  mix?: number;
  decay?: number;
  advantage?: OracleAdvantage;
  advEps?: number;
  /** Spec "Constant criteria"; "drop" only in the group scope with focal. */
  constant?: "keep" | "drop";
}

export interface OracleInput extends OracleConfig {
  /** n x K row-major raw scores; NaN = absent. */
  scores: ArrayLike<number>;
  groupSizes: ArrayLike<number>;
  /** Caller's mask, falsy = invalid. */
  valid?: ArrayLike<boolean | number>;
  /** G x K instance base weights (group scope). */
  weights?: ArrayLike<number>;
  /** Stream state before the call (not mutated). */
  state?: OracleState;
}

export interface OracleOutput {
  rewards: number[];
  /** NaN for invalid rows. */
  direct: number[];
  advantages: number[];
  /** G x K (group scope) or K (stream scope); 0 for an absent criterion. */
  weights: number[];
  /** G x K (group) or K (stream, the updated sbar); NaN = no estimate. */
  saturation: number[];
  /** Stream state after the call (a copy; equals the input state in the group scope). */
  state: OracleState;
  /** Row validity after the spec's step 8 rule. */
  rowValid: boolean[];
  /** Diagnostics used by tests to derive tolerances. */
  debug: {
    /** Per row: unbiased std of the rewards of the valid rows of its group (NaN if < 2). */
    groupStd: number[];
    /** Per row, gdpo only: min over k present in the row of (group std of u_k + advEps). */
    gdpoMinCritStd: number[];
    /** gdpo only: unbiased std of a over the valid rows of the batch (NaN if < 2). */
    gdpoAStd: number;
  };
}

export interface ResolvedConfig {
  criteria: readonly OracleCriterion[];
  K: number;
  method: OracleMethod;
  scope: OracleScope;
  gamma: number;
  eps: number;
  tau: number;
  minWeight: number | undefined;
  maxWeight: number | undefined;
  mix: number;
  decay: number;
  advantage: OracleAdvantage;
  advEps: number;
  lo: number[];
  hi: number[];
  penalty: boolean[];
  /** Guarded ("fixed") criteria. */
  fixed: boolean[];
  /** |rubric weight| per criterion. */
  absW: number[];
}

export function resolveConfig(c: OracleConfig): ResolvedConfig {
  const K = c.criteria.length;
  if (K === 0) throw new Error("oracle: empty rubric");
  const lo: number[] = [];
  const hi: number[] = [];
  const penalty: boolean[] = [];
  const fixed: boolean[] = [];
  const absW: number[] = [];
  for (const cr of c.criteria) {
    const w = cr.weight ?? 1;
    const [l, h] = cr.scale ?? [0, 1];
    if (!(l < h)) throw new Error(`oracle: bad scale for ${cr.id}`);
    if (!Number.isFinite(w)) throw new Error(`oracle: bad weight for ${cr.id}`);
    lo.push(l);
    hi.push(h);
    penalty.push(w < 0 || cr.polarity === "penalty");
    fixed.push(cr.fixed ?? penalty[penalty.length - 1]);
    absW.push(Math.abs(w));
  }
  if (c.minWeight !== undefined && c.maxWeight !== undefined && c.minWeight > c.maxWeight) {
    throw new Error("oracle: minWeight > maxWeight");
  }
  return {
    criteria: c.criteria,
    K,
    method: oracleMethod(c.method ?? "focal"),
    scope: c.scope ?? "group",
    gamma: c.gamma ?? (c.method === "sa-mrpo" ? 0.5 : 3),
    eps: c.eps ?? 0.05,
    tau: c.tau ?? 1,
    minWeight: c.minWeight,
    maxWeight: c.maxWeight,
    mix: c.mix ?? 1,
    decay: c.decay ?? 0.9,
    advantage: c.advantage ?? "none",
    advEps: c.advEps ?? 1e-6,
    lo,
    hi,
    penalty,
    fixed,
    absW,
  };
}

/** Normalized, "higher is better" score; NaN when absent. */
export function normalize(cfg: ResolvedConfig, k: number, raw: number): number {
  if (Number.isNaN(raw)) return NaN;
  let u = (raw - cfg.lo[k]) / (cfg.hi[k] - cfg.lo[k]);
  u = Math.min(1, Math.max(0, u));
  return cfg.penalty[k] ? 1 - u : u;
}

const clamp = (x: number, a: number, b: number) => Math.min(b, Math.max(a, x));

/**
 * Exact Euclidean projection of f (sum 1) onto {sum = 1, lo <= f_k <= hi}:
 * f_k <- clamp(f_k - theta, lo, hi), theta solving sum = 1. The sum is a nonincreasing, piecewise
 * linear function of theta with breakpoints f_k - hi and f_k - lo; find the segment holding the
 * root and solve the linear equation on it.
 */
export function projectBox(f: number[], lo: number, hi: number, target = 1): number[] {
  const n = f.length;
  if (n === 0) return [];
  const total = (t: number) => f.reduce((s, x) => s + clamp(x - t, lo, hi), 0);
  const bps = [...new Set(f.flatMap((x) => [x - lo, x - hi]).filter((t) => Number.isFinite(t)))].sort((a, b) => a - b);
  for (const t of bps) if (total(t) === target) return f.map((x) => clamp(x - t, lo, hi));
  // Largest breakpoint with total > target and smallest with total < target bracket the root.
  let ta = -Infinity;
  let tb = Infinity;
  for (const t of bps) {
    if (total(t) > target) ta = t;
    else if (tb === Infinity) tb = t;
  }
  const mid = ta === -Infinity ? (tb === Infinity ? 0 : tb - 1) : tb === Infinity ? ta + 1 : (ta + tb) / 2;
  // On (ta, tb) every coordinate is either free, or fixed at lo, or fixed at hi.
  let freeSum = 0;
  let nFree = 0;
  let fixed = 0;
  for (const x of f) {
    const v = x - mid;
    if (v <= lo) fixed += lo;
    else if (v >= hi) fixed += hi;
    else {
      freeSum += x;
      nFree++;
    }
  }
  if (nFree === 0) return f.map((x) => clamp(x - mid, lo, hi));
  const theta = (freeSum + fixed - target) / nFree;
  return f.map((x) => clamp(x - theta, lo, hi));
}

/**
 * Steps 4-6 over the criteria listed in `idx` (the K_g present ones, or all K in the stream
 * scope): focal coefficients from saturation `sat`, bounds, mix. `bn` are the base weights
 * normalized over `idx`. Returns f over all K (0 outside idx).
 * Guarded criteria (spec "Guarded criteria"): the fixed ones F keep bn; the others share
 * 1 - B_F by step 4's formula and only they are projected onto the bounds, with sum 1 - B_F.
 * CHOICE: the feasibility fallback for the others uses (1 - B_F) / n where the spec's step 5 has
 * 1 / K_g (the same rule with the target they must sum to).
 */
export function focalWeights(cfg: ResolvedConfig, idx: number[], bn: number[], sat: number[]): number[] {
  const K = cfg.K;
  const out = new Array<number>(K).fill(0);
  if (idx.length === 0) return out;
  const fixedIdx = idx.filter((k) => cfg.fixed[k]);
  const free = idx.filter((k) => !cfg.fixed[k]);
  const BF = fixedIdx.reduce((a, k) => a + bn[k], 0);
  for (const k of fixedIdx) out[k] = bn[k];
  let f: number[];
  if (cfg.gamma === 0) {
    f = free.map((k) => bn[k]); // (.)^0 = 1: the static weights exactly
  } else {
    const num = free.map((k) => bn[k] * Math.pow(1 - sat[k] + cfg.eps, cfg.gamma));
    const den = num.reduce((a, b) => a + b, 0);
    f = den === 0 ? free.map((k) => bn[k]) : num.map((x) => ((1 - BF) * x) / den);
  }
  if (free.length > 0 && (cfg.minWeight !== undefined || cfg.maxWeight !== undefined)) {
    const target = 1 - BF;
    let lo = cfg.minWeight ?? 0;
    let hi = cfg.maxWeight ?? Infinity;
    const n = free.length;
    if (!(lo * n <= target && target <= hi * n)) {
      lo = Math.min(lo, target / n);
      hi = Math.max(hi, target / n);
    }
    f = projectBox(f, lo, hi, target);
  }
  free.forEach((k, j) => (out[k] = f[j]));
  if (cfg.mix !== 1) for (const k of idx) out[k] = cfg.mix * out[k] + (1 - cfg.mix) * bn[k];
  return out;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
function stdUnbiased(xs: number[]): number {
  const m = mean(xs);
  return Math.sqrt(xs.reduce((a, x) => a + (x - m) * (x - m), 0) / (xs.length - 1));
}

export function oracleScore(input: OracleInput): OracleOutput {
  const cfg = resolveConfig(input);
  const { K } = cfg;
  const sizes = Array.from(input.groupSizes, Number);
  const G = sizes.length;
  const n = sizes.reduce((a, b) => a + b, 0);
  if (input.scores.length !== n * K) throw new Error("oracle: scores length != n*K");
  for (const s of sizes) if (!Number.isInteger(s) || s < 0) throw new Error("oracle: bad group size");
  if (input.valid && input.valid.length !== n) throw new Error("oracle: valid length");
  const inst = input.weights ? Array.from(input.weights, Number) : undefined;
  if (inst) {
    if (cfg.scope === "stream") throw new Error("oracle: instance weights need the group scope");
    if (inst.length !== G * K) throw new Error("oracle: weights length != G*K");
    for (const w of inst) if (!Number.isFinite(w) || w < 0) throw new Error("oracle: bad instance weight");
  }
  const stream = cfg.scope === "stream";
  const prev: OracleState = input.state
    ? { sbar: [...input.state.sbar], seen: [...input.state.seen] }
    : { sbar: new Array(K).fill(0), seen: new Array(K).fill(false) };

  // Normalized scores.
  const u: number[][] = [];
  for (let i = 0; i < n; i++) {
    const row: number[] = [];
    for (let k = 0; k < K; k++) row.push(normalize(cfg, k, Number(input.scores[i * K + k])));
    u.push(row);
  }
  const starts: number[] = [];
  {
    let s = 0;
    for (const m of sizes) {
      starts.push(s);
      s += m;
    }
  }
  const groupOf: number[] = [];
  sizes.forEach((m, g) => {
    for (let j = 0; j < m; j++) groupOf.push(g);
  });
  // Base weights of group g (unnormalized).
  const baseOf = (g: number): number[] => (inst ? inst.slice(g * K, g * K + K) : cfg.absW);

  // Step 8 validity and step 1 direct reward.
  const rowValid: boolean[] = [];
  const direct: number[] = new Array(n).fill(NaN);
  for (let i = 0; i < n; i++) {
    const b = baseOf(groupOf[i]);
    const masked = input.valid ? !input.valid[i] : false;
    let wsum = 0;
    let acc = 0;
    let present = 0;
    for (let k = 0; k < K; k++) {
      if (Number.isNaN(u[i][k])) continue;
      present++;
      wsum += b[k];
      acc += b[k] * u[i][k];
    }
    const ok = !masked && present > 0 && wsum > 0;
    rowValid.push(ok);
    if (ok) direct[i] = acc / wsum;
  }

  // Steps 2-3 per group (also the input of the stream estimate).
  const presentG: boolean[][] = []; // criterion k present in a valid row of group g
  const satG: number[][] = []; // NaN = none
  for (let g = 0; g < G; g++) {
    const rows: number[] = [];
    for (let i = starts[g]; i < starts[g] + sizes[g]; i++) if (rowValid[i]) rows.push(i);
    const pres = new Array<boolean>(K).fill(false);
    for (const i of rows) for (let k = 0; k < K; k++) if (!Number.isNaN(u[i][k])) pres[k] = true;
    presentG.push(pres);
    const sat = new Array<number>(K).fill(NaN);
    if (rows.length > 0) {
      const dmax = Math.max(...rows.map((i) => direct[i]));
      const p = rows.map((i) => Math.exp((direct[i] - dmax) / cfg.tau));
      for (let k = 0; k < K; k++) {
        let num = 0;
        let den = 0;
        rows.forEach((i, j) => {
          if (Number.isNaN(u[i][k])) return;
          num += p[j] * u[i][k];
          den += p[j];
        });
        if (den > 0) sat[k] = clamp(num / den, 0, 1);
      }
    }
    satG.push(sat);
  }

  // Normalized base weights over a set of criteria.
  const normOver = (b: number[], use: boolean[]): number[] => {
    let s = 0;
    for (let k = 0; k < K; k++) if (use[k]) s += b[k];
    return b.map((x, k) => (use[k] && s > 0 ? x / s : 0));
  };

  const rewards: number[] = new Array(n).fill(NaN);
  let weightsOut: number[];
  let satOut: number[];
  const next: OracleState = { sbar: [...prev.sbar], seen: [...prev.seen] };

  // Focal reward of a valid row given f over K (step 7 and decision (b)).
  const focalRow = (i: number, f: number[]): number => {
    let num = 0;
    let den = 0;
    for (let k = 0; k < K; k++) {
      if (Number.isNaN(u[i][k])) continue;
      num += f[k] * u[i][k];
      den += f[k];
    }
    return den === 0 ? direct[i] : num / den;
  };

  if (stream) {
    // Batch estimate: mean over groups having s_k; EMA with first-update rule.
    for (let k = 0; k < K; k++) {
      const xs = satG.map((s) => s[k]).filter((x) => !Number.isNaN(x));
      if (xs.length === 0) continue;
      const shat = mean(xs);
      if (!next.seen[k]) {
        next.sbar[k] = shat;
        next.seen[k] = true;
      } else {
        next.sbar[k] = cfg.decay * next.sbar[k] + (1 - cfg.decay) * shat;
      }
    }
    const all = new Array<boolean>(K).fill(true);
    const bn = normOver(cfg.absW, all);
    const idx = [...Array(K).keys()];
    // CHOICE: weighted-mean / gdpo in the stream scope report the normalized base weights.
    const f = cfg.method === "focal" ? focalWeights(cfg, idx, bn, next.sbar.map((s, k) => (next.seen[k] ? s : 0))) : bn;
    weightsOut = f;
    satOut = next.sbar.map((s, k) => (next.seen[k] ? s : NaN));
    for (let i = 0; i < n; i++) if (rowValid[i]) rewards[i] = cfg.method === "focal" ? focalRow(i, f) : direct[i];
  } else {
    weightsOut = [];
    satOut = [];
    for (let g = 0; g < G; g++) {
      let pres = presentG[g];
      if (input.constant === "drop" && cfg.method === "focal") {
        // A criterion whose values over the group's valid rows spread <= 1e-6 (or that has fewer
        // than two of them) is left out, unless fixed; if every present one is constant, f = b.
        const constant = pres.map((p, k) => {
          const xs: number[] = [];
          for (let i = starts[g]; i < starts[g] + sizes[g]; i++) if (rowValid[i] && !Number.isNaN(u[i][k])) xs.push(u[i][k]);
          return !p || xs.length < 2 || Math.max(...xs) - Math.min(...xs) <= 1e-6;
        });
        if (pres.some((p, k) => p && !constant[k])) pres = pres.map((p, k) => p && (!constant[k] || cfg.fixed[k]));
        else pres = pres.map(() => false); // f = b below, over every present criterion
      }
      const allConstant = pres.every((p) => !p) && presentG[g].some((p) => p);
      if (allConstant) pres = presentG[g];
      const bn = normOver(baseOf(g), pres);
      const idx = [...Array(K).keys()].filter((k) => pres[k]);
      const f = cfg.method === "focal" && !allConstant ? focalWeights(cfg, idx, bn, satG[g]) : bn;
      weightsOut.push(...f);
      satOut.push(...satG[g]);
      for (let i = starts[g]; i < starts[g] + sizes[g]; i++) {
        if (rowValid[i]) rewards[i] = cfg.method === "focal" ? focalRow(i, f) : direct[i];
      }
    }
  }

  // Step 8: invalid rows take the group mean, else the batch mean, else 0.
  const allValid: number[] = [];
  for (let i = 0; i < n; i++) if (rowValid[i]) allValid.push(rewards[i]);
  const batchMean = allValid.length ? mean(allValid) : 0;
  for (let g = 0; g < G; g++) {
    const vs: number[] = [];
    for (let i = starts[g]; i < starts[g] + sizes[g]; i++) if (rowValid[i]) vs.push(rewards[i]);
    const fill = vs.length ? mean(vs) : batchMean;
    for (let i = starts[g]; i < starts[g] + sizes[g]; i++) if (!rowValid[i]) rewards[i] = fill;
  }

  // Step 9: advantages.
  const advantages: number[] = new Array(n).fill(0);
  const groupStd: number[] = new Array(n).fill(NaN);
  const gdpoMinCritStd: number[] = new Array(n).fill(NaN);
  let gdpoAStd = NaN;
  for (let g = 0; g < G; g++) {
    const rows: number[] = [];
    for (let i = starts[g]; i < starts[g] + sizes[g]; i++) if (rowValid[i]) rows.push(i);
    const m = rows.length;
    if (m < 2) continue;
    const rs = rows.map((i) => rewards[i]);
    const mu = mean(rs);
    const sd = stdUnbiased(rs);
    const sum = rs.reduce((a, b) => a + b, 0);
    for (const i of rows) {
      groupStd[i] = sd;
      if (cfg.method === "gdpo" || cfg.method === "sa-mrpo") continue;
      switch (cfg.advantage) {
        case "grpo":
          advantages[i] = (rewards[i] - mu) / (sd + cfg.advEps);
          break;
        case "dr-grpo":
          advantages[i] = rewards[i] - mu;
          break;
        case "rloo":
          advantages[i] = rewards[i] - (sum - rewards[i]) / (m - 1);
          break;
        case "none":
          break;
      }
    }
  }
  if (cfg.method === "gdpo" || cfg.method === "sa-mrpo") {
    // sa-mrpo: batch saturation over the valid rows where k is present; w_k = b_k (1 - s_k)^gamma.
    const factor = new Array<number>(K).fill(1);
    if (cfg.method === "sa-mrpo") {
      for (let k = 0; k < K; k++) {
        const xs: number[] = [];
        for (let i = 0; i < n; i++) if (rowValid[i] && !Number.isNaN(u[i][k])) xs.push(u[i][k]);
        if (xs.length > 0) factor[k] = Math.pow(1 - mean(xs), cfg.gamma);
      }
    }
    // CHOICE: gdpo defines its own advantage; the advantage option does not change it.
    const a: number[] = new Array(n).fill(NaN);
    for (let g = 0; g < G; g++) {
      const rows: number[] = [];
      for (let i = starts[g]; i < starts[g] + sizes[g]; i++) if (rowValid[i]) rows.push(i);
      // Normalized once over the whole (instance) rubric, never over the group's criteria (spec).
      const bn = normOver(stream ? cfg.absW : baseOf(g), new Array(K).fill(true));
      for (const i of rows) a[i] = 0;
      for (let k = 0; k < K; k++) {
        const rk = rows.filter((i) => !Number.isNaN(u[i][k]));
        if (rk.length < 2) continue;
        const xs = rk.map((i) => u[i][k]);
        const mu = mean(xs);
        const sd = stdUnbiased(xs);
        for (const i of rk) {
          a[i] += bn[k] * factor[k] * ((u[i][k] - mu) / (sd + cfg.advEps));
          gdpoMinCritStd[i] = Number.isNaN(gdpoMinCritStd[i]) ? sd + cfg.advEps : Math.min(gdpoMinCritStd[i], sd + cfg.advEps);
        }
      }
    }
    const vs: number[] = [];
    for (let i = 0; i < n; i++) if (rowValid[i]) vs.push(a[i]);
    if (vs.length >= 2) {
      const mu = mean(vs);
      const sd = stdUnbiased(vs);
      gdpoAStd = sd;
      for (let i = 0; i < n; i++) if (rowValid[i]) advantages[i] = (a[i] - mu) / (sd + cfg.advEps);
    }
  }

  return {
    rewards,
    direct,
    advantages,
    weights: weightsOut,
    saturation: satOut,
    state: stream ? next : prev,
    rowValid,
    debug: { groupStd, gdpoMinCritStd, gdpoAStd },
  };
}

/**
 * scoreOne: in the stream scope, the reward with the current weights (from `state`, not updated);
 * in the group scope, the row scored as a group of one. `row` is K raw scores (NaN = absent).
 */
export function oracleScoreOne(config: OracleConfig, row: ArrayLike<number>, state?: OracleState): number {
  const cfg = resolveConfig(config);
  if (cfg.scope !== "stream" || cfg.method !== "focal") {
    return oracleScore({ ...config, scores: Array.from(row, Number), groupSizes: [1], state }).rewards[0];
  }
  const K = cfg.K;
  const st = state ?? { sbar: new Array(K).fill(0), seen: new Array(K).fill(false) };
  const bn = cfg.absW.map((w) => w / cfg.absW.reduce((a, b) => a + b, 0));
  const f = focalWeights(cfg, [...Array(K).keys()], bn, st.sbar.map((s, k) => (st.seen[k] ? s : 0)));
  let num = 0;
  let den = 0;
  let dn = 0;
  let dd = 0;
  for (let k = 0; k < K; k++) {
    const x = normalize(cfg, k, Number(row[k]));
    if (Number.isNaN(x)) continue;
    num += f[k] * x;
    den += f[k];
    dn += bn[k] * x;
    dd += bn[k];
  }
  if (dd === 0) return NaN; // invalid row: no reward of its own
  return den === 0 ? dn / dd : num / den;
}

/** Stream weights (K) from a state without updating it. */
export function oracleStreamWeights(config: OracleConfig, state?: OracleState): number[] {
  const cfg = resolveConfig(config);
  const K = cfg.K;
  const st = state ?? { sbar: new Array(K).fill(0), seen: new Array(K).fill(false) };
  const tot = cfg.absW.reduce((a, b) => a + b, 0);
  const bn = cfg.absW.map((w) => w / tot);
  return focalWeights(cfg, [...Array(K).keys()], bn, st.sbar.map((s, k) => (st.seen[k] ? s : 0)));
}
