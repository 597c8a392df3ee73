/**
 * The vendored WritingBench judge scores (test/fixtures/writingbench, provenance in its README):
 * file paths, a loader, and a CSV rendering of the same rows for the CSV readers.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Criterion } from "../../src/types.js";
import { ROOT } from "./paths.js";

export const WB_DIR = join(ROOT, "test", "fixtures", "writingbench");
export const WB_SCORES = join(WB_DIR, "scores.jsonl");
export const WB_RUBRIC = join(WB_DIR, "rubric.json");

export interface WbLine { group: string; scores: Record<string, number | null>; source: string }

/** The rows and the rubric; a missing file fails loudly (the tests never skip). */
export function loadWritingbench(): { lines: WbLine[]; rubric: { criteria: Criterion[] } } {
  if (!existsSync(WB_SCORES) || !existsSync(WB_RUBRIC)) throw new Error(`fixture missing: expected ${WB_SCORES} and ${WB_RUBRIC}`);
  return {
    lines: readFileSync(WB_SCORES, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as WbLine),
    rubric: JSON.parse(readFileSync(WB_RUBRIC, "utf8")),
  };
}

/** The rows as CSV with a quoted header and CRLF line ends; unjudged cells are empty. */
export function toCsv(lines: WbLine[], criteria: string[]): string {
  const q = (s: string): string => `"${s.replace(/"/g, '""')}"`;
  const out = [["group", ...criteria].map(q).join(",")];
  for (const l of lines) out.push([q(l.group), ...criteria.map((c) => (l.scores[c] === undefined || l.scores[c] === null ? "" : String(l.scores[c])))].join(","));
  return `${out.join("\r\n")}\r\n`;
}
