/**
 * The command-line scaffold: every command declares one table of flags, and its parsing, its
 * `--help` and its exit codes all come from that table. Adding a flag is one entry.
 */

/** Exit codes of every command: 0 done, 1 bad input or a failure while running, 2 bad usage. */
/** closedPipe: what a shell reports for a process ended by SIGPIPE (128 + 13), as `cmd | head` ends it. */
export const EXIT = { ok: 0, failure: 1, usage: 2, closedPipe: 141 } as const;

export interface Flag {
  /** Without the dashes. */
  name: string;
  /** The value's placeholder in --help (FILE, N, ...); absent for a boolean flag. */
  arg?: string;
  /** One line, or several joined by "\n" (continuation lines are indented under it). */
  help: string;
  short?: string;
  /** The only values accepted (checked while parsing, listed in the error). */
  choices?: readonly string[];
}

export interface FlagGroup {
  title: string;
  flags: readonly Flag[];
}

export interface CommandSpec {
  name: string;
  summary: string;
  /** Synopsis lines, each after "focal-reward <name> ". */
  usage: readonly string[];
  /** Paragraphs printed between the synopsis and the flags. */
  about?: string;
  groups: readonly FlagGroup[];
  /** A positional argument is taken as the value of this flag (replay LOG = --input LOG). */
  positional?: { name: string; flag: string };
  /** Flags of other commands or old names: using one is a usage error naming the flag to use. */
  insteadOf?: Readonly<Record<string, string>>;
}

export type Values = Record<string, string | boolean | undefined>;

/** Bad usage (unknown flag, missing value, bad choice): exit code 2 and a pointer to --help. */
export class UsageError extends Error {}

const BUILTIN: Flag[] = [
  { name: "help", short: "h", help: "print this help and exit" },
  { name: "version", help: "print the version and exit" },
];

function allFlags(spec: CommandSpec): Flag[] {
  return [...spec.groups.flatMap((g) => g.flags), ...BUILTIN];
}

/** Parses argv by the command's table: `--name value`, `--name=value`, `-h`, `--` ends the flags. */
export function parseFlags(spec: CommandSpec, argv: readonly string[]): Values {
  const flags = allFlags(spec);
  const byName = new Map(flags.map((f) => [f.name, f]));
  const byShort = new Map(flags.filter((f) => f.short).map((f) => [f.short!, f]));
  const values: Values = {};
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (a === "-" || !a.startsWith("-")) {
      positionals.push(a);
      continue;
    }
    const long = a.startsWith("--");
    const eq = a.indexOf("=");
    const key = long ? a.slice(2, eq < 0 ? undefined : eq) : a.slice(1);
    const flag = long ? byName.get(key) : byShort.get(key);
    if (!flag) {
      const instead = long ? spec.insteadOf?.[key] : undefined;
      if (instead) throw new UsageError(`${spec.name} has no --${key}: use --${instead}`);
      let near = long ? didYouMean(key, [...flags.map((f) => f.name), ...Object.keys(spec.insteadOf ?? {})]) : undefined;
      if (near !== undefined) near = spec.insteadOf?.[near] ?? near;
      throw new UsageError(`unknown flag '${a}'${near ? ` (did you mean --${near}?)` : ""}`);
    }
    if (values[flag.name] !== undefined) throw new UsageError(`--${flag.name} is given twice`);
    if (flag.arg === undefined) {
      if (long && eq >= 0) throw new UsageError(`--${flag.name} takes no value`);
      values[flag.name] = true;
      continue;
    }
    let v: string | undefined;
    if (long && eq >= 0) v = a.slice(eq + 1);
    else {
      v = argv[i + 1];
      // A value may be "-" (stdin) or a negative number, never another flag.
      if (v === undefined || (v.startsWith("--") && v.length > 2)) throw new UsageError(`--${flag.name} needs a value (${flag.arg})`);
      i++;
    }
    if (flag.choices && !flag.choices.includes(v)) {
      throw new UsageError(`--${flag.name}: expected ${flag.choices.join(" | ")}, got '${v}'`);
    }
    values[flag.name] = v;
  }
  if (positionals.length > 0) {
    const p = spec.positional;
    if (!p) throw new UsageError(`unexpected argument '${positionals[0]}'`);
    if (positionals.length > 1) throw new UsageError(`one ${p.name}, got '${positionals.join("', '")}'`);
    if (values[p.flag] !== undefined) throw new UsageError(`${p.name} given twice (as an argument and as --${p.flag})`);
    values[p.flag] = positionals[0];
  }
  return values;
}

/** The --help text, made from the same table the parser uses. */
export function helpText(spec: CommandSpec): string {
  const out: string[] = [];
  spec.usage.forEach((u, i) => out.push(`${i === 0 ? "usage: " : "       "}focal-reward ${spec.name} ${u}`));
  out.push("", spec.summary);
  if (spec.about) out.push("", spec.about.trimEnd());
  for (const g of [...spec.groups, { title: "", flags: BUILTIN }]) {
    out.push("", g.title ? `${g.title}:` : "general:");
    for (const f of g.flags) {
      const head = `  ${f.short ? `-${f.short}, ` : ""}--${f.name}${f.arg ? ` ${f.arg}` : ""}`;
      const [first, ...more] = f.help.split("\n");
      out.push(head.length < 23 ? `${head.padEnd(23)}${first}` : `${head}\n${" ".repeat(23)}${first}`);
      for (const m of more) out.push(`${" ".repeat(23)}${m}`);
    }
  }
  out.push("", `exit status: ${EXIT.ok} done, ${EXIT.failure} bad input or a failure (the reason on stderr), ${EXIT.usage} bad usage`);
  return `${out.join("\n")}\n`;
}

/** The only name that starts with `typed`, else the closest within a small edit distance. */
export function didYouMean(typed: string, names: readonly string[]): string | undefined {
  const prefixed = names.filter((n) => n.startsWith(typed));
  if (typed.length >= 2 && prefixed.length === 1) return prefixed[0];
  let best: string | undefined, bestD = Infinity;
  for (const n of names) {
    const d = editDistance(typed, n);
    if (d < bestD) [best, bestD] = [n, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(typed.length / 3)) ? best : undefined;
}

/** Edits (insert, delete, substitute, swap two neighbours) from a to b. */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
