/**
 * Conformance driver for Vercel's edge-runtime (the `edge-runtime` package's EdgeRuntime, the VM
 * behind `vercel dev` / `next dev` edge functions). Run with:
 *   node --experimental-vm-modules test/runtimes/drivers/edge.js
 * Like Vercel in production, the context may not compile wasm from bytes (codeGeneration.wasm =
 * false). The ESM graph of dist/entries/edge.js is linked as vm modules inside the edge context;
 * each `*.wasm?module` import resolves, as Vercel's bundler does, to a compiled WebAssembly.Module.
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EdgeRuntime } from "edge-runtime";
import { driverArgs, root } from "./args.js";
import { edgeModules } from "./edge-modules.js";
import { CONDITIONS, resolveExport } from "./exports.js";

const args = driverArgs();
const runtime = new EdgeRuntime({ codeGeneration: { strings: false, wasm: false } });
const { instantiate } = edgeModules(runtime);

// The harness and the vectors are loaded into the same context, the way a bundler would inline them.
const harness = await instantiate(fileURLToPath(new URL("../harness.js", import.meta.url)));
// The file Vercel's bundler would pick: package.json "exports" under the edge-light conditions.
const entryFile = args.distGiven ? join(args.dist, "entries/edge.js") : resolveExport(root, CONDITIONS["edge-runtime"]);
const entry = await instantiate(entryFile);
const vectors = runtime.evaluate("JSON.parse")(readFileSync(args.vectors, "utf8"));

const blocked = await runtime.evaluate(
  `WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0])).then(() => false, () => true)`,
);
const lines = await harness.namespace.runConformance({ runtime: "edge-runtime", api: entry.namespace, vectors });
for (const line of lines) process.stdout.write(`${JSON.stringify({ ...line, entry: entryFile, compileFromBytesBlocked: blocked })}\n`);

// A user passing the module their own `?module` import gave them.
// (In edge-runtime, as in next dev, that module comes from the host realm.)
const wasmModule = await instantiate(resolve(dirname(entryFile), "../focal-simd.wasm"));
const sources = { "WebAssembly.Module": () => wasmModule.namespace.default };
const report = await harness.namespace.runSources({ runtime: "edge-runtime", api: entry.namespace, vectors, sources });
process.stdout.write(`${JSON.stringify(report)}\n`);
