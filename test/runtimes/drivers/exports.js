/**
 * Resolves the package's own "exports" for a runtime's conditions, the way bundlers and runtimes
 * do (first key, in object order, that is an active condition or "default"). The drivers that
 * assemble a bundle themselves (workerd, edge-runtime, Chromium) use it, so they load the file
 * that runtime would load from the published package.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";

/** Conditions each bundler/runtime sets (wrangler, Next.js/Vercel edge, browser bundlers). */
export const CONDITIONS = {
  workerd: ["workerd", "worker", "browser", "import", "module"],
  "edge-runtime": ["edge-light", "worker", "browser", "import", "module"],
  chromium: ["browser", "import", "module"],
};

export function resolveExport(packageDir, conditions, subpath = ".") {
  const pkg = JSON.parse(readFileSync(resolve(packageDir, "package.json"), "utf8"));
  let target = pkg.exports;
  if (target && typeof target === "object" && !Array.isArray(target) && Object.keys(target).some((k) => k.startsWith("."))) {
    target = target[subpath];
  } else if (subpath !== ".") {
    target = undefined;
  }
  const pick = (t) => {
    if (typeof t === "string") return t;
    if (Array.isArray(t)) {
      for (const x of t) {
        const r = pick(x);
        if (r) return r;
      }
      return null;
    }
    if (t && typeof t === "object") {
      for (const [key, value] of Object.entries(t)) {
        if (key !== "default" && !conditions.includes(key)) continue;
        const r = pick(value);
        if (r) return r;
      }
    }
    return null;
  };
  const found = pick(target);
  if (!found) throw new Error(`package.json exports: nothing for ${subpath} under [${conditions.join(", ")}]`);
  return resolve(packageDir, found);
}
