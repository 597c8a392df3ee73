/** The flag-table parser of the CLI (src/cli/flags.ts): forms, errors, did-you-mean, help from the table. */
import { describe, expect, it } from "vitest";
import { UsageError, didYouMean, helpText, parseFlags, type CommandSpec } from "../../dist/cli/flags.js";

const spec: CommandSpec = {
  name: "t",
  summary: "a test command",
  usage: ["[--input FILE]"],
  groups: [
    {
      title: "io",
      flags: [
        { name: "input", arg: "FILE", help: "the input" },
        { name: "power", arg: "P", help: "a number\nsecond line" },
        { name: "mode", arg: "M", help: "a or b", choices: ["a", "b"] },
        { name: "quiet", help: "a switch" },
      ],
    },
  ],
  positional: { name: "LOG", flag: "input" },
  insteadOf: { format: "mode" },
};

describe("parseFlags", () => {
  it("takes --name value, --name=value, negative numbers, - and a positional", () => {
    expect(parseFlags(spec, ["--input", "-", "--power", "-1", "--quiet"])).toEqual({ input: "-", power: "-1", quiet: true });
    expect(parseFlags(spec, ["--power=-inf", "log.jsonl"])).toEqual({ power: "-inf", input: "log.jsonl" });
    expect(parseFlags(spec, ["-h"])).toEqual({ help: true });
    expect(parseFlags(spec, ["--", "--odd-name"])).toEqual({ input: "--odd-name" });
  });

  it("refuses what it cannot take, saying why", () => {
    const err = (argv: string[]) => {
      try {
        parseFlags(spec, argv);
      } catch (e) {
        expect(e).toBeInstanceOf(UsageError);
        return (e as Error).message;
      }
      throw new Error(`accepted ${argv.join(" ")}`);
    };
    expect(err(["--powr", "1"])).toBe("unknown flag '--powr' (did you mean --power?)");
    expect(err(["--power"])).toBe("--power needs a value (P)");
    expect(err(["--power", "--quiet"])).toBe("--power needs a value (P)");
    expect(err(["--mode", "c"])).toBe("--mode: expected a | b, got 'c'");
    expect(err(["--quiet=1"])).toBe("--quiet takes no value");
    expect(err(["--power", "1", "--power", "2"])).toBe("--power is given twice");
    expect(err(["a", "b"])).toBe("one LOG, got 'a', 'b'");
    expect(err(["a", "--input", "b"])).toContain("given twice");
    expect(err(["--format", "a"])).toBe("t has no --format: use --mode");
    expect(err(["--formt", "a"])).toBe("unknown flag '--formt' (did you mean --mode?)");
  });

  it("help lists every flag of the table with its continuation lines", () => {
    const h = helpText(spec);
    for (const f of ["--input FILE", "--power P", "--mode M", "--quiet", "--help", "--version"]) expect(h).toContain(f);
    expect(h).toMatch(/a number\n {23}second line/);
  });

  it("didYouMean: small edits and swaps, unique prefixes, nothing when far", () => {
    expect(didYouMean("scroe", ["score", "serve"])).toBe("score");
    expect(didYouMean("metric", ["metrics", "method"])).toBe("metrics");
    expect(didYouMean("input-f", ["input", "input-format"])).toBe("input-format");
    expect(didYouMean("zzz", ["score", "serve"])).toBeUndefined();
  });
});
