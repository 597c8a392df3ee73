import type { Backend, Batch, OutputBuffers, Outputs, RawResult, Settings, StreamState } from "./backend.js";
import { OUTPUT_FIELDS, STAT_FIELDS } from "./backend.js";
import type { CompiledRubric } from "./rubric.js";
import type { BackendName } from "./types.js";
import { infiniteScoreError } from "./validate.js";
import { aggregatorSettings, PASS_SLACK, POW3R_FLOOR, requiredMask } from "./aggregators.js";

/** What assembly/index.ts exports. */
interface Kernel {
  memory: WebAssembly.Memory;
  heapBase(): number;
  fixedSize(k: number): number;
  layout(base: number, k: number): void;
  configure(m: number, s: number, adv: number, g: number, e: number, t: number, bounded: number,
            wMin: number, wMax: number, mix: number, decay: number, advEps: number): void;
  loPtr(): number; invPtr(): number; basePtr(): number; fixedPtr(): number;
  sbarPtr(): number; seenPtr(): number; streamWeightsPtr(): number; rowPtr(): number;
  metricsPtr(): number; summaryPtr(): number;
  score(n: number, groups: number, scores: number, valid: number, sizes: number, instW: number,
        outR: number, outD: number, outA: number, outW: number, outS: number, u: number, p: number, uRows: number): number;
  streamWeights(): void;
  scoreOne(): number;
  aggregatorSize(k: number): number;
  aggregatorLayout(base: number, lo: number, inv: number, sbar: number, seen: number, mweight: number): void;
  configureAggregators(p: number, t: number, alpha: number, passAt: number, fGamma: number, floor: number, clip: number, advEps: number): void;
  penaltyPtr(): number; requiredPtr(): number;
  configureConstant(drop: number): void;
}

const METHODS = {
  focal: 0, "weighted-mean": 1, gdpo: 2, "weighted-sum": 3, min: 4, "power-mean": 5, "soft-min": 6, cvar: 7,
  "points-ratio": 8, "all-or-nothing": 9, gated: 10, hierarchical: 11, pow3r: 12, dvao: 13, "mo-grpo": 14, "sa-mrpo": 15,
} as const;
const ADVANTAGES = { none: 0, grpo: 1, "dr-grpo": 2, rloo: 3 } as const;
const PAGE = 65536;
/** wasm32 memory limit. */
const MAX_MEMORY = 2 ** 32;
/** Most bytes of normalized rows the stream scope keeps for its second pass (see score). */
const KEEP_ROWS = 2 ** 28;
/** Gap between buffers: keeps large power-of-two buffers off the same 4 KiB alias. */
const GAP = 192;

/** Offsets may pass 2 GiB, beyond the reach of 32-bit bit operations: plain arithmetic here. */
const align = (x: number) => Math.ceil(x / 64) * 64;

/** Byte offsets of one call's buffers. */
interface Plan {
  rows: number; groups: number; widest: number; weights: boolean;
  scores: number; valid: number; sizes: number; instW: number;
  rewards: number; direct: number; advantages: number; outW: number; outS: number;
  u: number; p: number; end: number;
}

/** `uRows`: rows of normalized scratch, a group's (widest) or, in the stream scope, the batch's. */
function plan(start: number, k: number, rows: number, groups: number, widest: number, weights: boolean, uRows = widest): Plan {
  const kp = (k + 3) & ~3;
  let at = align(start);
  const take = (bytes: number) => {
    const here = at;
    at = align(at + bytes + 16) + GAP;
    return here;
  };
  const p: Partial<Plan> = { rows, groups, widest, weights };
  p.scores = take(rows * k * 4);
  p.valid = take(rows);
  p.sizes = take(groups * 4);
  p.instW = weights ? take(groups * k * 4) : 0;
  p.rewards = take(rows * 4);
  p.direct = take(rows * 4);
  p.advantages = take(rows * 4);
  p.outW = take(groups * k * 4);
  p.outS = take(groups * k * 4);
  p.u = take(uRows * kp * 4);
  p.p = take(widest * 4);
  p.end = at;
  return p as Plan;
}

/** The simd or scalar build behind the Backend interface. Memory is laid out here, not in wasm. */
export class WasmBackend implements Backend {
  private readonly k: number;
  private readonly callBase: number;
  private f32!: Float32Array;
  private f64!: Float64Array;
  private u8!: Uint8Array;
  private i32!: Int32Array;
  /** Weights and saturation come per group (else one vector for the batch: stream scope). */
  private readonly perGroup: boolean;
  /** Statistics of the last call when the outputs are not fresh (they are read lazily, as metrics). */
  private readonly stats: Float64Array;

  constructor(
    readonly name: BackendName,
    private readonly kernel: Kernel,
    rubric: CompiledRubric,
    settings: Settings,
  ) {
    const k = (this.k = rubric.ids.length);
    this.perGroup = settings.scope === "group";
    this.stats = new Float64Array(STAT_FIELDS.length * k);
    const fixed = align(kernel.heapBase());
    const agg = align(fixed + kernel.fixedSize(k));
    this.callBase = agg + kernel.aggregatorSize(k);
    this.reserve(this.callBase);
    kernel.layout(fixed, k);
    kernel.aggregatorLayout(agg, kernel.loPtr(), kernel.invPtr(), kernel.sbarPtr(), kernel.seenPtr(),
      kernel.metricsPtr() + 8 * 5 * ((k + 3) & ~3));
    // A penalty's u = 1 - (x - lo) / (hi - lo) = (x - hi) * -1 / (hi - lo): one affine map for both.
    const hi = (c: number) => rubric.lo[c] + 1 / rubric.inv[c];
    this.f32.set(rubric.lo.map((lo, c) => (rubric.penalty[c] ? hi(c) : lo)), kernel.loPtr() >>> 2);
    this.f32.set(rubric.inv.map((inv, c) => (rubric.penalty[c] ? -inv : inv)), kernel.invPtr() >>> 2);
    this.f32.set(Float32Array.from(rubric.base), kernel.basePtr() >>> 2);
    this.f32.set(rubric.fixed, kernel.fixedPtr() >>> 2);
    const s = settings;
    kernel.configure(METHODS[s.method], s.scope === "group" ? 0 : 1, ADVANTAGES[s.advantage], s.gamma, s.eps, s.tau,
      s.minWeight !== undefined || s.maxWeight !== undefined ? 1 : 0, s.minWeight ?? 0, s.maxWeight ?? 1,
      s.mix, s.decay, s.advEps);
    kernel.configureConstant(s.constant === "drop" ? 1 : 0);
    const a = aggregatorSettings(s);
    this.f32.set(rubric.penalty, kernel.penaltyPtr() >>> 2);
    this.f32.set(requiredMask(rubric), kernel.requiredPtr() >>> 2);
    kernel.configureAggregators(a.power, a.temperature, a.alpha, a.threshold - PASS_SLACK, a.fGrpo ?? -1,
      s.minWeight ?? POW3R_FLOOR, s.maxWeight ?? 1, s.advEps);
    kernel.streamWeights();
  }

  /** Grows memory to hold `end` bytes and refreshes the views (growing detaches old ones). */
  private reserve(end: number): void {
    const memory = this.kernel.memory;
    const have = memory.buffer.byteLength;
    if (end > have) {
      // Half again as much as needed, so that slowly growing batches do not grow memory every call.
      const pages = (bytes: number) => Math.ceil(bytes / PAGE);
      try {
        memory.grow(pages(Math.min(end + have / 2, MAX_MEMORY) - have));
      } catch {
        try {
          memory.grow(pages(end - have));
        } catch {
          throw new RangeError(`score: the batch needs ${Math.ceil(end / 2 ** 20)} MiB of wasm memory, more than this engine can have (4 GiB at most): split the batch`);
        }
      }
    }
    if (!this.f32 || this.f32.buffer !== memory.buffer) {
      const buf = memory.buffer;
      this.f32 = new Float32Array(buf);
      this.f64 = new Float64Array(buf);
      this.u8 = new Uint8Array(buf);
      this.i32 = new Int32Array(buf);
    }
  }

  input(n: number): Float32Array {
    const p = plan(this.callBase, this.k, n, n, n, false);
    this.reserve(p.end);
    return new Float32Array(this.kernel.memory.buffer, p.scores, n * this.k);
  }

  score(batch: Batch, outputs: Outputs): RawResult {
    const { n, sizes, valid, weights } = batch;
    const k = this.k;
    const groups = sizes.length;
    let widest = 0;
    for (let g = 0; g < groups; g++) widest = Math.max(widest, sizes[g]);
    const inPlace = batch.scores.buffer === this.kernel.memory.buffer;
    // In place, the input sits where input() put it; keep that plan's scores offset.
    // The stream scope keeps every normalized row for its second pass (after the stream update),
    // up to KEEP_ROWS bytes of them; larger batches normalize the rows again instead.
    const uRows = !this.perGroup && n * ((k + 3) & ~3) * 4 <= KEEP_ROWS ? n : widest;
    const p = plan(this.callBase, k, n, groups, widest, weights !== undefined, uRows);
    if (inPlace && batch.scores.byteOffset !== p.scores) throw new RangeError(`score: this Float32Array views the engine's own memory at byte ${batch.scores.byteOffset}, but input(${n}) is at byte ${p.scores}: pass the view input() returned, whole, or a copy`);
    this.reserve(p.end);
    if (!inPlace) this.f32.set(batch.scores, p.scores >>> 2);
    this.f32.fill(0, (p.scores >>> 2) + n * k, (p.scores >>> 2) + n * k + 4);
    if (valid) this.u8.set(valid, p.valid);
    this.i32.set(sizes, p.sizes >>> 2);
    if (weights) this.f32.set(weights, p.instW >>> 2);
    const status = this.kernel.score(n, groups, p.scores, valid ? p.valid : 0, p.sizes, p.instW,
      p.rewards, p.direct, p.advantages, p.outW, p.outS, p.u, p.p, uRows);
    if (status !== 0) throw infiniteScoreError(this.f32.subarray(p.scores >>> 2, (p.scores >>> 2) + n * k), k);
    const wLen = this.perGroup ? groups * k : k;
    const statLen = STAT_FIELDS.length * k;
    const from = { rewards: [p.rewards, n], direct: [p.direct, n], advantages: [p.advantages, n], weights: [p.outW, wLen], saturation: [p.outS, wLen] } as const;
    let outs: OutputBuffers, stats: Float64Array;
    if (outputs === "reuse") {
      // Views of the kernel's own output regions: no copy, valid until the next call.
      const view = (f: keyof OutputBuffers) => new Float32Array(this.kernel.memory.buffer, from[f][0], from[f][1]);
      outs = { rewards: view("rewards"), direct: view("direct"), advantages: view("advantages"), weights: view("weights"), saturation: view("saturation") };
      stats = this.stats;
    } else {
      if (outputs === "fresh") {
        // One allocation for everything the result holds: it outlives later calls, and fresh
        // memory (page faults, zeroing) is what a call pays most for, not the copy.
        const buffer = new ArrayBuffer(statLen * 8 + (3 * n + 2 * wLen) * 4);
        let at = statLen * 8;
        const take = (len: number) => { const v = new Float32Array(buffer, at, len); at += len * 4; return v; };
        stats = new Float64Array(buffer, 0, statLen);
        outs = { rewards: take(n), direct: take(n), advantages: take(n), weights: take(wLen), saturation: take(wLen) };
      } else {
        outs = outputs;
        stats = this.stats;
      }
      for (const f of OUTPUT_FIELDS) outs[f].set(this.f32.subarray(from[f][0] >>> 2, (from[f][0] >>> 2) + from[f][1]));
    }
    const kp = (k + 3) & ~3, metrics = this.kernel.metricsPtr() >>> 3;
    for (let f = 0; f < STAT_FIELDS.length; f++) {
      for (let c = 0; c < k; c++) stats[f * k + c] = this.f64[metrics + f * kp + c];
    }
    const summary = this.kernel.summaryPtr() >>> 3;
    return { ...outs, stats, zeroStdGroups: this.f64[summary], activeGroups: this.f64[summary + 1] };
  }

  scoreOne(row: Float32Array): number {
    const at = this.kernel.rowPtr() >>> 2;
    this.f32.set(row, at);
    return this.kernel.scoreOne();
  }

  getState(): StreamState {
    const k = this.k;
    const sbar = Float64Array.from(this.f32.subarray(this.kernel.sbarPtr() >>> 2, (this.kernel.sbarPtr() >>> 2) + k));
    const seen = Uint8Array.from(this.f32.subarray(this.kernel.seenPtr() >>> 2, (this.kernel.seenPtr() >>> 2) + k));
    return { sbar, seen };
  }

  setState(state: StreamState): void {
    this.f32.set(state.sbar, this.kernel.sbarPtr() >>> 2);
    this.f32.set(state.seen, this.kernel.seenPtr() >>> 2);
    this.kernel.streamWeights();
  }
}

/** Instantiates a kernel module: it has no imports, so `{}` works in every runtime. */
export async function instantiateKernel(module: WebAssembly.Module): Promise<Kernel> {
  const instance = await WebAssembly.instantiate(module, {});
  return instance.exports as unknown as Kernel;
}
