// Public names of the ABI's codes (src/abi.ts): a member's name in kebab case,
// MethodCode.WeightedMean = "weighted-mean". Kept apart from src/abi.ts, which asc compiles too.
import { AdvantageCode, MethodCode } from "./abi.js";
import type { AdvantageMode, Method } from "./types.js";

const kebab = (name: string) => name.replace(/[A-Z]/g, (c, i: number) => (i > 0 ? "-" : "") + c.toLowerCase());

/** Code by public name for the members of an ABI enum before End. */
function codes<N extends string>(e: Record<string, string | number>): Readonly<Record<N, number>> {
  const out: Record<string, number> = {};
  for (const [name, code] of Object.entries(e)) if (typeof code === "number" && name !== "End") out[kebab(name)] = code;
  return out as Record<N, number>;
}

export const METHOD_CODES = codes<Method>(MethodCode);
export const ADVANTAGE_CODES = codes<AdvantageMode>(AdvantageCode);

/** Public names of the methods with codes in [from, to). */
export function methodsBetween(from: MethodCode, to: MethodCode): Method[] {
  return (Object.keys(METHOD_CODES) as Method[]).filter((m) => METHOD_CODES[m] >= from && METHOD_CODES[m] < to);
}
