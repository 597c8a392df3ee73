/**
 * `focal-reward serve --rubric R [--port 8787] [--state-dir DIR]`: the judging service on Node.
 * See docs/service.md for the endpoints.
 */
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import type { Engine, EngineOptions } from "../types.js";
import { ENGINE_FLAGS, engineOptions } from "./common.js";
import { FileStore } from "../service/file-store.js";
import { createHandler, type HandlerOptions } from "../service/handler.js";
import { negatedPenaltyRules } from "../service/judges.js";
import { serveNode } from "../service/node.js";
import type { StateStore } from "../service/store.js";

export const summary = "serve rewards over HTTP (/v1/score, /get_reward, per-run stream state)";

const USAGE = `usage: focal-reward serve --rubric FILE [options]

  --rubric FILE        rubric JSON: {"criteria": [...]} or [...]; may also set method, scope,
                       advantage, gamma, eps, tau, minWeight, maxWeight, mix, decay, advEps
  --port N             default 8787 (0 = any free port)
  --host ADDR          default 127.0.0.1
  --state-dir DIR      keep run states in DIR (atomic files); default: in memory
  --no-fsync           with --state-dir: skip fsync (survives kill -9, not a power cut)
  --store URL          keep run states in Redis (redis://HOST:PORT[/DB]), shared by every
                       replica given the same URL and prefix; needs the 'redis' package
  --store-prefix P     with --store: key prefix (default "focal:")
  --run-ttl SECONDS    with --store: drop a run's keys after this long without a write (default 0: never)
  --scope S            stream (default here: per-run state) or group
  --method M, --advantage A, --gamma G, --eps E, --tau T, --mix M, --min-weight W,
  --max-weight W, --decay D, --backend B: engine options, as for \`focal-reward score\`
  --judge J            labels (default) or rules (the rubric's "rule" fields), for /get_reward
  --judge-timeout MS   default 30000
  --max-body BYTES     default 8388608
  --idempotency-window N
                       Idempotency-Keys remembered per run (default 1024): a retry must come
                       within the run's last N keyed updates
`;

const ENGINE_KEYS = ["method", "scope", "advantage", "gamma", "eps", "tau", "minWeight", "maxWeight", "mix", "decay", "advEps", "constant", "backend"] as const;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${v}`);
  return n;
}

interface StoreFlags {
  "state-dir"?: string;
  "no-fsync"?: boolean;
  store?: string;
  "store-prefix"?: string;
  "run-ttl"?: string;
}

/** The state store the flags name: a directory, Redis, or none (memory). */
async function openStore(values: StoreFlags): Promise<StateStore | undefined> {
  if (values.store !== undefined) {
    if (values["state-dir"] !== undefined) throw new Error("--store and --state-dir: give one of them");
    if (!/^rediss?:\/\//.test(values.store)) throw new Error(`--store: expected redis://HOST:PORT[/DB]; got ${redactUrl(values.store)}`);
    const { RedisStore } = await import("../service/redis-store.js");
    return RedisStore.open(values.store, { prefix: values["store-prefix"], ttlSeconds: num(values["run-ttl"], "run-ttl") });
  }
  if (values["store-prefix"] !== undefined || values["run-ttl"] !== undefined) throw new Error("--store-prefix and --run-ttl need --store");
  if (values["state-dir"]) return FileStore.open(values["state-dir"], { durable: !values["no-fsync"] });
  return undefined;
}

/** A store URL for logs and errors: without its password. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

/** The command, with the engine factory given (the CLI passes the package's createEngine). */
export async function serve(
  argv: string[],
  createEngine: (options: EngineOptions) => Engine | Promise<Engine>,
  log: (line: string) => void = (l) => process.stdout.write(l + "\n"),
): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        ...ENGINE_FLAGS,
        port: { type: "string" },
        host: { type: "string" },
        "state-dir": { type: "string" },
        "no-fsync": { type: "boolean" },
        store: { type: "string" },
        "store-prefix": { type: "string" },
        "run-ttl": { type: "string" },
        judge: { type: "string" },
        "judge-timeout": { type: "string" },
        "max-body": { type: "string" },
        "idempotency-window": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }));
  } catch (e) {
    process.stderr.write(`focal-reward serve: ${e instanceof Error ? e.message : String(e)}\n\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (!values.rubric) {
    process.stderr.write(`focal-reward serve: --rubric is required\n\n${USAGE}`);
    return 2;
  }
  let file: Record<string, unknown> | unknown[];
  try {
    file = JSON.parse(await readFile(values.rubric, "utf8")) as Record<string, unknown> | unknown[];
  } catch (e) {
    throw new Error(`--rubric ${values.rubric}: ${e instanceof Error ? e.message : String(e)}`);
  }
  // Engine options: serve's default scope is stream; the rubric file's options; then the flags.
  const options: Record<string, unknown> = { scope: "stream" };
  if (!Array.isArray(file)) for (const k of ENGINE_KEYS) if (file[k] !== undefined) options[k] = file[k];
  const rubric = { criteria: Array.isArray(file) ? file : file?.criteria };
  const { rubric: _ignored, ...flags } = engineOptions(values, []);
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) options[k] = v;
  const judge = values.judge ?? "labels";
  if (Array.isArray(rubric.criteria)) {
    for (const w of negatedPenaltyRules(rubric.criteria)) process.stderr.write(`focal-reward serve: warning: ${w}\n`);
  }
  if (judge !== "labels" && judge !== "rules") throw new Error(`--judge: labels or rules, not ${judge}`);
  const maxBodyBytes = num(values["max-body"], "max-body") ?? 8 * 1024 * 1024;
  const port = num(values.port, "port") ?? 8787;

  const store = await openStore(values);
  const handler = createHandler({
    ...(options as Omit<HandlerOptions, "rubric" | "createEngine">),
    rubric: rubric as HandlerOptions["rubric"],
    createEngine,
    store,
    judge,
    judgeTimeoutMs: num(values["judge-timeout"], "judge-timeout"),
    maxBodyBytes,
    idempotencyWindow: num(values["idempotency-window"], "idempotency-window"),
  });
  try {
    await handler.ready;
  } catch (e) {
    await store?.close?.();
    throw e;
  }
  const srv = await serveNode(handler, { port, host: values.host ?? "127.0.0.1", maxBodyBytes });
  log(`focal-reward serve: listening on ${srv.url} (state: ${values.store ? `redis ${redactUrl(values.store)}` : values["state-dir"] ? `dir ${values["state-dir"]}` : "memory"})`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log(`focal-reward serve: ${signal} again, exiting now`);
        process.exit(1);
      }
      stopping = true;
      log(`focal-reward serve: ${signal}, finishing in-flight requests`);
      srv.close().then(
        () => {
          log("focal-reward serve: state flushed, bye");
          resolve(0);
        },
        (e: unknown) => {
          process.stderr.write(`focal-reward serve: shutdown failed: ${String(e)}\n`);
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

export async function run(argv: string[]): Promise<number> {
  const { createEngine } = await import("../index.js");
  return serve(argv, createEngine);
}
