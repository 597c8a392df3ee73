/**
 * Runtime-neutral conformance harness. Every runtime (Node, Deno, Bun, workerd, edge-runtime,
 * Chromium) imports this file unchanged, hands it its own `createEngine` and the parsed
 * test/vectors/vectors.json, and prints the report lines it returns.
 *
 * Only standard APIs are used (WebAssembly via the engine, TextEncoder, crypto.subtle).
 *
 * Digest of a vector = SHA-256 over, in this order:
 *   for each call: the bytes of rewards, direct, advantages, weights, saturation (Float32, as laid
 *     out in memory: little-endian everywhere wasm runs), or the 1-byte marker "E" if the call threw;
 *   for each scoreOne row: the Float64 bytes of the result (or "E");
 *   if `snapshot` is set: the bytes of engine.snapshot().
 * The metrics digest = SHA-256 over, per call, each metric name (sorted) followed by its Float64.
 */

export const OUTPUTS = ["rewards", "direct", "advantages", "weights", "saturation"];

const encoder = new TextEncoder();
const ERROR = encoder.encode("E");

/** JSON keeps NaN as null. */
export function toFloat32(values) {
  const out = new Float32Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = values[i] === null ? NaN : values[i];
  return out;
}

function copyBytes(view) {
  if (!ArrayBuffer.isView(view)) throw new TypeError(`expected a typed array, got ${typeof view}`);
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
}

function float64Bytes(x) {
  return new Uint8Array(Float64Array.of(x).buffer);
}

function metricBytes(metrics) {
  const parts = [];
  for (const name of Object.keys(metrics).sort()) {
    parts.push(encoder.encode(name), float64Bytes(metrics[name]));
  }
  return parts;
}

function concat(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export async function sha256hex(bytes) {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  let s = "";
  for (const b of d) s += b.toString(16).padStart(2, "0");
  return s;
}

function callOptions(call) {
  const o = {};
  if (call.valid) o.valid = call.valid;
  if (call.weights) o.weights = call.weights;
  return o;
}

/**
 * Runs every vector on one engine backend; returns the digests (one engine per vector). With
 * `zeroCopy`, scores are written into `engine.input(n)` (the view into wasm memory) and that view
 * is scored, except for calls marked `throws` (their length is wrong on purpose).
 */
export async function runVectors(createEngine, vectors, backend, { zeroCopy = false } = {}) {
  const digests = {};
  const metrics = {};
  let reported;
  for (const v of vectors) {
    const engine = await createEngine({ ...v.options, backend });
    if (reported === undefined) reported = engine.backend;
    else if (engine.backend !== reported) {
      throw new Error(`vector ${v.name}: backend ${engine.backend}, earlier ${reported}`);
    }
    const parts = [];
    const mparts = [];
    for (const call of v.calls) {
      let result;
      try {
        let scores = toFloat32(call.scores);
        if (zeroCopy && !call.throws) {
          let n = 0;
          for (const g of call.groupSizes) n += g;
          const view = engine.input(n);
          view.set(scores);
          scores = view;
        }
        result = engine.score(scores, call.groupSizes, callOptions(call));
      } catch {
        parts.push(ERROR);
        mparts.push(ERROR);
        continue;
      }
      // Copy before the next call: outputs may be views into the engine's memory.
      for (const key of OUTPUTS) parts.push(copyBytes(result[key]));
      mparts.push(...metricBytes(result.metrics));
    }
    for (const row of v.scoreOne ?? []) {
      try {
        parts.push(float64Bytes(engine.scoreOne(Array.isArray(row) ? toFloat32(row) : row)));
      } catch {
        parts.push(ERROR);
      }
    }
    if (v.snapshot) parts.push(copyBytes(engine.snapshot()));
    digests[v.name] = await sha256hex(concat(parts));
    metrics[v.name] = await sha256hex(concat(mparts));
  }
  return { backend: reported, digests, metrics };
}

/**
 * The report of one runtime: a line for the default backend ("auto"), one with the scalar backend
 * forced, and one for the default backend fed through `engine.input()` (zero-copy). Each line:
 * {runtime, requested, input, backend, simdSupported, exports, ms, digests, metrics}. `api` is
 * the entry module's namespace.
 */
export async function runConformance({ runtime, api, vectors }) {
  const { createEngine, simdSupported } = api;
  const exports = Object.keys(api).sort();
  const lines = [];
  const runs = [
    { requested: "auto", input: "copy" },
    { requested: "scalar", input: "copy" },
    { requested: "auto", input: "zero-copy" },
  ];
  for (const { requested, input } of runs) {
    const started = Date.now();
    const backend = requested === "auto" ? undefined : requested;
    const r = await runVectors(createEngine, vectors, backend, { zeroCopy: input === "zero-copy" });
    lines.push({
      runtime,
      requested,
      input,
      backend: r.backend,
      simdSupported: typeof simdSupported === "function" ? simdSupported() : null,
      exports,
      ms: Date.now() - started,
      digests: r.digests,
      metrics: r.metrics,
    });
  }
  return lines;
}

/**
 * `createEngine({ wasm: { simd: source } })` with each source the runtime can offer (a Module,
 * bytes, a URL, a Response, a Promise<Response>...). `sources` maps a name to a function that
 * returns the source as is (not awaited: a Promise<Response> stays a promise); each is called once. Returns {runtime, vector, sources: {name: digest | "error: ..."}};
 * every digest must equal the simd digest of `vector`.
 */
export async function runSources({ runtime, api, vectors, sources, vector = "focal-k33-uneven-groups" }) {
  const v = vectors.find((x) => x.name === vector);
  if (!v) throw new Error(`no vector ${vector}`);
  const out = {};
  for (const [name, make] of Object.entries(sources)) {
    try {
      const create = (options) => api.createEngine({ ...options, wasm: { simd: make() } });
      out[name] = (await runVectors(create, [v], "simd")).digests[vector];
    } catch (e) {
      out[name] = `error: ${e && e.message}`;
    }
  }
  return { runtime, vector, sources: out };
}
