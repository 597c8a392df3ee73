/**
 * The replay report: it only renders what src/analysis/replay.ts computed (summary, every diagnostic,
 * per-criterion tables, weights and saturation per step, ranking disagreements).
 */
import { grid, page, table, type Cell, type Section } from "./html.js";
import { PER_CRITERION_MAX, type MethodSummary, type ReplayResult } from "../analysis/replay.js";
import { barChart, esc, lineChart, type LineSeries } from "./svg.js";

const fx = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : "–");
const MAX_BARS = 40;

export function replayReport(r: ReplayResult, focalKeys: readonly string[]): string {
  const K = r.criteria.length;
  const focal = r.methods.filter((m) => focalKeys.includes(m.key));
  const sections: Section[] = [];
  const rate = r.seconds > 0 ? r.rows / r.seconds : NaN;

  sections.push({
    id: "guide",
    title: "How to read this report",
    html: `<div class="note"><p>Every training step of the log was scored by each method with the same inputs. Nothing here is a
training run: the policy that produced the log did not see these rewards. The report shows how the methods would have
weighted the criteria and ranked the rollouts.</p><ul>
<li><b>Weight</b>: the coefficient a method gave a criterion (normalized to sum to 1 over the criteria judged in a group);
<b>static</b> is the rubric's own weight. Focal weights above static mean the method pushes that criterion.</li>
<li><b>Saturation</b> (focal only): the estimate of how satisfied a criterion already is, on [0, 1]; high saturation → low focal weight.</li>
<li><b>Constant in group</b>: share of groups where every rollout got the same score on a criterion; such a criterion carries
no learning signal under GRPO whatever its weight.</li>
<li><b>Ranking disagreement</b>: within each group, the rollouts are ordered by each method's ${r.rankBy}; Kendall τ = 1 means the same
order, −1 the reverse. Groups where the top rollout changes are where the choice of method changes what gets reinforced.</li>
<li>Scores are normalized to u ∈ [0, 1] with each criterion's scale; penalty criteria are flipped (1 − u).</li>
</ul></div>`,
  });

  sections.push({
    id: "summary",
    title: "Log",
    html:
      table(["", "value"], [
        ["source", r.source || "–"],
        ["rows (valid)", `${r.rows} (${r.validRows})`],
        ["training steps", r.steps],
        ["groups", r.groups],
        ["criteria", K],
        ["methods", r.methods.map((m) => m.label).join(", ")],
        ["engine backend", r.backend],
        ["time", `${r.seconds.toFixed(2)} s (${Number.isFinite(rate) ? Math.round(rate).toLocaleString("en-US") : "–"} rows/s)`],
      ]) + [...outOfScaleNotes(r), ...r.notes].map((n) => `<div class="note warn">${esc(n)}</div>`).join(""),
  });

  // Diagnostics per method: a short summary, then every scalar diagnostic (methods as columns).
  const SUMMARY = ["reward", "reward_std", "frac_reward_zero_std", "focal/mean_abs_advantage"];
  const scalar: string[] = [];
  for (const m of r.methods) for (const k of Object.keys(m.metrics)) if (!isPerCriterion(k) && !scalar.includes(k)) scalar.push(k);
  sections.push({
    id: "methods",
    title: "Diagnostics per method",
    html:
      `<p>Over the whole log (every valid row, every group), one row per method: the mean reward and its std, the share of
groups whose rewards are all equal, the mean |advantage| and the share of groups (of two or more valid rows) whose
advantages are all zero (no learning signal from that prompt). The table after it lists every diagnostic, one row each.</p>` +
      table(
        ["method", ...SUMMARY, "groups with zero advantage"],
        r.methods.map((m) => [m.label, ...SUMMARY.map((k) => fx(m.metrics[k] ?? NaN, 4)), fx(m.fracZeroAdvantageGroups, 3)]),
      ) +
      `<h3>Every diagnostic</h3><p>${scalar.length} diagnostics (names as in <code>focal-reward compare</code>, docs/aggregators.md), methods as columns;
the per-criterion ones are in the criteria tables below.</p>` +
      table(["diagnostic", ...r.methods.map((m) => m.label)], scalar.map((k) => [k, ...r.methods.map((m) => fx(m.metrics[k] ?? NaN, 4))])),
  });

  // Per-criterion tables (every criterion, rubric order) and bars (those where focal departs most).
  const order = r.criteria.map((_, k) => k);
  const departure = (k: number): number => Math.max(0, ...focal.map((m) => Math.abs((m.weight[k] ?? NaN) - r.staticWeight[k]!) || 0));
  order.sort((a, b) => departure(b) - departure(a) || a - b);
  const barSel = K > MAX_BARS ? order.slice(0, MAX_BARS) : r.criteria.map((_, k) => k);
  const dataRows: Cell[][] = r.criteria.map((c, k) => [c, r.judged[k]!, fx(r.uMean[k]!), fx(r.uStd[k]!), fx(r.fracConstant[k]!, 2), fx(r.staticWeight[k]!)]);
  const PER = ["weight", "saturation", "weight_on_constant", "unexplored", "suppressed"];
  const methodTables = r.methods.map((m) =>
    `<h3>${esc(m.label)}</h3>` +
    table(["criterion", ...PER], r.criteria.map((c) => [c, ...PER.map((kind) => fx(m.metrics[`focal/${c}/${kind}`] ?? NaN))])),
  ).join("");
  const barCats = barSel.map((k) => r.criteria[k]!);
  const weightBars = barChart({
    id: "weights-by-criterion",
    title: "Mean weight per criterion",
    xLabel: "weight (share of the reward, sums to 1 per group)",
    categories: barCats,
    series: [
      { name: "static (rubric)", values: barSel.map((k) => r.staticWeight[k]!), styleIndex: 6 },
      ...focal.map((m, j) => ({ name: m.label, values: barSel.map((k) => m.weight[k]!), styleIndex: j })),
    ],
  });
  const satBars = barChart({
    id: "saturation-by-criterion",
    title: "Mean saturation and mean score per criterion",
    xLabel: "on the normalized score scale [0–1]",
    xDomain: [0, 1],
    categories: barCats,
    series: [
      { name: "mean score u", values: barSel.map((k) => r.uMean[k]!), styleIndex: 6 },
      ...focal.map((m, j) => ({ name: `saturation: ${m.label}`, values: barSel.map((k) => m.saturation[k]!), styleIndex: j })),
    ],
  });
  sections.push({
    id: "criteria",
    title: "Criteria: weights and saturation",
    html:
      `<p>Every criterion, in rubric order. First the data (the same for every method): valid rows where it was judged,
mean and std of the normalized score u, the share of groups where u is constant and the rubric's static weight; then, per
method, the mean weight and saturation over the groups where it was judged, the share of its weight that went to groups
where it was constant, the share of groups where no rollout satisfied it (unexplored), and the share of rollouts that
satisfy it without a positive advantage (suppressed).</p>` +
      table(["criterion", "rows judged", "mean u", "std u", "constant in group", "static weight"], dataRows) +
      methodTables +
      (K > MAX_BARS ? `<p>The charts show the ${MAX_BARS} of ${K} criteria whose focal weight departs most from the static one.</p>` : "") +
      grid([weightBars, satBars]),
  });

  // Per-step charts.
  const stepCharts: string[] = [];
  for (const [j, m] of focal.entries()) stepCharts.push(...stepChartsFor(r, m, j));
  if (stepCharts.length === 0) {
    const m = r.methods[0]!;
    stepCharts.push(...stepChartsFor(r, m, 0).slice(0, 1));
  }
  sections.push({
    id: "steps",
    title: "Weights and saturation per step",
    html:
      `<p>One point per training step (long logs are averaged into at most a few hundred buckets).${K <= PER_CRITERION_MAX ? " One line per criterion." : " Too many criteria for one line each: the lines are the smallest and largest weight of a group and the mean saturation, averaged over the groups of a step."}</p>` +
      grid(stepCharts),
  });

  // Rankings.
  const pairName = (a: string, b: string): string => `${label(r, a)} vs ${label(r, b)}`;
  const hist: LineSeries[] = r.pairs.filter((p) => p.groups > 0).map((p, j) => ({
    name: pairName(p.a, p.b),
    points: p.tauHist.map((c, b) => [-0.95 + 0.1 * b, c / p.groups] as [number, number]),
    styleIndex: j,
    markers: true,
  }));
  const exRows: Cell[][] = r.examples.map((e) => [
    e.step,
    e.group,
    fx(e.tau, 2),
    pairName(e.pair[0], e.pair[1]),
    { html: e.lines.map((l, i) => `line ${l}: direct ${fx(e.direct[i]!, 3)}, ranks ${e.ranks.map((rk) => rk[i]).join("/")}`).map(esc).join("<br>"), cls: "l" },
  ]);
  sections.push({
    id: "rankings",
    title: "Where the methods disagree on rankings",
    html:
      (r.pairs.length === 0
        ? `<p>Only one method: nothing to compare.</p>`
        : table(
            ["methods", "groups compared", "mean Kendall τ", "order differs", "top rollout differs"],
            r.pairs.map((p) => [pairName(p.a, p.b), p.groups, fx(p.meanTau), fx(p.fracOrderDiffers), fx(p.fracTopDiffers)]),
          ) +
          grid([
            lineChart({
              id: "tau-histogram",
              title: `Kendall τ between methods' ${r.rankBy} orders within a group`,
              xLabel: "Kendall τ-b (bins of 0.1; 1 = same order)",
              yLabel: "share of groups",
              xDomain: [-1, 1],
              series: hist,
              legendColumns: 1,
            }),
          ]) +
          (r.examples.length > 0
            ? `<h3>Groups with the strongest disagreement</h3><p>Ranks are 1 = best, in the order ${r.methods.map((m) => esc(m.label)).join(" / ")}; <i>direct</i> is the static weighted-mean reward.</p>` +
              table(["step", "group", "lowest τ", "between", "rows"], exRows, 5)
            : `<p>No group where the methods order the rollouts differently.</p>`)),
  });

  return page(
    "Focal Reward replay report",
    `${r.source || "reward log"}: ${r.rows} rows, ${r.steps} steps, ${K} criteria; methods: ${r.methods.map((m) => m.label).join(", ")}.`,
    sections,
  );
}

function isPerCriterion(name: string): boolean {
  return name.startsWith("rewards/") || (name.startsWith("focal/") && name.split("/").length > 2);
}

function label(r: ReplayResult, key: string): string {
  return r.methods.find((m) => m.key === key)?.label ?? key;
}

function stepChartsFor(r: ReplayResult, m: MethodSummary, j: number): string[] {
  const K = r.criteria.length;
  if (m.perCriterion) {
    const pc = m.perCriterion;
    return [
      lineChart({
        id: `step-weights-${m.key}`,
        title: `Weights per step: ${m.label}`,
        xLabel: "training step (index in the log)",
        yLabel: "weight (sums to 1)",
        series: r.criteria.map((c, k): LineSeries => ({ name: c, points: pc.series(k), styleIndex: k })),
        integerX: true,
      }),
      lineChart({
        id: `step-saturation-${m.key}`,
        title: `Saturation per step: ${m.label}`,
        xLabel: "training step (index in the log)",
        yLabel: "saturation s [0–1]",
        yDomain: [0, 1],
        series: r.criteria.map((c, k): LineSeries => ({ name: c, points: pc.series(K + k), styleIndex: k })),
        integerX: true,
      }),
    ];
  }
  return [
    lineChart({
      id: `step-summary-${m.key}`,
      title: `Weights and saturation per step: ${m.label}`,
      xLabel: "training step (index in the log)",
      yLabel: "weight / saturation [0–1]",
      series: [
        { name: "smallest weight in a group", points: m.summary.series(0), styleIndex: 2 + j * 3 },
        { name: "largest weight in a group", points: m.summary.series(1), styleIndex: 1 + j * 3 },
        { name: "mean saturation", points: m.summary.series(2), styleIndex: 0 + j * 3 },
      ],
      integerX: true,
    }),
  ];
}

/** One note per criterion with scores outside its scale (clamped into it). */
function outOfScaleNotes(r: ReplayResult): string[] {
  return r.outOfScale.map((c) => `criterion '${c.id}': ${c.count} scores lie outside its scale [${c.scale[0]}, ${c.scale[1]}] and were clamped into it (without a rubric every scale is [0, 1]: pass --rubric with the right scales; --out-of-scale error refuses them).`);
}
