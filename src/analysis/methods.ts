/**
 * Method specs as compare and replay take them: "name[:key=value]...", a comma-separated list of
 * them, and the labels the reports use.
 */
import { METHODS } from "../core.js";
import { unknownName } from "../validate.js";
import type { EngineOptions } from "../types.js";

/** A method list or spec that cannot be read (the CLI reports it as a usage error). */
export class MethodSpecError extends Error {}

/** A number in a method spec; `infinite` also takes inf, -inf, Infinity, -Infinity. */
function number(where: string, text: string, infinite = false): number {
  const t = text.trim();
  const x = infinite && /^[-+]?inf(inity)?$/i.test(t) ? (t.startsWith("-") ? -Infinity : Infinity) : Number(t);
  if (t === "" || Number.isNaN(x) || (!infinite && !Number.isFinite(x))) throw new MethodSpecError(`${where}: expected a number, got '${text}'`);
  return x;
}

/** Options a method may carry after colons, as `compare` and `replay` take them. */
const SPEC_NUMBERS: Record<string, keyof EngineOptions> = {
  gamma: "gamma", eps: "eps", tau: "tau", minWeight: "minWeight", "min-weight": "minWeight", maxWeight: "maxWeight",
  "max-weight": "maxWeight", mix: "mix", decay: "decay", advEps: "advEps", power: "power", temperature: "temperature",
  alpha: "alpha", threshold: "threshold", fGrpo: "fGrpo", fgrpo: "fGrpo",
};

const SPEC_KEYS = ["scope", "advantage", "constant", ...Object.keys(SPEC_NUMBERS)];

/**
 * "name[:key=value]...", e.g. "power-mean:power=-1" or "focal:scope=stream:gamma=5" (and the
 * shorthand "focal-stream"): the engine options that method sets over the shared ones.
 */
export function methodOptions(spec: string): Partial<EngineOptions> {
  const [name, ...params] = spec.split(":");
  if (name !== "focal-stream" && !(METHODS as readonly string[]).includes(name)) {
    throw new MethodSpecError(`--methods: ${unknownName("method", name, [...METHODS, "focal-stream"], (k) => `'${k}'`)}`);
  }
  const o: Partial<EngineOptions> = name === "focal-stream" ? { method: "focal", scope: "stream" } : { method: name as EngineOptions["method"] };
  for (const p of params) {
    const eq = p.indexOf("=");
    if (eq < 1) throw new MethodSpecError(`--methods ${spec}: expected key=value, got '${p}'`);
    const key = p.slice(0, eq), value = p.slice(eq + 1);
    if (key === "scope") o.scope = value as EngineOptions["scope"];
    else if (key === "advantage") o.advantage = value as EngineOptions["advantage"];
    else if (key === "constant") o.constant = value as EngineOptions["constant"];
    else if (key in SPEC_NUMBERS) (o as Record<string, unknown>)[SPEC_NUMBERS[key]] = number(`--methods ${spec}`, value, key === "power");
    else throw new MethodSpecError(`--methods ${spec}: ${unknownName("option", key, SPEC_KEYS, (k) => `'${k}'`)}`);
  }
  return o;
}

export interface ReplayMethod {
  key: string;
  label: string;
  options: Partial<EngineOptions>;
}

const LABELS: Record<string, string> = {
  focal: "focal (group scope)",
  "focal-stream": "focal (stream scope)",
  "weighted-mean": "weighted mean",
  gdpo: "GDPO",
};

/** A comma-separated list of methods, each with its own options after colons. */
export function parseMethods(list: string): ReplayMethod[] {
  const keys = list.split(",").map((s) => s.trim()).filter(Boolean);
  if (keys.length === 0) throw new MethodSpecError("--methods: empty list");
  const out: ReplayMethod[] = [];
  for (const k of keys) {
    if (out.some((o) => o.key === k)) throw new MethodSpecError(`--methods: '${k}' given twice`);
    out.push({ key: k, label: LABELS[k] ?? k, options: methodOptions(k) });
  }
  return out;
}
