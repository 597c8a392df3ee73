/**
 * Three test tiers, all run by `npm test` (each alone: npm run test:unit | test:runtimes | test:e2e).
 * - unit: the library in this process (engine, backends, spec, analysis, service handler).
 * - runtimes: the same package in Deno, Bun, workerd, Vercel Edge and Chromium.
 * - e2e: the CLI and the server as a user runs them (spawned processes, loopback, a browser).
 * The timeouts are generous on purpose: tests are bounded by counts, never by the clock, and a
 * busy machine must only make them slower.
 */
import { defineConfig } from "vitest/config";

const tier = (name: string, testTimeout: number) => ({
  test: { name, include: [`test/${name}/**/*.test.ts`], testTimeout, hookTimeout: testTimeout },
});

export default defineConfig({
  test: { projects: [tier("unit", 120_000), tier("runtimes", 300_000), tier("e2e", 300_000)] },
});
