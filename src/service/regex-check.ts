/**
 * The regex check of the `rules` judge: a pattern that can backtrack catastrophically (ReDoS,
 * e.g. `^(\w+\s?)*$`) is refused when the rubric is loaded. The analysis is `recheck`'s (an
 * optional dependency, imported only when a rubric has a regex rule; its pure-JS checker runs in
 * Node, Bun and Deno). Where it cannot be imported the caller is told, and rules run unchecked
 * (in Node serve still stops a runaway rule by the judge timeout: rules-worker.ts).
 */
import type { RegexCheck } from "./judges.js";

interface Diagnostics {
  status: "safe" | "vulnerable" | "unknown";
  complexity?: { type: string; summary?: string };
  attack?: { string?: string };
  error?: { kind?: string };
}
interface Recheck {
  checkSync(source: string, flags: string, params?: Record<string, unknown>): Diagnostics;
}

/** Loads the check, or answers why it cannot (the `recheck` package is missing). */
export async function loadRegexCheck(): Promise<RegexCheck | string> {
  let mod: Recheck;
  try {
    mod = (await import(/* @vite-ignore */ "recheck" as string)) as Recheck;
  } catch (e) {
    return `regex rules are not checked for catastrophic backtracking: the optional package 'recheck' could not be loaded (${e instanceof Error ? e.message : String(e)}); npm install recheck`;
  }
  return (source, flags) => {
    // Bounded analysis; a pattern it cannot decide in time is refused too (better rewritten than risked).
    const d = mod.checkSync(source, flags, { timeout: 5_000 });
    if (d.status === "safe") return undefined;
    if (d.status === "vulnerable") {
      const attack = d.attack?.string === undefined ? "" : `; e.g. ${JSON.stringify(d.attack.string.slice(0, 40))}${d.attack.string.length > 40 ? "..." : ""}`;
      return `can backtrack catastrophically (${d.complexity?.summary ?? d.complexity?.type ?? "super-linear"} time in the text's length${attack}): rewrite it without nested or overlapping repetition`;
    }
    return `could not be shown safe from catastrophic backtracking (${d.error?.kind ?? "unknown"}): simplify it`;
  };
}
