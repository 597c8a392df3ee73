/**
 * Flags of the bench scripts, strict as the CLI's: an unknown flag or a bad value stops the run
 * with the nearest flag's name (a typo must not start a 10-minute run on the defaults), and
 * --help prints the script's usage.
 *
 *   const { values, number } = benchArgs({ rows: { default: "300000", help: "rows of the log" }, json: { boolean: true, help: "..." } }, "npm run bench:cli -- [flags]");
 */
import { parseArgs } from "node:util";
import { didYouMean } from "../dist/cli/flags.js";

/** `spec`: flag name -> { default?, boolean?, help }. Exits 0 after --help, 2 on bad usage. */
export function benchArgs(spec, usage) {
  const fail = (message) => {
    process.stderr.write(`${message}\n(--help lists the flags)\n`);
    process.exit(2);
  };
  const options = { help: { type: "boolean" } };
  for (const [name, f] of Object.entries(spec)) options[name] = f.boolean ? { type: "boolean" } : { type: "string", default: f.default };
  for (const a of process.argv.slice(2)) {
    const name = a.startsWith("--") ? a.slice(2).split("=")[0] : undefined;
    if (name !== undefined && !(name in options)) {
      const near = didYouMean(name, Object.keys(options));
      fail(`unknown flag --${name}${near ? ` (did you mean --${near}?)` : ""}`);
    }
  }
  let values;
  try {
    ({ values } = parseArgs({ options, strict: true, allowPositionals: false }));
  } catch (e) {
    fail(e.message);
  }
  if (values.help) {
    const lines = Object.entries(spec).map(([name, f]) => `  --${name}${f.boolean ? "" : " X"}`.padEnd(24) + f.help + (f.default !== undefined ? ` (default ${f.default})` : ""));
    process.stdout.write(`${usage}\n${lines.join("\n")}\n`);
    process.exit(0);
  }
  /** The flag's value as a number within [min, max], else a usage error. */
  const number = (name, { min = 0, max = Infinity, integer = false } = {}) => {
    const n = Number(values[name]);
    if (values[name] === "" || !Number.isFinite(n) || n < min || n > max || (integer && !Number.isInteger(n))) {
      fail(`--${name}: expected ${integer ? "an integer" : "a number"} in [${min}, ${max}], got '${values[name]}'`);
    }
    return n;
  };
  /** The flag's comma-separated list, each item one of `allowed`. */
  const list = (name, allowed) => {
    const items = values[name].split(",");
    for (const item of items) {
      if (!allowed.includes(item)) {
        const near = didYouMean(item, allowed);
        fail(`--${name}: unknown '${item}'${near ? ` (did you mean '${near}'?)` : ""}; one or more of ${allowed.join(",")}`);
      }
    }
    return items;
  };
  return { values, number, list };
}
