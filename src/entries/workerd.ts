/**
 * Cloudflare Workers (workerd) entry, export condition `workerd`.
 * Workers forbid compiling wasm from bytes, so both builds are imported as modules; the wasm files
 * ship next to the JS in dist/ and the Workers bundler (wrangler) uploads them as wasm modules.
 */
import simd from "../focal-simd.wasm";
import scalar from "../focal-scalar.wasm";
import { createEngineFrom } from "../core.js";
import type { Engine, EngineOptions } from "../types.js";

export * from "../core.js";

const modules = { simd, scalar };

/** Creates an engine; `options.wasm` still overrides the bundled modules. */
export function createEngine(options: EngineOptions): Promise<Engine> {
  return createEngineFrom(async (kind) => modules[kind], options);
}
