/**
 * Conformance driver for the runtimes that run the Node entry (dist/index.js) as is. It imports
 * the package by its own name ("focal-reward", a package self-reference), so each runtime resolves
 * package.json "exports" with its own conditions; `--dist DIR` imports DIR/index.js instead.
 *   node test/runtimes/drivers/native.js
 *   deno run --allow-read test/runtimes/drivers/native.js
 *   bun test/runtimes/drivers/native.js
 * Prints one JSON line per backend (see harness.js).
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runConformance, runSources } from "../harness.js";
import { driverArgs } from "./args.js";

const runtime =
  typeof globalThis.Deno !== "undefined" ? "deno" : typeof globalThis.Bun !== "undefined" ? "bun" : "node";
const args = driverArgs();
const vectors = JSON.parse(readFileSync(args.vectors, "utf8"));
const specifier = args.distGiven ? pathToFileURL(join(args.dist, "index.js")).href : "focal-reward";
const entry = fileURLToPath(import.meta.resolve(specifier));
const api = await import(specifier);
const lines = await runConformance({ runtime, api, vectors });
for (const line of lines) process.stdout.write(`${JSON.stringify({ ...line, entry })}\n`);

// What a user may already hold: the bytes of the wasm shipped next to the entry, or a Module.
const wasmFile = join(dirname(entry), "focal-simd.wasm");
const bytes = readFileSync(wasmFile);
const module = await WebAssembly.compile(bytes);
const sources = {
  "Uint8Array": () => new Uint8Array(bytes),
  "ArrayBuffer": () => new Uint8Array(bytes).slice().buffer,
  "WebAssembly.Module": () => module,
  "Response": () => new Response(bytes),
  "Promise<Response>": () => Promise.resolve(new Response(bytes)),
};
process.stdout.write(`${JSON.stringify(await runSources({ runtime, api, vectors, sources }))}\n`);
