import { deliver, OUTPUT_FIELDS, type Backend, type Batch, type OutputBuffers, type Outputs, type Settings } from "./backend.js";
import { buildMetrics, criterionNames, type CriterionNames } from "./metrics.js";
import { ReferenceBackend } from "./reference.js";
import { compileRubric, MAX_WEIGHT, OutOfScaleError, outOfScaleError, type CompiledRubric } from "./rubric.js";
import { decodeSnapshot, encodeSnapshot } from "./snapshot.js";
import type {
  ConstantMode, AdvantageMode, BackendName, OutOfScaleMode, Engine, EngineOptions, Method, NamedScore, Scope, ScoreOptions, ScoreResult, WasmSource,
} from "./types.js";
import { checkKeys, F32_MAX, inRange, oneOf, short } from "./validate.js";
import { aggregatorOptions } from "./aggregators.js";
import { ENGINE_OPTION_KEYS, SCORE_OPTION_KEYS } from "./keys.js";
import { instantiateKernel, WasmBackend } from "./wasm.js";
import { checkStep, StepConflictError, StepTracker, stepSettings, type StepBackends } from "./stepped.js";
export { StepConflictError } from "./stepped.js";
import { METHOD_CODES } from "./codes.js";

export type * from "./types.js";
export { Diagnostics, prepare, type DiagnosticsOptions, type PreparedCall } from "./analysis/diagnostics.js";
export { compileRubric, OutOfScaleError, type CompiledRubric } from "./rubric.js";

/** Loads a kernel build; each runtime entry supplies one (file, module import, fetch). */
export type KernelLoader = (kind: "simd" | "scalar") => Promise<WebAssembly.Module>;

/** Every method the engine knows. */
export const METHODS: readonly Method[] = Object.keys(METHOD_CODES) as Method[];

/** The largest batch one call takes (rows x criteria): its buffers must fit wasm32's 4 GiB. */
export const MAX_CELLS = 1 << 27;

// (module (func (result v128) v128.const 0)): validates only where SIMD is supported.
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 22, 1, 20, 0, 253, 12,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11,
]);

export function simdSupported(): boolean {
  return typeof WebAssembly === "object" && WebAssembly.validate(SIMD_PROBE);
}

/** The object's built-in type; unlike instanceof it holds across realms (vm contexts, iframes). */
const kindOf = (x: unknown) => Object.prototype.toString.call(x).slice(8, -1);

/** A compiled module from whatever the caller has: a Module, bytes, a URL or a Response. */
export async function compileSource(source: WasmSource): Promise<WebAssembly.Module> {
  const kind = kindOf(source);
  if (kind === "WebAssembly.Module") return source as WebAssembly.Module;
  if (kind === "ArrayBuffer" || ArrayBuffer.isView(source)) return WebAssembly.compile(source as BufferSource);
  let response: unknown;
  if (typeof source === "string" || kind === "URL") response = await fetch(source as string | URL);
  else if (kind === "Response" || kind === "Promise") response = await source;
  const r = response as Response | undefined;
  if (kindOf(r) !== "Response") {
    throw new TypeError(`wasm: expected a WebAssembly.Module, bytes, a URL or a Response, got ${kind}`);
  }
  if (!r!.ok) throw new Error(`wasm: ${r!.url || "response"} answered ${r!.status}`);
  return WebAssembly.compile(await r!.arrayBuffer());
}

function settingsOf(o: EngineOptions, k: number): Settings {
  const method = oneOf<Method>("method", o.method, METHODS, "focal");
  const scope = oneOf<Scope>("scope", o.scope, ["group", "stream"], "group");
  if (scope === "stream" && method !== "focal") throw new RangeError(`scope "stream" applies to method "focal", not "${method}"`);
  // The ranges keep every number representable in float32 and every formula finite.
  const s: Settings = {
    method, scope,
    advantage: oneOf<AdvantageMode>("advantage", o.advantage, ["grpo", "dr-grpo", "rloo", "none"], "grpo"),
    gamma: inRange("gamma", o.gamma, method === "sa-mrpo" ? 0.5 : 3, 0, 64),
    eps: inRange("eps", o.eps, 0.05, 0, 1e3),
    tau: inRange("tau", o.tau, 1, 1e-6, 1e6),
    minWeight: o.minWeight === undefined ? undefined : inRange("minWeight", o.minWeight, 0, 0, 1),
    maxWeight: o.maxWeight === undefined ? undefined : inRange("maxWeight", o.maxWeight, 1, 0, 1),
    mix: inRange("mix", o.mix, 1, 0, 1),
    decay: inRange("decay", o.decay, 0.9, 0, 1, "hi"),
    advEps: inRange("advEps", o.advEps, 1e-6, 0, 1e3),
    constant: oneOf<ConstantMode>("constant", o.constant, ["keep", "drop"], "keep"),
    outOfScale: oneOf<OutOfScaleMode>("outOfScale", o.outOfScale, ["clamp", "error"], "clamp"),
    aggregator: aggregatorOptions(o),
  };
  if ((s.minWeight ?? 0) > (s.maxWeight ?? 1)) throw new RangeError(`minWeight (${s.minWeight}) must not exceed maxWeight (${s.maxWeight})`);
  // The stream scope weighs all K criteria at once, so infeasible bounds are a mistake there
  // (the group scope widens them per group instead, spec step 5).
  if (scope === "stream" && !((s.minWeight ?? 0) * k <= 1 && 1 <= (s.maxWeight ?? 1) * k)) {
    throw new RangeError(`bounds: minWeight * K <= 1 <= maxWeight * K must hold for the ${k} criteria of the rubric, got minWeight ${s.minWeight ?? 0}, maxWeight ${s.maxWeight ?? 1}`);
  }
  if (s.constant === "drop" && (scope !== "group" || method !== "focal")) {
    throw new RangeError(`constant "drop" applies to method "focal" in the group scope, not ${scope === "group" ? `method "${method}"` : `scope "${scope}"`}`);
  }
  return s;
}

/**
 * Compiled kernels, one per loader and kind for the whole process: every engine (the service makes
 * one per run) instantiates the same module, and only instantiation is per engine. A failed load is
 * forgotten, so the next engine tries again.
 */
const compiled = new WeakMap<KernelLoader, Map<"simd" | "scalar", Promise<WebAssembly.Module>>>();

function loadOnce(load: KernelLoader, kind: "simd" | "scalar"): Promise<WebAssembly.Module> {
  let byKind = compiled.get(load);
  if (byKind === undefined) compiled.set(load, (byKind = new Map()));
  let module = byKind.get(kind);
  if (module === undefined) {
    module = load(kind);
    byKind.set(kind, module);
    module.catch(() => byKind.delete(kind));
  }
  return module;
}

/** Creates an engine with the kernels that `load` provides (or those in `options.wasm`). */
export async function createEngineFrom(load: KernelLoader, options: EngineOptions): Promise<Engine> {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new TypeError(`createEngine: expected an options object { rubric, ... }, got ${options === null ? "null" : Array.isArray(options) ? "an array" : typeof options}`);
  }
  checkKeys("createEngine", options, ENGINE_OPTION_KEYS, "option");
  if (options.wasm !== undefined) {
    if (options.wasm === null || typeof options.wasm !== "object") throw new TypeError("createEngine: wasm must be { simd?, scalar? }");
    checkKeys("createEngine: wasm", options.wasm, ["simd", "scalar"]);
  }
  const rubric = compileRubric(options.rubric);
  const settings = settingsOf(options, rubric.ids.length);
  if (options.reuseOutputs !== undefined && typeof options.reuseOutputs !== "boolean") {
    throw new TypeError(`reuseOutputs must be true or false, got ${String(options.reuseOutputs)}`);
  }
  const wanted = oneOf<BackendName | "auto">("backend", options.backend, ["auto", "simd", "scalar", "js"], "auto");
  let make: (s: Settings) => Promise<Backend>;
  if (wanted === "js" || (wanted === "auto" && typeof WebAssembly !== "object")) {
    make = async (s) => new ReferenceBackend(rubric, s);
  } else {
    const kind = wanted === "auto" ? (simdSupported() ? "simd" : "scalar") : wanted;
    if (kind === "simd" && !simdSupported()) throw new Error("backend \"simd\": this engine has no WebAssembly SIMD");
    const own = options.wasm?.[kind];
    const module = own !== undefined ? await compileSource(own) : await loadOnce(load, kind);
    make = async (s) => new WasmBackend(kind, await instantiateKernel(module), rubric, s);
  }
  let steps: StepBackends | undefined;
  if (settings.scope === "stream") {
    // Step-keyed calls (src/stepped.ts) score on a group-scope backend of the same kind.
    const weights = new ReferenceBackend(rubric, settings);
    steps = { group: await make(stepSettings(settings)), weights: (sbar, seen) => weights.streamWeightsFor(sbar, seen) };
  }
  return new FocalEngine(rubric, settings, await make(settings), options.reuseOutputs === true, steps);
}

class FocalEngine implements Engine {
  readonly criteria: readonly string[];
  private updates = 0;
  /** score() calls so far: a result whose statistics live in the engine knows when they are overwritten. */
  private calls = 0;
  private readonly names: CriterionNames[];
  /** scoreOne's row buffer, reused so the single-rollout path allocates nothing. */
  private readonly row: Float32Array;
  /** Set once a call carries a step (or a stepped snapshot is restored): the engine is stepped. */
  private stepped: StepTracker | undefined;

  constructor(private readonly rubric: CompiledRubric, private readonly settings: Settings, private readonly impl: Backend,
              private readonly reuseOutputs: boolean, private readonly steps?: StepBackends) {
    this.criteria = rubric.ids;
    this.names = criterionNames(rubric.ids);
    this.row = new Float32Array(rubric.ids.length);
  }

  get backend(): BackendName { return this.impl.name; }
  get method(): Method { return this.settings.method; }
  get scope(): Scope { return this.settings.scope; }

  input(rows: number): Float32Array {
    if (!Number.isSafeInteger(rows) || rows < 1) throw new RangeError(`input: rows must be a positive integer, got ${rows}`);
    if (rows * this.criteria.length > MAX_CELLS) throw new RangeError(`input: ${rows} rows exceed the ${MAX_CELLS}-score limit of one call`);
    return this.impl.input(rows);
  }

  score(scores: Float32Array | ArrayLike<number>, groupSizes: ArrayLike<number>, options: ScoreOptions = {}): ScoreResult {
    const batch = this.validate(scores, groupSizes, options);
    if (options.step !== undefined) return this.scoreStep(batch, options.step);
    if (this.stepped !== undefined) throw new StepConflictError(`score: this stream state is step-keyed (step ${this.stepped.open} is open); every call needs a step`);
    const outputs: Outputs = batch.into ?? (this.reuseOutputs ? "reuse" : "fresh");
    const raw = this.impl.score(batch, outputs);
    const call = ++this.calls;
    if (this.settings.scope === "stream" || this.settings.method === "pow3r") this.updates++;
    const { rewards, direct, advantages, weights, saturation } = raw;
    const names = this.names, perBatch = this.settings.scope === "stream";
    let metrics: Record<string, number> | undefined;
    const engine = this;
    // Built on first read: a hot loop that never looks at them does not pay for them. Except with
    // fresh outputs, the statistics behind them are the engine's and the next call overwrites them.
    return {
      rewards, direct, advantages, weights, saturation,
      get metrics() {
        if (metrics === undefined && outputs !== "fresh" && engine.calls !== call) {
          throw new Error("score: metrics of an earlier call are gone (reuseOutputs or into keeps one call's statistics): read them before the next score()");
        }
        return (metrics ??= buildMetrics(names, raw, perBatch));
      },
    };
  }

  /** A step-keyed call of the stream scope (spec "Step-keyed stream updates"). */
  private scoreStep(batch: Batch, step: number): ScoreResult {
    if (this.steps === undefined) throw new RangeError(`score: step applies to scope "stream", not "${this.settings.scope}"`);
    if (this.stepped === undefined && this.updates > 0) {
      throw new StepConflictError("score: this stream state was advanced by calls without a step; stepped and unstepped calls cannot share a state (reset it or start another run)");
    }
    const { sbar, seen } = this.impl.getState();
    const tracker = this.stepped ?? new StepTracker(this.criteria.length, this.settings.decay, sbar, seen, undefined);
    const scored = tracker.score(batch, checkStep(step), this.steps);
    const raw = batch.into ? deliver(scored.raw, batch.into) : scored.raw, lateRows = scored.lateRows;
    this.stepped = tracker;
    this.updates++;
    const names = this.names;
    let metrics: Record<string, number> | undefined;
    const { rewards, direct, advantages, weights, saturation } = raw;
    return {
      rewards, direct, advantages, weights, saturation,
      get metrics() { return (metrics ??= { ...buildMetrics(names, raw, true), "focal/late_rows": lateRows }); },
    };
  }

  /** Checks everything before any state changes; returns the batch in the backends' terms. */
  private validate(scores: Float32Array | ArrayLike<number>, groupSizes: ArrayLike<number>, options: ScoreOptions): Batch {
    const k = this.criteria.length;
    if (groupSizes === null || typeof groupSizes !== "object" || typeof groupSizes.length !== "number") {
      throw new TypeError("score: groupSizes must be an array of group sizes");
    }
    if (groupSizes.length === 0) throw new RangeError("score: the batch has no groups");
    const { sizes, n, widest } = checkedSizes(groupSizes);
    if (n * k > MAX_CELLS) throw new RangeError(`score: ${n} rows x ${k} criteria exceed the ${MAX_CELLS}-score limit of one call; split the batch`);
    if (scores === null || typeof scores !== "object" || typeof scores.length !== "number") {
      throw new TypeError("score: scores must be a Float32Array (or array) of rows x criteria");
    }
    if (scores.length !== n * k) {
      const detached = scores instanceof Float32Array && scores.length === 0 && scores.buffer.byteLength === 0;
      throw new RangeError(`score: expected ${n} rows x ${k} criteria = ${n * k} scores, got ${scores.length}` +
        (detached ? " (a view from input() is detached once the engine grows its memory: call input() again)" : ""));
    }
    const flat = scores instanceof Float32Array ? scores : toFloat32(scores, k);
    if (options === null || typeof options !== "object") throw new TypeError("score: options must be an object { valid?, weights? }");
    checkKeys("score", options, SCORE_OPTION_KEYS, "option");
    let valid: Uint8Array | undefined;
    if (options.valid !== undefined) {
      const v = options.valid;
      if (v === null || typeof v !== "object" || v.length !== n) throw new RangeError(`score: valid must have one entry per row (${n})`);
      valid = new Uint8Array(n);
      for (let i = 0; i < n; i++) valid[i] = v[i] ? 1 : 0;
    }
    let weights: Float32Array | undefined;
    if (options.step !== undefined) checkStep(options.step);
    if (options.weights !== undefined) {
      if (this.settings.scope !== "group") throw new RangeError("score: instance weights need scope \"group\"");
      const w = options.weights;
      if (w === null || typeof w !== "object" || w.length !== sizes.length * k) {
        throw new RangeError(`score: weights must be groups x criteria = ${sizes.length * k} numbers, got ${w?.length}`);
      }
      weights = new Float32Array(w.length);
      for (let i = 0; i < w.length; i++) {
        const x = w[i];
        if (typeof x !== "number" || !(x >= 0 && x <= MAX_WEIGHT)) {
          throw new RangeError(`score: weights[${i}] (group ${Math.floor(i / k)}, criterion '${this.criteria[i % k]}') must be a number in [0, ${short(MAX_WEIGHT)}], got ${x}`);
        }
        weights[i] = x;
      }
    }
    const wLen = this.settings.scope === "group" ? sizes.length * k : k;
    const into = options.into === undefined ? undefined : outputBuffers(options.into, n, wLen);
    return { n, scores: flat, sizes, widest, valid, weights, into };
  }

  scoreOne(row: ArrayLike<number> | Readonly<Record<string, number | null | undefined>> | readonly NamedScore[]): number {
    const k = this.criteria.length;
    if (row instanceof Float32Array && row.length === k && this.settings.outOfScale !== "error" && this.stepped === undefined) {
      // The hot path: a row with an infinite score scores NaN (Backend.scoreOne), so only a NaN
      // result is looked at again, to say which score it was.
      const r = this.impl.scoreOne(row);
      if (r !== r) this.checkFinite(row);
      return r;
    }
    const values = this.row;
    if (row instanceof Float32Array && row.length === k) {
      values.set(row);
    } else if (Array.isArray(row) && row.length > 0 && row[0] !== null && typeof row[0] === "object") {
      // The JS eval libraries' shape: [{ name, score }], a criterion at most once.
      values.fill(NaN);
      const seen = new Set<number>();
      (row as readonly NamedScore[]).forEach((item, j) => {
        const i = item === null || typeof item !== "object" ? undefined : this.rubric.index.get(item.name);
        if (i === undefined) throw new RangeError(`scoreOne: item ${j}: unknown criterion '${String((item as NamedScore | null)?.name)}'`);
        if (seen.has(i)) throw new RangeError(`scoreOne: criterion '${item.name}' is given twice`);
        seen.add(i);
        values[i] = cell(item.score, i, "scoreOne");
      });
    } else if (row !== null && typeof row === "object" && typeof (row as ArrayLike<number>).length === "number") {
      const r = row as ArrayLike<number>;
      if (r.length !== k) throw new RangeError(`scoreOne: expected ${k} scores, got ${r.length}`);
      for (let i = 0; i < k; i++) values[i] = cell(r[i], i, "scoreOne");
    } else if (row !== null && typeof row === "object") {
      values.fill(NaN);
      for (const [id, x] of Object.entries(row)) {
        const i = this.rubric.index.get(id);
        if (i === undefined) throw new RangeError(`scoreOne: unknown criterion '${id}'`);
        values[i] = cell(x, i, "scoreOne");
      }
    } else {
      throw new TypeError("scoreOne: expected an array of scores, [{ name, score }] or a { criterion: score } record");
    }
    this.checkFinite(values);
    if (this.settings.outOfScale === "error") {
      const e = outOfScaleError(this.rubric, values, 1, undefined);
      if (e instanceof OutOfScaleError) throw new OutOfScaleError(-1, e.criterion, e.value, e.scale, "scoreOne");
    }
    if (this.stepped !== undefined) return this.stepped.scoreOne(values, this.steps!);
    return this.impl.scoreOne(values);
  }

  /** scoreOne's error for an infinite score. */
  private checkFinite(row: Float32Array): void {
    for (let i = 0; i < row.length; i++) if (row[i] === Infinity || row[i] === -Infinity) throw infiniteCell(this.criteria[i], row[i]);
  }

  snapshot(): Uint8Array {
    const t = this.stepped;
    const state = t !== undefined ? { sbar: t.sbar, seen: t.seen, stepped: t.state } : this.impl.getState();
    return encodeSnapshot(this.rubric, this.settings.method, { ...state, updates: this.updates });
  }

  restore(bytes: Uint8Array): void {
    const s = decodeSnapshot(this.rubric, this.settings.method, bytes);
    if (s.stepped !== undefined && this.steps === undefined) throw new RangeError(`restore: a step-keyed snapshot needs scope "stream"`);
    this.impl.setState(s);
    this.stepped = s.stepped && new StepTracker(this.criteria.length, this.settings.decay, s.sbar, s.seen, s.stepped);
    this.updates = s.updates;
  }

  reset(): void {
    const k = this.criteria.length;
    this.impl.setState({ sbar: new Float64Array(k), seen: new Uint8Array(k) });
    this.stepped = undefined;
    this.updates = 0;
  }
}

/**
 * The group sizes as int32 (each a positive safe integer), their sum and the largest. A function of
 * its own: the one loop of validate(), it is optimized early and compiles in a fraction of the time.
 */
function checkedSizes(groupSizes: ArrayLike<number>): { sizes: Int32Array; n: number; widest: number } {
  const sizes = new Int32Array(groupSizes.length);
  let n = 0, widest = 0;
  for (let g = 0; g < groupSizes.length; g++) {
    const m = groupSizes[g];
    if (!Number.isSafeInteger(m) || m < 1) throw new RangeError(`score: group ${g} has size ${m}; sizes must be positive integers`);
    sizes[g] = m;
    n += m;
    if (m > widest) widest = m;
  }
  return { sizes, n, widest };
}

/** Checks `into`: the five outputs, each a Float32Array of its exact length. */
function outputBuffers(into: unknown, n: number, wLen: number): OutputBuffers {
  if (into === null || typeof into !== "object") throw new TypeError("score: into must be { rewards, direct, advantages, weights, saturation } of Float32Arrays");
  const o = into as Record<string, unknown>;
  checkKeys("score: into", o, OUTPUT_FIELDS, "field");
  for (const f of OUTPUT_FIELDS) {
    const len = f === "weights" || f === "saturation" ? wLen : n;
    const a = o[f];
    if (!(a instanceof Float32Array)) throw new TypeError(`score: into.${f} must be a Float32Array of ${len}, got ${a === undefined ? "nothing" : kindOf(a)}`);
    if (a.length !== len) throw new RangeError(`score: into.${f} must have length ${len} (${f === "weights" || f === "saturation" ? "groups x criteria, or criteria in the stream scope" : "one per row"}), got ${a.length}`);
  }
  return o as unknown as OutputBuffers;
}

const infiniteCell = (id: string, x: number) => new RangeError(`scoreOne: criterion '${id}' is ${x}; scores must be finite or NaN`);

/** One score: a number (NaN = absent) or null/undefined (absent). */
function cell(x: unknown, i: number, where: string): number {
  if (x === null || x === undefined) return NaN;
  if (typeof x !== "number") throw new TypeError(`${where}: criterion ${i} is ${typeof x}, expected a number or null`);
  if (Math.abs(x) > F32_MAX && Number.isFinite(x)) throw new RangeError(`${where}: criterion ${i} is ${x}, outside float32's range (|x| <= ${F32_MAX})`);
  return x;
}

function toFloat32(scores: ArrayLike<number>, k: number): Float32Array {
  const kind = kindOf(scores);
  if (kind === "BigInt64Array" || kind === "BigUint64Array") {
    throw new TypeError(`score: scores is a ${kind} (BigInts); pass a Float32Array, a Float64Array or an array of numbers`);
  }
  const out = new Float32Array(scores.length);
  for (let i = 0; i < scores.length; i++) {
    // cell() also refuses a finite double beyond float32 (spec: refused, never rounded into Infinity).
    out[i] = cell(scores[i], i % k, `score: row ${Math.floor(i / k)}`);
  }
  return out;
}
