/**
 * Issue 10, "Done when": a stream-scope step split into three /v1/score requests gives the same
 * rewards and the same final state bytes in every order of arrival, and equals
 * `focal-reward score --scope stream --stepped` on the same rows. The real server and the real CLI,
 * spawned from dist/ (run `npm run build` first), over loopback.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../support/paths.js";
import { prng } from "../support/prng.js";
import { startServer } from "../support/serve-load.js";

const RUBRIC = { criteria: [{ id: "accuracy", weight: 2 }, { id: "format" }, { id: "depth" }, { id: "toxicity", weight: -1 }] };
const IDS = RUBRIC.criteria.map((c) => c.id);

const dir = mkdtempSync(join(tmpdir(), "focal-stepped-"));
writeFileSync(join(dir, "rubric.json"), JSON.stringify(RUBRIC));
const servers: { stop(signal?: string): Promise<unknown> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

type Row = Record<string, number | null>;
interface Group { id: string; rows: Row[] }

/** Seeded groups of 4 rollouts; some criteria unjudged (null). */
function groups(seed: number, count: number): Group[] {
  const r = prng(seed);
  return Array.from({ length: count }, (_, g) => ({
    id: `s${seed}-p${g}`,
    rows: Array.from({ length: 4 }, () => Object.fromEntries(IDS.map((id) => [id, r() < 0.1 ? null : Math.round(r() * 1000) / 1000]))),
  }));
}

async function post(url: string, body: unknown) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

/** The rows of a step as the CLI reads them: one line per rollout. */
const lines = (step: number, gs: Group[]) => gs.flatMap((g) => g.rows.map((row) => JSON.stringify({ step, group: g.id, scores: row }))).join("\n") + "\n";

function cli(args: string[], input: string): { step: number; group: string; reward: number }[] {
  const out = execFileSync(process.execPath, [CLI, "score", "--scope", "stream", "--stepped", "--rubric", join(dir, "rubric.json"), ...args], { input, encoding: "utf8" });
  return out.trim().split("\n").map((l) => JSON.parse(l));
}

describe("step-keyed /v1/score (serve --stepped)", () => {
  it("a step split into three requests: the same rewards and state bytes in every arrival order, equal to score --stepped", async () => {
    const s = await startServer({ rubricFile: join(dir, "rubric.json"), args: ["--stepped"] });
    servers.push(s);
    const step0 = groups(1, 3);
    const parts = [groups(2, 2), groups(3, 3), groups(4, 1)];
    const step2 = groups(5, 2);

    // The CLI: step 0, then step 1 in one call, then step 2 (rows in the order of parts 0, 1, 2).
    const expected = cli([], lines(0, step0) + lines(1, parts.flat()) + lines(2, step2));
    const rewardOf = new Map(expected.map((o, i) => [`${o.step}/${o.group}/${i}`, o.reward]));
    expect(rewardOf.size).toBe(expected.length);
    // The CLI again, one invocation per request with --state: the split step resumes exactly.
    const state = join(dir, "cli.state");
    const chunks = [lines(0, step0), ...parts.map((p) => lines(1, p)), lines(2, step2)];
    const split = chunks.flatMap((text) => cli(["--state", state], text));
    expect(split.map((o) => o.reward)).toEqual(expected.map((o) => o.reward));
    const cliState = readFileSync(state);

    const orders = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], "concurrent"] as const;
    const states: string[] = [];
    for (const [o, order] of orders.entries()) {
      const run = `order-${o}`;
      const first = await post(`${s.url}/v1/score`, { run, step: 0, groups: step0 });
      expect(first.status).toBe(200);
      const replies: { rewards: number[] }[] = [];
      if (order === "concurrent") {
        const all = await Promise.all(parts.map((groups) => post(`${s.url}/v1/score?step=1`, { run, groups })));
        all.forEach((a, p) => { expect(a.status).toBe(200); replies[p] = a.json; });
      } else {
        for (const p of order) {
          const a = await post(`${s.url}/v1/score`, { run, step: 1, groups: parts[p] });
          expect(a.status, JSON.stringify(a.json)).toBe(200);
          replies[p] = a.json;
        }
      }
      const last = await post(`${s.url}/v1/score`, { run, step: 2, groups: step2 });
      expect(last.status).toBe(200);
      // Rewards of the server equal the CLI's, row by row, whatever the order.
      const got = [...first.json.rewards, ...replies.flatMap((r) => r.rewards), ...last.json.rewards];
      expect(got.length).toBe(expected.length);
      got.forEach((g, i) => expect(Math.abs(g - expected[i].reward), `order ${order} row ${i}`).toBeLessThanOrEqual(1e-6));
      expect(last.json.metrics["focal/late_rows"]).toBe(0);
      const bytes = Buffer.from(await (await fetch(`${s.url}/v1/runs/${run}/state`, { headers: { accept: "application/octet-stream" } })).arrayBuffer());
      states.push(bytes.toString("hex"));
    }
    // Every order ends in the same state bytes, and in the CLI's (five calls there too).
    expect(new Set(states).size).toBe(1);
    expect(states[0]).toBe(cliState.toString("hex"));

    // A late request (step 1 again) uses step 1's weights; a step-less request is refused.
    const late = await post(`${s.url}/v1/score`, { run: "order-0", step: 1, groups: parts[0] });
    expect(late.status).toBe(200);
    expect(late.json.metrics["focal/late_rows"]).toBe(8);
    const none = await post(`${s.url}/v1/score`, { run: "order-0", groups: parts[0] });
    expect(none.status).toBe(400);
    expect(none.json.detail ?? none.json.title).toMatch(/step/);
  });

  it("/get_reward takes the step from the body or ?step=: requests of one step get the same weights", async () => {
    const s = await startServer({ rubricFile: join(dir, "rubric.json"), args: ["--stepped"] });
    servers.push(s);
    const label = (a: number, f: number) => JSON.stringify({ accuracy: a, format: f, depth: 0.5, toxicity: 0 });
    const req = (labels: string[]) => ({ query: labels.map((_, i) => `q${i}`), prompts: labels.map(() => "p"), labels });
    const a0 = await post(`${s.url}/get_reward?run=g&step=0`, req([label(1, 0), label(0, 1)]));
    const b0 = await post(`${s.url}/get_reward?run=g`, { ...req([label(0.2, 1)]), step: 0 });
    const a1 = await post(`${s.url}/get_reward?run=g&step=1`, req([label(1, 0), label(0, 1)]));
    const b1 = await post(`${s.url}/get_reward?run=g&step=1`, req([label(0.2, 1)]));
    for (const r of [a0, b0, a1, b1]) expect(r.status, JSON.stringify(r.json)).toBe(200);
    for (const [x, y] of [[a0, b0], [a1, b1]]) {
      for (const id of IDS) expect(x.json.extra_logs[`focal/${id}/weight`]).toBe(y.json.extra_logs[`focal/${id}/weight`]);
    }
    // Step 0 used the base weights (sbar = 0 everywhere), but no criterion had an estimate yet, so
    // extra_logs shows no weight (issue 12); step 1 has estimates and moved away from the base weights.
    expect(a0.json.extra_logs["focal/accuracy/weight"]).toBeUndefined();
    expect(typeof a1.json.extra_logs["focal/accuracy/weight"]).toBe("number");
    expect(a1.json.extra_logs["focal/accuracy/weight"]).not.toBe(Math.fround(0.4));
    const conflict = await post(`${s.url}/get_reward?run=g&step=1`, { ...req([label(1, 1)]), step: 2 });
    expect(conflict.status).toBe(400);
  });

  it("Idempotency-Key run/step/rank/chunk: a split step from two ranks, retried, applies each chunk once; a key reused with another body is 422", async () => {
    const s = await startServer({ rubricFile: join(dir, "rubric.json"), args: ["--stepped"] });
    servers.push(s);
    const chunks = [groups(30, 2), groups(31, 1), groups(32, 2), groups(33, 1)];
    const keyOf = (c: number) => `my-run/step-5/rank-${c >> 1}/chunk-${c & 1}`;
    const send = (run: string, c: number, key?: string, body = chunks[c]) =>
      fetch(`${s.url}/v1/score`, { method: "POST", headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) }, body: JSON.stringify({ run, step: 5, groups: body }) });
    const first = await Promise.all(chunks.map((_, c) => send("keyed", c, keyOf(c))));
    const bodies = await Promise.all(first.map((r) => r.text()));
    first.forEach((r) => expect(r.status).toBe(200));
    // Every chunk retried (as a rank does after a timeout): the first answers, nothing applied again.
    const retries = await Promise.all(chunks.map((_, c) => send("keyed", c, keyOf(c))));
    for (const [c, r] of retries.entries()) {
      expect(r.headers.get("idempotent-replayed")).toBe("true");
      expect(await r.text()).toBe(bodies[c]);
    }
    const reused = await send("keyed", 0, keyOf(0), chunks[1]);
    expect(reused.status).toBe(422);
    // The same chunks without keys, once each, in another order: the same state bytes.
    for (const c of [3, 1, 0, 2]) expect((await send("plain", c)).status).toBe(200);
    const state = async (run: string) => Buffer.from(await (await fetch(`${s.url}/v1/runs/${run}/state`)).arrayBuffer()).toString("hex");
    expect(await state("keyed")).toBe(await state("plain"));
  });

  it("refuses a stale step with 409 and leaves the state as it was", async () => {
    const s = await startServer({ rubricFile: join(dir, "rubric.json"), args: ["--stepped"] });
    servers.push(s);
    for (let step = 0; step < 10; step++) expect((await post(`${s.url}/v1/score`, { run: "r", step, groups: groups(step + 10, 1) })).status).toBe(200);
    const before = Buffer.from(await (await fetch(`${s.url}/v1/runs/r/state`, { headers: { accept: "application/octet-stream" } })).arrayBuffer());
    const stale = await post(`${s.url}/v1/score`, { run: "r", step: 0, groups: groups(1, 1) });
    expect(stale.status).toBe(409);
    expect(JSON.stringify(stale.json)).toMatch(/step 0 is stale/);
    const after = Buffer.from(await (await fetch(`${s.url}/v1/runs/r/state`, { headers: { accept: "application/octet-stream" } })).arrayBuffer());
    expect(after.toString("hex")).toBe(before.toString("hex"));
  });
});
