/**
 * node:http adapter for the fetch handler (Node 20; also Bun). Bodies are read into memory up to
 * the handler's limit (one byte more, so the handler answers 413 itself); a Content-Length over
 * it answers 413 before any of the body is read. The bytes of bodies held across all connections
 * (read, or announced by Content-Length, until their request is answered) are capped: past the
 * cap a request answers 503 + Retry-After. Slow clients are cut by the header and request
 * timeouts. Responses are written in one piece. `close()` is the graceful shutdown: stop accepting, let in-flight requests
 * finish, then close the handler (its queued state updates and its store).
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { type AddressInfo, Server as NetServer } from "node:net";
import type { FetchHandler } from "./handler.js";
import { problem, problemBody } from "./problem.js";

export interface NodeServeOptions {
  /** Default 8787; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1 (loopback only); "0.0.0.0" to serve the network. */
  host?: string;
  /** Same limit as the handler's (default 8 MiB). */
  maxBodyBytes?: number;
  /** Longest wait for in-flight requests on close before their sockets are cut. Default 10000 ms. */
  shutdownTimeoutMs?: number;
  /** Bytes of request bodies held at once across all connections; past it 503. Default 128 MiB. */
  maxInflightBytes?: number;
  /** Time for a client to send the request's headers. Default 10000 ms. */
  headersTimeoutMs?: number;
  /** Time for a client to send the whole request (headers and body). Default 60000 ms. */
  requestTimeoutMs?: number;
}

export const NODE_LIMITS = { maxInflightBytes: 128 * 1024 * 1024, headersTimeoutMs: 10_000, requestTimeoutMs: 60_000 } as const;

export interface NodeServer {
  server: Server;
  url: string;
  port: number;
  /** Graceful shutdown; resolves once the handler's state is flushed. */
  close(): Promise<void>;
}

function toRequest(req: IncomingMessage, body: Buffer | undefined): Request {
  const headers = new Headers();
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    try {
      headers.append(raw[i]!, raw[i + 1]!);
    } catch {
      // a header value the fetch API refuses: drop it
    }
  }
  const init: RequestInit = { method: req.method ?? "GET", headers };
  if (body !== undefined && req.method !== "GET" && req.method !== "HEAD") {
    init.body = new Uint8Array(body.buffer, body.byteOffset, body.length) as Uint8Array<ArrayBuffer>;
  }
  return new Request(new URL(req.url ?? "/", "http://localhost"), init);
}

/** Quiet time (no request in flight) before the remaining idle connections are cut. */
const QUIET_MS = 200;
const netClose = NetServer.prototype.close;

export function serveNode(handler: FetchHandler, options: NodeServeOptions = {}): Promise<NodeServer> {
  const limit = options.maxBodyBytes ?? 8 * 1024 * 1024;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 10_000;
  const maxInflightBytes = options.maxInflightBytes ?? NODE_LIMITS.maxInflightBytes;
  const headersTimeout = options.headersTimeoutMs ?? NODE_LIMITS.headersTimeoutMs;
  const requestTimeout = options.requestTimeoutMs ?? NODE_LIMITS.requestTimeoutMs;
  for (const [name, v] of [["maxBodyBytes", limit], ["maxInflightBytes", maxInflightBytes], ["headersTimeoutMs", headersTimeout], ["requestTimeoutMs", requestTimeout]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`serveNode: ${name} must be an integer >= 1, got ${String(v)}`);
  }
  if (headersTimeout > requestTimeout) throw new RangeError(`serveNode: headersTimeoutMs (${headersTimeout}) must not exceed requestTimeoutMs (${requestTimeout})`);
  let held = 0;
  let inflight = 0;
  let closing = false;
  let drained: (() => void) | undefined;

  /** Answers without reading the body, and closes the connection (the unread body is not parsed as a request). */
  function refuse(res: ServerResponse, status: number, detail: string, headers: Record<string, string> = {}): void {
    const out = problemBody(status, detail);
    res.writeHead(status, { "content-type": "application/problem+json", "content-length": String(Buffer.byteLength(out)), connection: "close", ...headers });
    res.end(out);
  }

  async function onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    inflight++;
    // Bytes this request holds: its announced length up front, else what arrived.
    let mine = 0;
    try {
      const cl = req.headers["content-length"];
      const announced = cl === undefined ? 0 : Number(cl);
      // Over the limit by its Content-Length: the handler answers 413 from the header alone (and
      // counts it); the body is discarded as it arrives, never held, so the client can read the answer.
      const early = announced > limit;
      if (early) req.resume();
      if (!early && held + announced > maxInflightBytes) {
        return refuse(res, 503, `request bodies in flight would pass ${maxInflightBytes} bytes (serve --max-inflight-bytes); retry`, { "retry-after": "1" });
      }
      mine = early ? 0 : announced;
      held += mine;
      let over = false;
      let busy = false;
      const body = early ? undefined : await new Promise<Buffer | undefined>((resolve, reject) => {
        const chunks: Buffer[] = [];
        let total = 0;
        const done = () => resolve(chunks.length === 0 ? undefined : chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
        req.on("data", (chunk: Buffer) => {
          if (over || busy) return;
          total += chunk.length;
          if (total > mine) {
            if (held + (total - mine) > maxInflightBytes) {
              busy = true;
              req.pause();
              resolve(undefined);
              return;
            }
            held += total - mine;
            mine = total;
          }
          chunks.push(chunk);
          if (total > limit) {
            // Keep the first limit+1 bytes (the handler answers 413) and read no more.
            over = true;
            req.pause();
            done();
          }
        });
        req.on("end", done);
        req.on("error", reject);
      });
      if (busy) return refuse(res, 503, `request bodies in flight passed ${maxInflightBytes} bytes (serve --max-inflight-bytes); retry`, { "retry-after": "1" });
      let request: Request | undefined;
      try {
        request = toRequest(req, body);
      } catch {
        // `GET http://[bad/` and the like: no URL to route
      }
      const response = request ? await handler(request) : problem(400, `the request target is not a valid URL: ${JSON.stringify(req.url)}`, "url");
      const out = Buffer.from(await response.arrayBuffer());
      const headers: Record<string, string> = {};
      response.headers.forEach((v, k) => (headers[k] = v));
      headers["content-length"] = String(out.length);
      if (closing || over) headers.connection = "close";
      res.writeHead(response.status, headers);
      res.end(out);
    } catch (e) {
      if (!res.headersSent) {
        res.writeHead(500, { "content-type": "application/problem+json", connection: "close" });
        res.end(JSON.stringify({ type: "about:blank", title: "Internal Server Error", status: 500, detail: String(e) }));
      } else res.destroy();
    } finally {
      held -= mine;
      inflight--;
      if (inflight === 0 && drained) drained();
    }
  }

  const server = createServer({ keepAliveTimeout: 5_000, headersTimeout, requestTimeout, connectionsCheckingInterval: Math.min(Math.max(headersTimeout / 4, 100), 5_000) }, (req, res) => void onRequest(req, res));
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 8787, options.host ?? "127.0.0.1", () => {
      server.off("error", reject);
      const addr = server.address() as AddressInfo;
      const host = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
      let closed: Promise<void> | undefined;
      resolve({
        server,
        port: addr.port,
        url: `http://${host}:${addr.port}`,
        close: () =>
          (closed ??= (async () => {
            closing = true;
            // Requests held for their group (--group-size) are answered now, with the groups as they are.
            void handler.flush();
            // Stop accepting connections, but (unlike http.Server#close) keep the open ones: a
            // request already sent on one is served (answered with Connection: close).
            const stopped = new Promise<void>((r) => netClose.call(server, () => r()));
            const deadline = Date.now() + shutdownTimeoutMs;
            let quietSince = inflight === 0 ? Date.now() : Infinity;
            while (Date.now() < deadline) {
              if (inflight > 0) {
                await Promise.race([
                  new Promise<void>((r) => (drained = r)),
                  new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - Date.now())).unref()),
                ]);
                drained = undefined;
                quietSince = Date.now();
              } else if (Date.now() - quietSince >= QUIET_MS) break;
              else await new Promise((r) => setTimeout(r, 10));
            }
            server.closeAllConnections();
            await stopped;
            await handler.close();
          })()),
      });
    });
  });
}

export { FileStore, type FileStoreOptions } from "./file-store.js";
