/** Prometheus text exposition (format 0.0.4) of the service's counters, no dependency. */

const BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function fmt(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

interface Histogram {
  counts: number[];
  sum: number;
  count: number;
}

/** Per-run gauges are read from the service when /metrics is scraped. */
export interface RunGauge {
  run: string;
  criteria: readonly string[];
  weights: ArrayLike<number> | undefined;
  saturation: ArrayLike<number> | undefined;
  updates: number;
}

export class Metrics {
  readonly #requests = new Map<string, number>();
  readonly #latency = new Map<string, Histogram>();
  readonly #judgeFailures = new Map<string, number>();
  #idempotentReplays = 0;
  #commits = 0;
  #casRetries = 0;
  readonly #outOfScale = new Map<string, number>();
  #fracOutOfScale = 0;

  request(route: string, method: string, status: number, seconds: number): void {
    const key = `${route}\u0000${method}\u0000${status}`;
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
    let h = this.#latency.get(route);
    if (!h) this.#latency.set(route, (h = { counts: BUCKETS.map(() => 0), sum: 0, count: 0 }));
    for (let i = 0; i < BUCKETS.length; i++) if (seconds <= BUCKETS[i]!) h.counts[i]!++;
    h.sum += seconds;
    h.count++;
  }

  judgeFailure(reason: "error" | "timeout" | "invalid"): void {
    this.#judgeFailures.set(reason, (this.#judgeFailures.get(reason) ?? 0) + 1);
  }

  /** A scored call's out-of-scale metrics (`focal/frac_out_of_scale`, `focal/<id>/out_of_scale`). */
  scored(criteria: readonly string[], m: Record<string, number>): void {
    this.#fracOutOfScale = m["focal/frac_out_of_scale"] ?? 0;
    if (!(this.#fracOutOfScale > 0)) return;
    for (const c of criteria) {
      const n = m[`focal/${c}/out_of_scale`];
      if (n) this.#outOfScale.set(c, (this.#outOfScale.get(c) ?? 0) + n);
    }
  }

  replay(): void {
    this.#idempotentReplays++;
  }

  commit(casRetry: boolean): void {
    if (casRetry) this.#casRetries++;
    else this.#commits++;
  }

  render(runs: Iterable<RunGauge>): string {
    const out: string[] = [];
    out.push("# HELP focal_requests_total HTTP requests by route, method and status.");
    out.push("# TYPE focal_requests_total counter");
    for (const [key, n] of this.#requests) {
      const [route, method, status] = key.split("\u0000") as [string, string, string];
      out.push(`focal_requests_total{route="${escapeLabel(route)}",method="${method}",status="${status}"} ${n}`);
    }
    out.push("# HELP focal_request_duration_seconds Time from request to response, by route.");
    out.push("# TYPE focal_request_duration_seconds histogram");
    for (const [route, h] of this.#latency) {
      const r = escapeLabel(route);
      BUCKETS.forEach((b, i) => out.push(`focal_request_duration_seconds_bucket{route="${r}",le="${b}"} ${h.counts[i]}`));
      out.push(`focal_request_duration_seconds_bucket{route="${r}",le="+Inf"} ${h.count}`);
      out.push(`focal_request_duration_seconds_sum{route="${r}"} ${h.sum}`);
      out.push(`focal_request_duration_seconds_count{route="${r}"} ${h.count}`);
    }
    out.push("# HELP focal_judge_failures_total Rollouts marked invalid because their judge threw, timed out or answered garbage.");
    out.push("# TYPE focal_judge_failures_total counter");
    for (const reason of ["error", "timeout", "invalid"]) {
      out.push(`focal_judge_failures_total{reason="${reason}"} ${this.#judgeFailures.get(reason) ?? 0}`);
    }
    out.push("# HELP focal_idempotent_replays_total Requests answered from a stored response (Idempotency-Key).");
    out.push("# TYPE focal_idempotent_replays_total counter");
    out.push(`focal_idempotent_replays_total ${this.#idempotentReplays}`);
    out.push("# HELP focal_state_commits_total Batches of stream-state updates written to the state store.");
    out.push("# TYPE focal_state_commits_total counter");
    out.push(`focal_state_commits_total ${this.#commits}`);
    out.push("# HELP focal_state_conflicts_total Compare-and-set conflicts (another writer moved the run's state).");
    out.push("# TYPE focal_state_conflicts_total counter");
    out.push(`focal_state_conflicts_total ${this.#casRetries}`);
    out.push("# HELP focal_scores_out_of_scale_total Scores outside their criterion's scale, clamped into it (outOfScale \"clamp\").");
    out.push("# TYPE focal_scores_out_of_scale_total counter");
    for (const [c, n] of this.#outOfScale) out.push(`focal_scores_out_of_scale_total{criterion="${escapeLabel(c)}"} ${n}`);
    out.push("# HELP focal_frac_out_of_scale Share of the scores of the latest scored call outside their scale (focal/frac_out_of_scale).");
    out.push("# TYPE focal_frac_out_of_scale gauge");
    out.push(`focal_frac_out_of_scale ${this.#fracOutOfScale}`);
    const list = [...runs];
    out.push("# HELP focal_run_updates Stream-state updates applied to a run (its sequence number).");
    out.push("# TYPE focal_run_updates gauge");
    for (const g of list) out.push(`focal_run_updates{run="${escapeLabel(g.run)}"} ${g.updates}`);
    out.push("# HELP focal_run_weight Focal weight of a criterion in a run's latest update.");
    out.push("# TYPE focal_run_weight gauge");
    for (const g of list) {
      if (!g.weights) continue;
      // Not for a criterion without an estimate yet: its weight there would look dominant.
      g.criteria.forEach((c, k) => {
        if (g.saturation === undefined || !Number.isNaN(g.saturation[k]!)) out.push(`focal_run_weight{run="${escapeLabel(g.run)}",criterion="${escapeLabel(c)}"} ${fmt(g.weights![k]!)}`);
      });
    }
    out.push("# HELP focal_run_saturation Stream saturation estimate (sbar) of a criterion in a run.");
    out.push("# TYPE focal_run_saturation gauge");
    for (const g of list) {
      if (!g.saturation) continue;
      g.criteria.forEach((c, k) =>
        out.push(`focal_run_saturation{run="${escapeLabel(g.run)}",criterion="${escapeLabel(c)}"} ${fmt(g.saturation![k]!)}`),
      );
    }
    return out.join("\n") + "\n";
  }
}
