/**
 * A tiny static file server on 127.0.0.1 for the browser tests and the browser example.
 *   node test/runtimes/static-server.js [port]   # serves the repo: open /examples/browser/
 * `mounts` maps URL prefixes to directories; a mount with `wasmType` serves .wasm with that
 * Content-Type (to test the loader's fallback when a server sends the wrong one).
 */
import process from "node:process";
import { createReadStream, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, normalize, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".json": "application/json; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".wasm": "application/wasm",
  ".map": "application/json; charset=utf-8",
  ".ts": "text/plain; charset=utf-8",
};

/** mounts: [{ prefix: "/dist/", dir, wasmType? }], longest prefix first; root "/" last. */
export function startStaticServer({ mounts, port = 0, host = "127.0.0.1" }) {
  const sorted = [...mounts].sort((a, b) => b.prefix.length - a.prefix.length);
  const requests = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    const mount = sorted.find((m) => url.pathname.startsWith(m.prefix));
    let file;
    try {
      const rel = decodeURIComponent(url.pathname.slice(mount ? mount.prefix.length : 0));
      const dir = resolve(mount ? mount.dir : ".");
      file = normalize(join(dir, rel));
      if (file !== dir && !file.startsWith(dir + sep)) throw new Error("outside");
      if (statSync(file).isDirectory()) file = join(file, "index.html");
      statSync(file);
    } catch {
      requests.push({ path: url.pathname, status: 404 });
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      return;
    }
    const ext = extname(file);
    const type = ext === ".wasm" && mount?.wasmType ? mount.wasmType : TYPES[ext] ?? "application/octet-stream";
    requests.push({ path: url.pathname, status: 200, type });
    res.writeHead(200, { "content-type": type, "cache-control": "no-store" });
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => {
      const { port: p } = server.address();
      ok({
        origin: `http://${host}:${p}`,
        requests,
        close: () => new Promise((r) => server.close(() => r())),
      });
    });
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL("../../", import.meta.url));
  const s = await startStaticServer({ mounts: [{ prefix: "/", dir: root }], port: Number(process.argv[2] ?? 8080) });
  process.stdout.write(`serving ${root} at ${s.origin}/  (example: ${s.origin}/examples/browser/)\n`);
}
