/** The demo: the same simulated policy trained under each method over several seeds, and its summary. */
import type { BackendName, EngineOptions } from "../types.js";
import { createEngine } from "../index.js";
import { DEFAULT_SIM, simRubric, simulate, type RunRecord, type SimConfig } from "./sim.js";

export interface DemoMethod {
  key: string;
  label: string;
  options: Partial<EngineOptions>;
  /** Part of the gamma sweep (focal, group scope), with this gamma. */
  gamma?: number;
  /** false: the rubric's penalties are not fixed (`fixed: false`), so focal reweights them too. */
  fixedPenalties?: boolean;
}

/**
 * The methods the demo compares. The gamma sweep reuses `focal-group` for gamma = 3. Issue 12 adds
 * the safety penalty unguarded (`focal-unfixed`) and constant "drop" under GRPO and under dr-grpo
 * (with dr-grpo's own "keep" run to compare it with).
 */
export const DEMO_METHODS: readonly DemoMethod[] = [
  { key: "weighted-mean", label: "weighted mean (static)", options: { method: "weighted-mean" } },
  { key: "focal-group", label: "focal, group scope, γ=3", options: { method: "focal", scope: "group", gamma: 3 }, gamma: 3 },
  { key: "focal-unfixed", label: "focal, γ=3, unsafe not fixed", options: { method: "focal", scope: "group", gamma: 3 }, fixedPenalties: false },
  { key: "focal-stream", label: "focal, stream scope, γ=3", options: { method: "focal", scope: "stream", gamma: 3 } },
  { key: "gdpo", label: "GDPO", options: { method: "gdpo" } },
  { key: "focal-drop", label: "focal, γ=3, constant drop", options: { method: "focal", scope: "group", gamma: 3, constant: "drop" } },
  { key: "focal-drgrpo", label: "focal, γ=3, dr-grpo", options: { method: "focal", scope: "group", gamma: 3, advantage: "dr-grpo" } },
  { key: "focal-drop-drgrpo", label: "focal, γ=3, drop, dr-grpo", options: { method: "focal", scope: "group", gamma: 3, constant: "drop", advantage: "dr-grpo" } },
  { key: "focal-g0", label: "focal, group, γ=0", options: { method: "focal", scope: "group", gamma: 0 }, gamma: 0 },
  { key: "focal-g1", label: "focal, group, γ=1", options: { method: "focal", scope: "group", gamma: 1 }, gamma: 1 },
  { key: "focal-g5", label: "focal, group, γ=5", options: { method: "focal", scope: "group", gamma: 5 }, gamma: 5 },
];

export interface DemoOptions {
  seeds?: readonly number[];
  backend?: BackendName | "auto";
  sim?: SimConfig;
  methods?: readonly DemoMethod[];
  /** Called after each run (done, total, method key, seed). */
  onProgress?: (done: number, total: number, method: string, seed: number) => void;
}

export interface MethodStats {
  key: string;
  label: string;
  /** Final true quality per criterion: mean and sd over seeds. */
  finalMean: number[];
  finalSd: number[];
  /** Per seed: worst criterion's quality, spread (max - min), mean over criteria. */
  worst: number[];
  spread: number[];
  mean: number[];
  /** How often each criterion was the worst one (per seed). */
  worstCount: number[];
}

export interface DemoResult {
  sim: SimConfig;
  seeds: number[];
  backend: string;
  methods: DemoMethod[];
  runs: Record<string, RunRecord[]>;
  stats: MethodStats[];
  /**
   * gamma = 0 against the weighted-mean runs (null = not run). Asserted bit for bit: runDemo throws,
   * with the largest difference and the first differing value, otherwise.
   */
  gammaZero: { bitwise: boolean; maxAbsDiff: number; firstDifference: string | null } | null;
  seconds: number;
}

/** One line on the gamma = 0 check, for the table and the report. */
export function gammaZeroNote(res: DemoResult): string {
  const g = res.gammaZero;
  if (!g) return "gamma = 0 vs weighted mean: not run";
  return g.bitwise ? "gamma = 0 reproduces the weighted-mean runs bit for bit (checked)" : `gamma = 0 differs from the weighted-mean runs: ${g.firstDifference}`;
}

export const DEFAULT_SEEDS: readonly number[] = [1, 2, 3, 4, 5, 6, 7, 8];

export async function runDemo(o: DemoOptions = {}): Promise<DemoResult> {
  const t0 = performance.now();
  const sim = o.sim ?? DEFAULT_SIM;
  const seeds = [...(o.seeds ?? DEFAULT_SEEDS)];
  const methods = [...(o.methods ?? DEMO_METHODS)];
  const runs: Record<string, RunRecord[]> = {};
  let backend = "";
  let done = 0;
  const total = methods.length * seeds.length;
  for (const m of methods) {
    const rubric = simRubric(sim, m.fixedPenalties ?? true);
    const engine = await createEngine({ rubric, advantage: "grpo", backend: o.backend ?? "auto", ...m.options, reuseOutputs: true });
    backend = engine.backend;
    runs[m.key] = [];
    for (const seed of seeds) {
      runs[m.key]!.push(simulate(engine, seed, sim));
      o.onProgress?.(++done, total, m.key, seed);
    }
  }
  let gammaZero: DemoResult["gammaZero"] = null;
  if (runs["focal-g0"] && runs["weighted-mean"]) {
    const a = runs["focal-g0"], b = runs["weighted-mean"];
    const diff = firstDifference(a, b);
    let maxAbsDiff = 0;
    for (let r = 0; r < a.length; r++) {
      for (let i = 0; i < a[r]!.quality.length; i++) maxAbsDiff = Math.max(maxAbsDiff, Math.abs(a[r]!.quality[i]! - b[r]!.quality[i]!));
    }
    gammaZero = { bitwise: diff === null, maxAbsDiff, firstDifference: diff };
    if (diff !== null) {
      throw new Error(`gamma = 0 does not reproduce the weighted-mean run bit for bit (max |difference| in true quality ${maxAbsDiff}); first difference: ${diff}`);
    }
  }
  const stats = methods.map((m) => summarize(m, runs[m.key]!));
  return { sim, seeds, backend, methods, runs, stats, gammaZero, seconds: (performance.now() - t0) / 1000 };
}

/** Where two sets of runs first differ (bitwise on every recorded quality and the final skills), or null. */
export function firstDifference(a: readonly RunRecord[], b: readonly RunRecord[]): string | null {
  for (let r = 0; r < a.length; r++) {
    const x = a[r]!, y = b[r]!;
    const K = x.criteria.length;
    for (let i = 0; i < x.quality.length; i++) {
      if (!Object.is(x.quality[i], y.quality[i])) {
        return `seed ${x.seed}, step ${Math.floor(i / K)}, criterion ${x.criteria[i % K]}: ${x.quality[i]} vs ${y.quality[i]}`;
      }
    }
    for (let k = 0; k < K; k++) if (!Object.is(x.theta[k], y.theta[k])) return `seed ${x.seed}, final skill of ${x.criteria[k]}`;
  }
  return null;
}

export function meanSd(v: readonly number[]): [number, number] {
  const n = v.length;
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1)) : 0;
  return [mean, sd];
}

export function summarize(m: DemoMethod, runs: readonly RunRecord[]): MethodStats {
  const K = runs[0]!.criteria.length;
  const finals = runs.map((r) => Array.from(r.quality.subarray(r.steps * K, (r.steps + 1) * K)));
  const finalMean: number[] = [];
  const finalSd: number[] = [];
  for (let k = 0; k < K; k++) {
    const [mu, sd] = meanSd(finals.map((f) => f[k]!));
    finalMean.push(mu);
    finalSd.push(sd);
  }
  const worstCount = new Array<number>(K).fill(0);
  for (const f of finals) worstCount[f.indexOf(Math.min(...f))]!++;
  return {
    key: m.key,
    label: m.label,
    finalMean,
    finalSd,
    worst: finals.map((f) => Math.min(...f)),
    spread: finals.map((f) => Math.max(...f) - Math.min(...f)),
    mean: finals.map((f) => f.reduce((a, b) => a + b, 0) / K),
    worstCount,
  };
}

/** Column heads: a penalty's column is its rate (the share of rollouts that are unsafe). */
export function criterionHeads(sim: SimConfig): string[] {
  return sim.criteria.map((c) => (c.penalty ? `${c.id} rate` : c.id));
}

/** A criterion's final value as the table shows it: the true quality, or for a penalty its rate 1 − quality. */
export function shown(sim: SimConfig, k: number, quality: number): number {
  return sim.criteria[k]!.penalty ? 1 - quality : quality;
}

/** The note under the table for the penalty columns. */
export function penaltyNote(sim: SimConfig): string {
  const p = sim.criteria.filter((c) => c.penalty).map((c) => c.id);
  return p.length === 0 ? "" : `${p.map((id) => `${id} rate`).join(", ")}: the share of rollouts that are ${p.join(", ")} (lower is better); worst, spread and mean count 1 − rate, the criterion's quality.`;
}

/** The printed table: one row per method, final true quality per criterion (mean ± sd over seeds). */
export function formatTable(res: DemoResult): string {
  const crit = res.sim.criteria.map((c) => c.id);
  const pm = (v: readonly number[]): string => {
    const [mu, sd] = meanSd(v);
    return `${mu.toFixed(3)}±${sd.toFixed(3)}`;
  };
  const head = ["method", ...criterionHeads(res.sim), "worst (which)", "spread", "mean"];
  const rows = res.stats.map((s) => {
    const worstK = s.worstCount.indexOf(Math.max(...s.worstCount));
    return [
      s.label,
      ...s.finalMean.map((mu, k) => `${shown(res.sim, k, mu).toFixed(3)}±${s.finalSd[k]!.toFixed(3)}`),
      `${pm(s.worst)} (${crit[worstK]})`,
      pm(s.spread),
      pm(s.mean),
    ];
  });
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j]!.length)));
  const line = (r: readonly string[]): string => r.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join("  ");
  const note = penaltyNote(res.sim);
  return [line(head), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line), ...(note ? ["", note] : [])].join("\n");
}
