/** report.html for the demo: trajectories, focal weights and saturation, the balance table, a guide. */
import type { DemoResult } from "../demo/run.js";
import { criterionHeads, gammaZeroNote, meanSd, penaltyNote, shown } from "../demo/run.js";
import type { RunRecord } from "../demo/sim.js";
import { grid, page, table, type Cell, type Section } from "./html.js";
import { esc, lineChart, type LineSeries } from "./svg.js";

const MAIN = ["weighted-mean", "focal-group", "focal-stream", "gdpo"];

/** Per step: mean, min and max over seeds of f(run, step). */
function acrossSeeds(runs: readonly RunRecord[], steps: number, f: (r: RunRecord, t: number) => number): { mean: [number, number][]; band: [number, number, number][] } {
  const mean: [number, number][] = [];
  const band: [number, number, number][] = [];
  for (let t = 0; t < steps; t++) {
    const v = runs.map((r) => f(r, t)).filter(Number.isFinite);
    if (v.length === 0) { mean.push([t, NaN]); band.push([t, NaN, NaN]); continue; }
    mean.push([t, v.reduce((a, b) => a + b, 0) / v.length]);
    band.push([t, Math.min(...v), Math.max(...v)]);
  }
  return { mean, band };
}

const fx = (v: number, d = 3): string => (Number.isFinite(v) ? v.toFixed(d) : "–");

/** A few sentences computed from this run's numbers (nothing here is written in advance). */
function findings(res: DemoResult): string {
  const st = (key: string) => res.stats.find((s) => s.key === key);
  const base = st("weighted-mean");
  if (!base) return "";
  const crit = res.sim.criteria.map((c) => c.id);
  const mu = (v: readonly number[]): number => meanSd(v)[0];
  const worstName = (s: NonNullable<ReturnType<typeof st>>): string => crit[s.finalMean.indexOf(Math.min(...s.finalMean))]!;
  const initial = res.runs["weighted-mean"]![0]!.quality.subarray(0, crit.length);
  const regressedText = (s: NonNullable<ReturnType<typeof st>>): string => {
    const r = crit.filter((_, k) => s.finalMean[k]! < initial[k]! - 0.01);
    return r.length ? `; ended below its own starting quality on ${r.map(esc).join(", ")}` : "";
  };
  const items = res.stats
    .filter((s) => s.key !== "weighted-mean" && s.key !== "focal-g0")
    .map((s) => {
      const dW = mu(s.worst) - mu(base.worst);
      const dM = mu(s.mean) - mu(base.mean);
      const dropped = crit.filter((_, k) => s.finalMean[k]! < base.finalMean[k]! - 0.01);
      return `<li><b>${esc(s.label)}</b>: worst criterion ${fx(mu(s.worst))} (${esc(worstName(s))}), ${dW >= 0 ? "+" : "−"}${fx(Math.abs(dW))} vs static; mean ${fx(mu(s.mean))}, ${dM >= 0 ? "+" : "−"}${fx(Math.abs(dM))} vs static${dropped.length ? `; lower than static on ${dropped.map(esc).join(", ")}` : ""}${regressedText(s)}.</li>`;
    });
  return `<h3>What this run shows</h3>${pairs(res)}<p>Differences of less than 0.01 are not listed. Whether a higher worst criterion is worth a lower mean is a choice this model cannot make.</p><ul><li><b>${esc(base.label)}</b>: worst criterion ${fx(mu(base.worst))} (${esc(worstName(base))}), spread ${fx(mu(base.spread))}, mean ${fx(mu(base.mean))}${regressedText(base)}.</li>${items.join("")}</ul>`;
}

/**
 * The issue-12 comparisons, as the numbers came out: the safety penalty fixed (default) or not,
 * and constant "drop" against "keep" under GRPO and under dr-grpo.
 */
function pairs(res: DemoResult): string {
  const st = (key: string) => res.stats.find((s) => s.key === key);
  const mu = (v: readonly number[]): number => meanSd(v)[0];
  const pk = res.sim.criteria.findIndex((c) => c.penalty);
  const rate = (s: NonNullable<ReturnType<typeof st>>): string => (pk < 0 ? "" : `, ${esc(res.sim.criteria[pk]!.id)} rate ${fx(shown(res.sim, pk, s.finalMean[pk]!))}`);
  const line = (key: string): string => {
    const s = st(key);
    return s ? `<b>${esc(s.label)}</b>: worst ${fx(mu(s.worst))}, mean ${fx(mu(s.mean))}${rate(s)}` : "";
  };
  const out: string[] = [];
  if (pk >= 0 && st("focal-unfixed")) {
    out.push(`<p><b>Guarded safety criterion.</b> ${["weighted-mean", "focal-group", "focal-unfixed"].map(line).filter(Boolean).join("; ")}.
The penalty is fixed by default (focal keeps its base share); "not fixed" lets focal reweight it like any other criterion.</p>`);
  }
  if (st("focal-drop") || st("focal-drop-drgrpo")) {
    out.push(`<p><b>Constant criteria dropped.</b> Under GRPO: ${[line("focal-group"), line("focal-drop")].filter(Boolean).join(" vs ")}.
Under dr-grpo: ${[line("focal-drgrpo"), line("focal-drop-drgrpo")].filter(Boolean).join(" vs ")}.</p>`);
  }
  return out.join("");
}

export function demoReport(res: DemoResult): string {
  const K = res.sim.criteria.length;
  const crit = res.sim.criteria.map((c) => c.id);
  const T = res.sim.steps;
  const label = (key: string): string => res.methods.find((m) => m.key === key)?.label ?? key;
  const main = MAIN.filter((k) => res.runs[k]);
  // One style per method in every chart: its place in the method list.
  const sty = (key: string): number => Math.max(0, res.methods.findIndex((m) => m.key === key));
  const q = (r: RunRecord, t: number, k: number): number => r.quality[t * K + k]!;
  const worstAt = (r: RunRecord, t: number): number => Math.min(...crit.map((_, k) => q(r, t, k)));
  const meanAt = (r: RunRecord, t: number): number => crit.reduce((a, _, k) => a + q(r, t, k), 0) / K;

  const sections: Section[] = [];

  sections.push({
    id: "guide",
    title: "How to read this report",
    html: `<div class="note"><p>A simulated policy is trained with reinforcement learning on a rubric of ${K} criteria
(${crit.map(esc).join(", ")}). Each rollout is scored by a noisy judge on every criterion, and the scores are turned
into one reward per rollout by the method under test; nothing else differs between runs. For a given seed every method sees the
same prompts, exploration noise and judge noise.</p>
<ul>
<li><b>True quality</b> (the y axis of most charts) is the expected score of a fresh rollout on a fresh prompt, on [0, 1],
computed exactly from the policy's skills, without judge noise. Compare methods on it, never on the focal reward (another scale).</li>
<li><b>Polarization</b> shows as a high mean with one or two criteria left low: look at the <i>worst criterion</i> and the
<i>spread</i> (best minus worst criterion), not just the mean.</li>
<li>Lines are the mean over ${res.seeds.length} seeds; shaded bands span the lowest to the highest seed.</li>
<li><b>Focal weights</b> are the coefficients the focal method gave each criterion (mean over the groups of a step); the static
weight is 1/${K} ≈ ${(1 / K).toFixed(3)} (dashed line). <b>Saturation</b> is the engine's estimate of how satisfied a criterion already is.</li>
<li>This is a mechanism model with hand-chosen parameters (see <a href="#model">the model</a> and <code>docs/simulation.md</code>),
not the paper's LLM experiments: it shows how the methods behave under these assumptions, not how large the effect is on a real model.</li>
</ul></div>`,
  });

  // Balance table.
  const rows: Cell[][] = res.stats.map((s) => {
    const worstK = s.finalMean.indexOf(Math.min(...s.finalMean));
    const [wm, wsd] = meanSd(s.worst);
    const [sm, ssd] = meanSd(s.spread);
    const [mm, msd] = meanSd(s.mean);
    return [
      s.label,
      ...s.finalMean.map((mu, k) => ({ text: `${fx(shown(res.sim, k, mu))} ± ${fx(s.finalSd[k]!)}`, cls: k === worstK ? "worst" : "" })),
      `${fx(wm)} ± ${fx(wsd)}`,
      `${fx(sm)} ± ${fx(ssd)}`,
      `${fx(mm)} ± ${fx(msd)}`,
    ];
  });
  sections.push({
    id: "balance",
    title: "Final balance",
    html: `<p>True quality per criterion after ${T} steps, mean ± standard deviation over seeds ${res.seeds.join(", ")}
(the ± is the seed-to-seed spread). <i>Worst</i> is the lowest criterion of each seed; <i>spread</i> the best minus the worst criterion.
The underlined cell is each method's lowest criterion on average.</p>` +
      table(["method", ...criterionHeads(res.sim), "worst", "spread", "mean"], rows) +
      `<p>${esc(penaltyNote(res.sim))} ${esc(gammaZeroNote(res))}.</p>` +
      findings(res),
  });

  // Worst and mean over training. `full`: the whole [0, 1] axis; else the axis fits the lines, so
  // that a difference of a few hundredths (the cost of balance in the mean) stays visible.
  const overTime = (f: (r: RunRecord, t: number) => number, id: string, title: string, keys: readonly string[], full = true): string =>
    lineChart({
      id,
      title,
      xLabel: "training step",
      yLabel: full ? "true quality [0–1]" : "true quality (axis fitted to the lines)",
      yDomain: full ? [0, 1] : undefined,
      series: keys.map((k): LineSeries => {
        const a = acrossSeeds(res.runs[k]!, T + 1, f);
        return { name: label(k), points: a.mean, band: a.band, styleIndex: sty(k) };
      }),
      legendColumns: 2,
    });
  // Paired by seed (common random numbers): method minus static on the same seed, then over seeds.
  const base = res.runs["weighted-mean"];
  const vsStatic = (f: (r: RunRecord, t: number) => number, id: string, title: string, keys: readonly string[]): string =>
    lineChart({
      id,
      title,
      xLabel: "training step",
      yLabel: "difference to static (same seed)",
      refs: [[0, "static"]],
      series: keys.filter((k) => k !== "weighted-mean").map((k): LineSeries => {
        const runs = res.runs[k]!;
        const a = acrossSeeds(runs, T + 1, (r, t) => f(r, t) - f(base!.find((b) => b.seed === r.seed)!, t));
        return { name: label(k), points: a.mean, band: a.band, styleIndex: sty(k) };
      }),
      legendColumns: 2,
    });
  sections.push({
    id: "overview",
    title: "Worst criterion and mean over training",
    html:
      `<p>The trade-off: balance lifts the worst criterion by tenths and costs the mean a few hundredths. The mean chart's axis is
fitted to its lines, and the lower two charts show each method minus the static weighted mean on the same seed
(0 = no difference), so neither difference hides in a [0, 1] axis.</p>` +
      grid([
        overTime(worstAt, "worst-over-steps", "Worst criterion, by method", main),
        overTime(meanAt, "mean-over-steps", "Mean over criteria, by method", main, false),
        ...(base ? [
          vsStatic(worstAt, "worst-vs-static", "Worst criterion minus static", main),
          vsStatic(meanAt, "mean-vs-static", "Mean over criteria minus static", main),
        ] : []),
      ]),
  });

  // What a GRPO user looks at first, per method and step (mean over seeds).
  const signalKeys = [...main, ...["focal-unfixed", "focal-drop", "focal-drgrpo", "focal-drop-drgrpo"].filter((k) => res.runs[k])];
  const signal = (field: "reward" | "rewardStd" | "fracZeroStd" | "meanAbsAdvantage", id: string, title: string, yLabel: string): string =>
    lineChart({
      id, title, xLabel: "training step", yLabel,
      series: signalKeys.map((k): LineSeries => {
        const a = acrossSeeds(res.runs[k]!, T, (r, t) => r[field][t]!);
        return { name: label(k), points: a.mean, styleIndex: sty(k) };
      }),
      legendColumns: 2,
    });
  sections.push({
    id: "signals",
    title: "Training signals: reward, reward_std, frac_reward_zero_std, mean |advantage|",
    html:
      `<p>The engine's own metrics per step (mean over seeds; TRL's names). Each method's reward is on its own scale (the focal reward
weighs the criteria with headroom, so it runs lower than the static one for the same rollouts): compare methods on true quality,
and read these for the health of the signal. <i>frac_reward_zero_std</i> is the share of groups whose rewards are all equal
(no GRPO signal there); <i>mean |advantage|</i> is the size of the step the policy takes (about 0.9 under GRPO, where every group
is z-scored; smaller and method-dependent under dr-grpo).</p>` +
      grid([
        signal("reward", "signal-reward", "reward (the method's own)", "mean reward of the step"),
        signal("rewardStd", "signal-reward-std", "reward_std", "std of the step's rewards"),
        signal("fracZeroStd", "signal-zero-std", "frac_reward_zero_std", "share of groups [0–1]"),
        signal("meanAbsAdvantage", "signal-abs-advantage", "mean |advantage|", "mean |A| over rollouts"),
      ]),
  });

  // Issue 12: the safety penalty, fixed (default) or reweighted, and constant "drop".
  const pk = res.sim.criteria.findIndex((c) => c.penalty);
  const safetyKeys = ["weighted-mean", "focal-group", "focal-unfixed"].filter((k) => res.runs[k]);
  if (pk >= 0 && safetyKeys.length > 1) {
    const id = crit[pk]!;
    sections.push({
      id: "safety",
      title: `The safety penalty (${id}): fixed or reweighted`,
      html:
        `<p>${esc(id)} is a penalty: the judge scores how unsafe a rollout is, and the rubric gives it weight −1, so it is fixed by default
(focal keeps its base share and reweights only the others). Its skill draws on the same capacity as the others, so a reward that
neglects it lets the policy trade safety for the rest. "Not fixed" opts it in to focal reweighting (<code>fixed: false</code>).</p>` +
        grid([
          lineChart({
            id: "unsafe-over-steps", title: `${id} rate over training (lower is better)`, xLabel: "training step", yLabel: `share of rollouts ${id} [0–1]`,
            series: safetyKeys.map((k): LineSeries => {
              const a = acrossSeeds(res.runs[k]!, T + 1, (r, t) => 1 - q(r, t, pk));
              return { name: label(k), points: a.mean, band: a.band, styleIndex: sty(k) };
            }),
          }),
          lineChart({
            id: "unsafe-weight", title: `Weight of ${id}`, xLabel: "training step", yLabel: "weight (sums to 1)",
            refs: [[1 / K, "static 1/K"]],
            series: safetyKeys.filter((k) => k !== "weighted-mean").map((k): LineSeries => {
              const a = acrossSeeds(res.runs[k]!, T, (r, t) => r.weights[t * K + pk]!);
              return { name: label(k), points: a.mean, band: a.band, styleIndex: sty(k) };
            }),
          }),
        ]),
    });
  }
  const dropKeys = ["focal-group", "focal-drop", "focal-drgrpo", "focal-drop-drgrpo"].filter((k) => res.runs[k]);
  if (dropKeys.length > 1) {
    sections.push({
      id: "constant",
      title: "Constant criteria: keep or drop, under GRPO and dr-grpo",
      html:
        `<p><code>constant: "drop"</code> leaves a criterion that is constant within a group (every rollout scored the same: no signal there)
out of that group's focal weights. Under GRPO's per-group std this only rescales a group's rewards; under dr-grpo (no std) it changes
the size of the group's advantages.</p>` +
        grid([
          overTime(worstAt, "drop-worst", "Worst criterion: keep vs drop", dropKeys),
          overTime(meanAt, "drop-mean", "Mean over criteria: keep vs drop", dropKeys),
        ]),
    });
  }

  // Per-criterion trajectories per method.
  sections.push({
    id: "trajectories",
    title: "Per-criterion trajectories",
    html:
      `<p>One chart per method; one line per criterion (same colour and dash for a criterion in every chart).</p>` +
      grid(
        main.map((key) =>
          lineChart({
            id: `traj-${key}`,
            title: label(key),
            xLabel: "training step",
            yLabel: "true quality [0–1]",
            yDomain: [0, 1],
            series: crit.map((c, k): LineSeries => {
              const a = acrossSeeds(res.runs[key]!, T + 1, (r, t) => q(r, t, k));
              // A penalty's line is its quality (the share of safe rollouts), as the legend says.
              return { name: res.sim.criteria[k]!.penalty ? `${c}: quality = 1 − rate` : c, points: a.mean, band: a.band, styleIndex: k };
            }),
          }),
        ),
      ),
  });

  // Focal weights and saturation.
  const focalKeys = ["focal-group", "focal-stream"].filter((k) => res.runs[k]);
  const matrixChart = (key: string, which: "weights" | "saturation"): string =>
    lineChart({
      id: `${which}-${key}`,
      title: `${which === "weights" ? "Focal weights" : "Saturation"}: ${label(key)}`,
      xLabel: "training step",
      yLabel: which === "weights" ? "weight (sums to 1)" : "saturation s [0–1]",
      yDomain: which === "weights" ? undefined : [0, 1],
      refs: which === "weights" ? [[1 / K, "static 1/K"]] : undefined,
      series: crit.map((c, k): LineSeries => {
        const a = acrossSeeds(res.runs[key]!, T, (r, t) => r[which][t * K + k]!);
        return { name: c, points: a.mean, band: a.band, styleIndex: k };
      }),
    });
  sections.push({
    id: "weights",
    title: "Focal weights and saturation over steps",
    html:
      `<p>Group scope: every prompt gets its own weights from its own rollouts (the chart averages them over the step's groups).
Stream scope: one set of weights per step from a running (EMA) saturation estimate.</p>` +
      grid(focalKeys.flatMap((k) => [matrixChart(k, "weights"), matrixChart(k, "saturation")])),
  });

  // Gamma sweep.
  const sweep = res.methods.filter((m) => m.gamma !== undefined && res.runs[m.key]).sort((a, b) => a.gamma! - b.gamma!);
  if (sweep.length > 0) {
    const stat = (key: string): (typeof res.stats)[number] => res.stats.find((s) => s.key === key)!;
    const perCrit: LineSeries[] = crit.map((c, k) => ({
      name: c,
      points: sweep.map((m) => [m.gamma!, stat(m.key).finalMean[k]!] as [number, number]),
      styleIndex: k,
      markers: true,
    }));
    const summary: LineSeries[] = [
      { name: "worst criterion", points: sweep.map((m) => [m.gamma!, meanSd(stat(m.key).worst)[0]] as [number, number]), band: sweep.map((m) => [m.gamma!, Math.min(...stat(m.key).worst), Math.max(...stat(m.key).worst)] as [number, number, number]), styleIndex: 5, markers: true },
      { name: "mean over criteria", points: sweep.map((m) => [m.gamma!, meanSd(stat(m.key).mean)[0]] as [number, number]), band: sweep.map((m) => [m.gamma!, Math.min(...stat(m.key).mean), Math.max(...stat(m.key).mean)] as [number, number, number]), styleIndex: 0, markers: true },
      { name: "spread (best − worst)", points: sweep.map((m) => [m.gamma!, meanSd(stat(m.key).spread)[0]] as [number, number]), styleIndex: 6, markers: true },
    ];
    sections.push({
      id: "gamma",
      title: "Ablation: the focal exponent γ",
      html:
        `<p>Focal, group scope, γ ∈ {${sweep.map((m) => m.gamma).join(", ")}}; γ = 0 is the static weighted mean exactly.</p>` +
        grid([
          lineChart({ id: "gamma-criteria", title: "Final quality per criterion vs γ", xLabel: "focal exponent γ (unitless)", yLabel: "true quality [0–1]", yDomain: [0, 1], series: perCrit }),
          lineChart({ id: "gamma-summary", title: "Worst, mean and spread vs γ", xLabel: "focal exponent γ (unitless)", yLabel: "true quality [0–1]", yDomain: [0, 1], series: summary }),
        ]),
    });
  }

  // The model.
  const s = res.sim;
  sections.push({
    id: "model",
    title: "The model",
    html:
      `<p>Skill θ<sub>k</sub> per criterion; a rollout's action x = θ<sub>k</sub> + σ·ε; true quality
logistic((x + β·h + c − δ<sub>k</sub>)/w<sub>k</sub>) with h shared by the criteria of a rollout and c by the rollouts of a prompt;
the judge reports round(L·clamp(quality + J<sub>k</sub>·ν, 0, 1)) (for the penalty, the bad thing: 1 − quality in place of quality). Update: θ<sub>k</sub> += lr·η<sub>k</sub>·mean(A·ε)/σ with the engine's
GRPO advantages A, then the shared capacity Σθ ≤ C is restored by lowering every skill equally. Full description: <code>docs/simulation.md</code>.</p>` +
      table(
        ["criterion", "difficulty δ", "width w", "learnability η", "judge noise J", "initial skill θ₀", "initial quality"],
        s.criteria.map((c, k) => [c.penalty ? `${c.id} (penalty)` : c.id, c.difficulty, c.width, c.learnability, c.judgeNoise, c.initialSkill, fx(res.runs[main[0]!]![0]!.quality[k]!)]),
      ) +
      table(
        ["parameter", "value"],
        [
          ["prompts (groups) per step G", s.groups],
          ["rollouts per prompt m", s.groupSize],
          ["training steps", s.steps],
          ["exploration σ", s.exploration],
          ["rollout factor β", s.rolloutFactor],
          ["prompt spread σc", s.promptSpread],
          ["capacity C (Σθ ≤ C)", s.capacity],
          ["learning rate lr", s.learningRate],
          ["judge levels L", s.judgeLevels],
          ["advantage", "GRPO (group z-score), except the dr-grpo rows"],
          ["seeds", res.seeds.join(", ")],
          ["engine backend", res.backend],
          ["wall time", `${res.seconds.toFixed(1)} s`],
        ],
      ),
  });

  return page(
    "Focal Reward demo: reward polarization in a simulated rubric-RL run",
    `${res.methods.length} methods × ${res.seeds.length} seeds × ${T} steps, ${s.groups}×${s.groupSize} rollouts per step, backend ${res.backend}.`,
    sections,
  );
}
