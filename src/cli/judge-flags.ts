/**
 * The `llm` judge's command-line settings, shared by `serve --judge llm` and `focal-reward judge`:
 * one table (name, placeholder, help) and one reader from parsed flags to the judge's options.
 * The API key never comes from a flag: FOCAL_JUDGE_API_KEY, else OPENAI_API_KEY.
 */
import type { LlmJudgeOptions } from "../judge/llm/index.js";
import { type Flag, type FlagGroup, UsageError } from "./flags.js";

export const JUDGE_FLAGS: readonly Flag[] = [
  { name: "judge-url", arg: "URL", help: "OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1 (vLLM),\n:8080/v1 (llama.cpp server), :11434/v1 (Ollama)" },
  { name: "judge-model", arg: "NAME", help: "the judge model's name as the server knows it" },
  { name: "judge-batch", arg: "N", help: "criteria per call (default: all of a rollout's criteria in one call)" },
  { name: "judge-concurrency", arg: "N", help: "calls in flight at most (default 8)" },
  { name: "judge-rpm", arg: "N", help: "calls started per minute at most (default: no limit)" },
  { name: "judge-retries", arg: "N", help: "retries after 408/409/429/5xx, timeouts, connection errors (default 4)" },
  { name: "judge-call-timeout", arg: "MS", help: "per call (default 60000)" },
  { name: "judge-seed", arg: "N", help: "sent with temperature 0 (default 0)" },
  { name: "judge-structured", arg: "MODE", help: "auto (default: strict JSON schema, plain text if the server refuses it) | on | off", choices: ["auto", "on", "off"] },
  { name: "judge-max-tokens", arg: "N", help: "max_tokens per call (default: the server's)" },
  { name: "judge-cache", arg: "DIR", help: "also keep verdicts in DIR, shared across runs (default: memory only)" },
  { name: "judge-cache-size", arg: "N", help: "verdict batches kept in memory (default 10000)" },
];

export const JUDGE_GROUP: FlagGroup = { title: "llm judge (API key from FOCAL_JUDGE_API_KEY, else OPENAI_API_KEY)", flags: JUDGE_FLAGS };

function int(values: Record<string, unknown>, name: string, min: number): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  const t = String(v).trim();
  const n = Number(t);
  if (!/^\d+$/.test(t) || !Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name}: expected an integer >= ${min}, got '${String(v)}'`);
  return n;
}

/** The judge's options from the flags (without criteria); the disk cache is opened here. */
export async function llmOptionsFromFlags(values: Record<string, unknown>, log: (line: string) => void): Promise<Omit<LlmJudgeOptions, "criteria">> {
  const url = values["judge-url"];
  const model = values["judge-model"];
  if (typeof url !== "string" || url === "") throw new UsageError("the llm judge needs --judge-url URL (an OpenAI-compatible API base, e.g. http://127.0.0.1:8000/v1)");
  if (typeof model !== "string" || model === "") throw new UsageError("the llm judge needs --judge-model NAME");
  const structured = values["judge-structured"] as string | undefined;
  const size = int(values, "judge-cache-size", 1);
  const dir = values["judge-cache"] as string | undefined;
  const { MemoryCache, TieredCache } = await import("../judge/llm/cache.js");
  const memory = new MemoryCache(size ?? 10_000);
  let cache: LlmJudgeOptions["cache"] = memory;
  if (dir !== undefined) {
    const { DiskCache } = await import("../judge/llm/disk-cache.js");
    cache = new TieredCache(memory, await DiskCache.open(dir));
  }
  return {
    url,
    model,
    batch: int(values, "judge-batch", 1),
    concurrency: int(values, "judge-concurrency", 1),
    rpm: int(values, "judge-rpm", 1),
    retries: int(values, "judge-retries", 0),
    timeoutMs: int(values, "judge-call-timeout", 1),
    seed: int(values, "judge-seed", 0),
    maxTokens: int(values, "judge-max-tokens", 1),
    structured: structured as LlmJudgeOptions["structured"],
    cache,
    log,
  };
}

/** A judge flag given without `--judge llm` is a mistake worth saying. */
export function strayJudgeFlags(values: Record<string, unknown>): string[] {
  return JUDGE_FLAGS.filter((f) => values[f.name] !== undefined).map((f) => `--${f.name}`);
}
