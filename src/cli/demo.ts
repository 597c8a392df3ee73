/** `focal-reward demo`: train a simulated policy under each method, print the balance table, write report.html. */
import type { BackendName } from "../types.js";
import { DEFAULT_SEEDS, formatTable, gammaZeroNote, runDemo } from "../demo/run.js";
import { DEFAULT_SIM } from "../demo/sim.js";
import { demoReport } from "../report/demo-report.js";
import { EXIT, UsageError, type CommandSpec, type Values } from "./flags.js";
import { writeAtomic } from "./io.js";

export const command: CommandSpec = {
  name: "demo",
  summary: "simulate rubric RL under each method; print the balance table, write report.html",
  usage: ["[--seeds N] [--steps N] [--backend auto|simd|scalar|js] [--report FILE]"],
  about: `Trains one simulated policy under weighted-mean, focal (group and stream scope), gdpo, focal with the
safety penalty not fixed, constant drop under GRPO and dr-grpo, and a gamma sweep (0, 1, 3, 5), over N seeds (default ${DEFAULT_SEEDS.length}), prints the final per-criterion scores and writes
the report. The model is described in docs/simulation.md.`,
  groups: [
    {
      title: "options",
      flags: [
        { name: "seeds", arg: "N", help: `number of seeds, 1..1000 (default ${DEFAULT_SEEDS.length})` },
        { name: "steps", arg: "N", help: `training steps per run (default ${DEFAULT_SIM.steps})` },
        { name: "backend", arg: "B", help: "auto (default) | simd | scalar | js", choices: ["auto", "simd", "scalar", "js"] },
        { name: "report", arg: "FILE", help: "the HTML report (default report.html)" },
      ],
    },
  ],
};

export async function run(values: Values): Promise<number> {
  const s = (name: string) => values[name] as string | undefined;
  const count = s("seeds") === undefined ? DEFAULT_SEEDS.length : Number(s("seeds"));
  if (!Number.isInteger(count) || count < 1 || count > 1000) throw new UsageError("--seeds must be an integer in 1..1000");
  const seeds = s("seeds") === undefined ? [...DEFAULT_SEEDS] : Array.from({ length: count }, (_, j) => j + 1);
  const steps = s("steps") === undefined ? DEFAULT_SIM.steps : Number(s("steps"));
  if (!Number.isInteger(steps) || steps < 1) throw new UsageError("--steps must be a positive integer");
  const backend = (s("backend") ?? "auto") as BackendName | "auto";
  const reportFile = s("report") ?? "report.html";
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
  await writeAtomic(reportFile, demoReport(res));
  process.stderr.write(`demo: ${res.methods.length * seeds.length} runs in ${res.seconds.toFixed(1)} s; report written to ${reportFile}\n`);
  return EXIT.ok;
}
