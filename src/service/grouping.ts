/**
 * Groups for `/get_reward` (issue 10): the group key of a row is the client's explicit group id
 * (`group_ids[i]`, or `group` for a one-sample body) when it sends one, else its prompt; never
 * "consecutive rows". Two ways to use it:
 * - within one request (no --group-size): rows are gathered by key over the whole request
 *   (`gatherByKey`), scored in one call, answered in request order;
 * - across requests (`serve --group-size N --group-wait MS`): each row joins its run's open group
 *   of that key in the GroupAssembler (assembler.ts); a full group, or one whose wait ran out, is
 *   scored once, and each request gets its own rows' answers (`AssembledRewards`).
 */
import { type Assembler, AssemblerBusy, type AssemblerOptions, GroupAssembler, WAIT_BUCKETS, type AssemblerStats, type CloseReason, type ScoreGroup } from "./assembler.js";
import { HttpError } from "./problem.js";

/** Group keys in order of first appearance: `order[j]` = request row at grouped position j. */
export function gatherByKey(keys: readonly string[]): { order: Int32Array; sizes: number[] } {
  const members = new Map<string, number[]>();
  keys.forEach((k, i) => {
    const m = members.get(k);
    if (m) m.push(i);
    else members.set(k, [i]);
  });
  const order = new Int32Array(keys.length);
  const sizes: number[] = [];
  let j = 0;
  for (const rows of members.values()) {
    sizes.push(rows.length);
    for (const i of rows) order[j++] = i;
  }
  return { order, sizes };
}

/** One judged rollout waiting for its group. */
export interface HeldRow {
  /** K scores in rubric order (NaN = not judged). */
  scores: Float32Array;
  /** 0 when its judge failed: the row is invalid (spec step 8) but still one of the group. */
  valid: number;
  /** The judged text: with `scores`, a total order on rows so a group's result ignores arrival order. */
  text: string;
  step: number | undefined;
}

/** A row's answer: its reward and direct reward, and the group call's numeric logs. */
export interface RowAnswer {
  reward: number;
  direct: number | null;
  advantage: number;
  logs: Record<string, number>;
}

/** Scores one group of rows (one engine call); the service supplies it (run ledger or shared engine). */
export type GroupScorer = (run: string, step: number | undefined, rows: readonly HeldRow[]) => Promise<RowAnswer[]>;

export interface GroupingOptions {
  groupSize: number;
  waitMs: number;
  maxHeldRows: number;
  maxHeldGroups: number;
}

/**
 * Makes the assembler behind `AssembledRewards`: by default a GroupAssembler in this process; across
 * replicas a RedisGroupAssembler (with `heldRowCodec`), so rows of one group may reach any replica.
 */
export type MakeAssembler = (options: AssemblerOptions<HeldRow>, score: ScoreGroup<HeldRow, RowAnswer>) => Assembler<HeldRow, RowAnswer> | Promise<Assembler<HeldRow, RowAnswer>>;

/** HeldRow as JSON (NaN scores as null; float32 values survive the round trip exactly). */
export const heldRowCodec = {
  encode: (r: HeldRow): unknown => ({ scores: Array.from(r.scores, (x) => (Number.isNaN(x) ? null : x)), valid: r.valid, text: r.text, step: r.step ?? null }),
  decode: (j: unknown): HeldRow => {
    const o = j as { scores: (number | null)[]; valid: number; text: string; step: number | null };
    return { scores: Float32Array.from(o.scores, (x) => x ?? NaN), valid: o.valid, text: o.text, step: o.step ?? undefined };
  },
};

export const GROUPING_DEFAULTS = { waitMs: 5000, maxHeldRows: 65536, maxHeldGroups: 16384 } as const;

function compareRows(a: HeldRow, b: HeldRow): number {
  if (a.text !== b.text) return a.text < b.text ? -1 : 1;
  if (a.valid !== b.valid) return b.valid - a.valid;
  for (let k = 0; k < a.scores.length; k++) {
    const x = a.scores[k]!, y = b.scores[k]!;
    if (x === y || (x !== x && y !== y)) continue;
    if (x !== x) return 1;
    if (y !== y) return -1;
    return x < y ? -1 : 1;
  }
  return 0;
}

/** The assembler of one service, with the logs each closed group adds. */
export class AssembledRewards {
  /** The assembler, once made (a Redis one connects first). */
  readonly #made: Promise<Assembler<HeldRow, RowAnswer>>;
  #assembler: Assembler<HeldRow, RowAnswer> | undefined;

  constructor(options: GroupingOptions, score: GroupScorer, make: MakeAssembler = (o, f) => new GroupAssembler(o, f)) {
    this.#made = Promise.resolve(make(
      { ...options, order: compareRows },
      async (run: string, _key: string, rows: readonly HeldRow[], reason: CloseReason) => {
        const answers = await score(run, rows[0]!.step, rows);
        for (const a of answers) {
          a.logs["focal/group_rows"] = rows.length;
          a.logs["focal/group_timed_out"] = reason === "timeout" ? 1 : 0;
        }
        return answers;
      },
    ));
    this.#made.then((a) => (this.#assembler = a), () => {});
  }

  /** Resolves once the assembler is ready (rejects when a Redis one cannot connect). */
  get ready(): Promise<unknown> {
    return this.#made;
  }

  /**
   * The answers of one request's rows, in its order, once each row's group was scored. A step is
   * part of the key: rows of different steps never share a group. Past the caps: 503 Retry-After.
   */
  async submit(run: string, items: readonly { key: string; row: HeldRow }[]): Promise<RowAnswer[]> {
    const keyed = items.map(({ key, row }) => ({ key: `${row.step ?? ""}\u0000${key}`, row }));
    try {
      return await (await this.#made).submit(run, keyed);
    } catch (e) {
      if (e instanceof AssemblerBusy) throw new HttpError(503, e.message, undefined, { "retry-after": String(e.retryAfterSeconds) });
      throw e;
    }
  }

  async flush(): Promise<void> {
    await (await this.#made.catch(() => undefined))?.flush();
  }

  /** Flush, then release the assembler's connections (shutdown). */
  async close(): Promise<void> {
    const a = await this.#made.catch(() => undefined);
    await a?.flush();
    await a?.close?.();
  }

  stats(): AssemblerStats {
    return this.#assembler?.stats() ?? { heldRows: 0, heldGroups: 0, closed: { full: 0, timeout: 0, flush: 0 }, wait: { counts: WAIT_BUCKETS.map(() => 0), sum: 0, count: 0 } };
  }
}

/** Prometheus lines of the assembler: held rows and groups, groups closed by reason, wait histogram. */
export function renderAssemblyMetrics(s: AssemblerStats): string {
  const out = [
    "# HELP focal_assembly_held_rows Rows waiting for their group (serve --group-size).",
    "# TYPE focal_assembly_held_rows gauge",
    `focal_assembly_held_rows ${s.heldRows}`,
    "# HELP focal_assembly_held_groups Open groups waiting for rows.",
    "# TYPE focal_assembly_held_groups gauge",
    `focal_assembly_held_groups ${s.heldGroups}`,
    "# HELP focal_assembly_groups_closed_total Groups scored, by why they closed: full, timeout (--group-wait) or flush (shutdown).",
    "# TYPE focal_assembly_groups_closed_total counter",
  ];
  for (const reason of ["full", "timeout", "flush"] as const) out.push(`focal_assembly_groups_closed_total{reason="${reason}"} ${s.closed[reason]}`);
  out.push("# HELP focal_assembly_wait_seconds Time a row waited for its group to close.");
  out.push("# TYPE focal_assembly_wait_seconds histogram");
  WAIT_BUCKETS.forEach((b, i) => out.push(`focal_assembly_wait_seconds_bucket{le="${b}"} ${s.wait.counts[i]}`));
  out.push(`focal_assembly_wait_seconds_bucket{le="+Inf"} ${s.wait.count}`);
  out.push(`focal_assembly_wait_seconds_sum ${s.wait.sum}`);
  out.push(`focal_assembly_wait_seconds_count ${s.wait.count}`);
  return out.join("\n") + "\n";
}
