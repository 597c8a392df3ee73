/** The replay report: weights and saturation per step, diagnostics per method, ranking disagreements. */
import { grid, page, table, type Cell, type Section } from "./html.js";
import { PER_CRITERION_MAX, type MethodSummary, type ReplayResult } from "./replay.js";
import { barChart, esc, lineChart, type LineSeries } from "./svg.js";

const fx = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : "–");
const MAX_BARS = 40;
const MAX_TABLE = 80;

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
      ]) + r.notes.map((n) => `<div class="note warn">${esc(n)}</div>`).join(""),
  });

  // Diagnostics per method.
  const metricKeys = [...new Set(r.methods.flatMap((m) => Object.keys(m.metrics)))].sort();
  sections.push({
    id: "methods",
    title: "Diagnostics per method",
    html:
      `<p>Engine metrics (TRL names) averaged over the steps, plus the mean |${esc("advantage")}| and the share of groups whose advantages are all zero
(no learning signal from that prompt).</p>` +
      table(
        ["method", ...metricKeys, "mean |advantage|", "groups with zero advantage"],
        r.methods.map((m) => [m.label, ...metricKeys.map((k) => fx(m.metrics[k] ?? NaN, 4)), fx(m.meanAbsAdvantage, 4), fx(m.fracZeroAdvantageGroups, 3)]),
      ),
  });

  // Per-criterion table and bars; with many criteria, those where focal departs most from static.
  const order = r.criteria.map((_, k) => k);
  const departure = (k: number): number => Math.max(0, ...focal.map((m) => Math.abs((m.weight[k] ?? NaN) - r.staticWeight[k]!) || 0));
  order.sort((a, b) => departure(b) - departure(a) || a - b);
  const tableSel = K > MAX_TABLE ? order.slice(0, MAX_TABLE) : r.criteria.map((_, k) => k);
  const barSel = K > MAX_BARS ? order.slice(0, MAX_BARS) : r.criteria.map((_, k) => k);
  const critRows: Cell[][] = tableSel.map((k) => [
    r.criteria[k]!,
    r.judged[k]!,
    fx(r.uMean[k]!),
    fx(r.uStd[k]!),
    fx(r.fracConstant[k]!, 2),
    fx(r.staticWeight[k]!),
    ...focal.flatMap((m) => [fx(m.weight[k]!), fx(m.saturation[k]!)]),
  ]);
  const critHead = ["criterion", "rows judged", "mean u", "std u", "constant in group", "static weight", ...focal.flatMap((m) => [`weight: ${m.label}`, `saturation: ${m.label}`])];
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
      (K > MAX_TABLE || K > MAX_BARS ? `<p>${K} criteria: showing those where the focal weights depart most from the static ones.</p>` : "") +
      table(critHead, critRows) +
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
