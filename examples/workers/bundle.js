#!/usr/bin/env node
/**
 * Builds the Durable Objects example for workerd (no wrangler): copies worker.js with its package
 * imports resolved as a bundler would under the "workerd" condition, the dist/ modules it reaches
 * (wasm as wasm modules) and writes config.capnp. Then: `npx workerd serve OUT/config.capnp`.
 *
 *   node examples/workers/bundle.js [--out DIR] [--port 8787] [--storage DIR] [--options service.json]
 *
 * --storage: where the Durable Objects keep their SQLite files (default OUT/storage).
 * --options: the handler options as JSON (default: service.json next to this file).
 */
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { capnpModules, copyModules } from "../../scripts/module-graph.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const dist = join(root, "dist");

// The package's specifiers as its "exports" resolve them for workerd.
const RESOLVED = {
  "focal-reward": "entries/workerd.js",
  "focal-reward/service": "service/index.js",
};

export function bundle({ out, port = 8787, storage = join(out, "storage"), options = join(here, "service.json") }) {
  if (!existsSync(join(dist, "entries/workerd.js"))) throw new Error("dist/ is missing: run `npm run build` first");
  JSON.parse(readFileSync(options, "utf8")); // fail here, not in the Worker, on a malformed file
  mkdirSync(out, { recursive: true });
  mkdirSync(storage, { recursive: true });
  let worker = readFileSync(join(here, "worker.js"), "utf8");
  for (const [spec, file] of Object.entries(RESOLVED)) worker = worker.replaceAll(`"${spec}"`, JSON.stringify(`./dist/${file}`));
  const files = Object.values(RESOLVED).map((file) => join(dist, file));
  const modules = [{ name: "worker.js", kind: "esm" }, ...copyModules(dist, files, out, "dist/")];
  writeFileSync(join(out, "worker.js"), worker);
  cpSync(options, join(out, "service.json"));
  const q = JSON.stringify;
  writeFileSync(
    join(out, "config.capnp"),
    `using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .focal),
    (name = "storage", disk = (path = ${q(resolve(storage))}, writable = true)),
  ],
  sockets = [ (name = "http", address = ${q(`127.0.0.1:${port}`)}, http = (), service = "main") ],
);

const focal :Workerd.Worker = (
  modules = [
${capnpModules(modules)}
  ],
  compatibilityDate = "2025-09-01",
  bindings = [
    (name = "FOCAL_RUN", durableObjectNamespace = "FocalRun"),
    (name = "FOCAL_OPTIONS", text = embed "service.json"),
  ],
  durableObjectNamespaces = [ (className = "FocalRun", uniqueKey = "focal-reward-run", enableSql = true) ],
  durableObjectStorage = (localDisk = "storage"),
);
`,
  );
  return join(out, "config.capnp");
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: { out: { type: "string", default: "workers-out" }, port: { type: "string", default: "8787" }, storage: { type: "string" }, options: { type: "string" } },
    strict: true,
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`--port must be a port number; got ${values.port}`);
  const config = bundle({ out: resolve(values.out), port, storage: values.storage && resolve(values.storage), options: values.options && resolve(values.options) });
  console.log(`wrote ${config}\nrun: npx workerd serve ${config}`);
}
