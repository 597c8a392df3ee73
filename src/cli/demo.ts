/** `focal-reward demo`: train a simulated policy under each method, print the balance table, write report.html. */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import type { BackendName } from "../types.js";
import { DEFAULT_SEEDS, formatTable, gammaZeroNote, runDemo } from "../demo/run.js";
import { DEFAULT_SIM } from "../demo/sim.js";
import { demoReport } from "../report/demo-report.js";

export const summary = "simulate rubric RL under each method; print the balance table, write report.html";

const USAGE = `usage: focal-reward demo [--seeds N] [--steps N] [--backend auto|simd|scalar|js] [--report FILE]

Trains one simulated policy under weighted-mean, focal (group and stream scope), gdpo and a gamma sweep
(0, 1, 3, 5), over N seeds (default ${DEFAULT_SEEDS.length}), prints the final per-criterion scores and writes
the report (default report.html). The model is described in docs/simulation.md.
`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      seeds: { type: "string" }, steps: { type: "string" }, backend: { type: "string" },
      report: { type: "string" }, help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const count = values.seeds === undefined ? DEFAULT_SEEDS.length : Number(values.seeds);
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw new Error("--seeds must be an integer in 1..1000");
  const seeds = values.seeds === undefined ? [...DEFAULT_SEEDS] : Array.from({ length: count }, (_, j) => j + 1);
  const steps = values.steps === undefined ? DEFAULT_SIM.steps : Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1) throw new Error("--steps must be a positive integer");
  const backend = (values.backend ?? "auto") as BackendName | "auto";
  if (!["auto", "simd", "scalar", "js"].includes(backend)) throw new Error(`unknown backend '${backend}'`);
  const reportFile = values.report ?? "report.html";
  const tty = process.stderr.isTTY === true;
  const lastSeed = seeds[seeds.length - 1];
  const res = await runDemo({
    seeds,
    backend,
    sim: { ...DEFAULT_SIM, steps },
    onProgress: (done, total, method, seed) => {
      if (tty) process.stderr.write(`\r\x1b[Kdemo: run ${done}/${total} (${method}, seed ${seed})`);
      else if (seed === lastSeed) process.stderr.write(`demo: ${method} done (${done}/${total} runs)\n`);
    },
  });
  if (tty) process.stderr.write("\r\x1b[K");
  process.stdout.write(
    `Final true quality per criterion after ${steps} steps (mean ± sd over ${seeds.length} seeds), backend ${res.backend}:\n\n` +
      formatTable(res) +
      `\n\n${gammaZeroNote(res)}\n`,
  );
  writeFileSync(reportFile, demoReport(res));
  process.stderr.write(`demo: ${res.methods.length * seeds.length} runs in ${res.seconds.toFixed(1)} s; report written to ${reportFile}\n`);
  return 0;
}
