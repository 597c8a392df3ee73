/**
 * A real redis-server (Debian's package; .ci/run installs it) for the tests: its own port, its own
 * data folder, AOF with `appendfsync always` so an acknowledged write survives a kill -9 of Redis.
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./processes.js";

/**
 * @typedef {object} RedisServer
 * @property {string} url
 * @property {number} port
 * @property {(downMs?: number) => Promise<void>} crashAndRestart SIGKILL Redis (no shutdown save), then start it again on the same port and data.
 * @property {() => Promise<void>} kill SIGKILL Redis and leave it down (until start()).
 * @property {() => Promise<void>} start
 * @property {() => Promise<void>} stop
 */

/** @returns {string} */
export function redisServerPath() {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("redis-server is not installed (apt-get install redis-server; .ci/run does it)");
  }
}


/** @returns {Promise<RedisServer>} */
export async function startRedis() {
  const bin = redisServerPath();
  const dir = mkdtempSync(join(tmpdir(), "focal-redis-"));
  const port = await freePort();
  /** @type {import("node:child_process").ChildProcess | undefined} */
  let child;

  const start = async () => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes",
      "--appendfsync", "always", "--protected-mode", "yes", "--loglevel", "warning"];
    const p = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    child = p;
    let err = "";
    p.stderr.on("data", (d) => (err += d));
    // Ready when it accepts a PING (bounded: 200 tries x 25 ms).
    for (let i = 0; i < 200; i++) {
      if (p.exitCode !== null) throw new Error(`redis-server exited: ${err}`);
      if (await ping(port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server did not answer on port ${port}: ${err}`);
  };
  const kill = async () => {
    const p = child;
    if (!p || p.exitCode !== null) return;
    await new Promise((resolve) => {
      p.once("exit", () => resolve(undefined));
      p.kill("SIGKILL");
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    start,
    kill,
    async crashAndRestart(downMs = 200) {
      await kill();
      await new Promise((r) => setTimeout(r, downMs));
      await start();
    },
    async stop() {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** @param {number} port @returns {Promise<boolean>} */
async function ping(port) {
  const { connect } = await import("node:net");
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    let buf = "";
    s.setTimeout(500, () => (s.destroy(), resolve(false)));
    s.on("error", () => resolve(false));
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      buf += d;
      if (buf.includes("\r\n")) {
        s.destroy();
        resolve(buf.startsWith("+PONG"));
      }
    });
  });
}
