/**
 * What `npm pack` ships: the built wasm, the JS and its types, LICENSE and the docs the README
 * links; no benches, tests or sources of the build. Runs on the dist/ that `npm test` just built.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";

describe("npm pack", () => {
  const [pack] = JSON.parse(execFileSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] })) as [{ files: { path: string }[] }];
  const files = pack.files.map((f) => f.path);
  const pkg = JSON.parse(readFileSync("package.json", "utf8")) as Record<string, unknown>;

  it("ships LICENSE, the README's docs, both wasm builds and the types of every export", () => {
    for (const f of ["LICENSE", "README.md", "docs/service.md", "dist/focal-simd.wasm", "dist/focal-scalar.wasm", "dist/log/thread-worker.js"]) expect(files).toContain(f);
    const readme = readFileSync("README.md", "utf8");
    for (const [, doc] of readme.matchAll(/\]\((docs\/[^)#]+)/g)) expect(files).toContain(doc);
    for (const entry of Object.values(pkg.exports as Record<string, string | Record<string, string>>)) {
      if (typeof entry === "object") expect(files).toContain(entry.types!.replace(/^\.\//, ""));
    }
  });

  it("ships no benches, tests, sources or build inputs", () => {
    expect(files.filter((f) => /^(bench|test|src|assembly|scripts)\/|\/bench\//.test(f))).toEqual([]);
  });

  it("declares sideEffects: false, a repository and the license", () => {
    expect(pkg.sideEffects).toBe(false);
    expect(pkg.repository).toMatchObject({ type: "git" });
    expect(pkg.license).toBe("Apache-2.0");
  });
});
