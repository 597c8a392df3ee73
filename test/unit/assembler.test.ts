/** Group assembly (src/service/assembler.ts) on its own: fake clock and timers, no HTTP. */
import { describe, expect, it } from "vitest";
import { AssemblerBusy, GroupAssembler, WAIT_BUCKETS } from "../../src/service/assembler.js";

function fakeTimers() {
  let t = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let next = 1;
  return {
    now: () => t,
    setTimer: (fn: () => void, ms: number) => {
      timers.set(next, { at: t + ms, fn });
      return next++;
    },
    clearTimer: (h: unknown) => void timers.delete(h as number),
    /** Moves the clock and fires what is due. */
    advance(ms: number) {
      t += ms;
      for (const [h, x] of [...timers]) if (x.at <= t) (timers.delete(h), x.fn());
    },
    pending: () => timers.size,
  };
}

const settle = () => new Promise((r) => setTimeout(r, 0));

/** A scorer that records its calls and answers `key:index-in-group:row`. */
function recorder() {
  const calls: { run: string; key: string; rows: number[]; reason: string }[] = [];
  const score = (run: string, key: string, rows: readonly number[], reason: string) => {
    calls.push({ run, key, rows: [...rows], reason });
    return rows.map((r, i) => `${key}:${i}:${r}`);
  };
  return { calls, score };
}

describe("GroupAssembler", () => {
  it("holds rows of one key until the group is full, scores it once, answers each submitter its own row", async () => {
    const clock = fakeTimers();
    const { calls, score } = recorder();
    const a = new GroupAssembler<number, string>({ groupSize: 4, waitMs: 1000, maxHeldRows: 100, maxHeldGroups: 10, order: (x, y) => x - y, ...clock }, score);
    // Two prompts interleaved (A, B, A, B, ...), one row a request, shuffled.
    const order = [["A", 13], ["B", 21], ["A", 11], ["B", 24], ["A", 14], ["B", 22], ["A", 12], ["B", 23]] as const;
    const answers = order.map(([key, row]) => a.submit("run", [{ key, row }]));
    expect(calls).toHaveLength(2);
    expect(calls[0]).toEqual({ run: "run", key: "A", rows: [11, 12, 13, 14], reason: "full" });
    expect(calls[1]).toEqual({ run: "run", key: "B", rows: [21, 22, 23, 24], reason: "full" });
    const got = await Promise.all(answers);
    expect(got.map((x) => x[0])).toEqual(["A:2:13", "B:0:21", "A:0:11", "B:3:24", "A:3:14", "B:1:22", "A:1:12", "B:2:23"]);
    expect(a.stats()).toMatchObject({ heldRows: 0, heldGroups: 0, closed: { full: 2, timeout: 0 } });
    expect(clock.pending()).toBe(0);
  });

  it("keeps runs apart and closes a partial group when its wait ends", async () => {
    const clock = fakeTimers();
    const { calls, score } = recorder();
    const a = new GroupAssembler<number, string>({ groupSize: 3, waitMs: 500, maxHeldRows: 100, maxHeldGroups: 10, ...clock }, score);
    const p1 = a.submit("r1", [{ key: "A", row: 1 }]);
    clock.advance(200);
    const p2 = a.submit("r2", [{ key: "A", row: 2 }]);
    expect(a.stats()).toMatchObject({ heldRows: 2, heldGroups: 2 });
    clock.advance(300); // r1's group is 500 ms old
    expect(calls).toEqual([{ run: "r1", key: "A", rows: [1], reason: "timeout" }]);
    expect(await p1).toEqual(["A:0:1"]);
    clock.advance(200);
    expect(await p2).toEqual(["A:0:2"]);
    const s = a.stats();
    expect(s.closed).toMatchObject({ full: 0, timeout: 2 });
    expect(s.wait.count).toBe(2);
    expect(s.wait.sum).toBeCloseTo(1.0, 9); // two rows waited 0.5 s each
    expect(s.wait.counts[WAIT_BUCKETS.indexOf(0.5)]).toBe(2);
    expect(s.wait.counts[WAIT_BUCKETS.indexOf(0.25)]).toBe(0);
  });

  it("one request's rows may span groups and fill several; a row past a full group opens the next", async () => {
    const clock = fakeTimers();
    const { calls, score } = recorder();
    const a = new GroupAssembler<number, string>({ groupSize: 2, waitMs: 100, maxHeldRows: 100, maxHeldGroups: 10, ...clock }, score);
    const p = a.submit("r", [{ key: "A", row: 1 }, { key: "B", row: 2 }, { key: "A", row: 3 }, { key: "A", row: 4 }]);
    expect(calls.map((c) => [c.key, c.rows])).toEqual([["A", [1, 3]]]);
    const q = a.submit("r", [{ key: "B", row: 5 }]);
    expect(calls.map((c) => [c.key, c.rows])).toEqual([["A", [1, 3]], ["B", [2, 5]]]);
    clock.advance(100);
    expect(calls.map((c) => [c.key, c.rows, c.reason])).toEqual([["A", [1, 3], "full"], ["B", [2, 5], "full"], ["A", [4], "timeout"]]);
    expect(await p).toEqual(["A:0:1", "B:0:2", "A:1:3", "A:0:4"]);
    expect(await q).toEqual(["B:1:5"]);
  });

  it("refuses rows past the caps with AssemblerBusy and holds none of that request", async () => {
    const clock = fakeTimers();
    const { score } = recorder();
    const a = new GroupAssembler<number, string>({ groupSize: 4, waitMs: 2500, maxHeldRows: 3, maxHeldGroups: 2, ...clock }, score);
    void a.submit("r", [{ key: "A", row: 1 }, { key: "B", row: 2 }]);
    await expect(a.submit("r", [{ key: "C", row: 3 }])).rejects.toThrow(/2 open groups; 1 more would pass the cap of 2/);
    await expect(a.submit("r", [{ key: "A", row: 3 }, { key: "A", row: 4 }])).rejects.toBeInstanceOf(AssemblerBusy);
    const busy = await a.submit("r", [{ key: "A", row: 3 }, { key: "A", row: 4 }]).catch((e: AssemblerBusy) => e);
    expect((busy as AssemblerBusy).retryAfterSeconds).toBe(3);
    expect(a.stats()).toMatchObject({ heldRows: 2, heldGroups: 2 });
    const ok = a.submit("r", [{ key: "A", row: 3 }]); // fits: 3 rows held
    expect(a.stats().heldRows).toBe(3);
    clock.advance(2500);
    expect(await ok).toEqual(["A:1:3"]);
    expect(a.stats()).toMatchObject({ heldRows: 0, heldGroups: 0 });
  });

  it("a submitter that stopped listening still counts; a scorer error reaches every row of its group", async () => {
    const clock = fakeTimers();
    let fail = false;
    const seen: number[][] = [];
    const a = new GroupAssembler<number, number>({ groupSize: 3, waitMs: 100, maxHeldRows: 10, maxHeldGroups: 10, ...clock }, (_r, _k, rows) => {
      seen.push([...rows]);
      if (fail) throw new Error("engine refused");
      return rows.map((r) => r * 10);
    });
    void a.submit("r", [{ key: "A", row: 1 }]).catch(() => {}); // nobody awaits its answer
    const b = a.submit("r", [{ key: "A", row: 2 }]);
    const c = a.submit("r", [{ key: "A", row: 3 }]);
    expect(await b).toEqual([20]);
    expect(await c).toEqual([30]);
    expect(seen).toEqual([[1, 2, 3]]);
    fail = true;
    const d = a.submit("r", [{ key: "B", row: 4 }]);
    const e = a.submit("r", [{ key: "B", row: 5 }]);
    clock.advance(100);
    await expect(d).rejects.toThrow("engine refused");
    await expect(e).rejects.toThrow("engine refused");
    await settle();
    expect(a.stats().closed).toMatchObject({ full: 1, timeout: 1 });
  });

  it("flush scores every open group; options are checked", async () => {
    const clock = fakeTimers();
    const { calls, score } = recorder();
    const a = new GroupAssembler<number, string>({ groupSize: 8, waitMs: 60_000, maxHeldRows: 10, maxHeldGroups: 10, ...clock }, score);
    const p = a.submit("r", [{ key: "A", row: 1 }, { key: "B", row: 2 }]);
    await a.flush();
    expect(await p).toEqual(["A:0:1", "B:0:2"]);
    expect(calls.map((c) => c.reason)).toEqual(["flush", "flush"]);
    expect(clock.pending()).toBe(0);
    expect(() => new GroupAssembler({ groupSize: 0, waitMs: 1, maxHeldRows: 1, maxHeldGroups: 1 }, score)).toThrow(/groupSize must be an integer >= 1/);
    expect(() => new GroupAssembler({ groupSize: 2, waitMs: -1, maxHeldRows: 1, maxHeldGroups: 1 }, score)).toThrow(/waitMs/);
  });
});
