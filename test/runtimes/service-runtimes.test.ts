/**
 * The same fetch handler (dist/service) in other runtimes: Cloudflare's workerd (the engine's
 * `workerd` entry, wasm imported as modules), Deno (Deno.serve), Vercel's edge-runtime (the edge
 * entry, wasm code generation off) and Bun (Bun.serve). Each gets the same sequence of
 * requests as the handler in Node; the answers must be the same text, byte for byte (the engine is
 * bit-exact across runtimes), including stream state carried across calls, idempotent replays,
 * problem+json rejections, 404/405 and the snapshot.
 * Servers listen on 127.0.0.1 only; needs `npm run build` first.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { createHandler } from "../../dist/service/index.js";
import { capnpModules, copyModules } from "../../scripts/module-graph.js";
import { freePort, killSpawned, spawnUntil, waitHttp } from "../support/processes.js";
import { type Answer, OPTIONS, STEPS, play, viaUrl } from "../support/service-conformance.js";

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const dist = join(root, "dist");

const dirs: string[] = [];
afterAll(() => {
  killSpawned();
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

let expected: Answer[];
beforeAll(async () => {
  const handler = createHandler({ ...OPTIONS, createEngine } as Parameters<typeof createHandler>[0]);
  expected = await play(handler);
  expect(expected.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 400, 400, 405, 404, 200]);
  expect(expected[3]!.replayed).toBe("true");
});

describe("the fetch handler in other runtimes gives the same answers as in Node", () => {
  it("workerd (Cloudflare Workers runtime)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "focal-service-workerd-"));
    dirs.push(dir);
    const worker = `
import { createEngine } from "./dist/entries/workerd.js";
import { createHandler } from "./dist/service/index.js";
const handler = createHandler({ ...${JSON.stringify(OPTIONS)}, createEngine });
export default { fetch: (request) => handler(request) };
`;
    writeFileSync(join(dir, "worker.js"), worker);
    const entries = ["entries/workerd.js", "service/index.js"].map((e) => join(dist, e));
    const modules = [{ name: "worker.js", kind: "esm" }, ...copyModules(dist, entries, dir, "dist/")];
    const port = await freePort();
    writeFileSync(
      join(dir, "config.capnp"),
      `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [ (name = "main", worker = .service) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);
const service :Workerd.Worker = (
  modules = [
${capnpModules(modules)}
  ],
  compatibilityDate = "2025-09-01",
);
`,
    );
    const { child, out } = await spawnUntil(join(root, "node_modules/.bin/workerd"), ["serve", join(dir, "config.capnp")], undefined, "workerd");
    const base = `http://127.0.0.1:${port}`;
    await waitHttp(`${base}/healthz`).catch((e) => {
      throw new Error(`workerd did not answer: ${e}\n${out()}`);
    });
    // /healthz above was the first request of the isolate's life; play from a fresh count
    const got = await play(viaUrl(base));
    expect(got.slice(1)).toEqual(expected.slice(1));
    expect(JSON.parse(got[0]!.body)).toMatchObject({ status: "ok", scope: "stream" });
    child.kill("SIGTERM");
  }, 30_000);

  it("Deno (Deno.serve)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "focal-service-deno-"));
    dirs.push(dir);
    const script = `
import { createEngine } from ${JSON.stringify(pathToFileURL(join(dist, "index.js")).href)};
import { createHandler } from ${JSON.stringify(pathToFileURL(join(dist, "service/index.js")).href)};
const handler = createHandler({ ...${JSON.stringify(OPTIONS)}, createEngine });
await handler.ready;
Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: ({ port }) => console.log("listening " + port) }, handler);
`;
    writeFileSync(join(dir, "serve.js"), script);
    const { out } = await spawnUntil(
      join(root, "node_modules/.bin/deno"),
      ["run", "--quiet", "--no-prompt", "--allow-net=127.0.0.1", `--allow-read=${dist}`, join(dir, "serve.js")],
      (o) => /listening \d+/.test(o),
      "deno",
    );
    const port = /listening (\d+)/.exec(out())![1];
    const got = await play(viaUrl(`http://127.0.0.1:${port}`));
    expect(got).toEqual(expected);
  }, 30_000);

  it("Vercel Edge (edge-runtime, wasm code generation off, the engine's edge entry)", async () => {
    // The ESM graph of dist/entries/edge.js and dist/service/index.js is linked as vm modules
    // inside an EdgeRuntime context by the edge driver's helper (drivers/edge-modules.js):
    // `*.wasm?module` imports resolve to compiled modules, as Vercel's bundler gives them.
    const driver = `
import { EdgeRuntime } from "edge-runtime";
import { edgeModules } from ${JSON.stringify(pathToFileURL(join(root, "test/runtimes/drivers/edge-modules.js")).href)};
const runtime = new EdgeRuntime({ codeGeneration: { strings: false, wasm: false } });
const context = runtime.context;
const { instantiate } = edgeModules(runtime);
const dist = ${JSON.stringify(dist)};
const edge = await instantiate(dist + "/entries/edge.js");
const service = await instantiate(dist + "/service/index.js");
const toContext = runtime.evaluate("JSON.parse");
const handler = service.namespace.createHandler({ ...toContext(${JSON.stringify(JSON.stringify(OPTIONS))}), createEngine: edge.namespace.createEngine });
const out = [];
for (const s of toContext(${JSON.stringify(JSON.stringify(STEPS))})) {
  const init = { method: s.method, headers: { "content-type": "application/json", ...s.headers } };
  if (s.body !== undefined) init.body = typeof s.body === "string" ? s.body : JSON.stringify(s.body);
  const res = await handler(new context.Request("http://127.0.0.1" + s.path, init));
  out.push({ status: res.status, replayed: res.headers.get("idempotent-replayed"), type: res.headers.get("content-type"), body: await res.text() });
}
process.stdout.write("ANSWERS " + JSON.stringify(out) + "\\n");
`;
    const { out } = await spawnUntil(
      process.execPath,
      ["--experimental-vm-modules", "--no-warnings", "--input-type=module", "-e", driver],
      (o) => /ANSWERS .*\n/.test(o),
      "edge-runtime",
    );
    const got = JSON.parse(/ANSWERS (.*)\n/.exec(out())![1]!) as Answer[];
    expect(got).toEqual(expected);
  }, 30_000);

  it("Bun (Bun.serve)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "focal-service-bun-"));
    dirs.push(dir);
    const script = `
import { createEngine } from ${JSON.stringify(pathToFileURL(join(dist, "index.js")).href)};
import { createHandler } from ${JSON.stringify(pathToFileURL(join(dist, "service/index.js")).href)};
const handler = createHandler({ ...${JSON.stringify(OPTIONS)}, createEngine });
await handler.ready;
const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: handler });
console.log("listening " + server.port);
`;
    writeFileSync(join(dir, "serve.mjs"), script);
    const { out } = await spawnUntil(join(root, "node_modules/.bin/bun"), [join(dir, "serve.mjs")], (o) => /listening \d+/.test(o), "bun");
    const port = /listening (\d+)/.exec(out())![1];
    const got = await play(viaUrl(`http://127.0.0.1:${port}`));
    expect(got).toEqual(expected);
  }, 30_000);
});
