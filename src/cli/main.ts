#!/usr/bin/env node
/**
 * `focal-reward <command>`: each command is a flag table (flags.ts) and a run function in its own
 * module, loaded on demand. Parsing, --help, --version and exit codes are handled here for all.
 */
import { readFileSync } from "node:fs";
import { MethodSpecError } from "../analysis/methods.js";
import { EXIT, UsageError, didYouMean, helpText, parseFlags, type CommandSpec, type Values } from "./flags.js";

export interface Command {
  command: CommandSpec;
  run(values: Values): Promise<number>;
}

const commands: Record<string, () => Promise<Command>> = {
  score: () => import("./score.js"),
  compare: () => import("./compare.js"),
  replay: () => import("./replay.js"),
  serve: () => import("./serve.js"),
  demo: () => import("./demo.js"),
  judge: () => import("./judge.js"),
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };
  return `focal-reward ${pkg.version}\n`;
}

async function overview(): Promise<string> {
  const lines = await Promise.all(Object.entries(commands).map(async ([n, l]) => `  ${n.padEnd(8)} ${(await l()).command.summary}`));
  return `usage: focal-reward <command> [options]   (focal-reward <command> --help for its flags)\n\n${lines.join("\n")}\n\n  --version  print the version\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === "--version" || name === "-V") {
    process.stdout.write(version());
    return EXIT.ok;
  }
  const load = name === undefined ? undefined : commands[name];
  if (!load) {
    if (name === undefined || name === "--help" || name === "-h" || name === "help") {
      process.stdout.write(await overview());
      return EXIT.ok;
    }
    const near = didYouMean(name, Object.keys(commands));
    process.stderr.write(`focal-reward: unknown command '${name}'${near ? ` (did you mean ${near}?)` : ""}\n\n${await overview()}`);
    return EXIT.usage;
  }
  const cmd = await load();
  const spec = cmd.command;
  let values: Values;
  try {
    values = parseFlags(spec, rest);
  } catch (e) {
    return usageError(spec, e);
  }
  if (values.help) {
    process.stdout.write(helpText(spec));
    return EXIT.ok;
  }
  if (values.version) {
    process.stdout.write(version());
    return EXIT.ok;
  }
  try {
    return await cmd.run(values);
  } catch (e) {
    if (e instanceof UsageError || e instanceof MethodSpecError) return usageError(spec, e);
    process.stderr.write(`focal-reward ${spec.name}: ${e instanceof Error ? e.message : String(e)}\n`);
    if (process.env.FOCAL_DEBUG && e instanceof Error) process.stderr.write(`${e.stack}\n`);
    return EXIT.failure;
  }
}

function usageError(spec: CommandSpec, e: unknown): number {
  if (!(e instanceof UsageError || e instanceof MethodSpecError)) throw e;
  process.stderr.write(`focal-reward ${spec.name}: ${e.message}\n(focal-reward ${spec.name} --help lists the flags)\n`);
  return EXIT.usage;
}

// The reader of stdout went away (`focal-reward score ... | head`): stop at once and quietly, as a
// process ended by SIGPIPE would; nothing after this point (a --state save) reflects what was read.
process.stdout.on("error", (e: NodeJS.ErrnoException) => {
  if (e.code !== "EPIPE") throw e;
  process.exit(EXIT.closedPipe);
});

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`focal-reward: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = EXIT.failure;
  },
);
