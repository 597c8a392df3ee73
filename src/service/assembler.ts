/**
 * Group assembly for per-sample clients (OpenRLHF and slime send one rollout a request; TRL's
 * processes each hold a slice of a group). Rows of one run with the same group key are held until
 * `groupSize` of them arrived or `waitMs` passed since the group's first row, then the group is
 * scored ONCE (one call of `scoreGroup`) and every submitter gets the answers of its own rows.
 *
 * No HTTP here: the service maps `AssemblerBusy` to 503 + Retry-After. A submitter that stops
 * listening (a client that gave up) changes nothing: its rows stay in the group and still count.
 * Rows are handed to `scoreGroup` in a canonical order (`order`), so a group's result does not
 * depend on the order in which its rows arrived.
 */

export interface AssemblerOptions<Row> {
  /** Rows that make a group complete (e.g. OpenRLHF's n_samples_per_prompt). */
  groupSize: number;
  /** Longest hold of a group after its first row arrived, in ms; then it is scored as it is. */
  waitMs: number;
  /** Most rows held at once over all runs; past it, submit() rejects with AssemblerBusy. */
  maxHeldRows: number;
  /** Most open groups at once over all runs. */
  maxHeldGroups: number;
  /** Canonical order of a group's rows (a total order on their contents). Default: arrival. */
  order?: (a: Row, b: Row) => number;
  /** Clock and timers, injectable for tests. Defaults: performance.now, setTimeout, clearTimeout. */
  now?: () => number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export type CloseReason = "full" | "timeout" | "flush";

/** Scores one assembled group; answers one value per row, in the order given. */
export type ScoreGroup<Row, Out> = (run: string, key: string, rows: readonly Row[], reason: CloseReason) => Promise<readonly Out[]> | readonly Out[];

export class AssemblerBusy extends Error {
  constructor(message: string, readonly retryAfterSeconds: number) {
    super(message);
  }
}

/** Upper bounds (seconds) of the wait-time histogram's buckets. */
export const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30] as const;

export interface AssemblerStats {
  heldRows: number;
  heldGroups: number;
  closed: Record<CloseReason, number>;
  /** Per row, time from its arrival to its group's close: cumulative counts per WAIT_BUCKETS, sum, count. */
  wait: { counts: number[]; sum: number; count: number };
}

/** What the service needs of an assembler: GroupAssembler (one process) or RedisGroupAssembler (replicas). */
export interface Assembler<Row, Out> {
  readonly groupSize: number;
  submit(run: string, items: readonly { key: string; row: Row }[]): Promise<Out[]>;
  flush(): Promise<void>;
  stats(): AssemblerStats;
  close?(): Promise<void>;
}

/** The limits every assembler takes, checked once: integers, groups of at least one row. */
export function checkLimits(o: Pick<AssemblerOptions<unknown>, "groupSize" | "waitMs" | "maxHeldRows" | "maxHeldGroups">): void {
  for (const [name, v, min] of [
    ["groupSize", o.groupSize, 1],
    ["waitMs", o.waitMs, 0],
    ["maxHeldRows", o.maxHeldRows, 1],
    ["maxHeldGroups", o.maxHeldGroups, 1],
  ] as const) {
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < min) throw new RangeError(`group assembly: ${name} must be an integer >= ${min}, got ${String(v)}`);
  }
}

/** Adds one row's wait (seconds) to the cumulative histogram of AssemblerStats.wait. */
export function recordWait(wait: AssemblerStats["wait"], seconds: number): void {
  const s = Math.max(0, seconds);
  for (let b = 0; b < WAIT_BUCKETS.length; b++) if (s <= WAIT_BUCKETS[b]!) wait.counts[b]!++;
  wait.sum += s;
  wait.count++;
}

interface Held<Row, Out> {
  row: Row;
  at: number;
  resolve(out: Out): void;
  reject(err: unknown): void;
}

interface OpenGroup<Row, Out> {
  run: string;
  key: string;
  rows: Held<Row, Out>[];
  timer: unknown;
}

export class GroupAssembler<Row, Out> implements Assembler<Row, Out> {
  readonly #o: Required<Omit<AssemblerOptions<Row>, "order">> & { order: AssemblerOptions<Row>["order"] };
  readonly #score: ScoreGroup<Row, Out>;
  /** Open groups by run and key. */
  readonly #open = new Map<string, OpenGroup<Row, Out>>();
  #heldRows = 0;
  readonly #closed: Record<CloseReason, number> = { full: 0, timeout: 0, flush: 0 };
  readonly #wait = { counts: WAIT_BUCKETS.map(() => 0), sum: 0, count: 0 };

  constructor(options: AssemblerOptions<Row>, scoreGroup: ScoreGroup<Row, Out>) {
    checkLimits(options);
    this.#o = {
      groupSize: options.groupSize,
      waitMs: options.waitMs,
      maxHeldRows: options.maxHeldRows,
      maxHeldGroups: options.maxHeldGroups,
      order: options.order,
      now: options.now ?? (() => performance.now()),
      setTimer: options.setTimer ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimer: options.clearTimer ?? ((h) => clearTimeout(h as ReturnType<typeof setTimeout>)),
    };
    this.#score = scoreGroup;
  }

  get groupSize(): number {
    return this.#o.groupSize;
  }

  /**
   * Adds the rows of one request (each with its group key) and resolves with their answers in
   * the same order once every group they joined was scored. Admission is all or nothing: when
   * the rows do not fit under the caps, nothing is held and the promise rejects with AssemblerBusy.
   */
  submit(run: string, items: readonly { key: string; row: Row }[]): Promise<Out[]> {
    if (items.length === 0) return Promise.resolve([]);
    const { groupSize, maxHeldRows, maxHeldGroups, waitMs } = this.#o;
    // Capacity check before anything is held: how many rows and new groups this request adds.
    const fill = new Map<string, number>();
    let newGroups = 0;
    for (const { key } of items) {
      const id = groupId(run, key);
      let have = fill.get(id);
      if (have === undefined) have = this.#open.get(id)?.rows.length ?? 0;
      if (have === 0 || have === groupSize) {
        newGroups++;
        have = 0;
      }
      fill.set(id, have + 1);
    }
    const retry = Math.max(1, Math.ceil(waitMs / 1000));
    if (this.#heldRows + items.length > maxHeldRows) {
      return Promise.reject(new AssemblerBusy(`group assembly holds ${this.#heldRows} rows; ${items.length} more would pass the cap of ${maxHeldRows} (--max-held-rows)`, retry));
    }
    if (this.#open.size + newGroups > maxHeldGroups) {
      return Promise.reject(new AssemblerBusy(`group assembly holds ${this.#open.size} open groups; ${newGroups} more would pass the cap of ${maxHeldGroups} (--max-held-groups)`, retry));
    }
    const now = this.#o.now();
    const answers = items.map(({ key, row }) => {
      const id = groupId(run, key);
      let g = this.#open.get(id);
      if (!g) {
        const fresh: OpenGroup<Row, Out> = { run, key, rows: [], timer: undefined };
        fresh.timer = this.#o.setTimer(() => this.#close(id, fresh, "timeout"), waitMs);
        this.#open.set(id, (g = fresh));
      }
      const group = g;
      const p = new Promise<Out>((resolve, reject) => group.rows.push({ row, at: now, resolve, reject }));
      this.#heldRows++;
      if (group.rows.length >= groupSize) this.#close(id, group, "full");
      return p;
    });
    return Promise.all(answers);
  }

  /** Scores every open group as it is (shutdown); resolves when they are answered. */
  async flush(): Promise<void> {
    const open = [...this.#open];
    await Promise.allSettled(open.map(([id, g]) => this.#close(id, g, "flush")));
  }

  stats(): AssemblerStats {
    return {
      heldRows: this.#heldRows,
      heldGroups: this.#open.size,
      closed: { ...this.#closed },
      wait: { counts: [...this.#wait.counts], sum: this.#wait.sum, count: this.#wait.count },
    };
  }

  #close(id: string, g: OpenGroup<Row, Out>, reason: CloseReason): Promise<void> {
    if (this.#open.get(id) !== g) return Promise.resolve(); // closed already (full before its timer)
    this.#open.delete(id);
    this.#o.clearTimer(g.timer);
    this.#heldRows -= g.rows.length;
    this.#closed[reason]++;
    const now = this.#o.now();
    for (const h of g.rows) recordWait(this.#wait, (now - h.at) / 1000);
    const order = this.#o.order;
    const held = order ? [...g.rows].sort((a, b) => order(a.row, b.row)) : g.rows;
    return (async () => {
      try {
        const out = await this.#score(g.run, g.key, held.map((h) => h.row), reason);
        if (out.length !== held.length) throw new Error(`group scorer answered ${out.length} values for ${held.length} rows`);
        held.forEach((h, i) => h.resolve(out[i]!));
      } catch (e) {
        for (const h of held) h.reject(e);
      }
    })();
  }
}

const groupId = (run: string, key: string) => `${run}\u0000${key}`;
