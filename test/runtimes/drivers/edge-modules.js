/**
 * An ESM graph linked as vm modules inside an EdgeRuntime context (the `edge-runtime` package,
 * the VM behind `vercel dev` / `next dev` edge functions), the way Vercel's bundler links a
 * function: relative imports only, each `*.wasm?module` import a compiled WebAssembly.Module
 * (compiled by the host, as next dev does), JSON as a module. Needs node --experimental-vm-modules.
 * Used by the conformance driver (edge.js) and the service runtime test.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import vm from "node:vm";

/** `instantiate(file)` links and evaluates `file` (absolute) and its imports in `runtime`'s context. */
export function edgeModules(runtime) {
  if (typeof vm.SourceTextModule !== "function") throw new Error("run with node --experimental-vm-modules");
  const context = runtime.context;
  const cache = new Map();
  const synthetic = (file, value) =>
    new vm.SyntheticModule(["default"], function () {
      this.setExport("default", value);
    }, { context, identifier: pathToFileURL(file).href });

  function load(file) {
    let mod = cache.get(file);
    if (mod) return mod;
    if (file.endsWith(".wasm")) mod = synthetic(file, new WebAssembly.Module(readFileSync(file)));
    else if (file.endsWith(".json")) mod = synthetic(file, JSON.parse(readFileSync(file, "utf8")));
    else {
      const url = pathToFileURL(file).href;
      mod = new vm.SourceTextModule(readFileSync(file, "utf8"), {
        context,
        identifier: url,
        initializeImportMeta(meta) {
          meta.url = url;
        },
        importModuleDynamically: (spec, referrer) => instantiate(resolveSpecifier(spec, referrer)),
      });
    }
    cache.set(file, mod);
    return mod;
  }

  function resolveSpecifier(spec, referrer) {
    if (!/^\.{1,2}\//.test(spec)) throw new Error(`edge bundle: bare import ${spec} not allowed`);
    const isWasmModule = spec.endsWith(".wasm?module");
    if (spec.endsWith(".wasm") && !isWasmModule) throw new Error(`edge: ${spec} must be imported with ?module`);
    return resolve(dirname(fileURLToPath(referrer.identifier)), spec.replace(/\?module$/, ""));
  }

  async function instantiate(file) {
    const mod = load(file);
    if (mod.status === "unlinked") await mod.link((spec, referrer) => load(resolveSpecifier(spec, referrer)));
    if (mod.status === "linked") await mod.evaluate();
    return mod;
  }

  return { instantiate };
}
