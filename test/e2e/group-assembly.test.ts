/**
 * Issue 10, "Done when": four prompts x four samples sent as sixteen concurrent single-sample
 * OpenRLHF requests, shuffled, to `serve --group-size 4` get exactly the rewards of
 * `focal-reward score --scope group` on the same sixteen rows (to 1e-6), with numbers only in
 * extra_logs. Also: gathering by key within one request (no --group-size), a group closed by its
 * wait, a client that gives up, the caps (503 + Retry-After), slime's one-sample body and /metrics.
 * The labels judge carries each row's scores in its label, so the CLI can score the same rows.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CLI } from "../support/paths.js";
import { prng } from "../support/prng.js";
import { startRedis } from "../support/redis-server.js";
import { startServer } from "../support/serve-load.js";

const RUBRIC = { criteria: [{ id: "accuracy", weight: 2 }, { id: "format" }, { id: "depth" }, { id: "toxicity", weight: -1 }] };
const IDS = RUBRIC.criteria.map((c) => c.id);
const dir = mkdtempSync(join(tmpdir(), "focal-assembly-"));
const rubricFile = join(dir, "rubric.json");
writeFileSync(rubricFile, JSON.stringify(RUBRIC));
const servers: { stop(signal?: string): Promise<unknown> }[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

async function serve(args: string[]) {
  const s = await startServer({ rubricFile, args: ["--scope", "group", ...args] });
  servers.push(s);
  return s;
}

interface Sample { prompt: string; query: string; scores: Record<string, number> }

function samples(seed: number, prompts: number, perPrompt: number): Sample[] {
  const r = prng(seed);
  const out: Sample[] = [];
  for (let p = 0; p < prompts; p++) {
    for (let j = 0; j < perPrompt; j++) {
      out.push({ prompt: `What is ${p} + ${p}?`, query: `What is ${p} + ${p}? Answer ${j}`, scores: Object.fromEntries(IDS.map((id) => [id, Math.round(r() * 1000) / 1000])) });
    }
  }
  return out;
}

function shuffled<T>(xs: readonly T[], seed: number): T[] {
  const r = prng(seed), a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** `focal-reward score --scope group` on the rows, grouped by prompt: reward per query. */
function cliRewards(rows: readonly Sample[]): Map<string, number> {
  const input = rows.map((s) => JSON.stringify({ group: s.prompt, scores: s.scores })).join("\n") + "\n";
  const out = execFileSync(process.execPath, [CLI, "score", "--scope", "group", "--rubric", rubricFile], { input, encoding: "utf8" });
  const lines = out.trim().split("\n").map((l) => JSON.parse(l) as { reward: number });
  return new Map(rows.map((s, i) => [s.query, lines[i]!.reward]));
}

async function post(url: string, body: unknown, signal?: AbortSignal) {
  const res = await fetch(url, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body), signal });
  return { status: res.status, headers: res.headers, json: await res.json() };
}

/** OpenRLHF's one-sample body. */
const openrlhf = (s: Sample) => ({ query: [s.query], prompts: [s.prompt], labels: [JSON.stringify(s.scores)] });

function expectNumbersOnly(logs: Record<string, unknown>) {
  for (const [k, v] of Object.entries(logs)) expect(typeof v === "number" && Number.isFinite(v), `extra_logs.${k} = ${JSON.stringify(v)}`).toBe(true);
}

async function metricsOf(url: string): Promise<string> {
  return (await fetch(`${url}/metrics`)).text();
}

describe("group assembly for per-sample clients (serve --group-size)", () => {
  it("16 concurrent shuffled one-sample OpenRLHF requests equal score --scope group on the 16 rows", async () => {
    const s = await serve(["--group-size", "4", "--group-wait", "120000"]);
    const rows = samples(1, 4, 4);
    const expected = cliRewards(rows);
    const replies = await Promise.all(shuffled(rows, 7).map(async (row) => ({ row, reply: await post(`${s.url}/get_reward`, openrlhf(row)) })));
    for (const { row, reply } of replies) {
      expect(reply.status, JSON.stringify(reply.json)).toBe(200);
      expect(reply.json.rewards).toHaveLength(1);
      expect(Math.abs(reply.json.rewards[0] - expected.get(row.query)!), row.query).toBeLessThanOrEqual(1e-6);
      expectNumbersOnly(reply.json.extra_logs);
      expect(reply.json.extra_logs["focal/group_rows"]).toBe(4);
    }
    const m = await metricsOf(s.url);
    expect(m).toMatch(/^focal_assembly_groups_closed_total\{reason="full"\} 4$/m);
    expect(m).toMatch(/^focal_assembly_held_rows 0$/m);
    expect(m).toMatch(/^focal_assembly_wait_seconds_count 16$/m);
  });

  it("a client that gives up still counts for its group; a partial group closes when its wait ends", async () => {
    const s = await serve(["--group-size", "4", "--group-wait", "400"]);
    const rows = samples(2, 1, 4);
    const expected = cliRewards(rows);
    const abort = new AbortController();
    const gone = post(`${s.url}/get_reward`, openrlhf(rows[0]!), abort.signal).catch((e: Error) => e);
    // The first row is held before the client leaves: wait until /metrics shows it (bounded by count).
    for (let i = 0; i < 400 && !/^focal_assembly_held_rows 1$/m.test(await metricsOf(s.url)); i++) await new Promise((r) => setTimeout(r, 10));
    abort.abort();
    expect(await gone).toBeInstanceOf(Error);
    const rest = await Promise.all(rows.slice(1).map((row) => post(`${s.url}/get_reward`, openrlhf(row))));
    rest.forEach((reply, i) => {
      expect(reply.json.extra_logs["focal/group_rows"]).toBe(4);
      expect(Math.abs(reply.json.rewards[0] - expected.get(rows[i + 1]!.query)!)).toBeLessThanOrEqual(1e-6);
    });
    // Three rows of another prompt: scored as a group of three once the 400 ms wait ends.
    const three = samples(3, 1, 3);
    const partial = cliRewards(three);
    const got = await Promise.all(three.map((row) => post(`${s.url}/get_reward`, openrlhf(row))));
    got.forEach((reply, i) => {
      expect(reply.status).toBe(200);
      expect(reply.json.extra_logs["focal/group_rows"]).toBe(3);
      expect(reply.json.extra_logs["focal/group_timed_out"]).toBe(1);
      expect(Math.abs(reply.json.rewards[0] - partial.get(three[i]!.query)!)).toBeLessThanOrEqual(1e-6);
    });
    expect(await metricsOf(s.url)).toMatch(/^focal_assembly_groups_closed_total\{reason="timeout"\} 1$/m);
  });

  it("caps the held rows and groups with 503 + Retry-After, holding nothing of the refused request", async () => {
    const s = await serve(["--group-size", "4", "--group-wait", "120000", "--max-held-rows", "2"]);
    const rows = samples(4, 3, 1);
    const held = [post(`${s.url}/get_reward`, openrlhf(rows[0]!)), post(`${s.url}/get_reward`, openrlhf(rows[1]!))];
    for (let i = 0; i < 400 && !/^focal_assembly_held_rows 2$/m.test(await metricsOf(s.url)); i++) await new Promise((r) => setTimeout(r, 10));
    const refused = await post(`${s.url}/get_reward`, openrlhf(rows[2]!));
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toMatch(/^\d+$/);
    expect(JSON.stringify(refused.json)).toMatch(/--max-held-rows/);
    expect(await metricsOf(s.url)).toMatch(/^focal_assembly_held_rows 2$/m);
    await s.stop("SIGTERM"); // shutdown scores the held groups as they are
    for (const h of held) expect((await h).status).toBe(200);
    // Bad flags are usage errors.
    expect(() => execFileSync(process.execPath, [CLI, "serve", "--rubric", rubricFile, "--group-wait", "10"], { stdio: "pipe" })).toThrow(/--group-wait needs --group-size/);
    expect(() => execFileSync(process.execPath, [CLI, "serve", "--rubric", rubricFile, "--group-size", "0"], { stdio: "pipe" })).toThrow(/groupSize must be an integer >= 1/);
  });

  it("without --group-size a request's rows are gathered by key over the whole request (A, B, A, B)", async () => {
    const s = await serve([]);
    const rows = samples(5, 2, 3);
    const expected = cliRewards(rows);
    const mixed = shuffled(rows, 3);
    const reply = await post(`${s.url}/get_reward`, { query: mixed.map((r) => r.query), prompts: mixed.map((r) => r.prompt), labels: mixed.map((r) => JSON.stringify(r.scores)) });
    expect(reply.status).toBe(200);
    mixed.forEach((row, i) => expect(Math.abs(reply.json.rewards[i] - expected.get(row.query)!)).toBeLessThanOrEqual(1e-6));
    expectNumbersOnly(reply.json.extra_logs);
    // group_ids override the prompt as the key.
    const byId = await post(`${s.url}/get_reward`, { query: mixed.map((r) => r.query), prompts: mixed.map(() => "same prompt"), labels: mixed.map((r) => JSON.stringify(r.scores)), group_ids: mixed.map((r) => r.prompt) });
    expect(byId.json.rewards).toEqual(reply.json.rewards);
    // Unknown fields are refused with the nearest known one.
    const typo = await post(`${s.url}/get_reward`, { query: ["x"], prompts: ["p"], lables: ["{}"] });
    expect(typo.status).toBe(400);
    expect(JSON.stringify(typo.json)).toMatch(/did you mean \\"labels\\"/);
  });

  it("refuses methods that act only on advantages on /get_reward, unless --reward-output advantage", async () => {
    const refusing = await serve(["--method", "gdpo"]);
    const rows = samples(8, 1, 4);
    const refused = await post(`${refusing.url}/get_reward`, openrlhf(rows[0]!));
    expect(refused.status).toBe(400);
    expect(JSON.stringify(refused.json)).toMatch(/acts only on the advantages.*--reward-output advantage/);
    const s = await serve(["--method", "gdpo", "--reward-output", "advantage", "--group-size", "4", "--group-wait", "120000"]);
    const input = rows.map((r) => JSON.stringify({ group: r.prompt, scores: r.scores })).join("\n") + "\n";
    const cli = execFileSync(process.execPath, [CLI, "score", "--scope", "group", "--method", "gdpo", "--rubric", rubricFile], { input, encoding: "utf8" })
      .trim().split("\n").map((l) => JSON.parse(l) as { advantage: number });
    const replies = await Promise.all(rows.map((row) => post(`${s.url}/get_reward`, openrlhf(row))));
    replies.forEach((reply, i) => {
      expect(reply.status, JSON.stringify(reply.json)).toBe(200);
      expect(Math.abs(reply.json.rewards[0] - cli[i]!.advantage)).toBeLessThanOrEqual(1e-5);
    });
    expect(cli.some((c) => Math.abs(c.advantage) > 0.1)).toBe(true);
  });

  it("takes slime's one-sample body {prompt, response, label} and answers {reward}", async () => {
    const s = await serve(["--group-size", "2", "--group-wait", "120000"]);
    const rows = samples(6, 1, 2);
    const expected = cliRewards(rows);
    const replies = await Promise.all(rows.map((row) => post(`${s.url}/get_reward`, { prompt: row.prompt, response: row.query, label: row.scores })));
    replies.forEach((reply, i) => {
      expect(reply.status, JSON.stringify(reply.json)).toBe(200);
      expect(Math.abs(reply.json.reward - expected.get(rows[i]!.query)!)).toBeLessThanOrEqual(1e-6);
      expectNumbersOnly(reply.json.extra_logs);
    });
  });

  it("three replicas on one Redis: the 16 one-sample requests spread over them equal score --scope group", async () => {
    const redis = await startRedis();
    try {
      const args = ["--group-size", "4", "--group-wait", "120000", "--store", redis.url, "--store-prefix", "asm:"];
      const replicas = await Promise.all([0, 1, 2].map(() => serve(args)));
      const rows = samples(3, 4, 4);
      const expected = cliRewards(rows);
      const replies = await Promise.all(shuffled(rows, 11).map(async (row, i) => ({ row, reply: await post(`${replicas[i % 3]!.url}/get_reward`, openrlhf(row)) })));
      for (const { row, reply } of replies) {
        expect(reply.status, JSON.stringify(reply.json)).toBe(200);
        expect(Math.abs(reply.json.rewards[0] - expected.get(row.query)!), row.query).toBeLessThanOrEqual(1e-6);
        expectNumbersOnly(reply.json.extra_logs);
        expect(reply.json.extra_logs["focal/group_rows"]).toBe(4);
      }
      // each group was scored once, by whichever replica completed it
      const closed = (await Promise.all(replicas.map((r) => metricsOf(r.url)))).map((m) => Number(/^focal_assembly_groups_closed_total\{reason="full"\} (\d+)$/m.exec(m)![1]));
      expect(closed.reduce((a, b) => a + b, 0)).toBe(4);
    } finally {
      for (const s of servers.splice(0)) await s.stop("SIGKILL");
      await redis.stop();
    }
  });
});

