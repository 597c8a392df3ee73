/**
 * Parquet and Arrow IPC logs (issue 13, item 5): the vendored WritingBench scores written as Parquet
 * (hyparquet-writer) and Arrow IPC (apache-arrow), in several row groups / record batches, give
 * score, compare and replay exactly the output of the JSONL; nulls are "not judged"; errors name the
 * row; and the readers are optional dependencies, imported only when such a file is read.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Dictionary, Float64, Int32, RecordBatch, Table, Utf8, tableFromArrays, tableToIPC, vectorFromArray } from "apache-arrow";
import { parquetWriteFile } from "hyparquet-writer";
import { afterAll, describe, expect, it } from "vitest";
import { CLI, ROOT } from "../support/paths.js";
import { WB_RUBRIC, WB_SCORES, loadWritingbench } from "../support/writingbench.js";

const dir = mkdtempSync(join(tmpdir(), "focal-cli-columnar-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], input = "") {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8", cwd: dir, timeout: 60000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const { lines, rubric } = loadWritingbench();
const ids = rubric.criteria.map((c) => c.id);
const group = lines.map((l) => l.group);
const cols = ids.map((id) => lines.map((l) => (l.scores[id] === undefined ? null : l.scores[id]!)));

const parquet = join(dir, "wb.parquet");
parquetWriteFile({
  filename: parquet,
  rowGroupSize: 10, // 34 rows: four row groups
  columnData: [{ name: "group", data: group, type: "STRING" }, ...ids.map((id, k) => ({ name: id, data: cols[k]!, type: "DOUBLE" as const }))],
});
const arrow = join(dir, "wb.arrow");
{
  const t = tableFromArrays({ group, ...Object.fromEntries(ids.map((id, k) => [id, cols[k]!])) } as Record<string, unknown[]>);
  // three record batches of the same table
  const batches = [0, 12, 24].map((s) => t.slice(s, Math.min(s + 12, t.numRows)).batches).flat() as RecordBatch[];
  writeFileSync(arrow, tableToIPC(new Table(batches), "file"));
}

describe("Parquet and Arrow IPC input", () => {
  it("score, compare and replay give the JSONL's output", () => {
    const base = cli(["score", "--rubric", WB_RUBRIC, "--input", WB_SCORES]);
    expect(base.code, base.stderr).toBe(0);
    for (const f of [parquet, arrow]) {
      const r = cli(["score", "--rubric", WB_RUBRIC, "--input", f]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout, f).toBe(base.stdout);
    }
    const cmp = cli(["compare", "--rubric", WB_RUBRIC, "--input", WB_SCORES, "--output-format", "json"]).stdout;
    expect(cli(["compare", "--rubric", WB_RUBRIC, "--input", parquet, "--output-format", "json"]).stdout).toBe(cmp);
    expect(cli(["compare", "--input", arrow, "--input-format", "arrow", "--output-format", "json", "--rubric", WB_RUBRIC]).stdout).toBe(cmp);
    const rep = cli(["replay", WB_SCORES, "--rubric", WB_RUBRIC, "--report", join(dir, "a.html")]).stdout;
    expect(cli(["replay", parquet, "--rubric", WB_RUBRIC, "--report", join(dir, "b.html")]).stdout).toBe(rep);
    // a dictionary-encoded group column (pandas' categorical), in several record batches
    const dictGroup = join(dir, "dict.arrow");
    {
      const t = new Table({ group: vectorFromArray(group, new Dictionary(new Utf8(), new Int32())), ...Object.fromEntries(ids.map((id, k) => [id, vectorFromArray(cols[k]!, new Float64())])) });
      writeFileSync(dictGroup, tableToIPC(new Table([0, 12, 24].map((s) => t.slice(s, Math.min(s + 12, t.numRows)).batches).flat() as RecordBatch[]), "file"));
    }
    expect(cli(["score", "--rubric", WB_RUBRIC, "--input", dictGroup]).stdout).toBe(base.stdout);
    // Arrow IPC as a stream on stdin
    const t = tableFromArrays({ group, ...Object.fromEntries(ids.map((id, k) => [id, cols[k]!])) } as Record<string, unknown[]>);
    const piped = spawnSync(process.execPath, [CLI, "score", "--rubric", WB_RUBRIC, "--input-format", "arrow"], { input: Buffer.from(tableToIPC(t, "stream")), encoding: "utf8" });
    expect(piped.stdout).toBe(base.stdout);
    // and an IPC file on stdin (copied to a temporary file first: its schema may be only in its footer)
    const pipedFile = spawnSync(process.execPath, [CLI, "score", "--rubric", WB_RUBRIC, "--input-format", "arrow"], { input: readFileSync(dictGroup), encoding: "utf8" });
    expect(pipedFile.stdout, pipedFile.stderr).toBe(base.stdout);
  });

  it("without a rubric the columns are the criteria; errors name the row", () => {
    const r = cli(["compare", "--input", parquet, "--output-format", "json"]);
    expect(r.code, r.stderr).toBe(0);
    expect(Object.keys((JSON.parse(r.stdout) as { diagnostics: object }).diagnostics)).toContain(`rewards/${ids[0]}/mean`);
    const bad = join(dir, "bad.parquet");
    parquetWriteFile({ filename: bad, columnData: [{ name: "group", data: ["g", "g", "g"], type: "STRING" }, { name: "a", data: [0.5, 1e39, 1], type: "DOUBLE" }] });
    expect(cli(["score", "--input", bad]).stderr).toContain("row 2: score 'a' is 1e+39: outside the float32 range");
    const nogroup = join(dir, "nogroup.arrow");
    writeFileSync(nogroup, tableToIPC(tableFromArrays({ prompt: ["g"], a: [0.5] }), "file"));
    expect(cli(["score", "--input", nogroup]).stderr).toContain("no 'group' column (columns: prompt, a)");
    expect(cli(["score", "--input-format", "parquet"], "x").stderr).toContain("a Parquet log must be a file");
  });

  it("hyparquet and apache-arrow are optional: imported only by the columnar reader, and only when such a file is read", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { peerDependenciesMeta: Record<string, { optional: boolean }>; dependencies?: object };
    expect(pkg.peerDependenciesMeta.hyparquet?.optional).toBe(true);
    expect(pkg.peerDependenciesMeta["apache-arrow"]?.optional).toBe(true);
    expect(pkg.dependencies).toBeUndefined();
    const src = join(ROOT, "src");
    const files = readdirSync(src, { recursive: true }).map(String).filter((f) => f.endsWith(".ts"));
    for (const f of files) {
      const text = readFileSync(join(src, f), "utf8");
      expect(text, f).not.toMatch(/^import[^;]*from "(hyparquet|apache-arrow)"/m);
      if (/import\("(hyparquet|apache-arrow)"\)|optional<\w+>\("(hyparquet|apache-arrow)"/.test(text)) expect(f).toBe(join("log", "columnar.ts"));
    }
    // and columnar.ts itself is imported dynamically, by the log opener only
    expect(readFileSync(join(src, "log", "open.ts"), "utf8")).toContain('await import("./columnar.js")');
  });
});
