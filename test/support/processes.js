/** Child processes of the tests: free loopback ports, servers spawned until they say they are up. */
import { spawn } from "node:child_process";
import { createServer } from "node:net";

/** A port free on 127.0.0.1 right now. */
/** @returns {Promise<number>} */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = /** @type {import("node:net").AddressInfo} */ (s.address());
      s.close(() => ok(port));
    });
  });
}

/** @type {import("node:child_process").ChildProcess[]} */
const children = [];

/** SIGKILL every process spawnUntil started that still runs (for afterAll). */
export function killSpawned() {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

/**
 * Spawns `cmd` and resolves once its output passes `ready` (or at once, without `ready`).
 * @param {string} cmd
 * @param {string[]} args
 * @param {((out: string) => boolean) | undefined} ready
 * @param {string} what
 * @returns {Promise<{ child: import("node:child_process").ChildProcess; out: () => string }>}
 */
export function spawnUntil(cmd, args, ready, what) {
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  return new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${what} did not start:\n${out}`)), 20_000);
    const on = (/** @type {Buffer} */ d) => {
      out += d;
      if (ready?.(out)) {
        clearTimeout(timer);
        ok({ child, out: () => out });
      }
    };
    child.stdout.on("data", on);
    child.stderr.on("data", on);
    child.once("exit", (code) => {
      clearTimeout(timer);
      fail(new Error(`${what} exited ${code}:\n${out}`));
    });
    child.once("error", fail);
    if (!ready) {
      clearTimeout(timer);
      ok({ child, out: () => out });
    }
  });
}

/** Resolves once `url` answers at all (any status), within 20 s. */
/** @param {string} url */
export async function waitHttp(url) {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      await (await fetch(url)).arrayBuffer();
      return;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
