/** TEMPORARY JSONL step reader (same contract as src/cli/steps.ts's readSteps) until that lands. */
import { StepBuilder, type Step } from "./steps-csv.js";

export async function* readSteps(lines: AsyncIterable<string>, opts: { criteria?: string[] } = {}): AsyncGenerator<Step> {
  if (!opts.criteria) throw new Error("tmp reader needs criteria");
  const index = new Map(opts.criteria.map((c, k) => [c, k]));
  const b = new StepBuilder(opts.criteria);
  let lineNo = 0;
  let stepKey: string | undefined;
  for await (const text of lines) {
    lineNo++;
    if (text.trim() === "") continue;
    let o: { step?: unknown; group?: unknown; scores?: Record<string, unknown>; valid?: unknown };
    try {
      o = JSON.parse(text);
    } catch {
      throw new Error(`line ${lineNo}: malformed JSON`);
    }
    const key = JSON.stringify(o.step);
    if (b.started && key !== stepKey) yield b.flush();
    stepKey = key;
    b.step = o.step;
    const row = b.add(String(o.group), o.valid !== false, lineNo);
    for (const [c, v] of Object.entries(o.scores ?? {})) {
      const k = index.get(c);
      if (k === undefined) throw new Error(`line ${lineNo}: unknown criterion '${c}'`);
      if (v === null) continue;
      if (typeof v !== "number") throw new Error(`line ${lineNo}: non-numeric score for '${c}'`);
      row[k] = v;
    }
  }
  if (b.started) yield b.flush();
}
