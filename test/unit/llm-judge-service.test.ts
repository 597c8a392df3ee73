/**
 * `createHandler({ judge: "llm" })`: /get_reward judged by the local OpenAI-compatible server.
 * A failed judgement makes that rollout invalid (the spec's step 8: the group's mean reward, not
 * a 0), is counted per status in extra_logs and /metrics, and is logged; a replayed request costs
 * no second call. Runs against the engine in dist/ (`npm run build` first).
 */
import { afterEach, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { createHandler, type FetchHandler } from "../../dist/service/index.js";
import type { HandlerOptions } from "../../dist/service/handler.js";
import { type OpenAiServer, startOpenAiServer } from "../support/openai-server.js";

const RUBRIC = [
  { id: "accuracy", text: "The answer is correct.", weight: 2 },
  { id: "clarity", text: "The answer is clear.", choices: ["unclear", "somewhat", "clear"] },
  { id: "toxicity", text: "The answer insults the user.", weight: -1 },
];

let server: OpenAiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

async function post(h: FetchHandler, path: string, body: unknown) {
  const res = await h(new Request(`http://service.test${path}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }));
  return { status: res.status, json: (await res.json()) as any };
}

describe("service with the llm judge", () => {
  it("judges /get_reward rollouts; a failed judgement is an invalid rollout, counted per status and logged", async () => {
    server = await startOpenAiServer();
    const logs: string[] = [];
    const h = createHandler({
      rubric: RUBRIC,
      createEngine,
      scope: "group",
      advantage: "none",
      judge: "llm",
      judgeConcurrency: 1,
      llm: { url: server.url, model: "judge", backoffMs: 1, maxBackoffMs: 2 },
      log: (l) => logs.push(l),
    } as HandlerOptions);
    const prompts = ["Q:", "Q:", "Q:", "Q:"];
    const query = ["Q: A [accuracy=yes] [clarity=clear]", "Q: B [clarity=somewhat]", "Q: C [judge:refuse]", "Q: D [accuracy=yes] [toxicity=yes]"];
    const res = await post(h, "/get_reward", { query, prompts });
    expect(res.status).toBe(200);
    expect(res.json.extra_logs.judge_failures).toBe(1);
    expect(res.json.extra_logs["judge_failures/invalid"]).toBe(1);
    const [a, b, c, d] = res.json.rewards as number[];
    // The failed rollout is invalid: it gets the group's mean reward (step 8), never a 0.
    expect(c).toBeCloseTo((a! + b! + d!) / 3, 6);
    expect(a!).toBeGreaterThan(d!);
    // The service's response echoes the direct reward: A meets everything, so it is 1.
    expect(res.json.scores[0]).toBeCloseTo(1, 6);
    expect(server.requests).toHaveLength(4);
    // The response text the judge saw is the query without its prompt.
    expect(server.requests[0]!.body.messages[1]!.content).toContain("<response>\n A [accuracy=yes] [clarity=clear]\n</response>");
    const m = await (await h(new Request("http://service.test/metrics"))).text();
    expect(m).toMatch(/focal_judge_failures_total\{reason="invalid"\} 1/);
    expect(m).toMatch(/focal_llm_judge_failures_total\{status="invalid"\} 1/);
    expect(m).toMatch(/focal_llm_judge_requests_total\{status="200"\} 4/);
    expect(logs.some((l) => /judge failure: run=default criterion=\* reason=invalid: no JSON object with "verdicts"/.test(l))).toBe(true);

    // The same request again (a trainer's retry): the judged rollouts come from the cache; only the failed one is asked again.
    const again = await post(h, "/get_reward", { query, prompts });
    expect(again.json.rewards).toEqual(res.json.rewards);
    expect(server.requests).toHaveLength(5);
  });

  it("a label {\"criteria\": [...]} carries the rollout's own criteria (instance rubric)", async () => {
    server = await startOpenAiServer();
    const h = createHandler({ rubric: RUBRIC, createEngine, scope: "group", judge: "llm", llm: { url: server.url, model: "judge" } } as HandlerOptions);
    const label = JSON.stringify({ criteria: [{ id: "accuracy", text: "The answer names Paris." }] });
    const res = await post(h, "/get_reward", { query: ["Q: Paris [accuracy=yes]"], prompts: ["Q:"], labels: [label] });
    expect(res.status).toBe(200);
    const user = server.requests[0]!.body.messages[1]!.content;
    expect(user).toContain("The answer names Paris.");
    expect(user).not.toContain("clarity");
    expect(res.json.scores[0]).toBe(1);
  });

  it("every rollout failing answers 502 with the first error", async () => {
    server = await startOpenAiServer();
    const h = createHandler({ rubric: RUBRIC, createEngine, scope: "group", judge: "llm", llm: { url: server.url, model: "judge", retries: 0 }, log: () => {} } as HandlerOptions);
    server.next({ status: 500, message: "overloaded" }, { status: 500, message: "overloaded" });
    const res = await post(h, "/get_reward", { query: ["Q: a", "Q: b"], prompts: ["Q:", "Q:"] });
    expect(res.status).toBe(502);
    expect(res.json.detail).toMatch(/HTTP 500: overloaded/);
  });

  it("refuses judge llm without settings, or a rubric criterion without text", () => {
    expect(() => createHandler({ rubric: RUBRIC, createEngine, judge: "llm" } as HandlerOptions)).toThrow(/needs the llm option/);
    expect(() => createHandler({ rubric: [{ id: "a" }], createEngine, judge: "llm", llm: { url: "http://127.0.0.1:9/v1", model: "m" } } as HandlerOptions)).toThrow(/'a': "text" must be/);
  });
});
