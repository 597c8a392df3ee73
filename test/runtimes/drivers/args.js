/** Shared by the drivers: `--dist DIR` (default ./dist) and `--vectors FILE` (default test/vectors/vectors.json). */
import process from "node:process";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = fileURLToPath(new URL("../../../", import.meta.url));

export function driverArgs(argv = process.argv.slice(2)) {
  const get = (name, fallback) => {
    const i = argv.indexOf(name);
    return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
  };
  return {
    /** True when --dist was given: import files from it instead of the package's exports. */
    distGiven: argv.includes("--dist"),
    dist: resolve(get("--dist", resolve(root, "dist"))),
    vectors: resolve(get("--vectors", resolve(root, "test/vectors/vectors.json"))),
    artifacts: resolve(get("--artifacts", resolve(root, "test/artifacts"))),
  };
}
