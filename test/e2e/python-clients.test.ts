/**
 * The Python adapters (clients/python, package focal_reward): their unittest suite starts the real
 * server from dist/ and calls each adapter as its trainer does. Run here so it counts in npm test.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

describe("clients/python (python3 -m unittest)", () => {
  it("passes", () => {
    const r = spawnSync("python3", ["-m", "unittest", "discover", "-s", "clients/python", "-v"], { encoding: "utf8", timeout: 120_000 });
    if (r.status !== 0) console.error(r.stdout, r.stderr);
    expect(r.error).toBeUndefined();
    expect(r.stderr).toMatch(/\nOK\n?$/);
    expect(r.stderr).toMatch(/Ran [1-9]\d* tests/);
    expect(r.status).toBe(0);
  }, 150_000);
});
