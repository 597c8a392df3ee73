/**
 * Vercel Edge entry, export condition `edge-light`.
 * Edge functions cannot compile wasm from bytes; the `?module` suffix makes Vercel's bundler hand
 * over each build as a compiled `WebAssembly.Module`.
 */
import simd from "../focal-simd.wasm?module";
import scalar from "../focal-scalar.wasm?module";
import { createEngineFrom } from "../core.js";
import type { Engine, EngineOptions } from "../types.js";

export * from "../core.js";

const modules = { simd, scalar };

/** Creates an engine; `options.wasm` still overrides the bundled modules. */
export function createEngine(options: EngineOptions): Promise<Engine> {
  return createEngineFrom(async (kind) => modules[kind], options);
}
