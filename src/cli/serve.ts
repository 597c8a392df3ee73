/**
 * `focal-reward serve --rubric R [--port 8787] [--state-dir DIR]`: the judging service on Node.
 * See docs/service.md for the endpoints.
 */
import type { Engine, EngineOptions } from "../types.js";
import { ENGINE_GROUP, engineFlags, readRubricFile } from "./common.js";
import { EXIT, UsageError, type CommandSpec, type Values } from "./flags.js";
import { JUDGE_GROUP, llmOptionsFromFlags, strayJudgeFlags } from "./judge-flags.js";
import { FileStore } from "../service/file-store.js";
import { createHandler, type HandlerOptions } from "../service/handler.js";
import { hasRegexRule, rulesFromRubric, type Judge, type RulesJudgeOptions } from "../service/judges.js";
import { serveNode } from "../service/node.js";
import type { StateStore } from "../service/store.js";

export const command: CommandSpec = {
  name: "serve",
  summary: "serve rewards over HTTP (/v1/score, /get_reward, per-run stream state)",
  usage: ["--rubric FILE [options]"],
  about: `The rubric file {"criteria": [...]} (or [...]) may also set method, scope, advantage, gamma, eps,
tau, minWeight, maxWeight, mix, decay, advEps; flags override it. Here the default scope is stream
(per-run state). Endpoints: docs/service.md.`,
  groups: [
    {
      title: "server",
      flags: [
        { name: "port", arg: "N", help: "default 8787 (0 = any free port)" },
        { name: "host", arg: "ADDR", help: "default 127.0.0.1" },
        { name: "state-dir", arg: "DIR", help: "keep run states in DIR (atomic files); default: in memory" },
        { name: "no-fsync", help: "with --state-dir: skip fsync (survives kill -9, not a power cut)" },
        { name: "store", arg: "URL", help: "keep run states in Redis (redis://HOST:PORT[/DB]), shared by every\nreplica given the same URL and prefix; needs the 'redis' package" },
        { name: "store-prefix", arg: "P", help: 'with --store: key prefix (default "focal:")' },
        { name: "run-ttl", arg: "SECONDS", help: "with --store: drop a run's keys after this long without a write (default 0: never)" },
        { name: "judge", arg: "J", help: "labels (default), rules (the rubric's \"rule\" fields) or llm (an LLM checks\neach criterion's \"text\": see the llm judge flags), for /get_reward", choices: ["labels", "rules", "llm"] },
        { name: "judge-timeout", arg: "MS", help: "per rollout, retries included (default 30000; llm 300000)" },
        { name: "max-body", arg: "BYTES", help: "largest request body (default 8388608); a larger Content-Length answers 413\nbefore the body is read" },
        { name: "max-rows", arg: "N", help: "rows (rollouts) per request, /v1/score and /get_reward (default 262144); past it 413" },
        { name: "max-groups", arg: "N", help: "groups per request (default 16384); past it 413" },
        { name: "max-cells", arg: "N", help: "score cells (rows x the rubric's criteria) per request (default 4194304);\npast it 413" },
        { name: "max-inflight-bytes", arg: "BYTES", help: "request bodies held at once over all connections (default 134217728);\npast it 503 + Retry-After" },
        { name: "headers-timeout", arg: "MS", help: "time a client has to send a request's headers (default 10000)" },
        { name: "request-timeout", arg: "MS", help: "time a client has to send a whole request, body included (default 60000)" },
        { name: "group-size", arg: "N", help: "/get_reward: hold rows of one run and group key (group_ids/group, else the\nprompt) until N arrived (e.g. OpenRLHF's n_samples_per_prompt), then score them\nas one group; without it each request is its own batch" },
        { name: "group-wait", arg: "MS", help: "with --group-size: score a group as it is this long after its first row\n(default 5000)" },
        { name: "max-held-rows", arg: "N", help: "with --group-size: most rows held at once; past it 503 + Retry-After (default 65536)" },
        { name: "max-held-groups", arg: "N", help: "with --group-size: most open groups at once (default 16384)" },
        { name: "reward-output", arg: "R", help: "what /get_reward answers as the reward: reward (default) or advantage (for a\ntrainer whose own normalization is off; needed for gdpo, sa-mrpo, --fgrpo)", choices: ["reward", "advantage"] },
        { name: "stepped", help: "stream scope: step-keyed updates; every request carries its training step\n(\"step\" or ?step=), all requests of a step get the same weights and the run's\nstate folds once per step (without it, each request updates the state)" },
        { name: "idempotency-window", arg: "N", help: "Idempotency-Keys remembered per run (default 1024): a retry must come\nwithin the run's last N keyed updates" },
        { name: "idempotency-window-bytes", arg: "BYTES", help: "most bytes of stored answers kept per run for its keys (default 67108864);\nolder keys leave past it, a larger answer keeps only its key (its retry: 409)" },
        { name: "max-cached-runs", arg: "N", help: "runs whose engines stay in memory (default 1024; others reload from the store)" },
        { name: "max-cached-bytes", arg: "BYTES", help: "estimated memory of the cached runs past which idle runs leave (default 268435456)" },
        { name: "engine-recycle-cells", arg: "N", help: "a call of more scores (rows x criteria) remakes its run's engine afterwards,\ngiving its grown memory back (default 1048576)" },
      ],
    },
    JUDGE_GROUP,
    ENGINE_GROUP,
  ],
};

function num(v: string | boolean | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v as string);
  if (!Number.isFinite(n)) throw new UsageError(`--${name}: not a number: ${v}`);
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
  if (values["state-dir"]) {
    const store = await FileStore.open(values["state-dir"], { durable: !values["no-fsync"] });
    // A courtesy note: each write is an exclusive create of the next version, so sharing is safe (only slower).
    if (store.sharedWith !== undefined) process.stderr.write(`focal-reward serve: note: state dir ${values["state-dir"]} is also used by process ${store.sharedWith}; writes stay safe, runs written by both retry on conflicts\n`);
    return store;
  }
  return undefined;
}

/** A store URL for logs and errors: without its password. */
function redactUrl(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}

/** The command, with the engine factory given (the CLI passes the package's createEngine). */
export async function serve(
  values: Values & StoreFlags,
  createEngine: (options: EngineOptions) => Engine | Promise<Engine>,
  log: (line: string) => void = (l) => process.stdout.write(l + "\n"),
): Promise<number> {
  if (!values.rubric) throw new UsageError("--rubric is required");
  const file = await readRubricFile(values.rubric as string, "serve");
  // Engine options: serve's default scope is stream; the rubric file's options; then the flags.
  const options: Record<string, unknown> = { scope: "stream", ...file.options, ...engineFlags(values) };
  const rubric = { criteria: file.criteria };
  const judge = (values.judge as string | undefined) ?? "labels";
  const stray = judge === "llm" ? [] : strayJudgeFlags(values);
  if (stray.length > 0) throw new UsageError(`${stray.join(", ")}: only with --judge llm`);
  const llm = judge === "llm" ? await llmOptionsFromFlags(values, (l) => process.stderr.write(`${l}\n`)) : undefined;
  const maxBodyBytes = num(values["max-body"], "max-body") ?? 8 * 1024 * 1024;
  // Group scope shares one engine across all runs and persists nothing: a method that carries
  // state across calls (pow3r's contrasts; src/core.ts counts its updates) would mix the runs.
  // Said here as a usage error (exit 2); createHandler refuses it too.
  if (options.method === "pow3r") {
    throw new UsageError("--method pow3r cannot be served: it carries state from call to call, which --scope group would share across all runs and never save (and --scope stream is focal's); score pow3r offline with score or replay, or serve another method");
  }
  const port = num(values.port, "port") ?? 8787;

  const store = await openStore(values);
  const handler = createHandler({
    ...(options as Omit<HandlerOptions, "rubric" | "createEngine">),
    rubric: rubric as HandlerOptions["rubric"],
    createEngine,
    store,
    judge: judge === "rules" ? await rulesJudgeOffThread(file.criteria as Parameters<typeof rulesFromRubric>[0]) : (judge as HandlerOptions["judge"]),
    llm,
    judgeTimeoutMs: num(values["judge-timeout"], "judge-timeout"),
    maxBodyBytes,
    maxRows: num(values["max-rows"], "max-rows"),
    maxGroups: num(values["max-groups"], "max-groups"),
    maxCells: num(values["max-cells"], "max-cells"),
    idempotencyWindow: num(values["idempotency-window"], "idempotency-window"),
    idempotencyWindowBytes: num(values["idempotency-window-bytes"], "idempotency-window-bytes"),
    maxCachedRuns: num(values["max-cached-runs"], "max-cached-runs"),
    maxCachedBytes: num(values["max-cached-bytes"], "max-cached-bytes"),
    engineRecycleCells: num(values["engine-recycle-cells"], "engine-recycle-cells"),
    stepped: values.stepped === true,
    rewardOutput: values["reward-output"] as HandlerOptions["rewardOutput"],
    ...groupingFlags(values),
    // With a Redis store, groups are assembled through it too: rows of a group may reach any replica.
    ...(values.store && values["group-size"] !== undefined ? { makeAssembler: await redisAssembly(values.store, values["store-prefix"]) } : {}),
  });
  const advantageOnly = options.method === "gdpo" || options.method === "sa-mrpo" || options.fGrpo !== undefined;
  if (advantageOnly && values["reward-output"] !== "advantage") {
    process.stderr.write(`focal-reward serve: note: ${options.fGrpo !== undefined ? "--fgrpo" : `method ${String(options.method)}`} acts only on advantages: /get_reward refuses it unless --reward-output advantage (/v1/score returns advantages)\n`);
  }
  try {
    await handler.ready;
  } catch (e) {
    await store?.close?.();
    throw e;
  }
  // A guard, not a fix: a promise rejected with no handler is logged and the server goes on (its state is written only through the ledger's commits).
  const onUnhandled = (e: unknown) => process.stderr.write(`focal-reward serve: unhandled rejection (still serving): ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.on("unhandledRejection", onUnhandled);
  let srv: Awaited<ReturnType<typeof serveNode>>;
  try {
    srv = await serveNode(handler, {
      port,
      host: (values.host as string | undefined) ?? "127.0.0.1",
      maxBodyBytes,
      maxInflightBytes: num(values["max-inflight-bytes"], "max-inflight-bytes"),
      headersTimeoutMs: num(values["headers-timeout"], "headers-timeout"),
      requestTimeoutMs: num(values["request-timeout"], "request-timeout"),
    });
  } catch (e) {
    await handler.close();
    throw e instanceof RangeError ? new UsageError(e.message.replace(/^serveNode: /, "")) : e;
  }
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
          resolve(EXIT.ok);
        },
        (e: unknown) => {
          process.stderr.write(`focal-reward serve: shutdown failed: ${String(e)}\n`);
          resolve(EXIT.failure);
        },
      );
    };
    process.on("SIGTERM", stop);
    process.on("SIGINT", stop);
  });
}

/**
 * `--judge rules`: the rules checked (regexes by the ReDoS check, loaded only when there is one)
 * and run in a worker thread, so that --judge-timeout stops a rule that runs away.
 */
async function rulesJudgeOffThread(criteria: Parameters<typeof rulesFromRubric>[0]): Promise<Judge> {
  const rules = rulesFromRubric(criteria);
  const options: RulesJudgeOptions = {};
  if (hasRegexRule(rules)) {
    const { loadRegexCheck } = await import("../service/regex-check.js");
    const check = await loadRegexCheck();
    if (typeof check === "string") process.stderr.write(`focal-reward serve: note: ${check}\n`);
    else options.checkRegex = check;
  }
  const { workerRulesJudge } = await import("../service/rules-worker.js");
  return workerRulesJudge(rules, options);
}

export async function run(values: Values): Promise<number> {
  const { createEngine } = await import("../index.js");
  return serve(values, createEngine);
}

async function redisAssembly(url: string, prefix: string | undefined): Promise<HandlerOptions["makeAssembler"]> {
  const { RedisGroupAssembler } = await import("../service/redis-assembler.js");
  const { heldRowCodec } = await import("../service/grouping.js");
  return (o, score) => RedisGroupAssembler.open(url, { ...o, prefix, codec: heldRowCodec }, score);
}

/** --group-size and its companions; the companions alone are a usage error. */
function groupingFlags(values: Values): Pick<HandlerOptions, "groupSize" | "groupWaitMs" | "maxHeldRows" | "maxHeldGroups"> {
  const groupSize = num(values["group-size"], "group-size");
  const rest = { groupWaitMs: num(values["group-wait"], "group-wait"), maxHeldRows: num(values["max-held-rows"], "max-held-rows"), maxHeldGroups: num(values["max-held-groups"], "max-held-groups") };
  if (groupSize === undefined) {
    const stray = Object.entries({ "group-wait": rest.groupWaitMs, "max-held-rows": rest.maxHeldRows, "max-held-groups": rest.maxHeldGroups }).find(([, v]) => v !== undefined);
    if (stray) throw new UsageError(`--${stray[0]} needs --group-size`);
    return {};
  }
  const out: Pick<HandlerOptions, "groupSize" | "groupWaitMs" | "maxHeldRows" | "maxHeldGroups"> = { groupSize };
  for (const [k, v] of Object.entries(rest)) if (v !== undefined) (out as Record<string, number>)[k] = v;
  return out;
}
