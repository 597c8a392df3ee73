/**
 * Conformance driver for the runtimes that run the Node entry (dist/index.js) as is. It imports
 * the package by its own name ("focal-reward", a package self-reference), so each runtime resolves
 * package.json "exports" with its own conditions; `--dist DIR` imports DIR/index.js instead.
 *   node test/runtimes/drivers/native.js
 *   deno run --allow-read test/runtimes/drivers/native.js
 *   bun test/runtimes/drivers/native.js
 * Prints one JSON line per backend (see harness.js).
 */
import process from "node:process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { runConformance } from "../harness.js";
import { driverArgs } from "./args.js";

const runtime =
  typeof globalThis.Deno !== "undefined" ? "deno" : typeof globalThis.Bun !== "undefined" ? "bun" : "node";
const args = driverArgs();
const vectors = JSON.parse(readFileSync(args.vectors, "utf8"));
const specifier = args.distGiven ? pathToFileURL(join(args.dist, "index.js")).href : "focal-reward";
const entry = fileURLToPath(import.meta.resolve(specifier));
const api = await import(specifier);
const lines = await runConformance({ runtime, api, vectors });
for (const line of lines) process.stdout.write(`${JSON.stringify({ ...line, entry })}\n`);
