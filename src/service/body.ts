/** Request bodies: read up to a limit (413 past it), JSON, base64. */
import { HttpError, bad } from "./problem.js";

const dec = new TextDecoder();

export async function readBody(request: Request, limit: number): Promise<Uint8Array> {
  const tooLarge = () => new HttpError(413, `request body larger than ${limit} bytes`, "body");
  const cl = request.headers.get("content-length");
  if (cl !== null && Number(cl) > limit) throw tooLarge();
  if (!request.body) return new Uint8Array(0);
  if (cl !== null) {
    const buf = new Uint8Array(await request.arrayBuffer());
    if (buf.length > limit) throw tooLarge();
    return buf;
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

export function parseJson(bytes: Uint8Array): unknown {
  if (bytes.length === 0) throw bad("body", "empty; expected a JSON object");
  try {
    return JSON.parse(dec.decode(bytes));
  } catch (e) {
    throw bad("body", `malformed JSON (${(e as Error).message})`);
  }
}

export function base64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

export function unbase64(s: string): Uint8Array {
  const b = atob(s);
  const out = new Uint8Array(b.length);
  for (let i = 0; i < b.length; i++) out[i] = b.charCodeAt(i);
  return out;
}
