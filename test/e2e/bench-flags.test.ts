/**
 * The bench scripts' flags are strict: a typo stops the run with the nearest flag's name instead of
 * starting a long run on the defaults, and --help lists the flags. Nothing here runs a benchmark.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "../support/paths.js";

function bench(script: string, args: string[]) {
  const r = spawnSync(process.execPath, [join(ROOT, "bench", script), ...args], { encoding: "utf8", timeout: 30000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe("bench flags", () => {
  it("an unknown flag is a usage error naming the nearest", () => {
    const r = bench("cli.bench.js", ["--rwos", "1000"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown flag --rwos (did you mean --rows?)");
    expect(bench("serve.bench.js", ["--falt"]).stderr).toContain("did you mean --fault?");
  });

  it("a bad value or list item is a usage error", () => {
    expect(bench("cli.bench.js", ["--rows", "1e3x"])).toMatchObject({ code: 2, stderr: expect.stringContaining("--rows: expected an integer") });
    expect(bench("cli.bench.js", ["--formats", "jsonl,parqet"]).stderr).toContain("unknown 'parqet' (did you mean 'parquet'?)");
    expect(bench("serve.bench.js", ["--connections", "0"]).code).toBe(2);
    expect(bench("cli.bench.js", ["--digits", "fulll"])).toMatchObject({ code: 2, stderr: expect.stringContaining("--digits: expected an integer") });
  });

  it("--help lists every flag with its default and exits 0", () => {
    const r = bench("cli.bench.js", ["--help"]);
    expect(r.code).toBe(0);
    for (const flag of ["--rows", "--criteria", "--digits", "--formats", "--commands", "--dir", "--cli"]) expect(r.stdout).toContain(flag);
    expect(r.stdout).toContain("(default 10000000)");
  });
});
