/**
 * The verdict cache on disk (Node, Bun, Deno): one small JSON file per key under DIR/<2 hex>/,
 * written to a temporary name and renamed, so a reader sees a whole entry or none, and several
 * processes can share one directory. An unreadable or foreign file is a miss, never an error.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { JudgeCache, Verdicts } from "./cache.js";

export class DiskCache implements JudgeCache {
  constructor(readonly dir: string) {}

  static async open(dir: string): Promise<DiskCache> {
    await mkdir(dir, { recursive: true });
    return new DiskCache(dir);
  }

  #path(key: string): string {
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`judge cache: bad key '${key}'`);
    return join(this.dir, key.slice(0, 2), `${key}.json`);
  }

  async get(key: string): Promise<Verdicts | undefined> {
    let text: string;
    try {
      text = await readFile(this.#path(key), "utf8");
    } catch {
      return undefined;
    }
    try {
      const v = JSON.parse(text) as { key?: unknown; verdicts?: unknown };
      if (v?.key !== key || v.verdicts === null || typeof v.verdicts !== "object") return undefined;
      for (const e of Object.values(v.verdicts as Record<string, unknown>)) {
        if (typeof (e as { verdict?: unknown })?.verdict !== "string" || typeof (e as { reason?: unknown }).reason !== "string") return undefined;
      }
      return v.verdicts as Verdicts;
    } catch {
      return undefined;
    }
  }

  async set(key: string, value: Verdicts): Promise<void> {
    const path = this.#path(key);
    await mkdir(join(this.dir, key.slice(0, 2)), { recursive: true });
    const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await writeFile(tmp, JSON.stringify({ key, verdicts: value }));
    await rename(tmp, path);
  }
}
