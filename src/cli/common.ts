import { readFile, rename, writeFile } from "node:fs/promises";
import { METHODS } from "../core.js";
import { negatedPenaltyRules } from "../service/judges.js";
import type { Criterion, EngineOptions } from "../types.js";

/** Engine flags shared by the commands, for node:util parseArgs. */
export const ENGINE_FLAGS = {
  rubric: { type: "string" },
  method: { type: "string" },
  scope: { type: "string" },
  gamma: { type: "string" },
  eps: { type: "string" },
  tau: { type: "string" },
  "min-weight": { type: "string" },
  "max-weight": { type: "string" },
  mix: { type: "string" },
  decay: { type: "string" },
  advantage: { type: "string" },
  constant: { type: "string" },
  backend: { type: "string" },
  power: { type: "string" },
  temperature: { type: "string" },
  alpha: { type: "string" },
  threshold: { type: "string" },
  fgrpo: { type: "string" },
} as const;

export const ENGINE_HELP = `engine options:
  --rubric FILE        JSON {"criteria": [{"id", "weight", "scale": [lo, hi], "polarity", "fixed"}]}
                       (penalties are fixed by default: focal keeps their share; "fixed": false opts out)
                       (without it every criterion seen has weight 1 and scale [0, 1])
  --method M           focal (default) | weighted-mean | gdpo | sa-mrpo | weighted-sum | min | power-mean
                       | soft-min | cvar | points-ratio | all-or-nothing | gated | hierarchical
                       | pow3r | dvao | mo-grpo   (formulas: docs/aggregators.md)
  --scope S            group (default) | stream
  --gamma G            focal exponent (default 3; sa-mrpo 0.5)  --eps E  headroom floor (default 0.05)
  --tau T              tilt temperature (default 1)   --mix M     focal share (default 1)
  --min-weight W       lower bound of a weight        --max-weight W   upper bound
  --decay D            stream EMA decay (default 0.9)
  --advantage A        grpo (default) | dr-grpo | rloo | none
  --constant C         keep (default) | drop: leave criteria constant in their group out of focal
                       weights (group scope, focal only)
  --backend B          auto (default) | simd | scalar | js
  --power P            power-mean exponent (default 0; -Infinity = min)
  --temperature T      soft-min temperature (default 0.1)
  --alpha A            cvar tail share (default 0.25)
  --threshold X        pass threshold for gated, hierarchical, all-or-nothing, F-GRPO (default 0.5)
  --fgrpo G            F-GRPO: advantages times (1 - group success rate)^G, with any method`;

type Values = Partial<Record<keyof typeof ENGINE_FLAGS, string>>;

/** A number from the command line; `infinite` also takes inf, -inf, Infinity, -Infinity. */
function number(where: string, text: string | undefined, infinite = false): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  const x = infinite && /^[-+]?inf$/i.test(t) ? (t.startsWith("-") ? -Infinity : Infinity) : Number(t);
  if (t === "" || Number.isNaN(x) || (!infinite && !Number.isFinite(x))) {
    throw new Error(`${where}: expected a number, got '${text}'`);
  }
  return x;
}

/** Options a method may carry after colons, as `compare` and `replay` take them. */
const SPEC_NUMBERS: Record<string, keyof EngineOptions> = {
  gamma: "gamma", eps: "eps", tau: "tau", minWeight: "minWeight", "min-weight": "minWeight", maxWeight: "maxWeight",
  "max-weight": "maxWeight", mix: "mix", decay: "decay", advEps: "advEps", power: "power", temperature: "temperature",
  alpha: "alpha", threshold: "threshold", fGrpo: "fGrpo", fgrpo: "fGrpo",
};

/**
 * "name[:key=value]...", e.g. "power-mean:power=-1" or "focal:scope=stream:gamma=5" (and the
 * shorthand "focal-stream"): the engine options that method sets over the shared ones.
 */
export function methodOptions(spec: string): Partial<EngineOptions> {
  const [name, ...params] = spec.split(":");
  if (name !== "focal-stream" && !(METHODS as readonly string[]).includes(name)) {
    throw new Error(`--methods: unknown method '${name}' (known: ${METHODS.join(", ")}, focal-stream)`);
  }
  const o: Partial<EngineOptions> = name === "focal-stream" ? { method: "focal", scope: "stream" } : { method: name as EngineOptions["method"] };
  for (const p of params) {
    const eq = p.indexOf("=");
    if (eq < 1) throw new Error(`--methods ${spec}: expected key=value, got '${p}'`);
    const key = p.slice(0, eq), value = p.slice(eq + 1);
    if (key === "scope") o.scope = value as EngineOptions["scope"];
    else if (key === "advantage") o.advantage = value as EngineOptions["advantage"];
    else if (key === "constant") o.constant = value as EngineOptions["constant"];
    else if (key in SPEC_NUMBERS) (o as Record<string, unknown>)[SPEC_NUMBERS[key]] = number(`--methods ${spec}`, value, key === "power");
    else throw new Error(`--methods ${spec}: unknown option '${key}'`);
  }
  return o;
}

/** Engine options from flags; the rubric comes from --rubric or from `criteria` (weight 1). */
export function engineOptions(v: Values, criteria: readonly Criterion[]): EngineOptions {
  return {
    rubric: { criteria },
    method: v.method as EngineOptions["method"],
    scope: v.scope as EngineOptions["scope"],
    advantage: v.advantage as EngineOptions["advantage"],
    constant: v.constant as EngineOptions["constant"],
    backend: v.backend as EngineOptions["backend"],
    gamma: number("--gamma", v.gamma),
    eps: number("--eps", v.eps),
    tau: number("--tau", v.tau),
    minWeight: number("--min-weight", v["min-weight"]),
    maxWeight: number("--max-weight", v["max-weight"]),
    mix: number("--mix", v.mix),
    decay: number("--decay", v.decay),
    power: number("--power", v.power, true),
    temperature: number("--temperature", v.temperature),
    alpha: number("--alpha", v.alpha),
    threshold: number("--threshold", v.threshold),
    fGrpo: number("--fgrpo", v.fgrpo),
  };
}

export async function readRubric(path: string): Promise<Criterion[]> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(path, "utf8"));
  } catch (e) {
    throw new Error(`--rubric ${path}: ${(e as Error).message}`);
  }
  const criteria = Array.isArray(json) ? json : (json as { criteria?: unknown })?.criteria;
  if (!Array.isArray(criteria)) throw new Error(`--rubric ${path}: expected {"criteria": [...]}`);
  for (const w of negatedPenaltyRules(criteria)) process.stderr.write(`focal-reward: --rubric ${path}: warning: ${w}\n`);
  return criteria as Criterion[];
}

/** Writes a file so that readers see the old or the new content, never a torn one. */
export async function writeAtomic(path: string, data: string | Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, data);
  await rename(tmp, path);
}

/** Writes to stdout, waiting when the pipe is full. */
export function writeOut(text: string): Promise<void> | void {
  if (!process.stdout.write(text)) return new Promise((resolve) => process.stdout.once("drain", () => resolve()));
}
