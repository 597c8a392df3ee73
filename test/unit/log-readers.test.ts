/**
 * The JSONL reader parses each line once: on 4,000 seeded lines of every shape (number spellings,
 * escapes, extra keys, nested values, whitespace, repeated keys, odd steps and groups) its steps
 * equal an independent JSON.parse reading, bit for bit; errors name the line. And a step is copied
 * at most once: not at all when its groups are contiguous. The same holds when the file arrives
 * as byte chunks cut anywhere (lineChunks), and the usual line shape takes the in-place path.
 */
import { describe, expect, it } from "vitest";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { FastLine, readSteps, type Row } from "../../dist/log/jsonl.js";
import { lineBytes, lineChunks } from "../../dist/log/lines.js";
import { threadSteps } from "../../dist/log/thread.js";
import type { OpenLogOptions } from "../../dist/log/open.js";
import type { Step } from "../../dist/log/step.js";
import { prng } from "../support/prng.js";

const IDS = ["a", "b", "c d", "é"];

/** A reading of the same log with JSON.parse only, written independently of the reader. */
function reference(lines: string[], ids: string[]) {
  const steps: { step: unknown; groups: unknown[]; sizes: number[]; scores: number[]; valid: number[]; lines: number[] }[] = [];
  let cur: (typeof steps)[number] | undefined, key: string | undefined;
  let byGroup = new Map<string, { value: unknown; rows: { s: number[]; v: number; l: number }[] }>();
  const close = () => {
    if (!cur) return;
    for (const g of byGroup.values()) {
      cur.groups.push(g.value);
      cur.sizes.push(g.rows.length);
      for (const r of g.rows) { cur.scores.push(...r.s); cur.valid.push(r.v); cur.lines.push(r.l); }
    }
    steps.push(cur);
  };
  lines.forEach((text, i) => {
    if (text.trim() === "") return;
    const o = JSON.parse(text) as { step?: unknown; group: unknown; scores: Record<string, number | null>; valid?: boolean };
    const k = o.step === undefined ? "" : JSON.stringify(o.step);
    if (cur === undefined || k !== key) {
      close();
      cur = { step: o.step, groups: [], sizes: [], scores: [], valid: [], lines: [] };
      byGroup = new Map();
      key = k;
    }
    const gk = JSON.stringify(o.group);
    if (!byGroup.has(gk)) byGroup.set(gk, { value: o.group, rows: [] });
    byGroup.get(gk)!.rows.push({ s: ids.map((id) => { const x = o.scores[id]; return x === null || x === undefined ? NaN : Math.fround(x); }), v: o.valid === false ? 0 : 1, l: i + 1 });
  });
  close();
  return steps;
}

function numberText(r: () => number): string {
  const x = r();
  const forms = [
    () => String(Math.round(x * 10)),
    () => (x * 3 - 1).toFixed(3),
    () => (x / 7).toString(),
    () => (x * 1e-5).toExponential(4),
    () => `${(x * 9).toFixed(1)}E+1`,
    () => "-0",
    () => "0.10000000000000000555",
    () => "123456789012345678",
    () => "1e-320",
    () => "0.5e0",
    () => `-${x.toFixed(17)}`,
  ];
  return forms[Math.floor(r() * forms.length)]!();
}

function randomLine(r: () => number, step: string): string {
  const parts: string[] = [];
  const sp = () => [" ", "", "\t", ""][Math.floor(r() * 4)]!;
  const groups = ['"g1"', '"g2"', "3", '"g\\u0031"', '{"id":1}', "-0", "1.0", "null", '"g\\"q"'];
  const scores = IDS.filter(() => r() < 0.8).map((id) => `${sp()}${JSON.stringify(id)}${sp()}:${sp()}${r() < 0.1 ? "null" : numberText(r)}`);
  if (r() < 0.05 && scores.length > 0) scores.push(`"a":${numberText(r)}`); // a repeated key: the last wins
  parts.push(`"group":${sp()}${groups[Math.floor(r() * groups.length)]}`);
  parts.push(`"scores":{${scores.join(",")}}`);
  if (step !== "") parts.push(`"step":${step}`);
  if (r() < 0.2) parts.push(`"valid":${r() < 0.5 ? "false" : "true"}`);
  if (r() < 0.2) parts.push(`"source":"a \\"quoted\\" text\\n\\u00e9"`);
  if (r() < 0.1) parts.push(`"meta":{"x":[1,2,{"y":null}]}`);
  if (r() < 0.1) parts.push(`"n":${numberText(r)}`);
  if (r() < 0.03) parts.push(`"scores":{"b":0.25}`); // a repeated top-level key
  for (let i = parts.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [parts[i], parts[j]] = [parts[j]!, parts[i]!];
  }
  return `${sp()}{${sp()}${parts.join(`${sp()},${sp()}`)}${sp()}}${r() < 0.1 ? "\r" : ""}`;
}

async function collect(lines: string[], ids: string[], batch = 7): Promise<Step[]> {
  const batches: string[][] = [];
  for (let i = 0; i < lines.length; i += batch) batches.push(lines.slice(i, i + batch));
  const out: Step[] = [];
  for await (const s of readSteps(batches, ids)) out.push(s);
  return out;
}

describe("JSONL reader", () => {
  it("equals a JSON.parse reading on 4,000 lines of every shape", async () => {
    const r = prng(2024);
    const stepForms = ["", "0", "1", '"s"', '"s\\t"', "2.50", "[1]", "-0"];
    const lines: string[] = [];
    let step = stepForms[0]!;
    for (let i = 0; i < 4000; i++) {
      if (r() < 0.05) step = stepForms[Math.floor(r() * stepForms.length)]!;
      lines.push(r() < 0.02 ? "   " : randomLine(r, step));
    }
    const got = await collect(lines, IDS);
    const exp = reference(lines, IDS);
    expect(got.length).toBe(exp.length);
    got.forEach((s, i) => {
      const e = exp[i]!;
      expect(s.step, `step ${i}`).toEqual(e.step);
      expect(s.groups, `step ${i}`).toEqual(e.groups);
      expect(s.groupSizes).toEqual(e.sizes);
      expect(Array.from(s.valid)).toEqual(e.valid);
      expect(Array.from(s.lines)).toEqual(e.lines);
      // bit for bit (NaN == NaN, -0 != 0)
      expect(Array.from(s.scores).map((x) => Object.is(x, -0) ? "-0" : x)).toEqual(e.scores.map((x) => Object.is(x, -0) ? "-0" : x));
    });
  });

  it("with reuse (as openLog reads), each step, read before the next one, equals the JSON.parse reading", async () => {
    const r = prng(5);
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) lines.push(randomLine(r, String(Math.floor(i / (1 + (i % 7) * 40)))));
    const exp = reference(lines, IDS);
    const got: { groups: unknown[]; sizes: number[]; scores: number[]; valid: number[]; lines: number[]; order: number[] }[] = [];
    const buffers = new Set<ArrayBufferLike>();
    for await (const s of readSteps(lineBytes([Buffer.from(lines.join("\n"))]), IDS, true)) {
      buffers.add(s.scores.buffer);
      got.push({ groups: s.groups, sizes: s.groupSizes, scores: Array.from(s.scores), valid: Array.from(s.valid), lines: Array.from(s.lines), order: Array.from(s.order) });
    }
    expect(got.length).toBe(exp.length);
    expect(buffers.size).toBeLessThan(got.length); // buffers were reused
    got.forEach((s, i) => {
      expect(s.groups).toEqual(exp[i]!.groups);
      expect(s.sizes).toEqual(exp[i]!.sizes);
      expect(s.lines).toEqual(exp[i]!.lines);
      expect(s.valid).toEqual(exp[i]!.valid);
      expect(s.scores.map((x) => Object.is(x, -0) ? "-0" : x)).toEqual(exp[i]!.scores.map((x) => Object.is(x, -0) ? "-0" : x));
      expect(s.order.length).toBe(s.valid.length);
    });
  });

  it("equals the JSON.parse reading when the bytes arrive in chunks cut anywhere (with a BOM and CRLF)", async () => {
    const r = prng(77);
    const lines: string[] = [];
    for (let i = 0; i < 1500; i++) lines.push(randomLine(r, String(Math.floor(i / 100))));
    const bytes = Buffer.from(`\ufeff${lines.join("\n")}\n`);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; ) {
      const n = 1 + Math.floor(r() * 300);
      chunks.push(bytes.subarray(at, at + n));
      at += n;
    }
    const got: Step[] = [];
    for await (const s of readSteps(lineChunks(Readable.from(chunks)), IDS)) got.push(s);
    const exp = reference(lines, IDS);
    expect(got.length).toBe(exp.length);
    got.forEach((s, i) => {
      expect(s.groups).toEqual(exp[i]!.groups);
      expect(s.groupSizes).toEqual(exp[i]!.sizes);
      expect(Array.from(s.lines)).toEqual(exp[i]!.lines);
      expect(Array.from(s.valid)).toEqual(exp[i]!.valid);
      expect(Array.from(s.scores).map((x) => Object.is(x, -0) ? "-0" : x)).toEqual(exp[i]!.scores.map((x) => Object.is(x, -0) ? "-0" : x));
    });
  });

  it("the usual line shape is read in place; escapes, nested values and repeated keys go to JSON.parse", () => {
    const row: Row = { stepKey: "", step: undefined, groupKey: "", group: undefined, valid: true };
    const scores = new Float64Array(2);
    const fast = new FastLine(["a", "b"], new Map([["a", 0], ["b", 1]]), scores, row);
    const take = (line: string) => {
      const b = Buffer.from(line); // FastLine reads the line's UTF-8 bytes
      return fast.parse(b, 0) === b.length; // the index past the line, or -1
    };
    expect(take('{"step":3,"group":"p1","scores":{"a":0.25,"b":null},"valid":false}')).toBe(true);
    expect([row.step, row.stepKey, row.group, row.groupKey, row.valid, scores[0], scores[1]]).toEqual([3, "=3", "p1", '"p1', false, 0.25, NaN]);
    expect(take('{ "group" : 7 , "scores" : { "b" : -1e-3 , "a" : 1 } , "source" : "x" , "n" : null }\r')).toBe(true);
    expect([row.step, row.stepKey, row.group, row.groupKey, row.valid, scores[0], scores[1]]).toEqual([undefined, "", 7, "7", true, 1, -1e-3]);
    for (const line of [
      '{"group":"p\\u0031","scores":{"a":1}}', // an escape
      '{"group":"p1","scores":{"a":1},"meta":{"x":1}}', // a nested value
      '{"group":"p1","scores":{"a":1},"scores":{"a":2}}', // a repeated key
      '{"group":"p1","scores":{"zz":1}}', // an unknown criterion
      '{"group":"p1","scores":{"a":1e39}}', // outside float32
      '{"group":"p1","scores":{"a":01}}', // not JSON
      '{"group":"p1","scores":{"a":1}} x',
      '{"scores":{"a":1}}', // no group
      '{"group":null,"scores":{"a":1}}',
      '{"step":"s","group":"p1","scores":{"a":1}}',
    ]) expect(take(line), line).toBe(false);
    // a long number (a score: read as the float32 its double rounds to) from the bytes of a plain Uint8Array too
    const u = new TextEncoder().encode('{"group":"p1","scores":{"a":0.30000001192092896,"b":-1.0000000000000002e-3}}');
    expect(fast.parse(u, 0)).toBe(u.length);
    expect([scores[0], scores[1]]).toEqual([Math.fround(0.30000001192092896), Math.fround(-1.0000000000000002e-3)]);
    // after a line of the usual shape, a line like it with other values is read by that shape
    expect(take('{"step":4,"group":"p1","scores":{"a":0.25,"b":null},"valid":false}')).toBe(true);
    expect(take('{"step":5,"group":"p22","scores":{"a":null,"b":-2.5e-1},"valid":true}')).toBe(true);
    expect([row.step, row.stepKey, row.group, row.groupKey, row.valid, scores[0], scores[1]]).toEqual([5, "=5", "p22", '"p22', true, NaN, -0.25]);
    for (const line of [
      '{"step":5,"group":"p\\u0032","scores":{"a":1,"b":1},"valid":true}',
      '{"step":5,"group":"p2","scores":{"a":1x,"b":1},"valid":true}',
      '{"step":5,"group":"p2","scores":{"a":1,"b":1},"valid":1}',
      '{"step":5,"group":"p2","scores":{"a":1,"b":1e39},"valid":true}',
      '{"step":5,"group":"p2","scores":{"a":1,"b":1},"valid":true}}',
      '{"step":"5","group":"p2","scores":{"a":1,"b":1},"valid":true}',
    ]) expect(take(line), line).toBe(false);
  });

  it("lines written alike (read by the last line's shape) with values of every kind equal the JSON.parse reading", async () => {
    const r = prng(31);
    const groups = ['"g1"', '"g2"', '"é"', '"g\\u0031"', '"g\\"q"', "3", "-0", "1.0", "null", '{"id":1}', '""'];
    const values = () => (r() < 0.1 ? "null" : r() < 0.5 ? numberText(r) : ["0.5x", "nul", "1e", "-", "1.", "01", '"1"', "true", "1e400", "3.5e38"][Math.floor(r() * 10)]!);
    const lines: string[] = [];
    for (let i = 0; i < 3000; i++) {
      const g = r() < 0.7 ? groups[Math.floor(r() * 2)] : groups[Math.floor(r() * groups.length)];
      const v = r() < 0.1 ? (r() < 0.5 ? "false" : "yes") : "true";
      const step = r() < 0.05 ? '"s"' : String(Math.floor(i / 300));
      const x = () => (r() < 0.97 ? numberText(r) : values());
      lines.push(`{"step":${step}, "group":${g},"scores":{"a":${x()},"b":${x()},"c d":${x()},"é":${r() < 0.1 ? "null" : x()}},"valid":${v},"n":${r() < 0.1 ? '"x"' : "1"}}`);
    }
    // lines with a bad value make readSteps fail: compare the good ones in runs of 100 lines
    for (let at = 0; at < lines.length; at += 100) {
      const run = lines.slice(at, at + 100).filter((l) => {
        try {
          const o = JSON.parse(l);
          return typeof o.valid === "boolean" && Object.values(o.scores).every((x) => x === null || (typeof x === "number" && Math.abs(x) <= 3.4e38));
        } catch {
          return false;
        }
      });
      const got = await collect(run, IDS, 100);
      const exp = reference(run, IDS);
      expect(got.map((s) => [s.step, s.groups, s.groupSizes, Array.from(s.valid), Array.from(s.scores).map((x) => Object.is(x, -0) ? "-0" : x)])).toEqual(
        exp.map((s) => [s.step, s.groups, s.sizes, s.valid, s.scores.map((x) => Object.is(x, -0) ? "-0" : x)]),
      );
    }
  });

  it("errors are JSON.parse's, on the right line", async () => {
    const err = async (lines: string[], ids = ["a"]) => {
      try {
        await collect(lines, ids);
      } catch (e) {
        return (e as Error).message;
      }
      return "no error";
    };
    const ok = '{"group":1,"scores":{"a":0.5}}';
    expect(await err([ok, '{"group":1,"scores":{"a":0.5}'])).toMatch(/^line 2: malformed JSON/);
    expect(await err([ok, ok, '{"group":1,"scores":{"zz":0.5}}'])).toBe("line 3: unknown criterion 'zz'");
    expect(await err(['{"group":1,"scores":{"a":"high"}}'])).toBe(`line 1: score 'a' is "high", expected a number or null`);
    expect(await err(['{"group":1,"scores":{"a":1e400}}'])).toBe("line 1: score 'a' is not finite");
    expect(await err([ok, '{"group":1,"scores":{"a":1e39}}'])).toMatch(/^line 2: score 'a' is 1e\+39: outside the float32 range/);
    expect(await err(['{"scores":{"a":1}}'])).toBe("line 1: missing 'group'");
    expect(await err(['{"group":1,"scores":{"a":1},"valid":"yes"}'])).toBe("line 1: 'valid' must be true or false");
    expect(await err(['{"group":1,"scores":{"a":01}}'])).toMatch(/^line 1: malformed JSON/);
    expect(await err(['{"group":1,"scores":{"a":1.}}'])).toMatch(/^line 1: malformed JSON/);
    expect(await err(['{"group":1,"scores":{"a":1}} x'])).toMatch(/^line 1: malformed JSON/);
    expect(await err(["[1]"])).toBe("line 1: expected a JSON object");
  });

  it("a step whose groups are contiguous is not copied; an interleaved one is copied once", async () => {
    const line = (g: number, x: number) => `{"step":0,"group":${g},"scores":{"a":${x}}}`;
    const [contiguous] = await collect([line(1, 0.1), line(1, 0.2), line(2, 0.3)], ["a"]);
    // the rows stay where the reader wrote them: a view on the reader's buffer, in input order
    expect(contiguous!.scores.byteOffset).toBe(0);
    expect(contiguous!.scores.buffer.byteLength).toBeGreaterThan(contiguous!.scores.byteLength);
    expect(Array.from(contiguous!.order)).toEqual([0, 1, 2]);
    const [interleaved] = await collect([line(1, 0.1), line(2, 0.3), line(1, 0.2)], ["a"]);
    expect(interleaved!.scores.buffer.byteLength).toBe(interleaved!.scores.byteLength);
    expect(Array.from(interleaved!.scores, (x) => +x.toFixed(2))).toEqual([0.1, 0.2, 0.3]);
    expect(Array.from(interleaved!.order)).toEqual([0, 2, 1]);
  });
});

describe("openLog: every format gives the same steps, read as the CLI reads them", () => {
  it("a multi-step log as JSONL, CSV, Parquet and Arrow: the same scores, groups and lines in every step, each step used before the next is read", async () => {
    const { openLog } = await import("../../dist/log/open.js");
    const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const dir = mkdtempSync(join(tmpdir(), "focal-log-"));
    try {
      const r = prng(17), K = 5, ids = Array.from({ length: K }, (_, k) => `c${k}`);
      const jsonl: string[] = [], csv = [`step,group,${ids.join(",")}`];
      // Small steps, many to a read chunk: a reader that builds several steps ahead must not share their buffers.
      for (let s = 0; s < 200; s++) {
        for (let g = 0; g < 1 + (s % 4); g++) {
          for (let i = 0; i < 1 + ((s + g) % 3); i++) {
            const v = ids.map(() => Math.round(r() * 1000) / 1000);
            jsonl.push(JSON.stringify({ step: s, group: `g${g}`, scores: Object.fromEntries(ids.map((id, k) => [id, v[k]])) }));
            csv.push(`${s},g${g},${v.join(",")}`);
          }
        }
      }
      writeFileSync(join(dir, "log.jsonl"), jsonl.join("\n") + "\n");
      writeFileSync(join(dir, "log.csv"), csv.join("\n") + "\n");
      // The same rows as Parquet (row groups of 50) and Arrow IPC (record batches of 70).
      const rowsOf = csv.slice(1).map((l) => l.split(","));
      const step = rowsOf.map((x) => Number(x[0])), group = rowsOf.map((x) => x[1]!);
      const cols = ids.map((_, k) => rowsOf.map((x) => Number(x[2 + k])));
      const { parquetWriteFile } = await import("hyparquet-writer");
      parquetWriteFile({ filename: join(dir, "log.parquet"), rowGroupSize: 50, columnData: [{ name: "step", data: step, type: "DOUBLE" }, { name: "group", data: group, type: "STRING" }, ...ids.map((id, k) => ({ name: id, data: cols[k]!, type: "DOUBLE" as const }))] });
      const { tableFromArrays, tableToIPC, Table } = await import("apache-arrow");
      const t = tableFromArrays({ step: Float64Array.from(step), group, ...Object.fromEntries(ids.map((id, k) => [id, Float64Array.from(cols[k]!)])) } as Record<string, Float64Array | string[]>);
      const batches = [];
      for (let at = 0; at < t.numRows; at += 70) batches.push(...t.slice(at, Math.min(at + 70, t.numRows)).batches);
      writeFileSync(join(dir, "log.arrow"), tableToIPC(new Table(batches), "file"));
      const read = async (file: string, o?: OpenLogOptions) => {
        const out: { groups: unknown[]; sizes: number[]; scores: number[]; lines: number[] }[] = [];
        for await (const s of (await openLog(join(dir, file), o)).steps) {
          out.push({ groups: [...s.groups], sizes: [...s.groupSizes], scores: Array.from(s.scores), lines: Array.from(s.lines) });
        }
        return out;
      };
      const [a, b] = [await read("log.jsonl"), await read("log.csv")];
      expect(a).toHaveLength(200);
      expect(await read("log.jsonl", { thread: true })).toEqual(a); // a worker thread reads it, as files of 8 MiB or more
      expect(b.map((s) => s.scores)).toEqual(a.map((s) => s.scores));
      expect(b.map((s) => s.groups)).toEqual(a.map((s) => s.groups));
      expect(b.map((s) => s.sizes)).toEqual(a.map((s) => s.sizes));
      expect(b.map((s) => s.lines.map((l) => l - 1))).toEqual(a.map((s) => s.lines)); // CSV counts its header line
      for (const file of ["log.parquet", "log.arrow"]) {
        const c = await read(file);
        expect(c.map((s) => s.scores), file).toEqual(a.map((s) => s.scores));
        expect(c.map((s) => s.groups), file).toEqual(a.map((s) => s.groups));
        expect(c.map((s) => s.sizes), file).toEqual(a.map((s) => s.sizes));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("threadSteps: a JSONL file read in a worker thread", () => {
  it("gives the steps and errors of the reader in one thread, in order, and stops its worker when the caller does", async () => {
    const dir = mkdtempSync(join(tmpdir(), "focal-thread-"));
    try {
      const r = prng(31);
      const lines: string[] = [];
      for (let i = 0; i < 3000; i++) lines.push(randomLine(r, String(Math.floor(i / 100))));
      const good = join(dir, "good.jsonl"), bad = join(dir, "bad.jsonl");
      writeFileSync(good, lines.join("\n") + "\n");
      writeFileSync(bad, [...lines.slice(0, 2500), '{"group":1,"scores":{"a":"x"}}', ...lines.slice(2500)].join("\n"));
      const summary = (s: Step) => ({ step: s.step, groups: s.groups, sizes: s.groupSizes, scores: Array.from(s.scores), valid: Array.from(s.valid), lines: [...s.lines], order: Array.from(s.order), criteria: s.criteria });
      const read = async (steps: AsyncIterable<Step>) => {
        const out: ReturnType<typeof summary>[] = [];
        try {
          for await (const s of steps) out.push(summary(s));
        } catch (e) {
          return { out, error: `${(e as Error).constructor.name}: ${(e as Error).message}` };
        }
        return { out, error: undefined };
      };
      for (const file of [good, bad]) {
        const one = await read(readSteps(lineBytes([readFileSync(file)]), IDS, true));
        const counter = { bytes: 0 };
        const two = await read(threadSteps(file, IDS, counter));
        expect(two).toEqual(one);
        expect(one.out.length).toBeGreaterThan(20);
        if (file === good) expect(counter.bytes).toBe(statSync(file).size);
      }
      expect((await read(readSteps(lineBytes([readFileSync(bad)]), IDS, true))).error).toBe(`InputError: line 2501: score 'a' is "x", expected a number or null`);
      // A caller that stops early: the worker is stopped (else the test run would not end).
      for await (const _ of threadSteps(good, IDS, { bytes: 0 })) break;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
