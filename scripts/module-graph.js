/** The relative-import graph of an ESM file tree (tsc output): which files a workerd bundle needs (the runtime tests and examples/workers). */
import { cpSync, mkdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";

const IMPORT = /(?:\bimport\s*(?:[\w*{}\s,$]+\s*from\s*)?|\bexport\s*[\w*{}\s,$]+\s*from\s*|\bimport\s*\(\s*)["'](\.{1,2}\/[^"']+)["']/g;

/** Relative specifiers imported by `code` (static, re-exports and literal dynamic imports). */
export function relativeImports(code) {
  const out = new Set();
  for (const m of code.matchAll(IMPORT)) out.add(m[1]);
  return [...out];
}

/**
 * Files reachable from `entry` (absolute), as paths relative to `base`, each with its kind
 * ("esm" | "wasm" | "json"). A `?module` suffix is kept in `specifier` and stripped from `file`.
 */
export function moduleGraph(base, entry) {
  const seen = new Map();
  const visit = (file) => {
    const rel = relative(base, file).split("\\").join("/");
    if (seen.has(rel)) return;
    if (rel.startsWith("..")) throw new Error(`${file} is outside ${base}`);
    const kind = rel.endsWith(".wasm") ? "wasm" : rel.endsWith(".json") ? "json" : "esm";
    seen.set(rel, { file, rel, kind });
    if (kind !== "esm") return;
    for (const spec of relativeImports(readFileSync(file, "utf8"))) {
      visit(resolve(dirname(file), spec.replace(/\?module$/, "")));
    }
  };
  visit(resolve(entry));
  return [...seen.values()];
}

export { join };

/**
 * Copies the files reachable from each of `entries` (absolute) into `out`/`prefix`, each once, and
 * returns them as workerd modules: `{ name, kind }` with `name` = `prefix` + its path below `base`.
 */
export function copyModules(base, entries, out, prefix = "") {
  const seen = new Map();
  for (const entry of entries) {
    for (const m of moduleGraph(base, entry)) {
      if (seen.has(m.rel)) continue;
      const name = `${prefix}${m.rel}`;
      mkdirSync(dirname(join(out, name)), { recursive: true });
      cpSync(m.file, join(out, name));
      seen.set(m.rel, { name, kind: m.kind });
    }
  }
  return [...seen.values()];
}

const CAPNP_KIND = { esm: "esModule", wasm: "wasm", json: "json" };

/** The entries of a workerd config's `modules = [...]` list, one line each. */
export function capnpModules(modules, indent = "    ") {
  return modules.map((m) => `${indent}(name = ${JSON.stringify(m.name)}, ${CAPNP_KIND[m.kind]} = embed ${JSON.stringify(m.name)})`).join(",\n");
}
