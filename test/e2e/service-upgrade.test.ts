/**
 * Upgrading the server under a trainer's retries: a state dir written by an earlier release
 * (test/fixtures/state-dir-0.1) keeps its committed Idempotency-Keys. A retry of a key committed
 * before the upgrade is answered from the stored response and is never applied twice.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/paths.js";
import { startServer } from "../support/serve-load.js";

const FIXTURE = join(ROOT, "test", "fixtures", "state-dir-0.1");
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe("serve on a state dir of the release before route-scoped keys", () => {
  it("a retry of a key committed before the upgrade gets the stored answer; seq stays 1", async () => {
    const dir = mkdtempSync(join(tmpdir(), "focal-upgrade-"));
    dirs.push(dir);
    cpSync(join(FIXTURE, "state"), join(dir, "state"), { recursive: true });
    const server = await startServer({ rubricFile: join(FIXTURE, "rubric.json"), stateDir: join(dir, "state") });
    try {
      const body = readFileSync(join(FIXTURE, "body.json"));
      const post = (key: string) => fetch(`${server.url}/v1/score`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": key }, body });
      const retry = await post("step-1");
      expect(retry.status).toBe(200);
      expect(await retry.text()).toBe(readFileSync(join(FIXTURE, "response.json"), "utf8"));
      const state = await (await fetch(`${server.url}/v1/runs/legacy/state`, { headers: { accept: "application/json" } })).json() as { seq: number };
      expect(state.seq).toBe(1);
      // The same key with another body is still refused, and a new key applies as usual.
      const other = await fetch(`${server.url}/v1/score`, { method: "POST", headers: { "content-type": "application/json", "idempotency-key": "step-1" }, body: body.toString().replace("0.9", "0.8") });
      expect(other.status).toBe(422);
      const next = await (await post("step-2")).json() as { seq: number };
      expect(next.seq).toBe(2);
    } finally {
      await server.stop();
    }
  });
});
