/**
 * The report charts as a reader meets them (issue 12, item 7): series that lie on each other stay
 * apart (dash and staggered markers, not colour alone), legend samples match their lines, and
 * both ends of each axis carry a tick, also when the axis is fitted to the data.
 */
import { describe, expect, it } from "vitest";
import { lineChart, style } from "../../dist/report/svg.js";

const line = (n: number, f: (t: number) => number) => Array.from({ length: n }, (_, t) => [t, f(t)] as [number, number]);

describe("lineChart", () => {
  it("styles differ in dash as well as colour; i and i + 4 (dark and light blue) too", () => {
    const seen = new Set<string>();
    for (let i = 0; i < 8; i++) seen.add(`${style(i).color} ${style(i).dash}`);
    expect(seen.size).toBe(8);
    for (let i = 0; i < 4; i++) expect(style(i).dash, `style ${i} vs ${i + 4}`).not.toBe(style(i + 4).dash);
  });

  it("two identical long series: each shows its own markers, at different steps", () => {
    const pts = line(201, (t) => 0.5 + t / 1000);
    const svg = lineChart({ id: "x", title: "t", xLabel: "step", yLabel: "q", series: [{ name: "a", points: pts, styleIndex: 0 }, { name: "b", points: pts, styleIndex: 1 }] });
    const marks = [...svg.matchAll(/class="mark" (?:cx|x)="([\d.]+)"/g)].map((m) => m[1]);
    expect(marks.length).toBeGreaterThanOrEqual(14); // about 8 each
    const a = marks.slice(0, marks.length / 2), b = marks.slice(marks.length / 2);
    expect(a.filter((x) => b.includes(x))).toEqual([]);
    // Two dash patterns on the two paths.
    const dashes = [...svg.matchAll(/class="series"[^>]*?(stroke-dasharray="[^"]*")?>/g)].map((m) => m[1] ?? "solid");
    expect(new Set(dashes).size).toBe(2);
  });

  it("the legend shows a marker only for a series that draws them", () => {
    const pts = line(50, (t) => t);
    const svg = lineChart({ id: "x", title: "t", xLabel: "s", yLabel: "q", series: [{ name: "with", points: pts }, { name: "without", points: pts, markers: false }] });
    const legendMarkers = (svg.match(/<(circle|rect|path)(?! class)[^>]*fill="#(0072B2|E69F00)"\/>/g) ?? []).length;
    expect(legendMarkers).toBe(1);
  });

  it("a fitted axis ends on round ticks at both ends; a fixed one gets its ends as ticks", () => {
    const ticks = (svg: string) => [...svg.matchAll(/text-anchor="end" fill="#333">([^<]+)</g)].map((m) => m[1]);
    const fitted = lineChart({ id: "x", title: "t", xLabel: "s", yLabel: "q", series: [{ name: "a", points: line(201, (t) => 0.4926 + (0.168 * t) / 200) }] });
    const yt = ticks(fitted);
    expect(yt[0]).toBe("0.45");
    expect(yt[yt.length - 1]).toBe("0.7");
    const fixed = lineChart({ id: "y", title: "t", xLabel: "s", yLabel: "q", yDomain: [0, 0.93], series: [{ name: "a", points: line(10, (t) => t / 10) }] });
    const ft = ticks(fixed);
    expect([ft[0], ft[ft.length - 1]]).toEqual(["0", "0.93"]);
    // The x axis: 0 and the last step.
    const xt = [...fitted.matchAll(/text-anchor="middle" fill="#333">([^<]+)</g)].map((m) => m[1]);
    expect([xt[0], xt[xt.length - 1]]).toEqual(["0", "200"]);
  });
});
