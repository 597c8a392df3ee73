/**
 * The HTML reports opened in headless Chromium (playwright-core + Debian's chromium): no console
 * errors, no network request, every chart present and non-empty, and a full-page screenshot saved in
 * test/artifacts/ (git-ignored). Chromium must be installed at /usr/bin/chromium (apt-get install
 * chromium; or set CHROMIUM_PATH): the test fails, it does not skip, when it is not.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readSteps } from "../../dist/log/jsonl.js";
import { runDemo } from "../../dist/demo/run.js";
import { DEFAULT_SIM } from "../../dist/demo/sim.js";
import { demoReport } from "../../dist/report/demo-report.js";
import { parseMethods } from "../../dist/analysis/methods.js";
import { replay } from "../../dist/analysis/replay.js";
import { replayReport } from "../../dist/report/replay-report.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const ART = join(ROOT, "test", "artifacts");
const DATA = join(ROOT, "test", "fixtures", "writingbench");
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium"; // Debian's package
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"];

let browser: Browser;
beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
}, 30000);
afterAll(async () => {
  await browser?.close();
});

interface ChartInfo { id: string; width: number; height: number; marks: number; drawn: number; texts: number }

async function check(file: string, expected: readonly string[]): Promise<ChartInfo[]> {
  const page = await browser.newPage({ viewport: { width: 1340, height: 900 } });
  const errors: string[] = [];
  const requests: string[] = [];
  const url = pathToFileURL(file).href;
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") errors.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => errors.push(`pageerror: ${e.message}`));
  page.on("requestfailed", (r) => errors.push(`requestfailed: ${r.url()}`));
  page.on("request", (r) => {
    if (r.url() !== url) requests.push(r.url());
  });
  await page.goto(url, { waitUntil: "load" });
  const charts = await page.evaluate(() =>
    Array.from(document.querySelectorAll("svg.chart")).map((svg) => {
      const box = svg.getBoundingClientRect();
      const drawn = Array.from(svg.querySelectorAll("path.series, rect.bar, .mark")).filter((el) => {
        const b = (el as SVGGraphicsElement).getBBox();
        return b.width > 0 || b.height > 0;
      }).length;
      return {
        id: svg.getAttribute("data-chart") ?? "",
        width: box.width,
        height: box.height,
        marks: Number(svg.getAttribute("data-marks")),
        drawn,
        texts: svg.querySelectorAll("text").length,
      };
    }),
  );
  const png = join(ART, file.split("/").pop()!.replace(/\.html$/, ".png"));
  await page.screenshot({ path: png, fullPage: true });
  await page.close();
  expect(errors).toEqual([]);
  expect(requests).toEqual([]);
  expect(existsSync(png)).toBe(true);
  expect(charts.map((c) => c.id).sort()).toEqual([...expected].sort());
  for (const c of charts) {
    expect(c.width, c.id).toBeGreaterThan(100);
    expect(c.height, c.id).toBeGreaterThan(100);
    expect(c.marks, c.id).toBeGreaterThan(0);
    expect(c.drawn, c.id).toBeGreaterThan(0);
    expect(c.texts, `${c.id}: title, axis labels, ticks, legend`).toBeGreaterThan(6);
  }
  return charts;
}

async function* fileLines(path: string): AsyncGenerator<string> {
  yield* readFileSync(path, "utf8").split("\n");
}

describe("reports in headless Chromium", () => {
  mkdirSync(ART, { recursive: true });

  it("demo report", async () => {
    const res = await runDemo({ seeds: [1, 2], sim: { ...DEFAULT_SIM, steps: 60 } });
    const file = join(ART, "demo-report.html");
    writeFileSync(file, demoReport(res));
    await check(file, [
      "worst-over-steps",
      "mean-over-steps",
      "worst-vs-static",
      "mean-vs-static",
      "signal-reward",
      "signal-reward-std",
      "signal-zero-std",
      "signal-abs-advantage",
      "unsafe-over-steps",
      "unsafe-weight",
      "drop-worst",
      "drop-mean",
      "traj-weighted-mean",
      "traj-focal-group",
      "traj-focal-stream",
      "traj-gdpo",
      "weights-focal-group",
      "saturation-focal-group",
      "weights-focal-stream",
      "saturation-focal-stream",
      "gamma-criteria",
      "gamma-summary",
    ]);
  }, 20000);

  it("replay report on the real writingbench scores", async () => {
    const scores = join(DATA, "scores.jsonl");
    expect(existsSync(scores), `missing ${scores}`).toBe(true);
    const rubric = JSON.parse(readFileSync(join(DATA, "rubric.json"), "utf8"));
    const methods = parseMethods("focal,focal-stream,weighted-mean,gdpo");
    const r = await replay(readSteps(fileLines(scores), rubric.criteria.map((c: { id: string }) => c.id)), { rubric, methods, source: "writingbench/scores.jsonl" });
    const file = join(ART, "replay-report.html");
    writeFileSync(file, replayReport(r, ["focal", "focal-stream"]));
    await check(file, ["weights-by-criterion", "saturation-by-criterion", "step-summary-focal", "step-summary-focal-stream", "tau-histogram"]);
  }, 20000);

  it("replay report on a multi-step log (per-criterion lines)", async () => {
    const lines: string[] = [];
    for (let s = 0; s < 40; s++) {
      for (let g = 0; g < 3; g++) {
        for (let i = 0; i < 4; i++) {
          const x = ((s * 7 + g * 3 + i * 5) % 11) / 10;
          lines.push(JSON.stringify({ step: s, group: g, scores: { format: Math.min(1, 0.5 + s / 60 + x / 10), depth: x / 2, safety: 1 - x / 3 } }));
        }
      }
    }
    const rubric = { criteria: [{ id: "format" }, { id: "depth" }, { id: "safety", weight: 2 }] };
    const methods = parseMethods("focal,focal-stream,gdpo");
    const r = await replay(readSteps(lines, ["format", "depth", "safety"]), { rubric, methods, source: "synthetic" });
    const file = join(ART, "replay-steps-report.html");
    writeFileSync(file, replayReport(r, ["focal", "focal-stream"]));
    await check(file, [
      "weights-by-criterion",
      "saturation-by-criterion",
      "step-weights-focal",
      "step-saturation-focal",
      "step-weights-focal-stream",
      "step-saturation-focal-stream",
      "tau-histogram",
    ]);
  }, 20000);
});
