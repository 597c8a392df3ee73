import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { createEngine } from "../index.js";
import { ENGINE_FLAGS, ENGINE_HELP, engineOptions, readRubric, writeAtomic, writeOut } from "./common.js";
import { openLog } from "./log.js";
import { InputError } from "./steps.js";

export const summary = "score a JSONL reward log: one output line per input line";

const HELP = `usage: focal-reward score [--input FILE] [options] < scores.jsonl > rewards.jsonl

input line:  {"step"?: any, "group": any, "scores": {"<criterion>": number | null}, "valid"?: bool}
output line: {"group", "reward", "direct", "advantage", "weights": {"<criterion>": f}}
Consecutive lines with the same step form one call; rows of a group are gathered by group.

  --input FILE         read FILE instead of stdin
  --state FILE         stream scope: load the state before, save it after (atomically)
  --metrics FILE       write per-step metrics as JSONL
${ENGINE_HELP}`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { ...ENGINE_FLAGS, input: { type: "string" }, state: { type: "string" }, metrics: { type: "string" }, help: { type: "boolean", short: "h" } },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  try {
    return await score(values);
  } catch (e) {
    if (e instanceof InputError) {
      process.stderr.write(`focal-reward score: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

async function score(values: Record<string, string | boolean | undefined>): Promise<number> {
  const rubric = values.rubric !== undefined ? await readRubric(values.rubric as string) : undefined;
  // Without a rubric the columns are every criterion in the log: the stream scope's weights
  // depend on the whole set, so stdin is held in memory to find them first.
  const log = await openLog(values.input as string | undefined, { rubric, holdStdin: true });
  const criteria = log.criteria;
  const engine = await createEngine(engineOptions(values, criteria));
  const statePath = values.state as string | undefined;
  if (statePath !== undefined) {
    if (engine.scope !== "stream") throw new Error("--state needs --scope stream");
    if (existsSync(statePath)) engine.restore(new Uint8Array(await readFile(statePath)));
  }
  const metrics: string[] = [];
  const ids = engine.criteria;
  for await (const step of log.steps) {
    let out;
    try {
      out = engine.score(step.scores, step.groupSizes, { valid: step.valid });
    } catch (e) {
      throw new InputError(step.lines[0], `step ${JSON.stringify(step.step) ?? "(none)"}: ${(e as Error).message}`);
    }
    const k = ids.length;
    const perGroup = engine.scope === "group";
    // Weights as JSON once per group (group scope: the criteria in use there) or once per step.
    const weightsJson = (perGroup ? step.groups : [undefined]).map((_, g) => {
      const w: Record<string, number> = {};
      for (let c = 0; c < k; c++) {
        const at = perGroup ? g * k + c : c;
        if (!perGroup || !Number.isNaN(out.saturation[at])) w[ids[c]] = out.weights[at];
      }
      return JSON.stringify(w);
    });
    const groupOfRow = new Int32Array(step.order.length);
    for (let g = 0, i = 0; g < step.groupSizes.length; g++) for (let j = 0; j < step.groupSizes[g]; j++) groupOfRow[i++] = g;
    let text = "";
    for (let j = 0; j < step.order.length; j++) {
      const i = step.order[j];
      const g = groupOfRow[i];
      const record: Record<string, unknown> = {};
      if (step.step !== undefined) record.step = step.step;
      record.group = step.groups[g];
      record.reward = out.rewards[i];
      record.direct = Number.isNaN(out.direct[i]) ? null : out.direct[i];
      record.advantage = out.advantages[i];
      text += `${JSON.stringify(record).slice(0, -1)},"weights":${weightsJson[perGroup ? g : 0]}}\n`;
    }
    await writeOut(text);
    if (values.metrics !== undefined) metrics.push(JSON.stringify({ step: step.step ?? null, ...out.metrics }));
  }
  if (values.metrics !== undefined) await writeAtomic(values.metrics as string, metrics.map((l) => `${l}\n`).join(""));
  if (statePath !== undefined) await writeAtomic(statePath, engine.snapshot());
  return 0;
}
