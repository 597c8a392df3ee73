/**
 * `focal-reward judge` and `serve --judge llm` as a user runs them, against the local
 * OpenAI-compatible server: JSONL and CSV in, the score log out in input order (read back by
 * `score`), failures as invalid rows, --reasons, the progress bar, --resume (including a torn
 * last line and an output of another input), the disk cache across runs, bad input.
 */
import { spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { type OpenAiServer, startOpenAiServer } from "../support/openai-server.js";
import { CLI } from "../support/paths.js";
import { killSpawned, spawnUntil } from "../support/processes.js";

const dir = mkdtempSync(join(tmpdir(), "focal-judge-cli-"));
afterAll(() => {
  killSpawned();
  rmSync(dir, { recursive: true, force: true });
});
let server: OpenAiServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

const RUBRIC = join(dir, "rubric.json");
writeFileSync(
  RUBRIC,
  JSON.stringify({
    criteria: [
      { id: "correct", text: "The answer is correct.", weight: 2 },
      { id: "clear", text: "The answer is easy to follow.", choices: ["no", "partly", "yes"] },
      { id: "rude", text: "The answer is rude to the user.", weight: -1 },
    ],
  }),
);

/** Runs the CLI without blocking this process (the test server answers from here). */
function cli(args: string[], input = "", env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: dir, env: { ...process.env, FOCAL_JUDGE_API_KEY: "", OPENAI_API_KEY: "", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "").map((l) => JSON.parse(l));

function rows(n: number, from = 0) {
  return Array.from({ length: n }, (_, i) => {
    const k = from + i;
    const marks = [k % 2 === 0 ? "[correct=yes]" : "", ["[clear=no]", "[clear=partly]", "[clear=yes]"][k % 3], k % 5 === 4 ? "[rude=yes]" : ""].join(" ");
    return { group: `g${Math.floor(k / 4)}`, step: Math.floor(k / 8), prompt: `Question ${Math.floor(k / 4)}?`, response: `Answer ${k} ${marks}` };
  });
}
const jsonl = (rs: unknown[]) => rs.map((r) => JSON.stringify(r)).join("\n") + "\n";

function expected(k: number) {
  return { correct: k % 2 === 0 ? 1 : 0, clear: [0, 0.5, 1][k % 3], rude: k % 5 === 4 ? 1 : 0 };
}

describe("focal-reward judge", () => {
  it("judges JSONL into the score log in input order, which score reads; a failed row is invalid with null scores", async () => {
    server = await startOpenAiServer({ holdUntil: 4 });
    const input = rows(12);
    input[5]!.response += " [judge:refuse]";
    const r = await cli(["judge", "--rubric", RUBRIC, "--judge-url", server.url, "--judge-model", "m", "--judge-concurrency", "4", "--reasons", "--judge-retries", "0"], jsonl(input));
    expect(r.stderr).toMatch(/12 rows judged, 1 failed/);
    expect(r.code).toBe(0);
    const out = lines(r.stdout);
    expect(out).toHaveLength(12);
    out.forEach((o, k) => {
      expect(o.group).toBe(input[k]!.group);
      expect(o.step).toBe(input[k]!.step);
      if (k === 5) {
        expect(o).toMatchObject({ scores: { correct: null, clear: null, rude: null }, valid: false });
        expect(o.error).toMatch(/^invalid: no JSON object/);
      } else {
        expect(o.scores).toEqual(expected(k));
        expect(Object.keys(o.reasons)).toEqual(["correct", "clear", "rude"]);
      }
    });
    expect(server.peak).toBeLessThanOrEqual(4);
    // The score log is what `score` reads.
    const scored = await cli(["score", "--rubric", RUBRIC], r.stdout);
    expect(scored.code).toBe(0);
    const s = lines(scored.stdout);
    expect(s).toHaveLength(12);
    expect(s[5].direct).toBeNull();
  });

  it("CSV in (quoted multi-line responses, a criteria cell), rows without a group grouped by prompt", async () => {
    server = await startOpenAiServer();
    const csv = [
      "prompt,response,criteria",
      'Q1,"line one\nline two [correct=yes]",',
      'Q1,"plain, with a comma",',
      `Q2,"[cites=yes] ok","${JSON.stringify([{ id: "cites", text: "Cites a source." }]).replace(/"/g, '""')}"`,
    ].join("\n");
    writeFileSync(join(dir, "in.csv"), csv);
    const r = await cli(["judge", "--rubric", RUBRIC, "--input", "in.csv", "--judge-url", server.url, "--judge-model", "m"]);
    expect(r.stderr).toMatch(/3 rows judged, 0 failed/);
    const out = lines(r.stdout);
    expect(out.map((o) => o.scores)).toEqual([{ correct: 1, clear: 0, rude: 0 }, { correct: 0, clear: 0, rude: 0 }, { cites: 1 }]);
    expect(out[0].group).toMatch(/^[0-9a-f]{16}$/);
    expect(out[1].group).toBe(out[0].group);
    expect(out[2].group).not.toBe(out[0].group);
    expect(server.requests[0]!.body.messages[1]!.content).toContain("line one\nline two");
  });

  it("--resume judges only the rows not yet in the output, repairs a torn last line, refuses another input's output", async () => {
    server = await startOpenAiServer();
    const inPath = join(dir, "resume.jsonl");
    const outPath = join(dir, "resume.out.jsonl");
    writeFileSync(inPath, jsonl(rows(5)));
    const base = ["judge", "--rubric", RUBRIC, "--input", inPath, "--output", outPath, "--judge-url", server.url, "--judge-model", "m"];
    expect((await cli(base)).code).toBe(0);
    expect(server.requests).toHaveLength(5);
    // Without --resume an existing output is not overwritten.
    const refused = await cli(base);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/exists: add --resume/);
    // The input grows, and the output's last line was torn by a crash.
    appendFileSync(inPath, jsonl(rows(3, 5)));
    const text = readFileSync(outPath, "utf8");
    writeFileSync(outPath, text + '{"group":"g1","sco');
    const r = await cli([...base, "--resume"]);
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/3 rows judged \(5 kept from before\)/);
    expect(server.requests).toHaveLength(8);
    const out = lines(readFileSync(outPath, "utf8"));
    expect(out).toHaveLength(8);
    out.forEach((o, k) => expect(o.scores).toEqual(expected(k)));
    // An output that belongs to another input.
    writeFileSync(inPath, jsonl(rows(8).map((x) => ({ ...x, group: `other-${x.group}` }))));
    const wrong = await cli([...base, "--resume"]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/output belongs to another input/);
  });

  it("the disk cache: a second run over the same rows makes no call", async () => {
    server = await startOpenAiServer();
    const args = ["judge", "--rubric", RUBRIC, "--judge-url", server.url, "--judge-model", "m", "--judge-cache", join(dir, "cache")];
    const a = await cli(args, jsonl(rows(6)));
    const b = await cli(args, jsonl(rows(6)));
    expect(b.stdout).toBe(a.stdout);
    expect(server.requests).toHaveLength(6);
    expect(b.stderr).toMatch(/0 calls needed, 6 from the cache/);
  });

  it("draws the progress bar with rows/s, ETA, failures and cache hits", async () => {
    server = await startOpenAiServer();
    writeFileSync(join(dir, "p.jsonl"), jsonl(rows(4)));
    const r = await cli(["judge", "--rubric", RUBRIC, "--input", "p.jsonl", "--progress", "--judge-url", server.url, "--judge-model", "m"]);
    expect(r.stderr).toMatch(/judge \[#{24}\] 4\/4 \d+\.\d rows\/s ETA 0s {2}failures 0 {2}cache hits 0\n/);
  });

  it("bad input names the line and keeps the rows judged before it", async () => {
    server = await startOpenAiServer();
    const outPath = join(dir, "bad.out.jsonl");
    const input = jsonl(rows(2)) + JSON.stringify({ prompt: "p", respnse: "typo" }) + "\n";
    const r = await cli(["judge", "--rubric", RUBRIC, "--output", outPath, "--judge-url", server.url, "--judge-model", "m"], input);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/line 3: unknown key "respnse": did you mean "response"\?/);
    expect(lines(readFileSync(outPath, "utf8"))).toHaveLength(2);
    const noUrl = await cli(["judge", "--rubric", RUBRIC], "");
    expect(noUrl.code).toBe(2);
    expect(noUrl.stderr).toMatch(/needs --judge-url/);
    const noCriteria = await cli(["judge", "--judge-url", server.url, "--judge-model", "m"], jsonl(rows(1)));
    expect(noCriteria.stderr).toMatch(/line 1: no criteria: give --rubric/);
  });
});

describe("serve --judge llm", () => {
  it("judges /get_reward end to end and counts failures in /metrics; the key comes from the environment", async () => {
    server = await startOpenAiServer({ apiKey: "sk-local" });
    const saved = { f: process.env.FOCAL_JUDGE_API_KEY, o: process.env.OPENAI_API_KEY };
    delete process.env.FOCAL_JUDGE_API_KEY;
    process.env.OPENAI_API_KEY = "sk-wrong"; // a key for another service: FOCAL_JUDGE_API_KEY is unset, so this one is used
    const { child, out } = await spawnUntil(
      process.execPath,
      [CLI, "serve", "--rubric", RUBRIC, "--port", "0", "--scope", "group", "--judge", "llm", "--judge-url", server.url, "--judge-model", "m", "--judge-retries", "0"],
      (o) => /listening on http:\/\/\S+/.test(o),
      "serve",
    );
    try {
      const url = /listening on (http:\/\/\S+)/.exec(out())![1]!;
      expect(server.requests).toHaveLength(0);
      const res = await fetch(`${url}/get_reward`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: ["Q [correct=yes] [clear=yes]", "Q [clear=partly]"], prompts: ["Q", "Q"] }),
      });
      // The fallback key is the wrong one for this server: 401 for both rollouts, not retried.
      const body = (await res.json()) as { detail?: string };
      expect(res.status).toBe(502);
      expect(body.detail).toMatch(/HTTP 401/);
      const m = await (await fetch(`${url}/metrics`)).text();
      expect(m).toMatch(/focal_llm_judge_failures_total\{status="401"\} 2/);
    } finally {
      child.kill("SIGTERM");
    }
    process.env.FOCAL_JUDGE_API_KEY = "sk-local";
    const { child: keyed, out: out2 } = await spawnUntil(
      process.execPath,
      [CLI, "serve", "--rubric", RUBRIC, "--port", "0", "--scope", "group", "--judge", "llm", "--judge-url", server.url, "--judge-model", "m"],
      (o) => /listening on http:\/\/\S+/.test(o),
      "serve",
    );
    for (const [k, v] of [["FOCAL_JUDGE_API_KEY", saved.f], ["OPENAI_API_KEY", saved.o]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    try {
      const url = /listening on (http:\/\/\S+)/.exec(out2())![1]!;
      const res = await fetch(`${url}/get_reward`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: ["Q [correct=yes] [clear=yes]", "Q [clear=partly]"], prompts: ["Q", "Q"] }),
      });
      const body = (await res.json()) as { rewards: number[]; scores: number[]; extra_logs: Record<string, number> };
      expect(res.status).toBe(200);
      expect(body.scores[0]).toBeCloseTo(1, 6);
      expect(body.scores[1]).toBeCloseTo(0.5 / 4 + 1 / 4, 6); // (2*0 + 1*0.5 + 1*(1-0)) / 4
      expect(body.extra_logs.judge_failures).toBe(0);
      expect(server.requests.at(-1)!.authorization).toBe("Bearer sk-local");
    } finally {
      keyed.kill("SIGTERM");
    }
  });
});
