/**
 * The service on Cloudflare Workers with durable state: each run is one Durable Object.
 *
 * A Durable Object runs one instance per run, and its input gate serializes the run's requests, so
 * the run's handler sees its updates one at a time whichever Worker isolate received them. State
 * lives in the object's SQLite storage (`enableSql = true` in workerd, `new_sqlite_classes` in
 * wrangler), one row per key with its version: a compare-and-set is one synchronous statement, and
 * the output gate holds every response until its write is durable.
 *
 * The Worker routes each request by its run (path, `?run=` or the body's `run`) with `routeToRun`;
 * the object's class comes from `createRunObject`. No Workers types are imported: the few calls
 * used are typed below, so this file compiles (and is tested) like the rest of the service.
 */
import { type FetchHandler, type HandlerOptions, createHandler } from "./handler.js";
import type { StateStore, Versioned } from "./store.js";

/** The part of `DurableObjectState.storage.sql` this store uses. */
export interface SqlStorage {
  exec(query: string, ...bindings: unknown[]): { toArray(): Record<string, unknown>[] };
}

/** The part of a `DurableObjectState` the run object uses. */
export interface DurableObjectStateLike {
  storage: { sql: SqlStorage };
}

/** The part of a `DurableObjectNamespace` binding the router uses. */
export interface DurableObjectNamespaceLike {
  idFromName(name: string): unknown;
  get(id: never): { fetch(request: Request): Promise<Response> };
}

/** A StateStore in a Durable Object's SQLite storage (one table, one row per key). */
export class DurableObjectStore implements StateStore {
  readonly #sql: SqlStorage;

  constructor(storage: { sql: SqlStorage }) {
    this.#sql = storage.sql;
    this.#sql.exec("CREATE TABLE IF NOT EXISTS focal_kv (key TEXT PRIMARY KEY, version INTEGER NOT NULL, value BLOB NOT NULL)");
  }

  async get(key: string): Promise<Versioned | undefined> {
    const [row] = this.#sql.exec("SELECT version, value FROM focal_kv WHERE key = ?", key).toArray();
    return row && { version: Number(row.version), value: new Uint8Array(row.value as ArrayBuffer) };
  }

  async put(key: string, value: Uint8Array, expected?: number): Promise<number | undefined> {
    // Read and write with no await in between: nothing else runs in the object meanwhile.
    const [row] = this.#sql.exec("SELECT version FROM focal_kv WHERE key = ?", key).toArray();
    const current = row ? Number(row.version) : 0;
    if (expected !== undefined && expected !== current) return undefined;
    const bytes = value.slice().buffer; // SQLite binds an ArrayBuffer as a BLOB
    this.#sql.exec("INSERT OR REPLACE INTO focal_kv (key, version, value) VALUES (?, ?, ?)", key, current + 1, bytes);
    return current + 1;
  }

  async delete(key: string): Promise<void> {
    this.#sql.exec("DELETE FROM focal_kv WHERE key = ?", key);
  }
}

/**
 * The Durable Object class of a run: `export const FocalRun = createRunObject((env) => options)`
 * in the Worker's main module, bound as a Durable Object namespace. The handler is made on the
 * object's first request, with the object's storage as its store.
 */
export function createRunObject<Env>(options: (env: Env) => Omit<HandlerOptions, "store">) {
  return class FocalRunObject {
    readonly #handler: FetchHandler;
    constructor(state: DurableObjectStateLike, env: Env) {
      this.#handler = createHandler({ ...options(env), store: new DurableObjectStore(state.storage) });
    }
    fetch(request: Request): Promise<Response> {
      return this.#handler(request);
    }
  };
}

const RUN_PATH = /^\/v1\/runs\/([^/]+)(?:\/|$)/;

/** The run named by the URL (`/v1/runs/:run`, `/v1/runs/:run/...` or `?run=`), if any. */
function runOfUrl(url: URL): string | undefined {
  const m = RUN_PATH.exec(url.pathname);
  if (m) {
    try {
      return decodeURIComponent(m[1]!);
    } catch {
      return undefined; // the object's handler refuses the path
    }
  }
  return url.searchParams.get("run") ?? undefined;
}

/** The JSON body's `run` field, if it is a string. */
function runOfBody(body: ArrayBuffer): string | undefined {
  try {
    const run = (JSON.parse(new TextDecoder().decode(body)) as { run?: unknown } | null)?.run;
    return typeof run === "string" ? run : undefined;
  } catch {
    return undefined; // the object's handler answers the malformed body
  }
}

/**
 * Forward `request` to its run's Durable Object: the run named by the URL (`/v1/runs/:run/...`,
 * `?run=`), else by the JSON body's `run` field (the body is then read here once; send `?run=` to
 * spare that), else `defaultRun`. Requests without a run (`/healthz`, `/metrics`) go to
 * `defaultRun`'s object.
 */
export async function routeToRun(request: Request, runs: DurableObjectNamespaceLike, defaultRun = "default"): Promise<Response> {
  const url = new URL(request.url);
  let run = runOfUrl(url);
  let forward = request;
  if (run === undefined && request.body) {
    const body = await request.arrayBuffer();
    run = runOfBody(body);
    forward = new Request(request.url, { method: request.method, headers: request.headers, body });
  }
  return runs.get(runs.idFromName(run ?? defaultRun) as never).fetch(forward);
}
