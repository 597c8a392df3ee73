/**
 * Browser entry, export condition `browser`: fetches the wasm that sits next to this file and
 * compiles it asynchronously. `new URL("../x.wasm", import.meta.url)` is also the pattern bundlers
 * (Vite, webpack, esbuild, Rollup) recognize to copy the asset.
 */
import { createEngineFrom } from "../core.js";
import type { Engine, EngineOptions } from "../types.js";

export * from "../core.js";

const urls = {
  simd: new URL("../focal-simd.wasm", import.meta.url),
  scalar: new URL("../focal-scalar.wasm", import.meta.url),
};

async function load(kind: "simd" | "scalar"): Promise<WebAssembly.Module> {
  const response = await fetch(urls[kind]);
  if (!response.ok) throw new Error(`focal-reward: cannot fetch ${urls[kind]}: HTTP ${response.status}`);
  // compileStreaming insists on `Content-Type: application/wasm`; servers that send another type
  // (or engines without it) get the buffered path instead.
  const type = response.headers.get("content-type") ?? "";
  if (typeof WebAssembly.compileStreaming === "function" && /^application\/wasm\b/i.test(type)) {
    return WebAssembly.compileStreaming(response);
  }
  return WebAssembly.compile(await response.arrayBuffer());
}

/** Creates an engine; `options.wasm` still overrides the fetched modules. */
export function createEngine(options: EngineOptions): Promise<Engine> {
  return createEngineFrom(load, options);
}
