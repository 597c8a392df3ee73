#!/usr/bin/env node
/**
 * Incremental build: `node scripts/build.js [wasm|ts] [--force]`. Each step (the two asc builds,
 * tsc) runs only when a hash of its inputs (sources, configs, compiler version) differs from the
 * one recorded after its last success, or its outputs are missing. The hashes live in
 * node_modules/.cache, never in dist/ (which ships), one set per checkout: git worktrees that share
 * one node_modules through a symlink must not mark each other's dist/ built.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const root = new URL("..", import.meta.url).pathname;
const bin = (name) => join(root, "node_modules", ".bin", name);
const checkout = createHash("sha256").update(root).digest("hex").slice(0, 16);
const cache = join(root, "node_modules", ".cache", "focal-reward-build", checkout);

/** Every file under `dir` (sorted), for hashing. */
function files(dir) {
  return readdirSync(join(root, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath ?? e.path, e.name).slice(root.length))
    .sort();
}

const version = (pkg) => JSON.parse(readFileSync(join(root, "node_modules", pkg, "package.json"), "utf8")).version;

const steps = {
  wasm: {
    inputs: () => [...files("assembly"), "src/abi.ts", "asconfig.json"],
    tool: () => `assemblyscript ${version("assemblyscript")}`,
    outputs: ["dist/focal-simd.wasm", "dist/focal-scalar.wasm"],
    run: () => {
      for (const target of ["simd", "scalar"]) execFileSync(bin("asc"), ["assembly/index.ts", "--target", target], { cwd: root, stdio: "inherit" });
    },
  },
  ts: {
    inputs: () => [...files("src"), "tsconfig.json"],
    tool: () => `typescript ${version("typescript")}`,
    outputs: ["dist/index.js", "dist/index.d.ts"],
    run: () => execFileSync(bin("tsc"), ["-p", "tsconfig.json"], { cwd: root, stdio: "inherit" }),
  },
};

const args = process.argv.slice(2);
const force = args.includes("--force");
const wanted = args.filter((a) => a !== "--force");
for (const a of wanted) if (!(a in steps)) throw new Error(`build: unknown step '${a}' (steps: ${Object.keys(steps).join(", ")})`);

for (const name of wanted.length > 0 ? wanted : Object.keys(steps)) {
  const step = steps[name];
  const hash = createHash("sha256").update(step.tool());
  for (const f of step.inputs()) hash.update(`\0${f}\0`).update(readFileSync(join(root, f)));
  const digest = hash.digest("hex");
  const stamp = join(cache, `${name}.sha256`);
  const fresh = existsSync(stamp) && readFileSync(stamp, "utf8") === digest && step.outputs.every((o) => existsSync(join(root, o)));
  if (fresh && !force) continue;
  step.run();
  mkdirSync(cache, { recursive: true });
  writeFileSync(stamp, digest);
}
