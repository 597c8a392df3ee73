/**
 * A StateStore on Redis, so several service replicas share one state (the run record, its
 * idempotency window and the stored responses all go through this store).
 *
 * Each key is one hash `<prefix><key>` with fields `v` (version) and `d` (value). A write is one
 * Lua script, run atomically by Redis: it compares the version and writes in one round trip, so of
 * two replicas writing version N of a run only one succeeds and the other reloads and retries (the
 * service's group commit already does that on a compare-and-set miss).
 *
 * Durability is Redis's own: run it with `appendonly yes` and `appendfsync always` for
 * acknowledged writes to survive a Redis crash. While Redis is unreachable, commands fail at once
 * (no offline queue), so requests answer 503 instead of piling up; the client reconnects by itself.
 *
 * `redis` (the official client) is an optional peer dependency, loaded only when this store opens.
 */
import { type StateStore, StoreUnavailableError, type Versioned } from "./store.js";

export interface RedisStoreOptions {
  /** Prepended to every key, so several services can share one Redis. Default "focal:". */
  prefix?: string;
  /** Expire a key this many seconds after its last write (runs left idle are dropped). 0 = never. Default 0. */
  ttlSeconds?: number;
  /** Fail a command that got no reply within this many ms (the outcome of a write is then unknown). Default 5000. */
  commandTimeoutMs?: number;
}

/** Compare-and-set: ARGV = value, expected version ('' = unconditional), ttl in seconds. */
const CAS = `
local v = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if ARGV[2] ~= '' and tonumber(ARGV[2]) ~= v then return false end
redis.call('HSET', KEYS[1], 'v', v + 1, 'd', ARGV[1])
if tonumber(ARGV[3]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[3]) end
return v + 1`;

/** The few client calls this store makes (typed here so the client stays an optional import). */
interface Client {
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  on(event: "error", listener: (e: Error) => void): unknown;
  on(event: "ready", listener: () => void): unknown;
  hmGet(key: string, fields: string[]): Promise<(Uint8Array | null)[]>;
  eval(script: string, options: { keys: string[]; arguments: (string | Uint8Array)[] }): Promise<unknown>;
  del(key: string): Promise<unknown>;
}

/** Errors of commands that never left this process: nothing was written. */
const NOT_SENT = new Set(["ClientClosedError", "ClientOfflineError", "ConnectionTimeoutError"]);

/** A client failure as the service's store error; Redis's own error replies (bugs) pass through. */
function unavailable(e: unknown, write: boolean): never {
  const name = e instanceof Error ? e.constructor.name : "";
  if (name === "ErrorReply" || name === "SimpleError") throw e;
  const message = `redis: ${e instanceof Error ? e.message : String(e)}`;
  throw new StoreUnavailableError(message, write && !NOT_SENT.has(name), { cause: e });
}

/**
 * A client of the official `redis` package (loaded here, only when a Redis store or assembler
 * opens), not yet connected: binary replies as Buffers, no offline queue (a command while Redis
 * is down fails at once instead of waiting), reconnecting by itself with backoff.
 */
export async function createRedisClient(url: string, commandTimeoutMs: number): Promise<{ connect(): Promise<unknown> }> {
  let redis: typeof import("redis");
  try {
    redis = await import("redis");
  } catch {
    throw new Error("Redis support needs the 'redis' package: npm install redis@6");
  }
  return redis
    .createClient({
      url,
      disableOfflineQueue: true,
      socket: {
        connectTimeout: 5000,
        socketTimeout: commandTimeoutMs,
        reconnectStrategy: (retries: number) => Math.min(50 * 2 ** retries, 2000),
      },
    })
    .withTypeMapping({ [redis.RESP_TYPES.BLOB_STRING]: Buffer });
}

export class RedisStore implements StateStore {
  readonly #client: Client;
  readonly #prefix: string;
  readonly #ttl: string;
  #down = false;

  private constructor(client: Client, prefix: string, ttlSeconds: number) {
    this.#client = client;
    this.#prefix = prefix;
    this.#ttl = String(ttlSeconds);
    // The client reconnects by itself: say so once per outage, not once per reconnect attempt.
    client.on("error", (e) => {
      if (!this.#down) console.error(`state store (redis): ${e.message}; reconnecting`);
      this.#down = true;
    });
    client.on("ready", () => {
      if (this.#down) console.error("state store (redis): reconnected");
      this.#down = false;
    });
  }

  /** Connect to `url` (redis://[user:pass@]host:port[/db]). Fails if Redis cannot be reached now. */
  static async open(url: string, options: RedisStoreOptions = {}): Promise<RedisStore> {
    const ttl = options.ttlSeconds ?? 0;
    if (!Number.isInteger(ttl) || ttl < 0) throw new RangeError(`run ttl must be an integer number of seconds >= 0; got ${ttl}`);
    const client = await createRedisClient(url, options.commandTimeoutMs ?? 5000);
    const store = new RedisStore(client as Client, options.prefix ?? "focal:", ttl);
    await client.connect();
    return store;
  }

  async get(key: string): Promise<Versioned | undefined> {
    const [v, d] = await this.#client.hmGet(this.#prefix + key, ["v", "d"]).catch((e: unknown) => unavailable(e, false));
    if (!v || !d) return undefined;
    return { version: Number(Buffer.from(v).toString()), value: new Uint8Array(d) };
  }

  async put(key: string, value: Uint8Array, expected?: number): Promise<number | undefined> {
    const reply = await this.#client
      .eval(CAS, {
        keys: [this.#prefix + key],
        arguments: [Buffer.from(value.buffer, value.byteOffset, value.byteLength), expected === undefined ? "" : String(expected), this.#ttl],
      })
      .catch((e: unknown) => unavailable(e, true));
    return reply === null ? undefined : Number(reply);
  }

  async delete(key: string): Promise<void> {
    await this.#client.del(this.#prefix + key).catch((e: unknown) => unavailable(e, true));
  }

  async close(): Promise<void> {
    await this.#client.close().catch(() => {});
  }
}
