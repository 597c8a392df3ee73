/**
 * Chaos tests of `focal-reward serve` (issue 11), real servers spawned from dist/ on loopback:
 * two servers writing one state dir, a disk that fills up (`ulimit -f`), too few file
 * descriptors (`ulimit -n`). Every load is bounded by a request count; the check is always the
 * same: every acknowledged update is in the final state exactly once (seq 1..N, state = the
 * sequential replay of what was acknowledged). kill -9 under load is in service-e2e.test.ts.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { CRITERIA, K, replayCheck, runLoad, runTrainers, settle, startServer, writeRubric } from "../support/serve-load.js";
import { CLI as MAIN } from "../support/paths.js";
/** Open files for the EMFILE test: enough to start and serve some, too few for 48 connections and the store. */
const FD_LIMIT = 40;

type Server = Awaited<ReturnType<typeof startServer>>;
const dirs: string[] = [];
const servers: Server[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop("SIGKILL");
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
function tempDir(): string {
  const d = mkdtempSync(join(tmpdir(), "focal-serve-chaos-"));
  dirs.push(d);
  return d;
}
async function start(options: { stateDir?: string; args?: string[]; ulimit?: string } = {}): Promise<Server> {
  const s = await startServer({ rubricFile: writeRubric(tempDir()), ...options });
  servers.push(s);
  return s;
}

describe("serve under chaos", () => {
  it("two servers on one --state-dir under concurrent keyed load: nothing lost or doubled", async () => {
    const stateDir = join(tempDir(), "state");
    const a = await start({ stateDir });
    const b = await start({ stateDir });
    expect(b.output()).toMatch(/also used by process \d+; writes stay safe/);
    // 16 trainer-like clients, 240 steps, each request to the other server than the last one
    let n = 0;
    const urls = [a.url, b.url];
    const result = await runTrainers({ url: () => urls[n++ % 2]!, steps: 240, connections: 16 });
    // the two really wrote the same run: each saw the other's versions as conflicts
    const conflicts = async (s: Server) => Number(/^focal_state_conflicts_total (\d+)$/m.exec(await (await fetch(`${s.url}/metrics`)).text())![1]);
    const seen = (await conflicts(a)) + (await conflicts(b));
    expect(seen).toBeGreaterThan(0);
    expect((await a.stop()).code).toBe(0);
    expect((await b.stop()).code).toBe(0);
    const c = await start({ stateDir });
    const check = await replayCheck({ url: c.url, acks: result.acks });
    expect(check.problems).toEqual([]);
    expect(check.serverSeq).toBe(result.issued);
    console.log(`two writers: ${result.issued} steps over two servers, ${seen} compare-and-set conflicts, ${result.retried.size} retried (conflicts past the handler's own retries), final seq ${check.serverSeq}`);
    await c.stop();
  }, 240_000);

  it("disk full (ulimit -f): writes that do not fit answer 503 with nothing applied; the rest is kept exactly", async () => {
    const stateDir = join(tempDir(), "state");
    // files up to 32-64 KiB (the shell's blocks): a run record and a 64-row answer fit, a 16,384-row answer does not
    const s = await start({ stateDir, ulimit: "-f 64" });
    const big = JSON.stringify({ run: "bench", criteria: CRITERIA.map((c) => c.id), scores: Array(16384 * K).fill(0.5), groupSizes: Array(2048).fill(8) });
    const refused: number[] = [];
    const acks = new Map<number, number>();
    const load = runTrainers({ url: s.url, steps: 120, connections: 8, acks });
    for (let i = 0; i < 6; i++) {
      const res = await fetch(`${s.url}/v1/score`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": `big-${i}` }, body: big });
      const problem = (await res.json()) as { type?: string; detail?: string };
      expect(problem.type, `${res.status} ${String(problem.detail).slice(0, 200)}`).toBe("urn:focal-reward:problem:store-unavailable");
      expect(problem.detail).toMatch(/EFBIG/);
      refused.push(res.status);
    }
    const result = await load;
    expect(refused).toEqual(Array(6).fill(503));
    expect(files(stateDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    expect(s.output()).not.toMatch(/unhandled|EFBIG.*\n.*at /);
    expect((await s.stop()).code).toBe(0);
    const again = await start({ stateDir });
    const check = await replayCheck({ url: again.url, acks: result.acks });
    expect(check.problems).toEqual([]);
    expect(check.serverSeq).toBe(result.issued);
    await again.stop();
  }, 240_000);

  it("too few file descriptors (ulimit -n): requests fail or are retried, the server keeps serving, nothing lost or doubled", async () => {
    const stateDir = join(tempDir(), "state");
    const s = await start({ stateDir, ulimit: `-n ${FD_LIMIT}` });
    // 48 keep-alive connections hold more descriptors than the process has: accepts and the
    // store's files fail with EMFILE (503, or a cut connection) while they are open
    const load = await runLoad({ url: s.url, amount: 200, connections: 48 });
    const failed = load.result.non2xx + load.result.errors;
    expect(failed).toBeGreaterThan(0); // the shortage was felt
    expect(s.child.exitCode).toBe(null); // still serving
    // then, as trainers do, every unanswered step is retried with its key until answered
    // (a few retrying clients with patience, as after a trainer's backoff: 16 at once would keep
    // the process at its descriptor limit and measure the shortage, not the recovery)
    const replays = await settle({ url: s.url, issued: load.issued, acks: load.acks, concurrency: 4, attempts: 300 });
    const result = { acks: load.acks, issued: load.issued.length, retried: { size: failed }, replays };
    const health = await fetch(`${s.url}/healthz`);
    expect(health.status).toBe(200);
    expect((await s.stop()).code).toBe(0);
    const again = await start({ stateDir });
    const check = await replayCheck({ url: again.url, acks: result.acks });
    expect(check.problems).toEqual([]);
    expect(check.serverSeq).toBe(result.issued);
    console.log(`EMFILE: ulimit -n ${FD_LIMIT}, 48 clients, ${result.issued} steps, ${result.retried.size} retried, ${result.replays} answered from the store; final seq ${check.serverSeq}`);
    await again.stop();
  }, 240_000);

  it("refuses at startup: --scope group with pow3r (state shared by all runs, never saved), a catastrophic regex rule", async () => {
    const dir = tempDir();
    const rubric = join(dir, "r.json");
    writeFileSync(rubric, JSON.stringify({ criteria: [{ id: "a" }, { id: "b", rule: { regex: "^(\\w+\\s?)*$" } }] }));
    const run = (args: string[]) => spawnSync(process.execPath, [MAIN, "serve", "--rubric", rubric, "--port", "0", ...args], { encoding: "utf8", timeout: 60_000 });
    const pow3r = run(["--scope", "group", "--method", "pow3r"]);
    expect(pow3r.status).toBe(2);
    expect(pow3r.stderr).toMatch(/--method pow3r cannot be served: it carries state from call to call/);
    const pow3rStream = run(["--method", "pow3r"]); // the default scope, stream, is focal's alone
    expect(pow3rStream.status).toBe(2);
    expect(pow3rStream.stderr).toMatch(/--method pow3r cannot be served/);
    const redos = run(["--judge", "rules"]);
    expect(redos.status).not.toBe(0);
    expect(redos.stderr).toMatch(/rules\.b\.regex: .* can backtrack catastrophically/);
  }, 120_000);
});

/** Every file under dir, relative. */
function files(dir: string): string[] {
  return readdirSync(dir, { recursive: true }) as string[];
}
