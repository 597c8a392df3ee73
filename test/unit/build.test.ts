/**
 * scripts/build.js runs a step (the asc builds, tsc) only when its inputs changed or an output is
 * missing. Checked in a temporary copy of the inputs, with stand-in compilers that record each run
 * in a log and write the outputs (so the check is what ran, never how long it took, and dist/ of
 * the repository is not touched).
 */
import { execFileSync } from "node:child_process";
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), "focal-build-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// The copy: the build script and the inputs it hashes (sources, configs), no dist/.
for (const p of ["scripts/build.js", "assembly", "src", "asconfig.json", "tsconfig.json"]) cpSync(join(root, p), join(dir, p), { recursive: true });
const log = join(dir, "ran.log");
const tool = (name: string, version: string, outputs: string) => {
  mkdirSync(join(dir, "node_modules", name), { recursive: true });
  writeFileSync(join(dir, "node_modules", name, "package.json"), JSON.stringify({ name, version }));
  const bin = join(dir, "node_modules", ".bin", name === "assemblyscript" ? "asc" : "tsc");
  mkdirSync(join(dir, "node_modules", ".bin"), { recursive: true });
  // Logs its arguments and writes the outputs the build checks for.
  writeFileSync(bin, `#!${process.execPath}
const fs = require("node:fs");
const args = process.argv.slice(2).join(" ");
fs.appendFileSync(${JSON.stringify(log)}, "${name} " + args + "\\n");
fs.mkdirSync("dist", { recursive: true });
for (const o of ${outputs}) fs.writeFileSync(o, "built");
`);
  chmodSync(bin, 0o755);
};
tool("assemblyscript", "0.28.0", '[`dist/focal-${process.argv[process.argv.length - 1]}.wasm`]');
tool("typescript", "5.9.0", '["dist/index.js", "dist/index.d.ts"]');

/** Runs the build in a checkout (the copy unless told); returns what ran (one line per compiler run). */
function build(...args: string[]): string[] {
  return buildIn(dir, ...args);
}
function buildIn(checkout: string, ...args: string[]): string[] {
  writeFileSync(log, "");
  execFileSync(process.execPath, [join(checkout, "scripts/build.js"), ...args], { cwd: checkout, stdio: "pipe", timeout: 60_000 });
  return readFileSync(log, "utf8").split("\n").filter(Boolean);
}

const ASC = ["assemblyscript assembly/index.ts --target simd", "assemblyscript assembly/index.ts --target scalar"];
const TSC = ["typescript -p tsconfig.json"];

describe("incremental build", () => {
  it("builds everything once, then skips what did not change", () => {
    expect(build()).toEqual([...ASC, ...TSC]);
    expect(build()).toEqual([]);
    // rewriting a file with the same content (a touch) changes nothing
    const file = join(dir, "src/cli/main.ts");
    writeFileSync(file, readFileSync(file));
    expect(build()).toEqual([]);
  });

  it("a changed source rebuilds its step only; src/abi.ts (read by both) rebuilds both", () => {
    build();
    writeFileSync(join(dir, "src/cli/main.ts"), `${readFileSync(join(dir, "src/cli/main.ts"), "utf8")}\n// changed\n`);
    expect(build()).toEqual(TSC);
    writeFileSync(join(dir, "assembly/index.ts"), `${readFileSync(join(dir, "assembly/index.ts"), "utf8")}\n// changed\n`);
    expect(build()).toEqual(ASC);
    writeFileSync(join(dir, "src/abi.ts"), `${readFileSync(join(dir, "src/abi.ts"), "utf8")}\n// changed\n`);
    expect(build()).toEqual([...ASC, ...TSC]);
    writeFileSync(join(dir, "src/new-file.ts"), "export const x = 1;\n");
    expect(build()).toEqual(TSC);
    expect(build()).toEqual([]);
  });

  it("a missing output, a config or a compiler version change rebuilds; --force and a named step", () => {
    build();
    unlinkSync(join(dir, "dist/index.d.ts"));
    expect(build()).toEqual(TSC);
    unlinkSync(join(dir, "dist/focal-scalar.wasm"));
    expect(build()).toEqual(ASC);
    writeFileSync(join(dir, "tsconfig.json"), `${readFileSync(join(dir, "tsconfig.json"), "utf8")}\n`);
    expect(build()).toEqual(TSC);
    writeFileSync(join(dir, "node_modules/typescript/package.json"), JSON.stringify({ name: "typescript", version: "5.9.1" }));
    expect(build()).toEqual(TSC);
    expect(build("--force")).toEqual([...ASC, ...TSC]);
    expect(build("ts", "--force")).toEqual(TSC);
    expect(build("wasm")).toEqual([]);
    expect(() => build("docs")).toThrow(/unknown step 'docs'/);
  });

  it("a second checkout sharing node_modules through a symlink (a git worktree) keeps its own record", () => {
    build();
    const other = join(dir, "worktree");
    for (const p of ["scripts", "assembly", "src", "asconfig.json", "tsconfig.json"]) cpSync(join(dir, p), join(other, p), { recursive: true });
    symlinkSync(join(dir, "node_modules"), join(other, "node_modules"));
    // same sources, no dist/ of its own yet: it builds; the first checkout stays built
    expect(buildIn(other)).toEqual([...ASC, ...TSC]);
    expect(build()).toEqual([]);
    // a change built in one checkout is not taken as built in the other
    writeFileSync(join(other, "assembly/index.ts"), `${readFileSync(join(other, "assembly/index.ts"), "utf8")}\n// changed\n`);
    expect(buildIn(other)).toEqual(ASC);
    writeFileSync(join(dir, "assembly/index.ts"), readFileSync(join(other, "assembly/index.ts")));
    expect(build()).toEqual(ASC);
    expect(buildIn(other)).toEqual([]);
  });
});
