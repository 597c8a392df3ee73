#!/usr/bin/env node
/** `focal-reward <command>`: each command lives in its own module, loaded on demand. */

type Command = { run(argv: string[]): Promise<number>; summary: string };

const commands: Record<string, () => Promise<Command>> = {
  score: () => import("./score.js"),
  serve: () => import("./serve.js"),
  demo: () => import("./demo.js"),
  replay: () => import("./replay.js"),
  compare: () => import("./compare.js"),
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  const load = name === undefined ? undefined : commands[name];
  if (!load) {
    const lines = await Promise.all(
      Object.entries(commands).map(async ([n, l]) => `  ${n.padEnd(8)} ${(await l()).summary}`),
    );
    const out = `usage: focal-reward <command> [options]\n\n${lines.join("\n")}\n`;
    if (name === undefined || name === "--help" || name === "-h") {
      process.stdout.write(out);
      return 0;
    }
    process.stderr.write(`focal-reward: unknown command '${name}'\n\n${out}`);
    return 2;
  }
  return (await load()).run(rest);
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err: unknown) => {
    process.stderr.write(`focal-reward: ${err instanceof Error ? err.message : String(err)}\n`);
    // Usage errors (unknown flag, missing value) exit 2, as usual for command lines; others 1.
    const code = (err as { code?: unknown } | null)?.code;
    process.exitCode = typeof code === "string" && code.startsWith("ERR_PARSE_ARGS") ? 2 : 1;
  },
);
