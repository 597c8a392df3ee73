/**
 * `focal-reward replay`: stream a reward log step by step through several methods and collect what the
 * report shows. Memory is bounded: per step, the step itself; overall, O(methods x K) running sums,
 * per-step series downsampled to at most `maxPoints` buckets, and a fixed number of example groups.
 */
import type { Criterion, EngineOptions, Rubric, ScoreResult } from "../types.js";
import { createEngine } from "../index.js";
import { methodOptions } from "../cli/common.js";
import type { Step } from "../log/step.js";

export interface ReplayMethod {
  key: string;
  label: string;
  options: Partial<EngineOptions>;
}

const LABELS: Record<string, string> = {
  focal: "focal (group scope)",
  "focal-stream": "focal (stream scope)",
  "weighted-mean": "weighted mean",
  gdpo: "GDPO",
};

/** A comma-separated list of methods, each with its own options after colons (as for compare). */
export function parseMethods(list: string): ReplayMethod[] {
  const keys = list.split(",").map((s) => s.trim()).filter(Boolean);
  if (keys.length === 0) throw new Error("--methods: empty list");
  const out: ReplayMethod[] = [];
  for (const k of keys) {
    if (out.some((o) => o.key === k)) throw new Error(`--methods: '${k}' given twice`);
    out.push({ key: k, label: LABELS[k] ?? k, options: methodOptions(k) });
  }
  return out;
}

/** Per-step values averaged into at most `cap` buckets (adjacent buckets merge when full). */
export class Downsampler {
  private width = 1;
  private xs: number[] = [];
  private counts: number[] = [];
  private sums: Float64Array[] = [];
  private ns: Float64Array[] = [];
  constructor(readonly cols: number, readonly cap = 400) {}

  push(x: number, values: ArrayLike<number>): void {
    let b = this.xs.length - 1;
    if (b < 0 || this.counts[b]! >= this.width) {
      this.xs.push(0);
      this.counts.push(0);
      this.sums.push(new Float64Array(this.cols));
      this.ns.push(new Float64Array(this.cols));
      b++;
    }
    this.xs[b]! += x;
    this.counts[b]!++;
    const s = this.sums[b]!, n = this.ns[b]!;
    for (let c = 0; c < this.cols; c++) {
      const v = values[c]!;
      if (Number.isFinite(v)) {
        s[c]! += v;
        n[c]!++;
      }
    }
    if (this.xs.length > this.cap) this.halve();
  }

  private halve(): void {
    const xs: number[] = [], counts: number[] = [], sums: Float64Array[] = [], ns: Float64Array[] = [];
    for (let i = 0; i < this.xs.length; i += 2) {
      const j = Math.min(i + 1, this.xs.length - 1);
      const both = j !== i;
      xs.push(this.xs[i]! + (both ? this.xs[j]! : 0));
      counts.push(this.counts[i]! + (both ? this.counts[j]! : 0));
      const s = Float64Array.from(this.sums[i]!), n = Float64Array.from(this.ns[i]!);
      if (both) for (let c = 0; c < this.cols; c++) { s[c]! += this.sums[j]![c]!; n[c]! += this.ns[j]![c]!; }
      sums.push(s);
      ns.push(n);
    }
    this.xs = xs; this.counts = counts; this.sums = sums; this.ns = ns;
    this.width *= 2;
  }

  /** Column c as [x, mean] pairs (x = mean step index of the bucket). */
  series(c: number): [number, number][] {
    return this.xs.map((x, b) => [x / this.counts[b]!, this.ns[b]![c]! > 0 ? this.sums[b]![c]! / this.ns[b]![c]! : NaN]);
  }

  get points(): number {
    return this.xs.length;
  }
}

export interface MethodSummary {
  key: string;
  label: string;
  /** Mean over steps of each scalar metric the engine reported. */
  metrics: Record<string, number>;
  /** Mean weight per criterion over the groups where it was present. */
  weight: number[];
  /** Mean saturation per criterion (NaN: the method reports none). */
  saturation: number[];
  /** Mean |advantage| over valid rows; share of groups (>= 2 valid rows) whose advantages are all 0. */
  meanAbsAdvantage: number;
  fracZeroAdvantageGroups: number;
  /** Per step: per-criterion weight and saturation (when K <= PER_CRITERION_MAX), and summaries. */
  perCriterion: Downsampler | null;
  /** Columns: min weight, max weight, mean saturation (over present criteria, mean over groups). */
  summary: Downsampler;
}

export interface PairSummary {
  a: string;
  b: string;
  groups: number;
  meanTau: number;
  /** Share of groups where the orders differ at all (tau < 1) / where the top row differs. */
  fracOrderDiffers: number;
  fracTopDiffers: number;
  /** Histogram of Kendall tau-b over groups, 20 bins on [-1, 1]. */
  tauHist: number[];
}

export interface DisagreementExample {
  step: string;
  group: string;
  /** Lowest tau over the method pairs, and which pair. */
  tau: number;
  pair: [string, string];
  lines: number[];
  direct: number[];
  /** Rank (1 = best) of each row under each method, in method order. */
  ranks: number[][];
}

export interface ReplayResult {
  source: string;
  rows: number;
  validRows: number;
  steps: number;
  groups: number;
  criteria: string[];
  /** Static weight per criterion (|w| normalized over the criteria present in a group, mean over groups). */
  staticWeight: number[];
  /** Per criterion: rows judged, mean and std of the normalized score u, share of groups where u is constant. */
  judged: number[];
  uMean: number[];
  uStd: number[];
  fracConstant: number[];
  methods: MethodSummary[];
  pairs: PairSummary[];
  examples: DisagreementExample[];
  /** What the ranking compares: "advantage" or "reward". */
  rankBy: "advantage" | "reward";
  backend: string;
  seconds: number;
  notes: string[];
}

export const PER_CRITERION_MAX = 16;
const EXAMPLES = 8;

export interface ReplayOptions {
  rubric: Rubric | readonly Criterion[];
  methods: readonly ReplayMethod[];
  /** Shared engine options (gamma, eps, tau, advantage, backend, ...). */
  engine?: Partial<EngineOptions>;
  source?: string;
  maxPoints?: number;
  onStep?: (rows: number, steps: number) => void;
}

/** Kendall tau-b between two score vectors (ties handled); NaN if either is constant. */
export function kendallTauB(x: ArrayLike<number>, y: ArrayLike<number>): number {
  const n = x.length;
  let conc = 0, disc = 0, tx = 0, ty = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = Math.sign(x[i]! - x[j]!);
      const dy = Math.sign(y[i]! - y[j]!);
      if (dx === 0 && dy === 0) continue;
      if (dx === 0) tx++;
      else if (dy === 0) ty++;
      else if (dx === dy) conc++;
      else disc++;
    }
  }
  const den = Math.sqrt((conc + disc + tx) * (conc + disc + ty));
  return den === 0 ? NaN : (conc - disc) / den;
}

function ranksOf(v: readonly number[]): number[] {
  // 1 = highest; ties share the best rank.
  return v.map((x) => 1 + v.filter((y) => y > x).length);
}

export async function replay(steps: AsyncIterable<Step>, o: ReplayOptions): Promise<ReplayResult> {
  const t0 = performance.now();
  const crit = "criteria" in o.rubric ? o.rubric.criteria : (o.rubric as readonly Criterion[]);
  const K = crit.length;
  const ids = crit.map((c) => c.id);
  const lo = Float64Array.from(crit, (c) => c.scale?.[0] ?? 0);
  const hi = Float64Array.from(crit, (c) => c.scale?.[1] ?? 1);
  const inv = Float64Array.from(crit, (c) => 1 / ((c.scale?.[1] ?? 1) - (c.scale?.[0] ?? 0)));
  const pen = Uint8Array.from(crit, (c) => ((c.weight ?? 1) < 0 || c.polarity === "penalty" ? 1 : 0));
  const bw = Float64Array.from(crit, (c) => Math.abs(c.weight ?? 1));
  const engines: Awaited<ReturnType<typeof createEngine>>[] = [];
  for (const m of o.methods) engines.push(await createEngine({ rubric: o.rubric, ...o.engine, ...m.options }));
  const M = o.methods.length;
  const rankBy: "advantage" | "reward" = o.engine?.advantage === "none" ? "reward" : "advantage";
  const cap = o.maxPoints ?? 400;
  const perCrit = K <= PER_CRITERION_MAX;

  const judged = new Float64Array(K), uSum = new Float64Array(K), uSq = new Float64Array(K);
  const constG = new Float64Array(K), presentG = new Float64Array(K), staticSum = new Float64Array(K);
  const acc = o.methods.map((m) => ({
    key: m.key,
    label: m.label,
    metricSum: new Map<string, [number, number]>(),
    wSum: new Float64Array(K), wN: new Float64Array(K), sSum: new Float64Array(K), sN: new Float64Array(K),
    absAdv: 0, advRows: 0, zeroGroups: 0, groupsWith2: 0,
    perCriterion: perCrit ? new Downsampler(2 * K, cap) : null,
    summary: new Downsampler(3, cap),
  }));
  const pairs: PairSummary[] = [];
  for (let a = 0; a < M; a++) for (let b = a + 1; b < M; b++) pairs.push({ a: o.methods[a]!.key, b: o.methods[b]!.key, groups: 0, meanTau: 0, fracOrderDiffers: 0, fracTopDiffers: 0, tauHist: new Array(20).fill(0) });
  const examples: DisagreementExample[] = [];
  let rows = 0, validRows = 0, nSteps = 0, nGroups = 0, clamped = 0;
  const notes: string[] = [];

  const present = new Uint8Array(0);
  let presentBuf = present;
  const rowVals = new Float64Array(2 * K);
  for await (const st of steps) {
    if (st.criteria.length !== K || st.criteria.some((c, k) => c !== ids[k])) throw new Error("step criteria do not match the rubric");
    const G = st.groupSizes.length;
    const n = st.valid.length;
    const S = st.scores;
    if (presentBuf.length < G * K) presentBuf = new Uint8Array(G * K);
    presentBuf.fill(0, 0, G * K);
    // Data diagnostics (independent of the method).
    const valid = st.valid;
    for (let g = 0, s0 = 0; g < G; s0 += st.groupSizes[g]!, g++) {
      const end = s0 + st.groupSizes[g]!;
      let bsum = 0;
      for (let k = 0; k < K; k++) {
        const l = lo[k]!, h = hi[k]!, iv = inv[k]!, p = pen[k]!;
        let first = NaN, constant = true, cnt = 0, su = 0, sq = 0;
        for (let i = s0; i < end; i++) {
          if (valid[i] === 0) continue;
          const raw = S[i * K + k]!;
          if (raw !== raw) continue; // NaN
          if (raw < l || raw > h) clamped++;
          let u = (raw - l) * iv;
          u = u < 0 ? 0 : u > 1 ? 1 : u;
          if (p) u = 1 - u;
          su += u;
          sq += u * u;
          if (cnt === 0) first = u;
          else if (u !== first) constant = false;
          cnt++;
        }
        if (cnt > 0) {
          judged[k]! += cnt;
          uSum[k]! += su;
          uSq[k]! += sq;
          presentBuf[g * K + k] = 1;
          presentG[k]!++;
          bsum += bw[k]!;
          if (cnt >= 2 && constant) constG[k]!++;
        }
      }
      if (bsum > 0) for (let k = 0; k < K; k++) if (presentBuf[g * K + k]) staticSum[k]! += bw[k]! / bsum;
    }
    for (let i = 0; i < n; i++) if (st.valid[i]) validRows++;
    const outs: ScoreResult[] = engines.map((e) => e.score(st.scores, st.groupSizes, { valid: st.valid }));
    // Per-method weights, saturation, metrics, advantages.
    outs.forEach((out, mi) => {
      const a = acc[mi]!;
      const rowsW = Math.floor(out.weights.length / K);
      const groupScope = engines[mi]!.scope !== "stream" && rowsW === G;
      rowVals.fill(NaN);
      const wStep = new Float64Array(K), wStepN = new Float64Array(K), sStep = new Float64Array(K), sStepN = new Float64Array(K);
      let minW = 0, maxW = 0, satMean = 0, nG = 0, satN = 0;
      for (let r = 0; r < rowsW; r++) {
        let mn = Infinity, mx = -Infinity;
        for (let k = 0; k < K; k++) {
          const on = groupScope ? presentBuf[r * K + k] === 1 : anyPresent(presentBuf, G, K, k);
          if (!on) continue;
          const w = out.weights[r * K + k]!;
          const s = out.saturation[r * K + k]!;
          wStep[k]! += w; wStepN[k]!++;
          if (Number.isFinite(s)) { sStep[k]! += s; sStepN[k]!++; satMean += s; satN++; }
          mn = Math.min(mn, w); mx = Math.max(mx, w);
        }
        if (mn !== Infinity) { minW += mn; maxW += mx; nG++; }
      }
      for (let k = 0; k < K; k++) {
        if (wStepN[k]! > 0) { a.wSum[k]! += wStep[k]!; a.wN[k]! += wStepN[k]!; rowVals[k] = wStep[k]! / wStepN[k]!; }
        if (sStepN[k]! > 0) { a.sSum[k]! += sStep[k]!; a.sN[k]! += sStepN[k]!; rowVals[K + k] = sStep[k]! / sStepN[k]!; }
      }
      a.perCriterion?.push(nSteps, rowVals);
      a.summary.push(nSteps, [nG ? minW / nG : NaN, nG ? maxW / nG : NaN, satN ? satMean / satN : NaN]);
      for (const [key, v] of Object.entries(out.metrics)) {
        if (key.startsWith("rewards/") || !Number.isFinite(v)) continue;
        const e = a.metricSum.get(key);
        if (e) { e[0] += v; e[1]++; } else if (a.metricSum.size < 64) a.metricSum.set(key, [v, 1]);
      }
      for (let g = 0, s0 = 0; g < G; s0 += st.groupSizes[g]!, g++) {
        let nv = 0, allZero = true;
        for (let i = s0; i < s0 + st.groupSizes[g]!; i++) {
          if (!st.valid[i] || Number.isNaN(out.direct[i]!)) continue;
          nv++;
          const adv = out.advantages[i]!;
          a.absAdv += Math.abs(adv); a.advRows++;
          if (adv !== 0) allZero = false;
        }
        if (nv >= 2) { a.groupsWith2++; if (allZero) a.zeroGroups++; }
      }
    });
    // Rankings within groups.
    for (let g = 0, s0 = 0; g < G; s0 += st.groupSizes[g]!, g++) {
      const idx: number[] = [];
      for (let i = s0; i < s0 + st.groupSizes[g]!; i++) if (st.valid[i] && !Number.isNaN(outs[0]!.direct[i]!)) idx.push(i);
      if (idx.length < 2) continue;
      const vals = outs.map((out) => idx.map((i) => (rankBy === "advantage" ? out.advantages[i]! : out.rewards[i]!)));
      let worst = Infinity, worstPair: [string, string] = ["", ""];
      let p = 0;
      for (let a = 0; a < M; a++) {
        for (let b = a + 1; b < M; b++, p++) {
          const tau = kendallTauB(vals[a]!, vals[b]!);
          if (Number.isNaN(tau)) continue;
          const ps = pairs[p]!;
          ps.groups++;
          ps.meanTau += tau;
          if (tau < 1 - 1e-12) ps.fracOrderDiffers++;
          ps.tauHist[Math.min(19, Math.max(0, Math.floor((tau + 1) * 10)))]!++;
          const topA = Math.max(...vals[a]!), topB = Math.max(...vals[b]!);
          const setA = idx.filter((_, j) => vals[a]![j] === topA), setB = idx.filter((_, j) => vals[b]![j] === topB);
          if (!setA.some((i) => setB.includes(i))) ps.fracTopDiffers++;
          if (tau < worst) { worst = tau; worstPair = [o.methods[a]!.key, o.methods[b]!.key]; }
        }
      }
      if (worst < 1 - 1e-12 && (examples.length < EXAMPLES || worst < examples[examples.length - 1]!.tau)) {
        const lim = idx.slice(0, 32);
        examples.push({
          step: st.step === undefined ? "–" : String(st.step),
          group: typeof st.groups[g] === "string" ? (st.groups[g] as string) : JSON.stringify(st.groups[g]),
          tau: worst,
          pair: worstPair,
          lines: lim.map((i) => st.lines[i]!),
          direct: lim.map((i) => outs[0]!.direct[i]!),
          ranks: vals.map((v) => ranksOf(v.slice(0, lim.length))),
        });
        examples.sort((x, y) => x.tau - y.tau);
        if (examples.length > EXAMPLES) examples.pop();
      }
    }
    rows += n;
    nGroups += G;
    nSteps++;
    o.onStep?.(rows, nSteps);
  }
  if (nSteps === 0) throw new Error("empty input: no rows");
  if (clamped > 0) notes.push(`${clamped} scores lie outside their criterion's scale and were clamped into it (without a rubric every scale is [0, 1]: pass --rubric with the right scales).`);
  if (nSteps === 1 && rows > 1) notes.push("The log has a single step (no `step` field, or one value): per-step charts show one point per series.");
  if (!perCrit) notes.push(`${K} criteria: per-step charts show summaries (min/max weight, mean saturation) instead of one line per criterion.`);
  for (const p of pairs) {
    if (p.groups > 0) { p.meanTau /= p.groups; p.fracOrderDiffers /= p.groups; p.fracTopDiffers /= p.groups; } else p.meanTau = NaN;
  }
  const methods: MethodSummary[] = acc.map((a) => ({
    key: a.key,
    label: a.label,
    metrics: Object.fromEntries([...a.metricSum].map(([k, [s, c]]) => [k, s / c])),
    weight: Array.from(a.wSum, (s, k) => (a.wN[k]! > 0 ? s / a.wN[k]! : NaN)),
    saturation: Array.from(a.sSum, (s, k) => (a.sN[k]! > 0 ? s / a.sN[k]! : NaN)),
    meanAbsAdvantage: a.advRows ? a.absAdv / a.advRows : NaN,
    fracZeroAdvantageGroups: a.groupsWith2 ? a.zeroGroups / a.groupsWith2 : NaN,
    perCriterion: a.perCriterion,
    summary: a.summary,
  }));
  return {
    source: o.source ?? "",
    rows, validRows, steps: nSteps, groups: nGroups,
    criteria: ids,
    staticWeight: Array.from(staticSum, (s, k) => (presentG[k]! > 0 ? s / presentG[k]! : NaN)),
    judged: Array.from(judged),
    uMean: Array.from(uSum, (s, k) => (judged[k]! > 0 ? s / judged[k]! : NaN)),
    uStd: Array.from(uSq, (s, k) => (judged[k]! > 1 ? Math.sqrt(Math.max(0, (s - (uSum[k]! * uSum[k]!) / judged[k]!) / (judged[k]! - 1))) : NaN)),
    fracConstant: Array.from(constG, (c, k) => (presentG[k]! > 0 ? c / presentG[k]! : NaN)),
    methods,
    pairs,
    examples,
    rankBy,
    backend: engines[0]!.backend,
    seconds: (performance.now() - t0) / 1000,
    notes,
  };
}

function anyPresent(p: Uint8Array, G: number, K: number, k: number): boolean {
  for (let g = 0; g < G; g++) if (p[g * K + k]) return true;
  return false;
}
