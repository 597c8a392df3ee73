/**
 * Limits of the service (issue 11): the work one request may cause (rows, groups, cells: 413
 * naming the limit and the number), what node:http holds (an over-limit Content-Length refused
 * before the body, bytes of bodies in flight capped, header and request timeouts), and faults
 * that must answer one request instead of crashing the process. Loopback only, bounded by counts.
 */
import * as nodeFs from "node:fs/promises";
import { mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { createEngine } from "../../dist/index.js";
import { FileStore } from "../../dist/service/file-store.js";
import { createHandler, type FetchHandler } from "../../dist/service/index.js";
import type { HandlerOptions } from "../../dist/service/handler.js";
import { serveNode } from "../../dist/service/node.js";

const IDS = Array.from({ length: 32 }, (_, k) => `c${k}`);
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function make(options: Partial<HandlerOptions> = {}): FetchHandler {
  return createHandler({ rubric: IDS.map((id) => ({ id })), createEngine, scope: "stream", ...options } as HandlerOptions);
}
async function post(h: FetchHandler, path: string, body: string, headers: Record<string, string> = {}) {
  const res = await h(new Request(`http://t${path}`, { method: "POST", headers: { "content-type": "application/json", ...headers }, body }));
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: JSON.parse(text) };
}

describe("per-request limits (rows, groups, cells)", () => {
  it("1M groups of 1 (~6 MB) is refused with 413 naming the limit and the number", async () => {
    const h = make({ scope: "group" });
    const n = 1_000_000;
    const body = `{"criteria":["c0"],"scores":[${"0.5,".repeat(n - 1)}0.5],"groupSizes":[${"1,".repeat(n - 1)}1]}`;
    expect(body.length).toBeGreaterThan(5_000_000);
    const before = process.memoryUsage().rss;
    const res = await post(h, "/v1/score", body);
    expect(res.status).toBe(413);
    expect(res.json.field).toBe("groupSizes");
    expect(res.json.detail).toBe("groupSizes: 1000000 groups in one request, more than the limit of 16384 (serve --max-groups, createHandler maxGroups); split the request");
    // no per-group output was built (a 1M-group reply takes gigabytes); the JSON itself is tens of MB
    expect(process.memoryUsage().rss - before).toBeLessThan(400 * 1024 * 1024);
  });

  it("a columnar body naming 1 of 32 criteria counts 32 cells a row", async () => {
    const h = make({ maxCells: 1000 });
    const rows = 40; // 40 values sent, 1,280 cells
    const body = JSON.stringify({ criteria: ["c0"], scores: Array(rows).fill(0.5), groupSizes: [rows] });
    const res = await post(h, "/v1/score", body);
    expect(res.status).toBe(413);
    expect(res.json.detail).toMatch(/1280 score cells \(40 rows x 32 criteria\) in one request, more than the limit of 1000 \(serve --max-cells, createHandler maxCells\)/);
    const ok = await post(h, "/v1/score", JSON.stringify({ criteria: ["c0"], scores: Array(31).fill(0.5), groupSizes: [31] }));
    expect(ok.status).toBe(200);
  });

  it("rows per request, record form and /get_reward; the state is untouched", async () => {
    const h = make({ maxRows: 8 });
    const rows = Array.from({ length: 9 }, () => ({ c0: 1 }));
    const rec = await post(h, "/v1/score", JSON.stringify({ run: "a", groups: [{ id: "g", rows }] }));
    expect(rec.status).toBe(413);
    expect(rec.json.detail).toMatch(/^groups: 9 rows in one request, more than the limit of 8 \(serve --max-rows/);
    const q = Array.from({ length: 9 }, (_, i) => `q${i}`);
    const rew = await post(h, "/get_reward?run=a", JSON.stringify({ query: q, prompts: q, labels: q.map(() => '{"c0": 1}') }));
    expect(rew.status).toBe(413);
    expect(rew.json.detail).toMatch(/^query: 9 rollouts in one request, more than the limit of 8 \(serve --max-rows/);
    expect((await h(new Request("http://t/v1/runs/a/state"))).status).toBe(404);
    const fits = await post(h, "/get_reward?run=a", JSON.stringify({ query: q.slice(1), prompts: q.slice(1), labels: q.slice(1).map(() => '{"c0": 1}') }));
    expect(fits.status).toBe(200);
  });

  it("limits are checked when the handler is made", () => {
    expect(() => make({ maxRows: 0 })).toThrow(/maxRows must be an integer >= 1, got 0/);
    expect(() => make({ maxCells: 1.5 })).toThrow(/maxCells must be an integer >= 1/);
  });
});

describe("judge values and stored answers", () => {
  it("a judge value of 1e39 (finite double, Infinity as float32) marks that rollout invalid, the batch succeeds", async () => {
    const h = make({ judge: (q) => ({ c0: q === "big" ? 1e39 : 0.5, c1: 0.25 }) });
    const res = await post(h, "/get_reward?run=j", JSON.stringify({ query: ["big", "a", "b"], prompts: ["p", "p", "p"] }));
    expect(res.status).toBe(200);
    expect(res.json.extra_logs.judge_failures).toBe(1);
    expect(res.json.extra_logs["judge_failures/invalid"]).toBe(1);
    expect(res.json.rewards).toHaveLength(3);
  });

  it("reading a stored response fails (EMFILE): that request answers 503, no unhandled rejection, the server keeps serving", async () => {
    const dir = mkdtempSync(join(tmpdir(), "focal-limits-"));
    dirs.push(dir);
    let failResp = false;
    const readFile = (async (path: Parameters<typeof nodeFs.readFile>[0], ...rest: unknown[]) => {
      // a stored response's record: resp/... keys are directories cmVzcC...
      if (failResp && /cmVzcC[^/]*\/\d+\.rec$/.test(String(path))) throw Object.assign(new Error("EMFILE: too many open files"), { code: "EMFILE" });
      return (nodeFs.readFile as (...a: unknown[]) => Promise<Buffer>)(path, ...rest);
    }) as typeof nodeFs.readFile;
    // a write held at its link keeps the run's queue busy, so the next two requests are one batch
    let gate: Promise<void> | undefined;
    let release = () => {};
    let inLink = false;
    const link = (async (a: string, b: string) => {
      inLink = true;
      if (gate) await gate;
      return nodeFs.link(a, b);
    }) as typeof nodeFs.link;
    const store = await FileStore.open(dir, { durable: false, fs: { readFile, link } });
    const h = make({ store });
    const stray: unknown[] = [];
    const onStray = (e: unknown) => stray.push(e);
    process.on("unhandledRejection", onStray);
    try {
      const body = (i: number) => JSON.stringify({ run: "r", criteria: ["c0"], scores: [i / 10, 0.5, 0.25, 1], groupSizes: [4] });
      expect((await post(h, "/v1/score", body(1), { "idempotency-key": "k1" })).status).toBe(200);
      failResp = true;
      gate = new Promise((r) => (release = r));
      inLink = false;
      const first = post(h, "/v1/score", body(3), { "idempotency-key": "k3" });
      for (let i = 0; !inLink; i++) {
        if (i > 2000) throw new Error("the write never reached its link");
        await new Promise((r) => setTimeout(r, 5));
      }
      // the retry of k1 (its answer must be read) and a new update in the same batch (its write is awaited)
      const both = Promise.all([
        post(h, "/v1/score", body(1), { "idempotency-key": "k1" }),
        post(h, "/v1/score", body(2), { "idempotency-key": "k2" }),
      ]);
      await new Promise((r) => setTimeout(r, 100));
      gate = undefined;
      release();
      expect((await first).status).toBe(200);
      const [retry, fresh] = await both;
      await new Promise((r) => setImmediate(r));
      expect(stray).toEqual([]);
      expect(retry.status).toBe(503); // the store is unavailable for this read: retry
      expect(retry.json.type).toBe("urn:focal-reward:problem:store-unavailable");
      expect(retry.json.detail).toMatch(/EMFILE/);
      expect(fresh.status).toBe(200);
      failResp = false;
      const again = await post(h, "/v1/score", body(1), { "idempotency-key": "k1" });
      expect(again.status).toBe(200);
      expect(again.headers.get("idempotent-replayed")).toBe("true");
    } finally {
      process.off("unhandledRejection", onStray);
      await h.close();
    }
  });
});

/** One raw HTTP request: headers (and `body`, possibly less than announced); resolves with the status, or "closed". */
function raw(port: number, head: string, body = ""): Promise<{ status: number | "closed"; text: string }> {
  return new Promise((resolve) => {
    const sock = connect(port, "127.0.0.1");
    let data = "";
    sock.on("data", (d) => {
      data += d;
      const m = /^HTTP\/1\.1 (\d{3})/.exec(data);
      const end = data.indexOf("\r\n\r\n");
      const len = /content-length: (\d+)/i.exec(data);
      if (m && end >= 0 && len && data.length >= end + 4 + Number(len[1])) {
        resolve({ status: Number(m[1]), text: data.slice(end + 4) });
        sock.destroy();
      }
    });
    sock.on("close", () => resolve({ status: "closed", text: data }));
    sock.on("error", () => {});
    sock.write(head + body);
  });
}

describe("node:http limits", () => {
  it("a Content-Length over --max-body answers 413 before the body is read", async () => {
    const srv = await serveNode(make({ maxBodyBytes: 1000 }), { port: 0, maxBodyBytes: 1000 });
    try {
      // only the headers are sent: the answer cannot wait for the 8 MiB announced
      const res = await raw(srv.port, "POST /v1/score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 8388608\r\n\r\n");
      expect(res.status).toBe(413);
      expect(JSON.parse(res.text)).toMatchObject({ field: "body", detail: "request body larger than 1000 bytes" });
    } finally {
      await srv.close();
    }
  });

  it("bodies in flight over all connections are capped: 503 + Retry-After past it, served again once released", async () => {
    const srv = await serveNode(make(), { port: 0, maxBodyBytes: 4000, maxInflightBytes: 6000 });
    const head = (n: number | "chunked") => `POST /v1/score HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n${n === "chunked" ? "transfer-encoding: chunked" : `content-length: ${n}`}\r\n\r\n`;
    try {
      // a client announces 3,500 bytes and sends a few: they are held
      const holder = connect(srv.port, "127.0.0.1");
      holder.on("error", () => {});
      await new Promise((r) => holder.once("connect", r));
      holder.write(head(3500) + "{");
      const second = await raw(srv.port, head(3000), "{");
      expect(second.status).toBe(503);
      expect(JSON.parse(second.text).detail).toMatch(/in flight would pass 6000 bytes \(serve --max-inflight-bytes\)/);
      // a chunked body is counted as it arrives
      const chunk = "x".repeat(2600);
      const third = await raw(srv.port, head("chunked"), `${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      expect(third.status).toBe(503);
      holder.destroy();
      await new Promise((r) => holder.once("close", r));
      // released: the same request is taken (and answered by the handler)
      const body = JSON.stringify({ criteria: ["c0"], scores: [0.5], groupSizes: [1] });
      let fourth: { status: number | "closed" } = { status: "closed" };
      for (let i = 0; i < 50 && fourth.status !== 200; i++) {
        fourth = await raw(srv.port, head(body.length), body);
        if (fourth.status !== 200) await new Promise((r) => setTimeout(r, 20));
      }
      expect(fourth.status).toBe(200);
    } finally {
      await srv.close();
    }
  });

  it("a client that never finishes its headers is cut by the header timeout", async () => {
    const srv = await serveNode(make(), { port: 0, headersTimeoutMs: 300, requestTimeoutMs: 600 });
    try {
      // generous guard only: the defaults of node:http would hold the socket 60 s and more
      const guard = new Promise<{ status: "held" }>((r) => setTimeout(() => r({ status: "held" }), 20_000).unref());
      const res = await Promise.race([raw(srv.port, "POST /v1/score HTTP/1.1\r\nhost: x\r\n"), guard]);
      expect(res.status === 408 || res.status === "closed").toBe(true);
    } finally {
      await srv.close();
    }
  });

  it("the timeouts and caps are checked", () => {
    expect(() => serveNode(make(), { port: 0, headersTimeoutMs: 2000, requestTimeoutMs: 1000 })).toThrow(/headersTimeoutMs \(2000\) must not exceed requestTimeoutMs \(1000\)/);
    expect(() => serveNode(make(), { port: 0, maxInflightBytes: 0 })).toThrow(/maxInflightBytes must be an integer >= 1/);
  });
});
