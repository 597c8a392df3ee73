/**
 * The `rules` judge under attack (issue 11): catastrophic regexes refused when the rules are
 * compiled (recheck's analysis), a runaway synchronous rule stopped by the judge timeout (worker
 * thread), and a large /get_reward that leaves the event loop to others while it is judged.
 */
import { describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { createHandler } from "../../dist/service/index.js";
import { JudgeTimeout, rulesJudge, runJudge } from "../../dist/service/judges.js";
import { loadRegexCheck } from "../../dist/service/regex-check.js";
import { workerRulesJudge } from "../../dist/service/rules-worker.js";

const EVIL = "^(\\w+\\s?)*$";
const ATTACK = `${"a".repeat(28)}!`; // 29 characters: seconds of backtracking

describe("regex rules: the ReDoS check", () => {
  it("refuses ^(\\w+\\s?)*$ and (a|a)*b when the rules are compiled, accepts linear patterns", async () => {
    const check = await loadRegexCheck();
    expect(typeof check).toBe("function");
    const options = { checkRegex: check as Exclude<typeof check, string> };
    expect(() => rulesJudge({ format: { regex: EVIL } }, options)).toThrow(/^rules\.format\.regex: "\^\(\\\\w\+\\\\s\?\)\*\$" can backtrack catastrophically \(exponential/);
    expect(() => rulesJudge({ format: [{ json: true }, { regex: "(a|a)*b" }] }, options)).toThrow(/^rules\.format\[1\]\.regex: .*can backtrack catastrophically/);
    const ok = rulesJudge({ n: { regex: "^\\d+(\\.\\d+)?$" }, w: { regex: "\\bthe\\b", flags: "i" } }, options);
    expect(ok("3.14", "", undefined, { signal: new AbortController().signal, index: 0, criteria: ["n", "w"] })).toEqual({ n: 1, w: 0 });
  }, 60_000);
});

describe("rules in a worker thread", () => {
  it("a runaway rule is stopped by the timeout, the event loop stays free, the next rollout is judged", async () => {
    const judge = workerRulesJudge({ a: { regex: EVIL }, b: { contains: "a" } }); // unchecked on purpose
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 10);
    try {
      const stuck = runJudge(judge, [ATTACK, "", undefined], 0, ["a", "b"], 500);
      await expect(stuck).rejects.toBeInstanceOf(JudgeTimeout);
      // the main thread ran timers while the worker backtracked (in line it would have been blocked)
      expect(ticks).toBeGreaterThan(5);
      expect(await runJudge(judge, ["aaa", "", undefined], 1, ["a", "b"], 30_000)).toEqual({ a: 1, b: 1 });
      // rollouts sent in one tick with the stuck one: it times out, they are judged by a fresh worker
      const many = await Promise.allSettled([
        runJudge(judge, [ATTACK, "", undefined], 2, ["a", "b"], 500),
        ...["x y", "a b"].map((t, i) => runJudge(judge, [t, "", undefined], 3 + i, ["a", "b"], 30_000)),
      ]);
      expect(many[0]!.status).toBe("rejected");
      expect(many.slice(1).map((r) => (r as PromiseFulfilledResult<unknown>).value)).toEqual([{ a: 1, b: 0 }, { a: 1, b: 1 }]);
    } finally {
      clearInterval(ticker);
    }
  }, 60_000);

  it("bad rules are refused in the calling thread", () => {
    expect(() => workerRulesJudge({ a: { regex: "(" } })).toThrow(/rules\.a\.regex: Invalid regular expression/);
  });
});

describe("large /get_reward", () => {
  it("judging 20,000 rollouts lets a timer run before it is done", async () => {
    let judged = 0;
    const h = createHandler({ rubric: [{ id: "a" }], createEngine, scope: "group", judge: () => (judged++, { a: 0.5 }) });
    const n = 20_000;
    const q = Array.from({ length: n }, (_, i) => `q${i}`);
    const body = JSON.stringify({ query: q, groupSizes: Array(n / 8).fill(8) });
    await h.ready;
    const reply = h(new Request("http://t/get_reward", { method: "POST", headers: { "content-type": "application/json" }, body }));
    // timers until judging has begun: the first one after must not wait for the last rollout
    let seen = 0;
    while (seen === 0) seen = await new Promise<number>((r) => setTimeout(() => r(judged), 0));
    const res = await reply;
    expect(res.status).toBe(200);
    expect(judged).toBe(n);
    expect(seen).toBeLessThan(n);
  });
});
