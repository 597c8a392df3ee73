/**
 * `focal-reward demo` from the CLI: the table and the report file, identical across runs and on
 * simd and scalar, bad options refused.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../support/paths.js";

const dir = mkdtempSync(join(tmpdir(), "focal-demo-cli-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("demo from the CLI", () => {
  it("runs end to end from the CLI and writes the report", () => {
    const report = join(dir, "report.html");
    const r = spawnSync(process.execPath, [CLI, "demo", "--seeds", "2", "--steps", "30", "--report", report], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain("weighted mean (static)");
    expect(r.stdout).toContain("gamma = 0 reproduces");
    expect(r.stderr).toContain("report written to");
    expect(existsSync(report)).toBe(true);
    const html = readFileSync(report, "utf8");
    expect(html).toContain("<svg");
    expect(html).not.toMatch(/<script|https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
  });

  it("prints the same table on every run and on simd and scalar", () => {
    const out = (backend: string): string => {
      const r = spawnSync(process.execPath, [CLI, "demo", "--seeds", "2", "--steps", "30", "--backend", backend, "--report", join(dir, `r-${backend}.html`)], { encoding: "utf8" });
      expect(r.status, r.stderr).toBe(0);
      expect(r.stdout).toContain(`backend ${backend}`);
      return r.stdout.replace(`backend ${backend}`, "backend X");
    };
    const simd = out("simd");
    expect(out("simd")).toBe(simd);
    expect(out("scalar")).toBe(simd);
  });

  it("rejects bad options", () => {
    const r = spawnSync(process.execPath, [CLI, "demo", "--seeds", "0"], { encoding: "utf8" });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("--seeds");
    const u = spawnSync(process.execPath, [CLI, "demo", "--bogus"], { encoding: "utf8" });
    expect(u.status).toBe(2);
  });
});
