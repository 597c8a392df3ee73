/**
 * `focal-reward replay`'s analysis: a reward log streamed step by step through several methods.
 * Every per-criterion and per-method statistic comes from Diagnostics (one per method, the only
 * per-criterion accumulator); on top of it, replay adds the per-step time series (downsampled)
 * and the ranking comparisons between methods. Memory is bounded: per step, the step itself;
 * overall, O(methods x K) sums, at most `maxPoints` buckets per series, a few example groups.
 */
import { createEngine } from "../index.js";
import { stepError, type Step } from "../log/step.js";
import { compileRubric } from "../rubric.js";
import type { Criterion, EngineOptions, Rubric, ScoreResult } from "../types.js";
import { Diagnostics, finite, prepare, type OutOfScaleCount, type PreparedCall } from "./diagnostics.js";
import type { ReplayMethod } from "./methods.js";
import { orderBits, pairCounts, PairBits } from "./pairs.js";

export type { ReplayMethod } from "./methods.js";

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
  /** Every diagnostic over the whole log (Diagnostics.metrics(): scalar and per-criterion). */
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
  /**
   * Per criterion (valid rows): rows judged, mean and std of the normalized score u, share of the
   * groups where u is constant (fewer than two values or all equal: no learning signal).
   */
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
  /** Criteria with scores outside their scale (clamped), with the counts. */
  outOfScale: OutOfScaleCount[];
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
  return tauB(x, 0, y, 0, x.length);
}

const tauBits = new PairBits();

/** kendallTauB of x[ox..ox+n) and y[oy..oy+n) (views without making them). */
function tauB(x: ArrayLike<number>, ox: number, y: ArrayLike<number>, oy: number, n: number): number {
  if (!finite(x, ox, n) || !finite(y, oy, n)) return tauSigns(x, ox, y, oy, n);
  const words = tauBits.fit(n, 2);
  orderBits(x, ox, n, tauBits.gt, tauBits.lt, 0);
  orderBits(y, oy, n, tauBits.gt, tauBits.lt, words);
  return tauOfBits(tauBits, 0, words, words);
}

/** tau-b of two vectors' pair bits (at words a and b). */
function tauOfBits(bits: PairBits, a: number, b: number, words: number): number {
  const c = bits.counts;
  pairCounts(bits.gt, bits.lt, a, b, words, c);
  return tau(c[0]!, c[1]!, c[2]!, c[3]!);
}

/** tauB where a value is NaN or infinite: Math.sign decides what such a pair counts as. */
function tauSigns(x: ArrayLike<number>, ox: number, y: ArrayLike<number>, oy: number, n: number): number {
  let conc = 0, disc = 0, tx = 0, ty = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[ox + i]!, yi = y[oy + i]!;
    for (let j = i + 1; j < n; j++) {
      const dx = Math.sign(xi - x[ox + j]!);
      const dy = Math.sign(yi - y[oy + j]!);
      if (dx === 0 && dy === 0) continue;
      if (dx === 0) tx++;
      else if (dy === 0) ty++;
      else if (dx === dy) conc++;
      else disc++;
    }
  }
  return tau(conc, disc, tx, ty);
}

/** tau-b from the pair counts: concordant, discordant, tied only in x, tied only in y. */
function tau(conc: number, disc: number, tx: number, ty: number): number {
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
  const rubric = compileRubric(crit);
  const K = crit.length;
  const ids = crit.map((c) => c.id);
  const engines: Awaited<ReturnType<typeof createEngine>>[] = [];
  for (const m of o.methods) engines.push(await createEngine({ ...o.engine, ...m.options, rubric: o.rubric, reuseOutputs: true }));
  const M = o.methods.length;
  const rankBy: "advantage" | "reward" = o.engine?.advantage === "none" ? "reward" : "advantage";
  const cap = o.maxPoints ?? 400;
  const perCrit = K <= PER_CRITERION_MAX;
  const threshold = o.engine?.threshold;
  const diags = o.methods.map(() => new Diagnostics(rubric, { threshold }));

  const acc = o.methods.map(() => ({
    perCriterion: perCrit ? new Downsampler(2 * K, cap) : null,
    summary: new Downsampler(3, cap),
  }));
  const pairs: PairSummary[] = [];
  for (let a = 0; a < M; a++) for (let b = a + 1; b < M; b++) pairs.push({ a: o.methods[a]!.key, b: o.methods[b]!.key, groups: 0, meanTau: 0, fracOrderDiffers: 0, fracTopDiffers: 0, tauHist: new Array(20).fill(0) });
  const examples: DisagreementExample[] = [];
  let rows = 0, validRows = 0, nSteps = 0, nGroups = 0;
  const notes: string[] = [];

  const rowVals = new Float64Array(2 * K);
  const scratch = new RankScratch();
  const wStep = new Float64Array(K), wStepN = new Float64Array(K), sStep = new Float64Array(K), sStepN = new Float64Array(K);
  let last: PreparedCall | undefined;
  for await (const st of steps) {
    if (st.criteria.length !== K || st.criteria.some((c, k) => c !== ids[k])) throw new Error("step criteria do not match the rubric");
    const G = st.groupSizes.length;
    const n = st.valid.length;
    const call = (last = prepare(rubric, st.scores, st.groupSizes, st.valid, last));
    const present = call.present;
    for (let i = 0; i < n; i++) if (st.valid[i]) validRows++;
    const outs: ScoreResult[] = engines.map((e, mi) => {
      try {
        return e.score(st.scores, st.groupSizes, { valid: st.valid });
      } catch (err) {
        throw stepError(st, err, `${o.methods[mi]!.key}: `);
      }
    });
    outs.forEach((out, mi) => {
      diags[mi]!.add(call, out);
      // The per-step series: weights and saturation averaged over the groups of the step.
      const a = acc[mi]!;
      const rowsW = Math.floor(out.weights.length / K);
      const groupScope = engines[mi]!.scope !== "stream" && rowsW === G;
      rowVals.fill(NaN);
      wStep.fill(0); wStepN.fill(0); sStep.fill(0); sStepN.fill(0);
      let minW = 0, maxW = 0, satMean = 0, nG = 0, satN = 0;
      for (let r = 0; r < rowsW; r++) {
        let mn = Infinity, mx = -Infinity;
        for (let k = 0; k < K; k++) {
          const on = groupScope ? present[r * K + k] === 1 : anyPresent(present, G, K, k);
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
        if (wStepN[k]! > 0) rowVals[k] = wStep[k]! / wStepN[k]!;
        if (sStepN[k]! > 0) rowVals[K + k] = sStep[k]! / sStepN[k]!;
      }
      a.perCriterion?.push(nSteps, rowVals);
      a.summary.push(nSteps, [nG ? minW / nG : NaN, nG ? maxW / nG : NaN, satN ? satMean / satN : NaN]);
    });
    rankings(st, outs, o.methods, rankBy, pairs, examples, scratch);
    rows += n;
    nGroups += G;
    nSteps++;
    o.onStep?.(rows, nSteps);
  }
  if (nSteps === 0) throw new Error("empty input: no rows");
  // Reported apart from the notes: the CLI warns once per criterion, the report lists them.
  const outOfScale = diags[0]!.outOfScale();
  if (nSteps === 1 && rows > 1) notes.push("The log has a single step (no `step` field, or one value): per-step charts show one point per series.");
  if (!perCrit) notes.push(`${K} criteria: per-step charts show summaries (min/max weight, mean saturation) instead of one line per criterion.`);
  for (const p of pairs) {
    if (p.groups > 0) { p.meanTau /= p.groups; p.fracOrderDiffers /= p.groups; p.fracTopDiffers /= p.groups; } else p.meanTau = NaN;
  }
  const data = diags[0]!.criteria(); // the data's own statistics: the same for every method
  const methods: MethodSummary[] = o.methods.map((m, mi) => {
    const c = diags[mi]!.criteria();
    const metrics = diags[mi]!.metrics();
    return {
      key: m.key,
      label: m.label,
      metrics,
      weight: c.weight,
      saturation: c.saturation,
      meanAbsAdvantage: metrics["focal/mean_abs_advantage"]!,
      fracZeroAdvantageGroups: diags[mi]!.fracZeroAdvantageGroups(),
      perCriterion: acc[mi]!.perCriterion,
      summary: acc[mi]!.summary,
    };
  });
  return {
    source: o.source ?? "",
    rows, validRows, steps: nSteps, groups: nGroups,
    criteria: ids,
    staticWeight: data.staticWeight,
    judged: data.judged,
    uMean: data.mean,
    uStd: data.std,
    fracConstant: data.fracConstant,
    methods,
    pairs,
    examples,
    rankBy,
    backend: engines[0]!.backend,
    seconds: (performance.now() - t0) / 1000,
    notes,
    outOfScale,
  };
}

/** Per-group scratch of rankings(), grown to the largest group (nothing allocated per group). */
class RankScratch {
  idx = new Int32Array(0);
  vals = new Float64Array(0);
  tops = new Float64Array(0);
  /** Per method: 1 when its values in the group are all finite (their pair bits are in `bits`). */
  finite = new Uint8Array(0);
  readonly bits = new PairBits();
  fit(n: number, M: number): void {
    if (this.idx.length >= n && this.tops.length >= M) return;
    const cap = Math.max(n, 2 * this.idx.length);
    this.idx = new Int32Array(cap);
    this.vals = new Float64Array(cap * M);
    this.tops = new Float64Array(M);
    this.finite = new Uint8Array(M);
  }
}

/** Within each group, how the methods' orders of the rollouts differ (pairs) and the worst cases (examples). */
function rankings(st: Step, outs: ScoreResult[], methods: readonly ReplayMethod[], rankBy: "advantage" | "reward", pairs: PairSummary[], examples: DisagreementExample[], sc: RankScratch): void {
  const M = methods.length;
  if (M < 2) return;
  const direct = outs[0]!.direct;
  for (let g = 0, s0 = 0; g < st.groupSizes.length; s0 += st.groupSizes[g]!, g++) {
    const size = st.groupSizes[g]!;
    sc.fit(size, M);
    const { idx, vals, tops, finite: fin, bits } = sc;
    let n = 0;
    for (let i = s0; i < s0 + size; i++) if (st.valid[i] && !Number.isNaN(direct[i]!)) idx[n++] = i;
    if (n < 2) continue;
    // vals[m * size + j]: method m's value of the group's j-th valid row; tops[m]: its highest (NaN if any is)
    for (let m = 0; m < M; m++) {
      const v = rankBy === "advantage" ? outs[m]!.advantages : outs[m]!.rewards;
      let top = -Infinity;
      for (let j = 0; j < n; j++) {
        const x = (vals[m * size + j] = v[idx[j]!]!);
        top = x !== x || top !== top ? NaN : Math.max(top, x);
      }
      tops[m] = top;
    }
    const words = bits.fit(n, M);
    for (let m = 0; m < M; m++) {
      fin[m] = finite(vals, m * size, n) ? 1 : 0;
      if (fin[m]) orderBits(vals, m * size, n, bits.gt, bits.lt, m * words);
    }
    let worst = Infinity, worstPair: [string, string] = ["", ""];
    let p = 0;
    for (let a = 0; a < M; a++) {
      for (let b = a + 1; b < M; b++, p++) {
        const tau = fin[a] && fin[b] ? tauOfBits(bits, a * words, b * words, words) : tauSigns(vals, a * size, vals, b * size, n);
        if (Number.isNaN(tau)) continue;
        const ps = pairs[p]!;
        ps.groups++;
        ps.meanTau += tau;
        if (tau < 1 - 1e-12) ps.fracOrderDiffers++;
        ps.tauHist[Math.min(19, Math.max(0, Math.floor((tau + 1) * 10)))]!++;
        let shared = false;
        for (let j = 0; j < n && !shared; j++) shared = vals[a * size + j] === tops[a] && vals[b * size + j] === tops[b];
        if (!shared) ps.fracTopDiffers++;
        if (tau < worst) { worst = tau; worstPair = [methods[a]!.key, methods[b]!.key]; }
      }
    }
    if (worst < 1 - 1e-12 && (examples.length < EXAMPLES || worst < examples[examples.length - 1]!.tau)) {
      const lim = Math.min(n, 32);
      const rows = Array.from(idx.subarray(0, lim));
      examples.push({
        step: st.step === undefined ? "–" : String(st.step),
        group: typeof st.groups[g] === "string" ? (st.groups[g] as string) : JSON.stringify(st.groups[g]),
        tau: worst,
        pair: worstPair,
        lines: rows.map((i) => st.lines[i]!),
        direct: rows.map((i) => direct[i]!),
        ranks: Array.from({ length: M }, (_, m) => ranksOf(Array.from(vals.subarray(m * size, m * size + lim)))),
      });
      examples.sort((x, y) => x.tau - y.tau);
      if (examples.length > EXAMPLES) examples.pop();
    }
  }
}

function anyPresent(p: Uint8Array, G: number, K: number, k: number): boolean {
  for (let g = 0; g < G; g++) if (p[g * K + k]) return true;
  return false;
}
