/**
 * Conformance driver for headless Chromium (Debian's `chromium`, driven by playwright-core):
 *  1. the harness page with the browser entry (wasm served as application/wasm: compileStreaming);
 *  2. the same with the wasm served as application/octet-stream (the loader's buffered fallback);
 *  3. examples/browser/: enters a rubric and a score through the UI, saves screenshots to
 *     test/artifacts/ and reports what the chart drew.
 * Prints the harness lines, then one line {"example": {...}}.
 * CHROMIUM_PATH overrides the browser binary (default: Debian's /usr/bin/chromium).
 */
import process from "node:process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { chromium } from "playwright-core";
import { driverArgs, root } from "./args.js";
import { CONDITIONS, resolveExport } from "./exports.js";
import { startStaticServer } from "../static-server.js";

const args = driverArgs();
// The file a browser bundler or import map would load: package.json "exports", browser conditions.
const entry = args.distGiven ? join(args.dist, "entries/browser.js") : resolveExport(root, CONDITIONS.chromium);
const entryRel = relative(args.distGiven ? args.dist : join(root, "dist"), entry).split("\\").join("/");
if (entryRel.startsWith("..")) throw new Error(`browser entry ${entry} is outside dist/`);
const executablePath = process.env.CHROMIUM_PATH || "/usr/bin/chromium";

const EXAMPLE_RUBRIC = {
  criteria: [
    { id: "correct", weight: 4 },
    { id: "cites_sources", weight: 2 },
    { id: "clarity", weight: 1, scale: [1, 10] },
    { id: "concise", weight: 1 },
    { id: "toxic", polarity: "penalty", weight: 3 },
  ],
};

// One group of six rollouts; rows in rubric order, null = not judged.
const EXAMPLE_SCORES = [
  [1, 0, 6, 1, 0],
  [1, 1, 8, 0, 0],
  [0, 0, 9, 1, 0],
  [1, 0, 4, 1, 1],
  [1, null, 7, 1, 0],
  [0, 1, 5, 0, 0],
];

const server = await startStaticServer({
  mounts: [
    { prefix: "/", dir: root },
    { prefix: "/dist/", dir: args.dist },
    { prefix: "/dist-octet/", dir: args.dist, wasmType: "application/octet-stream" },
    { prefix: "/vectors/", dir: dirname(args.vectors) },
  ],
});
const profile = mkdtempSync(join(tmpdir(), "focal-chromium-"));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
    viewport: { width: 1200, height: 900 },
  });
  const version = context.browser()?.version() ?? "";
  const pageErrors = [];
  const open = async (path) => {
    const page = await context.newPage();
    page.on("pageerror", (e) => pageErrors.push(`${path}: ${e.message}`));
    page.on("console", (m) => m.type() === "error" && pageErrors.push(`${path}: console: ${m.text()}`));
    await page.goto(`${server.origin}${path}`);
    return page;
  };

  const vectorsUrl = `/vectors/${basename(args.vectors)}`;
  for (const [runtime, dist] of [
    ["chromium", "/dist/"],
    ["chromium-wasm-octet-stream", "/dist-octet/"],
  ]) {
    const page = await open(
      `/test/runtimes/browser/conformance.html?entry=${dist}${entryRel}&vectors=${vectorsUrl}&runtime=${runtime}`,
    );
    await page.waitForFunction(() => window.__conformance !== undefined, null, { timeout: 60_000 });
    const result = await page.evaluate(() => window.__conformance);
    if (result.error) throw new Error(`${runtime}: ${result.error}\n${pageErrors.join("\n")}`);
    const wasmTypes = [...new Set(server.requests.filter((r) => r.path.startsWith(dist) && r.path.endsWith(".wasm")).map((r) => r.type))];
    for (const line of result.lines) process.stdout.write(`${JSON.stringify({ ...line, entry, version, wasmTypes })}\n`);
    await page.close();
  }

  // The example page, driven through its UI.
  const page = await open("/examples/browser/index.html");
  await page.waitForSelector("body[data-state=ready]", { timeout: 30_000 });
  const rendersBefore = Number(await page.getAttribute("body", "data-renders"));
  await page.fill("#rubric", JSON.stringify(EXAMPLE_RUBRIC, null, 2));
  await page.waitForSelector('#criteria-table th[scope=row]:text-is("cites_sources")', { timeout: 30_000 });
  await page.click("details summary");
  await page.fill("#scores-json", JSON.stringify(EXAMPLE_SCORES));
  await page.waitForFunction(
    () => document.querySelector('#scores input[aria-label="rollout 4, toxic"]')?.value === "1",
    null,
    { timeout: 30_000 },
  );
  await page.fill('input[aria-label="rollout 1, clarity"]', "7");
  await page.fill('input[aria-label="rollout 2, cites_sources"]', "0.25");
  await page.waitForFunction((n) => Number(document.body.dataset.renders) >= n + 4, rendersBefore, { timeout: 30_000 });
  await page.click("details summary"); // fold the JSON away for the screenshot

  const artifacts = args.artifacts;
  mkdirSync(artifacts, { recursive: true });
  const pagePng = await page.screenshot({ fullPage: true });
  const chartPng = await page.locator("#chart").screenshot();
  writeFileSync(join(artifacts, "browser-example.png"), pagePng);
  writeFileSync(join(artifacts, "browser-example-chart.png"), chartPng);

  const dom = await page.evaluate(() => {
    const svg = document.getElementById("chart");
    const bars = [...svg.querySelectorAll("rect.bar")];
    const cells = (id) => [...document.querySelectorAll(`#${id} tbody tr`)].map((tr) => [...tr.children].map((c) => c.textContent));
    return {
      state: document.body.dataset.state,
      status: document.getElementById("status").textContent,
      rubricError: document.getElementById("rubric-error").textContent,
      scoresError: document.getElementById("scores-error").textContent,
      scoresJson: document.getElementById("scores-json").value,
      svgLength: svg.outerHTML.length,
      bars: bars.length,
      visibleBars: bars.filter((b) => Number(b.getAttribute("height")) > 0.5).length,
      series: [...new Set(bars.map((b) => b.dataset.series))],
      criteria: cells("criteria-table"),
      rollouts: cells("rollouts-table"),
    };
  });
  // A score outside its scale: warned about in the page, then refused with "refuse".
  await page.fill('input[aria-label="rollout 3, clarity"]', "12");
  await page.waitForFunction(() => document.getElementById("scale-warning").textContent.includes("clarity"), null, { timeout: 30_000 });
  const scaleWarning = await page.textContent("#scale-warning");
  await page.selectOption("#out-of-scale", "error");
  await page.waitForFunction(() => document.getElementById("scores-error").textContent !== "", null, { timeout: 30_000 });
  const scaleError = await page.textContent("#scores-error");
  // Decode the chart screenshot in the page and measure it: not blank, the series colors present.
  const pixels = await page.evaluate(async (b64) => {
    const img = new Image();
    img.src = `data:image/png;base64,${b64}`;
    await img.decode();
    const canvas = document.createElement("canvas");
    canvas.width = img.width;
    canvas.height = img.height;
    const ctx = canvas.getContext("2d");
    ctx.drawImage(img, 0, 0);
    const { data } = ctx.getImageData(0, 0, img.width, img.height);
    const counts = new Map();
    for (let i = 0; i < data.length; i += 4) {
      const key = (data[i] << 16) | (data[i + 1] << 8) | data[i + 2];
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    const total = data.length / 4;
    const background = Math.max(...counts.values());
    const hex = (k) => `#${k.toString(16).padStart(6, "0")}`;
    const palette = ["#0072b2", "#e69f00", "#56b4e9", "#d55e00"];
    const present = palette.filter((c) => (counts.get(parseInt(c.slice(1), 16)) ?? 0) > 20);
    return {
      width: img.width,
      height: img.height,
      distinctColors: counts.size,
      nonBackgroundShare: (total - background) / total,
      palettePresent: present,
      top: [...counts.entries()].sort((a, b) => b[1] - a[1]).slice(0, 3).map(([k, n]) => `${hex(k)}:${n}`),
    };
  }, chartPng.toString("base64"));
  await page.close();

  const example = {
    ...dom,
    scaleWarning,
    scaleError,
    pixels,
    screenshotBytes: pagePng.length,
    chartScreenshotBytes: chartPng.length,
    artifacts: ["browser-example.png", "browser-example-chart.png"],
    pageErrors,
  };
  process.stdout.write(`${JSON.stringify({ runtime: "chromium", version, example })}\n`);
} finally {
  await context?.close();
  await server.close();
  rmSync(profile, { recursive: true, force: true });
}
