/** Node, Deno and Bun entry: the kernels are read from the files next to this module. */
import { readFile } from "node:fs/promises";
import { createEngineFrom, type KernelLoader } from "./core.js";
import type { Engine, EngineOptions } from "./types.js";

export * from "./core.js";

const loadFromDisk: KernelLoader = async (kind) =>
  WebAssembly.compile(await readFile(new URL(`./focal-${kind}.wasm`, import.meta.url)));

export function createEngine(options: EngineOptions): Promise<Engine> {
  return createEngineFrom(loadFromDisk, options);
}
