/**
 * Conformance driver for Cloudflare's workerd: writes a worker (the workerd entry of dist/, the
 * wasm as wasm modules, the harness, the vectors as a JSON module) and a config.capnp into a temp
 * dir, serves it on 127.0.0.1:<free port> with the real workerd binary, fetches the report over
 * loopback and shuts workerd down. Prints the harness lines.
 */
import process from "node:process";
import { spawn } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { driverArgs, root } from "./args.js";
import { CONDITIONS, resolveExport } from "./exports.js";
import { capnpModules, copyModules } from "../../../scripts/module-graph.js";

const args = driverArgs();
const workerdBin = resolve(root, "node_modules/.bin/workerd");
const harness = fileURLToPath(new URL("../harness.js", import.meta.url));
// The file wrangler would bundle: package.json "exports" under the workerd conditions.
const entry = args.distGiven ? join(args.dist, "entries/workerd.js") : resolveExport(root, CONDITIONS.workerd);
const base = args.distGiven ? dirname(args.dist) : root;
const entryName = relative(base, entry).split("\\").join("/");
const wasmName = relative(base, join(dirname(entry), "../focal-simd.wasm")).split("\\").join("/");

const WORKER = `
import * as api from "./${entryName}";
import vectors from "./vectors.json";
import { runConformance, runSources } from "./harness.js";
import simdModule from "./${wasmName}";

async function bytesCompileBlocked() {
  try {
    await WebAssembly.compile(new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0]));
    return false;
  } catch {
    return true;
  }
}

export default {
  async fetch() {
    try {
      const blocked = await bytesCompileBlocked();
      const lines = await runConformance({ runtime: "workerd", api, vectors });
      const body = lines.map((l) => JSON.stringify({ ...l, entry: ${JSON.stringify(entry)}, compileFromBytesBlocked: blocked })).join("\\n");
      const sources = await runSources({ runtime: "workerd", api, vectors, sources: { "WebAssembly.Module": () => simdModule } });
      return new Response(body + "\\n" + JSON.stringify(sources) + "\\n", { headers: { "content-type": "application/x-ndjson" } });
    } catch (e) {
      return new Response(String(e && e.stack || e), { status: 500 });
    }
  },
};
`;

function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function writeBundle(dir, port) {
  writeFileSync(join(dir, "worker.js"), WORKER);
  cpSync(harness, join(dir, "harness.js"));
  cpSync(args.vectors, join(dir, "vectors.json"));
  const modules = [{ name: "worker.js", kind: "esm" }, { name: "harness.js", kind: "esm" }, { name: "vectors.json", kind: "json" }, ...copyModules(base, [entry], dir)];
  writeFileSync(
    join(dir, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "main", worker = .conformance) ],
  sockets = [ (name = "http", address = "127.0.0.1:${port}", http = (), service = "main") ],
);

const conformance :Workerd.Worker = (
  modules = [
${capnpModules(modules)}
  ],
  compatibilityDate = "2025-09-01",
);
`,
  );
  return modules;
}

async function serveOnce(dir, port) {
  const child = spawn(workerdBin, ["serve", join(dir, "config.capnp")], { stdio: ["ignore", "pipe", "pipe"] });
  let log = "";
  child.stdout.on("data", (d) => (log += d));
  child.stderr.on("data", (d) => (log += d));
  let exited = null;
  child.on("exit", (code, signal) => (exited = { code, signal }));
  child.on("error", (e) => (exited = { error: e.message }));
  try {
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (exited) return { exited, log };
      try {
        const res = await fetch(`http://127.0.0.1:${port}/`);
        const body = await res.text();
        if (!res.ok) throw new Error(`workerd: HTTP ${res.status}\n${body}\n${log}`);
        return { body };
      } catch (e) {
        if (e.message.startsWith("workerd: HTTP")) throw e;
        if (Date.now() > deadline) throw new Error(`workerd did not answer on port ${port}\n${log}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } finally {
    if (!exited) {
      child.kill("SIGTERM");
      await new Promise((r) => (exited ? r() : child.once("exit", r)));
    }
  }
}

const dir = mkdtempSync(join(tmpdir(), "focal-workerd-"));
try {
  let result;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    writeBundle(dir, port);
    result = await serveOnce(dir, port);
    if (result.body !== undefined) break;
    if (!/address already in use|EADDRINUSE/i.test(result.log)) break; // retry only a lost port race
  }
  if (result.body === undefined) throw new Error(`workerd exited ${JSON.stringify(result.exited)}\n${result.log}`);
  process.stdout.write(result.body);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
