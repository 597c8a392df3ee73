/** serve's flags for the run ledger's limits: listed in --help, passed to the handler (a bad value is refused, naming the limit). */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { CLI } from "../support/paths.js";
import { WB_RUBRIC } from "../support/writingbench.js";

const cli = (args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: "utf8", timeout: 30000 });

describe("serve: the ledger's limits", () => {
  const flags: [string, string][] = [
    ["idempotency-window-bytes", "idempotencyWindowBytes must be an integer >= 0"],
    ["max-cached-runs", "maxCachedRuns must be an integer >= 1"],
    ["max-cached-bytes", "maxCachedBytes must be an integer >= 0"],
    ["engine-recycle-cells", "engineRecycleCells must be an integer >= 1"],
  ];
  it("each flag is in --help and reaches the handler", () => {
    const help = cli(["serve", "--help"]);
    for (const [flag, message] of flags) {
      expect(help.stdout).toContain(`--${flag}`);
      const r = cli(["serve", "--rubric", WB_RUBRIC, "--port", "0", `--${flag}`, "-1"]);
      expect(r.status, r.stderr).not.toBe(0);
      expect(r.stderr).toContain(message);
    }
  });
});
