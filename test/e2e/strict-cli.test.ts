/**
 * Strict input on the command line (spec "Validation ranges and strictness"): flags, rubric files
 * (top-level options, criteria, rules) and method specs refuse unknown keys with the nearest valid
 * one, for score, compare, replay and serve as a user runs them; a rubric file's options apply.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../support/paths.js";

const dir = mkdtempSync(join(tmpdir(), "focal-strict-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], input = "") {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8", cwd: dir, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function rubricFile(name: string, json: unknown): string {
  const path = join(dir, name);
  writeFileSync(path, typeof json === "string" ? json : JSON.stringify(json));
  return path;
}

const LOG = [
  { group: "p1", scores: { accuracy: 1, tone: 0.2 } },
  { group: "p1", scores: { accuracy: 0, tone: 0.9 } },
  { group: "p1", scores: { accuracy: 0.5, tone: 0.5 } },
].map((l) => JSON.stringify(l)).join("\n") + "\n";

describe("flags", () => {
  it.each([["score"], ["compare"], ["replay"], ["serve"]])("%s --gama: exit 2, did you mean --gamma?", (command) => {
    const r = cli([command, "--gama", "0"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/unknown flag '--gama' \(did you mean --gamma\?\)/);
  });
});

describe("rubric files", () => {
  const typos: [string, unknown, RegExp][] = [
    ["top-level gama and min_weight", { criteria: [{ id: "accuracy" }, { id: "tone" }], gama: 0, min_weight: 0.2 }, /unknown key "gama": did you mean "gamma"\?/],
    ["a criterion's wieght", { criteria: [{ id: "accuracy", wieght: 5 }, { id: "tone" }] }, /criterion 'accuracy': unknown key "wieght": did you mean "weight"\?/],
    ["weight -1 with polarity reward", { criteria: [{ id: "accuracy", weight: -1, polarity: "reward" }, { id: "tone" }] }, /weight -1 with polarity "reward" contradicts itself/],
    ["a criterion id __proto__", '{"criteria": [{"id": "__proto__"}, {"id": "tone"}]}', /criterion id "__proto__" is reserved/],
    ["weight 1e39", { criteria: [{ id: "accuracy", weight: 1e39 }, { id: "tone" }] }, /0 < \|weight\| <= 1e30, got 1e\+39/],
  ];
  for (const [name, json, message] of typos) {
    it(`${name}: refused by score, compare, replay and serve before any output`, () => {
      const path = rubricFile(`${name.replace(/\W+/g, "-")}.json`, json);
      for (const args of [["score", "--rubric", path], ["compare", "--rubric", path], ["replay", "-", "--rubric", path, "--report", join(dir, "r.html")], ["serve", "--rubric", path, "--port", "0"]]) {
        const r = cli(args, LOG);
        expect(r.code, `${args[0]}: ${r.stderr}`).toBe(1);
        expect(r.stderr, args[0]).toMatch(message);
        expect(r.stdout, args[0]).toBe("");
      }
    });
  }

  it("a rule's typo (ignorecase) is refused by serve at startup", () => {
    const path = rubricFile("rule-typo.json", { criteria: [{ id: "polite", rule: { contains: "please", ignorecase: true } }] });
    const r = cli(["serve", "--rubric", path, "--port", "0", "--judge", "rules"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/unknown key "ignorecase": did you mean "ignoreCase"\?/);
  });

  it("the file's options apply in score (gamma 0 = static weights) and a flag overrides them", () => {
    const path = rubricFile("gamma0.json", { criteria: [{ id: "accuracy" }, { id: "tone", description: "polite and warm" }], gamma: 0, advantage: "none" });
    const r = cli(["score", "--rubric", path], LOG);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout.trim().split("\n").map((l) => JSON.parse(l) as { reward: number; direct: number; advantage: number });
    for (const o of out) {
      expect(o.reward).toBeCloseTo(o.direct, 6);
      expect(o.advantage).toBe(0);
    }
    const flagged = cli(["score", "--rubric", path, "--gamma", "3"], LOG).stdout.trim().split("\n").map((l) => JSON.parse(l) as { reward: number; direct: number });
    expect(flagged.some((o) => Math.abs(o.reward - o.direct) > 1e-3)).toBe(true);
  });
});

describe("method specs", () => {
  it("compare --methods power-mean:pwer=-1 names the option it meant", () => {
    const path = rubricFile("plain.json", { criteria: [{ id: "accuracy" }, { id: "tone" }] });
    const r = cli(["compare", "--rubric", path, "--methods", "focal,power-mean:pwer=-1"], LOG);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--methods power-mean:pwer=-1: unknown option 'pwer': did you mean 'power'\?/);
    const m = cli(["compare", "--rubric", path, "--methods", "focal,wieghted-mean"], LOG);
    expect(m.stderr).toMatch(/unknown method 'wieghted-mean': did you mean 'weighted-mean'\?/);
    const g = cli(["compare", "--rubric", path, "--methods", "focal:gamma=1e39"], LOG);
    expect(g.stderr).toMatch(/gamma must be in \[0, 64\], got 1e\+39/);
  });
});
