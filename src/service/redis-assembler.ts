/**
 * Group assembly across replicas, through Redis: the rows of one group may reach different
 * replicas behind a load balancer (no sticky routing). Same contract as `GroupAssembler`: rows of
 * one run and group key are held until `groupSize` arrived or `waitMs` passed since the group's
 * first row, the group is scored once, and each submitter gets its own rows' answers.
 *
 * How: a row joins its group with one Lua script (append; the row that fills the group closes it
 * and gets all rows back, atomically). A replica with rows in an open group also arms a timer for
 * the group's deadline; at it, a second script closes the group if it is still open (exactly one
 * caller wins, so a group is scored once even if the replica that opened it died). The replica
 * that closed the group scores it and publishes each row's answer on its submitter's channel.
 * Answers must be JSON values; rows too, or give a `codec`.
 */
import { type Assembler, AssemblerBusy, type AssemblerOptions, type AssemblerStats, type CloseReason, type ScoreGroup, WAIT_BUCKETS, checkLimits, recordWait } from "./assembler.js";
import { HttpError } from "./problem.js";
import { createRedisClient } from "./redis-store.js";
import { StoreUnavailableError } from "./store.js";

export interface RedisAssemblerOptions<Row> extends Pick<AssemblerOptions<Row>, "groupSize" | "waitMs" | "maxHeldRows" | "maxHeldGroups" | "order"> {
  /** Key and channel namespace, shared with the state store's. Default "focal:". */
  prefix?: string;
  /** A row whose answer has not come this long after its group's deadline fails (503). Default 60000 ms. */
  answerTimeoutMs?: number;
  /** How rows travel through Redis as JSON (e.g. typed arrays as lists). Default: the row itself. */
  codec?: { encode(row: Row): unknown; decode(json: unknown): Row };
}

const IDENTITY = { encode: (row: unknown) => row, decode: (json: unknown) => json };

/** KEYS: group meta hash, rows list. ARGV: row JSON, groupSize, ttl ms. Returns {gen, full, born ms, rows?}. */
const JOIN = `
local open = redis.call('HGET', KEYS[1], 'open')
local gen = tonumber(redis.call('HGET', KEYS[1], 'gen') or '0')
local born
if open ~= '1' then
  gen = gen + 1
  local t = redis.call('TIME')
  born = tostring(tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
  redis.call('HSET', KEYS[1], 'gen', gen, 'open', '1', 'born', born)
  redis.call('DEL', KEYS[2])
else
  born = redis.call('HGET', KEYS[1], 'born')
end
local n = redis.call('RPUSH', KEYS[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
if n >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'open', '0')
  return {gen, 1, born, redis.call('LRANGE', KEYS[2], 0, -1)}
end
return {gen, 0, born}`;

/** KEYS: group meta hash, rows list. ARGV: gen. The rows if this call closed generation gen, else false. */
const CLOSE = `
if redis.call('HGET', KEYS[1], 'open') == '1' and redis.call('HGET', KEYS[1], 'gen') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'open', '0')
  return redis.call('LRANGE', KEYS[2], 0, -1)
end
return false`;

interface Client {
  connect(): Promise<unknown>;
  close(): Promise<unknown>;
  on(event: "error", listener: (e: Error) => void): unknown;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string, listener: (message: Buffer | string) => void): Promise<unknown>;
}

interface Waiting<Out> {
  resolve(out: Out): void;
  reject(err: unknown): void;
  settled: Promise<unknown>;
  at: number;
  /** Fails the row when no answer came in time (its closer died after closing the group). */
  timer: ReturnType<typeof setTimeout>;
  /** The open group it waits in, once joined (see #armed). */
  group?: string;
}

/** An open group generation this replica has rows in: its deadline timer and those rows. */
interface Armed {
  run: string;
  key: string;
  keys: string[];
  gen: number;
  timer: ReturnType<typeof setTimeout>;
  rows: Set<string>;
}

/** A row as stored in Redis: its id (replica:counter), the channel of its submitter, the row. */
interface Wire {
  id: string;
  to: string;
  row: unknown;
}

interface Reply<Out> {
  answers?: [string, Out][];
  error?: WireError;
  ids?: string[];
}

/**
 * A scoring error as it crosses to another replica: what the handler answers depends on its kind
 * (an HttpError's status and problem type, a store failure's 503 or 500 outcome-unknown), so the
 * kind travels with the message; anything else stays a plain Error (a 500, as it would be here).
 */
interface WireError {
  message: string;
  http?: { status: number; field?: string; headers: Record<string, string>; reason?: string; type?: string };
  store?: { unknownOutcome: boolean };
}

function errorToWire(e: unknown): WireError {
  const message = e instanceof Error ? e.message : String(e);
  if (e instanceof HttpError) return { message, http: { status: e.status, field: e.field, headers: e.headers, reason: e.reason, type: e.type } };
  if (e instanceof StoreUnavailableError) return { message, store: { unknownOutcome: e.unknownOutcome } };
  return { message };
}

function errorFromWire(w: WireError): Error {
  if (w.http) return new HttpError(w.http.status, w.message, w.http.field, w.http.headers, w.http.reason, w.http.type);
  if (w.store) return new StoreUnavailableError(w.message, w.store.unknownOutcome);
  return new Error(w.message);
}

const text = (b: unknown) => (typeof b === "string" ? b : Buffer.from(b as Uint8Array).toString());

export class RedisGroupAssembler<Row, Out> implements Assembler<Row, Out> {
  readonly #o: Required<Omit<RedisAssemblerOptions<Row>, "order">> & { order: AssemblerOptions<Row>["order"] };
  readonly #score: ScoreGroup<Row, Out>;
  readonly #client: Client;
  readonly #sub: Client;
  readonly #channel: string;
  readonly #replica = crypto.getRandomValues(new Uint32Array(2)).join("-");
  #counter = 0;
  /** This replica's rows waiting for an answer, by row id. */
  readonly #waiting = new Map<string, Waiting<Out>>();
  /** Open groups (run, key, generation) this replica has rows in. */
  readonly #armed = new Map<string, Armed>();
  readonly #closed: Record<CloseReason, number> = { full: 0, timeout: 0, flush: 0 };
  readonly #wait = { counts: WAIT_BUCKETS.map(() => 0), sum: 0, count: 0 };

  private constructor(client: Client, sub: Client, options: RedisAssemblerOptions<Row>, score: ScoreGroup<Row, Out>) {
    checkLimits(options);
    this.#o = { prefix: "focal:", answerTimeoutMs: 60_000, codec: IDENTITY as NonNullable<RedisAssemblerOptions<Row>["codec"]>, ...options, order: options.order };
    this.#client = client;
    this.#sub = sub;
    this.#score = score;
    this.#channel = `${this.#o.prefix}asm:reply:${this.#replica}`;
  }

  /** Connects (two clients: commands, and the subscription for this replica's answers). */
  static async open<Row, Out>(url: string, options: RedisAssemblerOptions<Row>, scoreGroup: ScoreGroup<Row, Out>): Promise<RedisGroupAssembler<Row, Out>> {
    const client = (await createRedisClient(url, 5000)) as Client;
    const sub = (await createRedisClient(url, 0)) as Client; // a subscription waits without a reply timeout
    const a = new RedisGroupAssembler(client, sub, options, scoreGroup);
    for (const c of [client, sub]) c.on("error", () => {}); // the state store logs Redis outages; both reconnect by themselves
    await client.connect();
    await sub.connect();
    await sub.subscribe(a.#channel, (m) => a.#onReply(text(m)));
    return a;
  }

  get groupSize(): number {
    return this.#o.groupSize;
  }

  /** As `GroupAssembler.submit`: all or nothing against this replica's caps; answers in the order given. */
  async submit(run: string, items: readonly { key: string; row: Row }[]): Promise<Out[]> {
    if (items.length === 0) return [];
    const { maxHeldRows, maxHeldGroups, waitMs, groupSize, prefix } = this.#o;
    const retry = Math.max(1, Math.ceil(waitMs / 1000));
    if (this.#waiting.size + items.length > maxHeldRows) {
      throw new AssemblerBusy(`group assembly holds ${this.#waiting.size} rows; ${items.length} more would pass the cap of ${maxHeldRows} (--max-held-rows)`, retry);
    }
    if (this.#armed.size + new Set(items.map((i) => i.key)).size > maxHeldGroups) {
      throw new AssemblerBusy(`group assembly holds ${this.#armed.size} open groups; more would pass the cap of ${maxHeldGroups} (--max-held-groups)`, retry);
    }
    const ttl = String(waitMs + this.#o.answerTimeoutMs);
    const answers = items.map(({ key, row }) => {
      const id = `${this.#replica}:${this.#counter++}`;
      const answer = new Promise<Out>((resolve, reject) => {
        const timer = setTimeout(() => this.#fail([id], new StoreUnavailableError(`group assembly: no answer for a row of group '${key}' within ${waitMs + this.#o.answerTimeoutMs} ms`)), waitMs + this.#o.answerTimeoutMs);
        this.#waiting.set(id, { resolve, reject, at: performance.now(), timer, settled: Promise.resolve() });
      });
      this.#waiting.get(id)!.settled = answer.catch(() => {});
      const keys = [`${prefix}asm:${run}\u0000${key}`, `${prefix}asm:${run}\u0000${key}:rows`];
      const wire: Wire = { id, to: this.#channel, row: this.#o.codec.encode(row) };
      void this.#client
        .eval(JOIN, { keys, arguments: [JSON.stringify(wire), String(groupSize), ttl] })
        .then((reply) => {
          const [gen, full, born, rows] = reply as [number, number, unknown, unknown[] | undefined];
          if (full) return this.#scoreAndReply(run, key, rows!.map(text), "full");
          this.#arm(id, run, key, keys, gen, Number(text(born)));
        })
        .catch((e: unknown) => this.#fail([id], new StoreUnavailableError(`group assembly (redis): ${e instanceof Error ? e.message : String(e)}`)));
      return answer;
    });
    return Promise.all(answers);
  }

  /** Closes this replica's open groups now (shutdown) and waits for their answers. */
  async flush(): Promise<void> {
    const pending = [...this.#waiting.values()].map((w) => w.settled);
    const armed = [...this.#armed.values()];
    for (const g of armed) clearTimeout(g.timer);
    this.#armed.clear();
    await Promise.all(armed.map((g) => this.#closeByDeadline(g, "flush")));
    await Promise.all(pending);
  }

  stats(): AssemblerStats {
    return {
      heldRows: this.#waiting.size,
      heldGroups: this.#armed.size,
      closed: { ...this.#closed },
      wait: { counts: [...this.#wait.counts], sum: this.#wait.sum, count: this.#wait.count },
    };
  }

  async close(): Promise<void> {
    for (const g of this.#armed.values()) clearTimeout(g.timer);
    this.#fail([...this.#waiting.keys()], new StoreUnavailableError("group assembly closed"));
    for (const c of [this.#sub, this.#client]) await c.close().catch(() => {});
  }

  /** Row `row` waits in generation `gen` of a group: one timer per such group, at its deadline. */
  #arm(row: string, run: string, key: string, keys: string[], gen: number, born: number): void {
    const w = this.#waiting.get(row);
    if (!w) return; // answered already (its group filled meanwhile)
    const id = `${keys[0]}\u0000${gen}`;
    let g = this.#armed.get(id);
    if (!g) {
      // Redis's clock set `born`; replicas' clocks may differ a little from it, never by the wait.
      const ms = Math.max(0, born + this.#o.waitMs - Date.now());
      const timer = setTimeout(() => {
        this.#armed.delete(id);
        void this.#closeByDeadline(g!, "timeout");
      }, ms);
      this.#armed.set(id, (g = { run, key, keys, gen, timer, rows: new Set() }));
    }
    g.rows.add(row);
    w.group = id;
  }

  async #closeByDeadline({ run, key, keys, gen }: Armed, reason: CloseReason): Promise<void> {
    let rows: unknown;
    try {
      rows = await this.#client.eval(CLOSE, { keys, arguments: [String(gen)] });
    } catch {
      return; // Redis is down: another replica's timer, or the rows' answer timeout, takes over
    }
    if (rows) await this.#scoreAndReply(run, key, (rows as unknown[]).map(text), reason);
  }

  /** This replica closed the group: score it once, in canonical order, and answer every submitter. */
  async #scoreAndReply(run: string, key: string, raw: string[], reason: CloseReason): Promise<void> {
    this.#closed[reason]++;
    const decode = this.#o.codec.decode;
    const wires = raw.map((r) => {
      const w = JSON.parse(r) as Wire;
      return { ...w, row: decode(w.row) };
    });
    const order = this.#o.order;
    if (order) wires.sort((a, b) => order(a.row, b.row));
    const byChannel = new Map<string, Reply<Out>>();
    const reply = (to: string) => byChannel.get(to) ?? byChannel.set(to, {}).get(to)!;
    try {
      const out = await this.#score(run, key, wires.map((w) => w.row), reason);
      if (out.length !== wires.length) throw new Error(`group scorer answered ${out.length} values for ${wires.length} rows`);
      wires.forEach((w, i) => (reply(w.to).answers ??= []).push([w.id, out[i]!]));
    } catch (e) {
      for (const w of wires) {
        const r = reply(w.to);
        r.error = errorToWire(e);
        (r.ids ??= []).push(w.id);
      }
    }
    await Promise.all([...byChannel].map(([to, r]) => (to === this.#channel ? this.#onReply(JSON.stringify(r)) : this.#client.publish(to, JSON.stringify(r)).catch(() => {}))));
  }

  #onReply(message: string): void {
    const r = JSON.parse(message) as Reply<Out>;
    const now = performance.now();
    for (const [id, out] of r.answers ?? []) {
      const w = this.#take(id);
      if (!w) continue;
      recordWait(this.#wait, (now - w.at) / 1000);
      w.resolve(out);
    }
    if (r.error) this.#fail(r.ids ?? [], errorFromWire(r.error));
  }

  #fail(ids: string[], err: unknown): void {
    for (const id of ids) this.#take(id)?.reject(err);
  }

  /** Stops waiting for row `id`; disarms its group's timer when it was the group's last row here. */
  #take(id: string): Waiting<Out> | undefined {
    const w = this.#waiting.get(id);
    if (!w) return undefined;
    this.#waiting.delete(id);
    clearTimeout(w.timer);
    const g = w.group === undefined ? undefined : this.#armed.get(w.group);
    if (g && g.rows.delete(id) && g.rows.size === 0) {
      clearTimeout(g.timer);
      this.#armed.delete(w.group!);
    }
    return w;
  }
}
