/**
 * TEMPORARY stand-in for the engine (src/index.ts) while it is being written: a plain double-precision
 * reading of the spec, enough for the demo and replay to run. To be deleted once the engine lands.
 */
import type { EngineOptions, ScoreOptions, ScoreResult } from "../types.js";

export interface TmpEngine {
  readonly backend: string;
  readonly criteria: readonly string[];
  readonly method: string;
  readonly scope: "group" | "stream";
  score(scores: Float32Array | ArrayLike<number>, groupSizes: ArrayLike<number>, options?: ScoreOptions): ScoreResult;
  reset(): void;
}

export async function createEngine(o: EngineOptions): Promise<TmpEngine> {
  const crit = "criteria" in o.rubric ? o.rubric.criteria : o.rubric;
  const K = crit.length;
  const lo = crit.map((c) => c.scale?.[0] ?? 0);
  const hi = crit.map((c) => c.scale?.[1] ?? 1);
  const pen = crit.map((c) => (c.weight ?? 1) < 0 || c.polarity === "penalty");
  const braw = crit.map((c) => Math.abs(c.weight ?? 1));
  const bs = braw.reduce((a, b) => a + b, 0);
  const b = braw.map((x) => x / bs);
  const method = o.method ?? "focal";
  const scope = o.scope ?? "group";
  const gamma = o.gamma ?? 3, eps = o.eps ?? 0.05, tau = o.tau ?? 1, decay = o.decay ?? 0.9, mix = o.mix ?? 1;
  const advEps = o.advEps ?? 1e-6;
  const adv = o.advantage ?? "grpo";
  let sbar: number[] = new Array(K).fill(NaN);
  const focalW = (s: number[], present: boolean[]): number[] => {
    const f = new Array<number>(K).fill(0);
    let den = 0;
    for (let k = 0; k < K; k++) if (present[k]) den += b[k]! * Math.pow(1 - (Number.isNaN(s[k]!) ? 0 : s[k]!) + eps, gamma);
    let bsum = 0;
    for (let k = 0; k < K; k++) if (present[k]) bsum += b[k]!;
    for (let k = 0; k < K; k++) {
      if (!present[k]) continue;
      const num = b[k]! * Math.pow(1 - (Number.isNaN(s[k]!) ? 0 : s[k]!) + eps, gamma);
      f[k] = den === 0 ? b[k]! / bsum : num / den;
      if (mix !== 1) f[k] = mix * f[k]! + (1 - mix) * (b[k]! / bsum);
    }
    return f;
  };
  return {
    backend: "js",
    criteria: crit.map((c) => c.id),
    method,
    scope,
    reset() {
      sbar = new Array(K).fill(NaN);
    },
    score(scores, groupSizes, options) {
      const G = groupSizes.length;
      let n = 0;
      for (let g = 0; g < G; g++) n += groupSizes[g]!;
      const u = new Float64Array(n * K);
      const valid = new Uint8Array(n);
      const direct = new Float32Array(n).fill(NaN);
      for (let i = 0; i < n; i++) {
        let any = false;
        let num = 0, den = 0;
        for (let k = 0; k < K; k++) {
          let v = Number(scores[i * K + k]);
          if (Number.isNaN(v)) { u[i * K + k] = NaN; continue; }
          v = Math.min(1, Math.max(0, (v - lo[k]!) / (hi[k]! - lo[k]!)));
          if (pen[k]) v = 1 - v;
          u[i * K + k] = v;
          num += b[k]! * v; den += b[k]!;
          if (b[k]! > 0) any = true;
        }
        valid[i] = any && (options?.valid === undefined || options.valid[i]) ? 1 : 0;
        if (valid[i]) direct[i] = num / den;
      }
      const rewards = new Float32Array(n);
      const advantages = new Float32Array(n);
      const Wg = scope === "group" ? G : 1;
      const weights = new Float32Array(Wg * K);
      const sat = new Float32Array(Wg * K).fill(NaN);
      const starts: number[] = [];
      for (let g = 0, s = 0; g < G; s += groupSizes[g]!, g++) starts.push(s);
      const groupSat = (g: number): number[] => {
        const s0 = starts[g]!, m = groupSizes[g]!;
        let mx = -Infinity;
        for (let i = s0; i < s0 + m; i++) if (valid[i]) mx = Math.max(mx, direct[i]! / tau);
        const p = new Float64Array(m);
        for (let i = s0; i < s0 + m; i++) if (valid[i]) p[i - s0] = Math.exp(direct[i]! / tau - mx);
        const s = new Array<number>(K).fill(NaN);
        for (let k = 0; k < K; k++) {
          let a = 0, c = 0;
          for (let i = s0; i < s0 + m; i++) {
            if (!valid[i] || Number.isNaN(u[i * K + k]!)) continue;
            a += p[i - s0]! * u[i * K + k]!; c += p[i - s0]!;
          }
          if (c > 0) s[k] = Math.min(1, Math.max(0, a / c));
        }
        return s;
      };
      const F: number[][] = [];
      if (method === "focal" && scope === "stream") {
        const acc = new Array(K).fill(0), cnt = new Array(K).fill(0);
        for (let g = 0; g < G; g++) {
          const s = groupSat(g);
          for (let k = 0; k < K; k++) if (!Number.isNaN(s[k]!)) { acc[k] += s[k]!; cnt[k]++; }
        }
        for (let k = 0; k < K; k++) {
          if (cnt[k] === 0) continue;
          const sh = acc[k] / cnt[k];
          sbar[k] = Number.isNaN(sbar[k]!) ? sh : decay * sbar[k]! + (1 - decay) * sh;
        }
        const f = focalW(sbar, new Array(K).fill(true));
        for (let k = 0; k < K; k++) { weights[k] = f[k]!; sat[k] = sbar[k]!; }
        for (let g = 0; g < G; g++) F.push(f);
      } else {
        for (let g = 0; g < G; g++) {
          const s = groupSat(g);
          const present = s.map((x) => !Number.isNaN(x));
          const f = method === "focal" ? focalW(s, present) : b.map((x, k) => (present[k] ? x : 0));
          F.push(f);
          for (let k = 0; k < K; k++) { weights[g * K + k] = f[k]!; sat[g * K + k] = s[k]!; }
        }
      }
      for (let g = 0; g < G; g++) {
        const s0 = starts[g]!, m = groupSizes[g]!, f = F[g]!;
        for (let i = s0; i < s0 + m; i++) {
          if (!valid[i]) continue;
          let num = 0, den = 0;
          for (let k = 0; k < K; k++) if (!Number.isNaN(u[i * K + k]!)) { num += f[k]! * u[i * K + k]!; den += f[k]!; }
          rewards[i] = method === "focal" ? num / den : direct[i]!;
        }
      }
      let bsum = 0, bcnt = 0;
      for (let i = 0; i < n; i++) if (valid[i]) { bsum += rewards[i]!; bcnt++; }
      for (let g = 0; g < G; g++) {
        const s0 = starts[g]!, m = groupSizes[g]!;
        let a = 0, c = 0;
        for (let i = s0; i < s0 + m; i++) if (valid[i]) { a += rewards[i]!; c++; }
        const mean = c ? a / c : bcnt ? bsum / bcnt : 0;
        for (let i = s0; i < s0 + m; i++) if (!valid[i]) rewards[i] = mean;
        if (c < 2 || adv === "none" || method === "gdpo") continue;
        let v = 0;
        for (let i = s0; i < s0 + m; i++) if (valid[i]) v += (rewards[i]! - mean) ** 2;
        const sd = Math.sqrt(v / (c - 1));
        for (let i = s0; i < s0 + m; i++) {
          if (!valid[i]) continue;
          const d = rewards[i]! - mean;
          advantages[i] = adv === "grpo" ? d / (sd + advEps) : adv === "rloo" ? (d * c) / (c - 1) : d;
        }
      }
      if (method === "gdpo") {
        const A = new Float64Array(n);
        for (let g = 0; g < G; g++) {
          const s0 = starts[g]!, m = groupSizes[g]!;
          for (let k = 0; k < K; k++) {
            let a = 0, c = 0;
            for (let i = s0; i < s0 + m; i++) if (valid[i] && !Number.isNaN(u[i * K + k]!)) { a += u[i * K + k]!; c++; }
            if (c < 2) continue;
            const mean = a / c;
            let v = 0;
            for (let i = s0; i < s0 + m; i++) if (valid[i] && !Number.isNaN(u[i * K + k]!)) v += (u[i * K + k]! - mean) ** 2;
            const sd = Math.sqrt(v / (c - 1));
            for (let i = s0; i < s0 + m; i++) if (valid[i] && !Number.isNaN(u[i * K + k]!)) A[i] += (b[k]! * (u[i * K + k]! - mean)) / (sd + advEps);
          }
        }
        let a = 0, c = 0;
        for (let i = 0; i < n; i++) if (valid[i]) { a += A[i]!; c++; }
        const mean = c ? a / c : 0;
        let v = 0;
        for (let i = 0; i < n; i++) if (valid[i]) v += (A[i]! - mean) ** 2;
        const sd = c > 1 ? Math.sqrt(v / (c - 1)) : 0;
        for (let i = 0; i < n; i++) advantages[i] = valid[i] && c > 1 ? (A[i]! - mean) / (sd + advEps) : 0;
      }
      const metrics: Record<string, number> = { reward: bcnt ? bsum / bcnt : 0 };
      return { rewards, direct, advantages, weights, saturation: sat, metrics };
    },
  };
}
