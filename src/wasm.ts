import type { Backend, Batch, OutputBuffers, Outputs, RawResult, Settings, StreamState } from "./backend.js";
import type { CompiledRubric } from "./rubric.js";
import type { BackendName } from "./types.js";
import { infiniteScoreError } from "./validate.js";
import { outOfScaleError } from "./rubric.js";
import { aggregatorSettings, PASS_SLACK, POW3R_FLOOR, requiredMask } from "./aggregators.js";
import { AbiQuery, Call, Head, Region, ScopeCode, Setting, Stat, Summary } from "./abi.js";
import { ADVANTAGE_CODES, METHOD_CODES } from "./codes.js";

/** What assembly/index.ts exports; every address and slot comes from the ABI (src/abi.ts). */
interface Kernel {
  memory: WebAssembly.Memory;
  heapBase(): number;
  fixedSize(k: number): number;
  layout(base: number, k: number): void;
  /** Byte address of a Region vector. */
  region(r: Region): number;
  /** Byte address of a head slot (Head.SettingsAt + Setting, Head.CallAt + Call, Head.SummaryAt + Summary). */
  slot(i: number): number;
  configure(): void;
  score(): number;
  streamWeights(): void;
  scoreOne(): number;
  abi(q: AbiQuery): number;
}

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
  u: number; p: number; uw: number; dw: number; end: number;
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
  p.p = take(widest * 32);
  p.uw = take(widest * kp * 8);
  p.dw = take(widest * 8);
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
  /** Out-of-scale counts of the last call, likewise. */
  private readonly outside: Float64Array;
  /** scoreOne's input (Region.Row): its f32 index and a view of it. */
  private readonly rowAt: number;
  private row: Float32Array;
  /** Where the kernel's call slots, summary slots, out-of-scale and present counts (i32) and statistics (f64) sit: fixed once laid out. */
  private readonly callAt: number;
  private readonly summaryAt: number;
  private readonly outsideAt: number;
  private readonly presentAt: number;
  private readonly statsAt: number[];

  constructor(
    readonly name: BackendName,
    private readonly kernel: Kernel,
    private readonly rubric: CompiledRubric,
    private readonly settings: Settings,
  ) {
    const k = (this.k = rubric.ids.length);
    this.perGroup = settings.scope === "group";
    this.stats = new Float64Array(Stat.End * k);
    this.outside = new Float64Array(k);
    const fixed = align(kernel.heapBase());
    this.callBase = align(fixed + kernel.fixedSize(k));
    this.reserve(this.callBase);
    kernel.layout(fixed, k);
    // A penalty's u = 1 - (x - lo) / (hi - lo) = (x - hi) * -1 / (hi - lo): one affine map for both.
    const hi = (c: number) => rubric.lo[c] + 1 / rubric.inv[c];
    const lo = rubric.lo.map((lo, c) => (rubric.penalty[c] ? hi(c) : lo)), inv = rubric.inv.map((inv, c) => (rubric.penalty[c] ? -inv : inv));
    this.put(Region.Lo, lo);
    this.put(Region.Inv, inv);
    this.put(Region.Base, rubric.base);
    // The focal method's float64 path takes them unrounded (spec "Precision contract").
    this.putWide(Region.LoWide, lo);
    this.putWide(Region.InvWide, inv);
    this.putWide(Region.BaseWide, rubric.base);
    this.put(Region.Fixed, rubric.fixed);
    this.put(Region.Penalty, rubric.penalty);
    this.put(Region.Required, requiredMask(rubric));
    this.put(Region.ScaleLo, rubric.lo32);
    this.put(Region.ScaleHi, rubric.hi32);
    const s = settings, a = aggregatorSettings(s);
    const values: Record<keyof typeof Setting, number> = {
      Method: METHOD_CODES[s.method], Scope: s.scope === "group" ? ScopeCode.Group : ScopeCode.Stream, Advantage: ADVANTAGE_CODES[s.advantage],
      Gamma: s.gamma, Eps: s.eps, Tau: s.tau,
      Bounded: s.minWeight !== undefined || s.maxWeight !== undefined ? 1 : 0, MinWeight: s.minWeight ?? 0, MaxWeight: s.maxWeight ?? 1,
      Mix: s.mix, Decay: s.decay, AdvEps: s.advEps, DropConstant: s.constant === "drop" ? 1 : 0,
      Power: a.power, Temperature: a.temperature, Alpha: a.alpha, PassAt: a.threshold - PASS_SLACK, FGrpo: a.fGrpo ?? -1,
      WeightFloor: s.minWeight ?? POW3R_FLOOR, WeightClip: s.maxWeight ?? 1,
      RefuseOutOfScale: s.outOfScale === "error" ? 1 : 0, End: 0,
    };
    for (const [name, value] of Object.entries(values)) {
      if (name !== "End") this.f64[kernel.slot(Head.SettingsAt + Setting[name as keyof typeof Setting]) >>> 3] = value;
    }
    kernel.configure();
    this.rowAt = kernel.region(Region.Row) >>> 2;
    this.callAt = kernel.slot(Head.CallAt) >>> 3;
    this.summaryAt = kernel.slot(Head.SummaryAt) >>> 3;
    this.outsideAt = kernel.region(Region.OutOfScale) >>> 2;
    this.presentAt = kernel.region(Region.ScalePresent) >>> 2;
    this.statsAt = Array.from({ length: Stat.End }, (_, f) => kernel.region(Region.Stats + 2 * f) >>> 3);
    this.row = this.f32.subarray(this.rowAt, this.rowAt + k);
  }

  /** Writes K values into a region of f32 lanes. */
  private put(r: Region, values: ArrayLike<number>): void {
    this.f32.set(values, this.kernel.region(r) >>> 2);
  }

  /** K values of a region of f32 lanes. */
  private take(r: Region): Float32Array {
    const at = this.kernel.region(r) >>> 2;
    return this.f32.subarray(at, at + this.k);
  }

  /** Writes K values into a region of f64 lanes. */
  private putWide(r: Region, values: ArrayLike<number>): void {
    this.f64.set(values, this.kernel.region(r) >>> 3);
  }

  /** K values of a region of f64 lanes. */
  private takeWide(r: Region): Float64Array {
    const at = this.kernel.region(r) >>> 3;
    return this.f64.subarray(at, at + this.k);
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
    const { n, sizes, widest, valid, weights } = batch;
    const k = this.k;
    const groups = sizes.length;
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
    const f64 = this.f64, c = this.callAt;
    f64[c + Call.Rows] = n;
    f64[c + Call.Groups] = groups;
    f64[c + Call.Scores] = p.scores;
    f64[c + Call.Valid] = valid ? p.valid : 0;
    f64[c + Call.Sizes] = p.sizes;
    f64[c + Call.InstanceWeights] = p.instW;
    f64[c + Call.Rewards] = p.rewards;
    f64[c + Call.Direct] = p.direct;
    f64[c + Call.Advantages] = p.advantages;
    f64[c + Call.Weights] = p.outW;
    f64[c + Call.Saturation] = p.outS;
    f64[c + Call.Normalized] = p.u;
    f64[c + Call.Tilt] = p.p;
    f64[c + Call.NormalizedRows] = uRows;
    f64[c + Call.NormalizedWide] = p.uw;
    f64[c + Call.DirectWide] = p.dw;
    // score() counts the scores out of scale as it goes; with outOfScale "error" and any counted,
    // or an infinite score, it returns before it changes any state, and the call is refused whole.
    const status = this.kernel.score();
    if (status !== 0) this.refuse(p, n, valid);
    return this.results(p, n, this.perGroup ? groups * k : k, outputs);
  }

  /** Throws the error of a call the kernel refused (status not 0). */
  private refuse(p: Plan, n: number, valid: Uint8Array | undefined): never {
    const k = this.k;
    const scores = this.f32.subarray(p.scores >>> 2, (p.scores >>> 2) + n * k);
    let outside = 0;
    for (let c = 0; c < k; c++) outside += this.i32[this.outsideAt + c];
    if (outside > 0 && this.settings.outOfScale === "error") throw outOfScaleError(this.rubric, scores, n, valid);
    throw infiniteScoreError(scores, k);
  }

  /** A scored call's outputs where `outputs` says (wLen: weights and saturation per group, or K), with its statistics. */
  private results(p: Plan, n: number, wLen: number, outputs: Outputs): RawResult {
    const k = this.k, statLen = Stat.End * k;
    let outs: OutputBuffers, stats: Float64Array, counts: Float64Array;
    if (outputs === "reuse") {
      // Views of the kernel's own output regions: no copy, valid until the next call.
      const buffer = this.kernel.memory.buffer;
      outs = {
        rewards: new Float32Array(buffer, p.rewards, n), direct: new Float32Array(buffer, p.direct, n), advantages: new Float32Array(buffer, p.advantages, n),
        weights: new Float32Array(buffer, p.outW, wLen), saturation: new Float32Array(buffer, p.outS, wLen),
      };
      stats = this.stats;
      counts = this.outside;
    } else {
      if (outputs === "fresh") {
        // One allocation for everything the result holds: it outlives later calls, and fresh
        // memory (page faults, zeroing) is what a call pays most for, not the copy.
        const buffer = new ArrayBuffer((statLen + k) * 8 + (3 * n + 2 * wLen) * 4);
        let at = (statLen + k) * 8;
        const take = (len: number) => { const v = new Float32Array(buffer, at, len); at += len * 4; return v; };
        stats = new Float64Array(buffer, 0, statLen);
        counts = new Float64Array(buffer, statLen * 8, k);
        outs = { rewards: take(n), direct: take(n), advantages: take(n), weights: take(wLen), saturation: take(wLen) };
      } else {
        outs = outputs;
        stats = this.stats;
        counts = this.outside;
      }
      const f32 = this.f32;
      const from = (at: number, len: number) => f32.subarray(at >>> 2, (at >>> 2) + len);
      outs.rewards.set(from(p.rewards, n));
      outs.direct.set(from(p.direct, n));
      outs.advantages.set(from(p.advantages, n));
      outs.weights.set(from(p.outW, wLen));
      outs.saturation.set(from(p.outS, wLen));
    }
    const f64 = this.f64, i32 = this.i32;
    for (let f = 0; f < Stat.End; f++) stats.set(f64.subarray(this.statsAt[f], this.statsAt[f] + k), f * k);
    let present = 0;
    for (let c = 0; c < k; c++) {
      counts[c] = i32[this.outsideAt + c];
      present += i32[this.presentAt + c];
    }
    return {
      rewards: outs.rewards, direct: outs.direct, advantages: outs.advantages, weights: outs.weights, saturation: outs.saturation,
      stats, zeroStdGroups: f64[this.summaryAt + Summary.ZeroStdGroups], activeGroups: f64[this.summaryAt + Summary.ActiveGroups],
      outOfScale: counts, scalePresent: present,
    };
  }

  scoreOne(row: Float32Array): number {
    // A view of the kernel's row, made again only once growing memory detached it (length 0).
    if (this.row.length === 0) this.row = this.f32.subarray(this.rowAt, this.rowAt + this.k);
    this.row.set(row);
    return this.kernel.scoreOne();
  }

  getState(): StreamState {
    return { sbar: this.takeWide(Region.Sbar).slice(), seen: Uint8Array.from(this.take(Region.Seen)) };
  }

  setState(state: StreamState): void {
    this.putWide(Region.Sbar, state.sbar);
    this.put(Region.Seen, state.seen);
    this.kernel.streamWeights();
  }

  /** The built kernel's view of the ABI, for the test that compares it with src/abi.ts. */
  abi(q: AbiQuery): number {
    return this.kernel.abi(q);
  }
}

/** Instantiates a kernel module: it has no imports, so `{}` works in every runtime. */
export async function instantiateKernel(module: WebAssembly.Module): Promise<Kernel> {
  const instance = await WebAssembly.instantiate(module, {});
  return instance.exports as unknown as Kernel;
}
