/** Flags and readers the commands share: engine options, the input log, the rubric file. */
import { readFile } from "node:fs/promises";
import { METHODS } from "../core.js";
import { ENGINE_OPTION_KEYS } from "../keys.js";
import { checkKeys } from "../validate.js";
import { LOG_FORMATS } from "../log/open.js";
import { negatedPenaltyRules } from "../service/judges.js";
import type { Criterion, EngineOptions } from "../types.js";
import type { OutOfScaleCount } from "../analysis/diagnostics.js";
import { UsageError, type Flag, type FlagGroup, type Values } from "./flags.js";

const METHOD_LIST = "focal (default) | weighted-mean | gdpo | sa-mrpo | weighted-sum | min | power-mean\n| soft-min | cvar | points-ratio | all-or-nothing | gated | hierarchical\n| pow3r | dvao | mo-grpo   (formulas: docs/aggregators.md)";

/** The engine's options as flags; `method` is left out by commands that take --methods. */
export const ENGINE_FLAGS: readonly Flag[] = [
  { name: "rubric", arg: "FILE", help: 'JSON {"criteria": [{"id", "weight", "scale": [lo, hi], "polarity", "fixed"}]}\n(penalties are fixed by default: focal keeps their share; "fixed": false opts out)\n(without it every criterion seen has weight 1 and scale [0, 1])' },
  { name: "method", arg: "M", help: METHOD_LIST, choices: METHODS },
  { name: "scope", arg: "S", help: "group (default) | stream", choices: ["group", "stream"] },
  { name: "gamma", arg: "G", help: "focal exponent (default 3; sa-mrpo 0.5)" },
  { name: "eps", arg: "E", help: "headroom floor (default 0.05)" },
  { name: "tau", arg: "T", help: "tilt temperature (default 1)" },
  { name: "mix", arg: "M", help: "focal share (default 1)" },
  { name: "min-weight", arg: "W", help: "lower bound of a weight" },
  { name: "max-weight", arg: "W", help: "upper bound of a weight" },
  { name: "decay", arg: "D", help: "stream EMA decay (default 0.9)" },
  { name: "advantage", arg: "A", help: "grpo (default) | dr-grpo | rloo | none", choices: ["grpo", "dr-grpo", "rloo", "none"] },
  { name: "constant", arg: "C", help: "keep (default) | drop: leave criteria constant in their group out of focal\nweights (group scope, focal only)", choices: ["keep", "drop"] },
  { name: "out-of-scale", arg: "P", help: "clamp (default: clamp into the scale, count, warn) | error: refuse a score\noutside its criterion's scale, naming the line, the criterion and the value", choices: ["clamp", "error"] },
  { name: "backend", arg: "B", help: "auto (default) | simd | scalar | js", choices: ["auto", "simd", "scalar", "js"] },
  { name: "power", arg: "P", help: "power-mean exponent (default 0; -Infinity = min)" },
  { name: "temperature", arg: "T", help: "soft-min temperature (default 0.1)" },
  { name: "alpha", arg: "A", help: "cvar tail share (default 0.25)" },
  { name: "threshold", arg: "X", help: "pass threshold for gated, hierarchical, all-or-nothing, F-GRPO (default 0.5)" },
  { name: "fgrpo", arg: "G", help: "F-GRPO: advantages times (1 - group success rate)^G, with any method" },
];

export const ENGINE_GROUP: FlagGroup = { title: "engine options", flags: ENGINE_FLAGS };
/** For compare and replay: the methods come from --methods. */
export const SHARED_ENGINE_GROUP: FlagGroup = { title: "engine options (shared by the methods)", flags: ENGINE_FLAGS.filter((f) => f.name !== "method") };


/** The input convention of every command that reads a log. */
export const INPUT_FLAGS: readonly Flag[] = [
  { name: "input", arg: "FILE", help: "the reward log: a file, or - for stdin (the default)" },
  { name: "input-format", arg: "F", help: "jsonl | csv | parquet | arrow (default: by the file's extension: .csv,\n.parquet, .arrow/.feather/.ipc; else jsonl). Parquet and Arrow need the optional\npackages hyparquet and apache-arrow; the columns are those of the CSV form", choices: LOG_FORMATS },
];

export const METHODS_FLAG: Flag = {
  name: "methods", arg: "LIST",
  help: "comma-separated (default focal,weighted-mean,gdpo). A method may carry its own\noptions after colons: power-mean:power=-1, focal:gamma=5:minWeight=0.05,\nfocal:scope=stream, min:fGrpo=1; focal-stream = focal:scope=stream",
};

export const LOG_FORMAT = `input line (JSONL): {"step"?: any, "group": any, "scores": {"<criterion>": number | null}, "valid"?: bool}
CSV: a header with a 'group' column (and optionally 'step', 'valid'), one column per criterion.
Consecutive rows with the same step form one training step; rows of a group are gathered by group.`;

/** A number from the command line; `infinite` also takes inf, -inf, Infinity, -Infinity. */
export function number(where: string, text: string | undefined, infinite = false): number | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  const x = infinite && /^[-+]?inf$/i.test(t) ? (t.startsWith("-") ? -Infinity : Infinity) : Number(t);
  if (t === "" || Number.isNaN(x) || (!infinite && !Number.isFinite(x))) {
    throw new UsageError(`${where}: expected a number, got '${text}'`);
  }
  return x;
}

/** Engine options given as flags (undefined where a flag is absent). */
export function engineFlags(v: Values): Partial<EngineOptions> {
  const s = (name: string) => v[name] as string | undefined;
  const o: Partial<EngineOptions> = {
    method: s("method") as EngineOptions["method"],
    scope: s("scope") as EngineOptions["scope"],
    advantage: s("advantage") as EngineOptions["advantage"],
    constant: s("constant") as EngineOptions["constant"],
    outOfScale: s("out-of-scale") as EngineOptions["outOfScale"],
    backend: s("backend") as EngineOptions["backend"],
    gamma: number("--gamma", s("gamma")),
    eps: number("--eps", s("eps")),
    tau: number("--tau", s("tau")),
    minWeight: number("--min-weight", s("min-weight")),
    maxWeight: number("--max-weight", s("max-weight")),
    mix: number("--mix", s("mix")),
    decay: number("--decay", s("decay")),
    power: number("--power", s("power"), true),
    temperature: number("--temperature", s("temperature")),
    alpha: number("--alpha", s("alpha")),
    threshold: number("--threshold", s("threshold")),
    fGrpo: number("--fgrpo", s("fgrpo")),
  };
  for (const k of Object.keys(o) as (keyof EngineOptions)[]) if (o[k] === undefined) delete o[k];
  return o;
}

/** Engine options a rubric file may set next to its criteria (flags override them); any other key is refused. */
export const RUBRIC_FILE_OPTIONS = ENGINE_OPTION_KEYS.filter((k) => k !== "rubric" && k !== "wasm");

export interface RubricFile {
  criteria: Criterion[];
  /** The engine options the file sets. */
  options: Partial<EngineOptions>;
}

/**
 * The one reader of rubric files, for every command: `{"criteria": [...], <engine options>}` or a
 * bare array of criteria. Warns (stderr) about penalty rules that only negate.
 */
export async function readRubricFile(path: string, command: string): Promise<RubricFile> {
  let json: unknown;
  try {
    json = JSON.parse(stripBom(await readFile(path, "utf8")));
  } catch (e) {
    throw new Error(`--rubric ${path}: ${(e as Error).message}`);
  }
  const file = Array.isArray(json) ? undefined : (json as Record<string, unknown> | null);
  const criteria = Array.isArray(json) ? json : file?.criteria;
  if (!Array.isArray(criteria)) throw new Error(`--rubric ${path}: expected {"criteria": [...]} or an array of criteria`);
  // Unknown keys are errors with the nearest valid one ("gama": did you mean "gamma"?); the
  // criteria's own keys and every value are checked by the engine (src/rubric.ts, src/core.ts).
  if (file) checkKeys(`--rubric ${path}`, file, ["criteria", ...RUBRIC_FILE_OPTIONS]);
  const options: Record<string, unknown> = {};
  if (file) for (const k of RUBRIC_FILE_OPTIONS) if (file[k] !== undefined) options[k] = file[k];
  for (const w of negatedPenaltyRules(criteria)) process.stderr.write(`focal-reward ${command}: --rubric ${path}: warning: ${w}\n`);
  return { criteria: criteria as Criterion[], options: options as Partial<EngineOptions> };
}

export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/**
 * The out-of-scale warning, once per criterion with its count (spec "Validation ranges"), on stderr.
 * `rubric`: whether the scales came from a rubric file (without one every scale is [0, 1]).
 */
export function warnOutOfScale(command: string, counts: readonly OutOfScaleCount[], rubric: boolean): void {
  if (counts.length === 0) return;
  let text = "";
  for (const { id, count, scale } of counts) {
    text += `focal-reward ${command}: warning: criterion '${id}': ${count} score${count === 1 ? "" : "s"} outside its scale [${scale[0]}, ${scale[1]}], clamped into it\n`;
  }
  text += `focal-reward ${command}: warning: ${rubric ? "fix those scales in the rubric" : "no --rubric, so every scale is [0, 1]: pass --rubric with the right scales"} (--out-of-scale error refuses such scores)\n`;
  process.stderr.write(text);
}

/** Per-criterion out-of-scale counts summed over a command's calls, from the engine's metrics. */
export class OutOfScaleTally {
  private readonly counts: Float64Array;
  constructor(private readonly criteria: readonly Criterion[]) {
    this.counts = new Float64Array(criteria.length);
  }
  add(metrics: Record<string, number>): void {
    if (!(metrics["focal/frac_out_of_scale"]! > 0)) return;
    this.criteria.forEach((c, k) => (this.counts[k] += metrics[`focal/${c.id}/out_of_scale`] ?? 0));
  }
  list(): OutOfScaleCount[] {
    const out: OutOfScaleCount[] = [];
    this.criteria.forEach((c, k) => { if (this.counts[k]! > 0) out.push({ id: c.id, count: this.counts[k]!, scale: c.scale ?? [0, 1] }); });
    return out;
  }
}
