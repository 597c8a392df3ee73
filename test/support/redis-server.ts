/**
 * A real redis-server (Debian's package; .ci/run installs it) for the tests: its own port, its own
 * data folder, AOF with `appendfsync always` so an acknowledged write survives a kill -9 of Redis.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./processes.js";

export interface RedisServer {
  url: string;
  port: number;
  /** SIGKILL Redis (no shutdown save), then start it again on the same port and data. */
  crashAndRestart(downMs?: number): Promise<void>;
  /** SIGKILL Redis and leave it down (until start()). */
  kill(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export function redisServerPath(): string {
  try {
    return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
  } catch {
    throw new Error("redis-server is not installed (apt-get install redis-server; .ci/run does it)");
  }
}


export async function startRedis(): Promise<RedisServer> {
  const bin = redisServerPath();
  const dir = mkdtempSync(join(tmpdir(), "focal-redis-"));
  const port = await freePort();
  let child: ChildProcess | undefined;

  const start = async () => {
    const args = ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--save", "", "--appendonly", "yes",
      "--appendfsync", "always", "--protected-mode", "yes", "--loglevel", "warning"];
    const p = spawn(bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    child = p;
    let err = "";
    p.stderr!.on("data", (d) => (err += d));
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
    await new Promise<void>((resolve) => {
      p.once("exit", () => resolve());
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

async function ping(port: number): Promise<boolean> {
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
