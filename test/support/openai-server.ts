/**
 * A local OpenAI-compatible chat-completions server for the judge's tests, on 127.0.0.1 port 0.
 * It checks requests the way the real servers do (model, messages, temperature, seed,
 * response_format with a json_schema that satisfies OpenAI's strict-mode rules) and answers in
 * the real response shape (`chat.completion`, choices[0].message.content, finish_reason, usage;
 * errors as {"error": {message, type, param, code}}).
 *
 * Its "model" grades deterministically: it reads the criteria from the user message (ids and
 * allowed verdicts, as a model reads them) and takes each verdict from a marker `[id=verdict]`
 * in the response text (none: the first, lowest verdict). With a schema it answers bare JSON;
 * without one it wraps the JSON in prose and a code fence, as plain chat models do.
 * Faults are queued with `server.next(...)` and consumed one per request, before the grader.
 */
import { type IncomingMessage, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";

export interface ChatRequest {
  model: string;
  messages: { role: string; content: string }[];
  temperature?: number;
  seed?: number;
  response_format?: { type: string; json_schema?: { name: string; strict?: boolean; schema: Record<string, unknown> } };
  max_tokens?: number;
  stream?: boolean;
  [key: string]: unknown;
}

export type Fault =
  /** Answer this HTTP status with an OpenAI error body (and headers, e.g. retry-after). */
  | { status: number; message?: string; headers?: Record<string, string> }
  /** Answer 200 with this message content (malformed, incomplete, ...). */
  | { content: string; finishReason?: string }
  /** Never answer (until the client gives up). */
  | { hang: true }
  /** Cut the connection without an answer. */
  | { drop: true };

export interface ServerOptions {
  /** Whether response_format json_schema is accepted (false: 400, like servers without it). Default true. */
  schema?: boolean;
  /** Required bearer token. Default: none. */
  apiKey?: string;
  /** Hold each answer until this many requests are in flight (or `holdMs` passed). Default 0. */
  holdUntil?: number;
  holdMs?: number;
}

export interface OpenAiServer {
  /** Base URL, ending in /v1. */
  url: string;
  /** Every request received (valid or not), in arrival order, with its arrival time. */
  requests: { body: ChatRequest; at: number; authorization: string | undefined }[];
  /** Most requests in flight at once. */
  peak: number;
  next(...faults: Fault[]): void;
  close(): Promise<void>;
}

class BadRequest extends Error {
  constructor(
    message: string,
    readonly param: string | null,
  ) {
    super(message);
  }
}

/** OpenAI strict mode: every object lists all its properties in `required` and sets additionalProperties false. */
function checkStrict(schema: unknown, path: string): void {
  if (schema === null || typeof schema !== "object") throw new BadRequest(`${path}: schema must be an object`, "response_format");
  const s = schema as Record<string, unknown>;
  if (s.type === "object") {
    const props = (s.properties ?? {}) as Record<string, unknown>;
    if (s.additionalProperties !== false) throw new BadRequest(`Invalid schema for response_format: In context=${path}, 'additionalProperties' is required to be supplied and to be false.`, "response_format");
    const req = Array.isArray(s.required) ? s.required : [];
    const missing = Object.keys(props).filter((k) => !req.includes(k));
    if (missing.length) throw new BadRequest(`Invalid schema for response_format: In context=${path}, 'required' is required to include every key in properties. Missing '${missing[0]}'.`, "response_format");
    for (const [k, v] of Object.entries(props)) checkStrict(v, `${path}.${k}`);
  } else if (s.type === "array") checkStrict(s.items, `${path}[]`);
  else if (s.type !== "string" && s.type !== "number" && s.type !== "integer" && s.type !== "boolean") {
    throw new BadRequest(`${path}: unsupported type ${JSON.stringify(s.type)}`, "response_format");
  }
}

function validate(body: unknown, schemaSupported: boolean): ChatRequest {
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new BadRequest("We could not parse the JSON body of your request.", null);
  const b = body as ChatRequest;
  if (typeof b.model !== "string" || b.model === "") throw new BadRequest("you must provide a model parameter", "model");
  if (!Array.isArray(b.messages) || b.messages.length === 0) throw new BadRequest("'messages' must be a non-empty array", "messages");
  for (const [i, m] of b.messages.entries()) {
    if (!["system", "user", "assistant", "developer"].includes(m?.role)) throw new BadRequest(`Invalid value for 'messages[${i}].role'`, `messages[${i}].role`);
    if (typeof m.content !== "string") throw new BadRequest(`Invalid type for 'messages[${i}].content'`, `messages[${i}].content`);
  }
  if (b.temperature !== undefined && (typeof b.temperature !== "number" || b.temperature < 0 || b.temperature > 2)) throw new BadRequest("temperature must be in [0, 2]", "temperature");
  if (b.seed !== undefined && !Number.isInteger(b.seed)) throw new BadRequest("seed must be an integer", "seed");
  if (b.stream === true) throw new BadRequest("this test server does not stream", "stream");
  const rf = b.response_format;
  if (rf !== undefined) {
    if (!["text", "json_object", "json_schema"].includes(rf?.type)) throw new BadRequest(`Invalid value for 'response_format.type': ${JSON.stringify(rf?.type)}`, "response_format.type");
    if (rf.type === "json_schema") {
      if (!schemaSupported) throw new BadRequest("response_format of type 'json_schema' is not supported by this server", "response_format");
      const js = rf.json_schema;
      if (!js || typeof js.name !== "string" || !/^[a-zA-Z0-9_-]{1,64}$/.test(js.name)) throw new BadRequest("response_format.json_schema.name must match ^[a-zA-Z0-9_-]{1,64}$", "response_format.json_schema.name");
      if (js.strict !== undefined && typeof js.strict !== "boolean") throw new BadRequest("response_format.json_schema.strict must be a boolean", "response_format.json_schema.strict");
      if (js.strict) checkStrict(js.schema, "(root)");
    }
  }
  return b;
}

/** The prompt's and the response's sections of the user message: an opening tag to its own closing tag. */
const SECTION = /<((?:prompt|response)(?:-\d+)?)>\n([\s\S]*?)\n<\/\1>/g;

/** The criteria as the model reads them from the user message (outside the sections): ids and allowed verdicts. */
export function readCriteria(message: string): { id: string; choices: string[] }[] {
  const user = message.replace(SECTION, "");
  const out: { id: string; choices: string[] }[] = [];
  const re = /^- id: ("(?:[^"\\]|\\.)*")\n {2}statement: .*\n {2}allowed verdicts \(lowest to highest\): (.*)$/gm;
  for (let m = re.exec(user); m; m = re.exec(user)) {
    out.push({ id: JSON.parse(m[1]!) as string, choices: JSON.parse(`[${m[2]}]`) as string[] });
  }
  return out;
}

/**
 * The deterministic grader: verdicts from `[id=verdict]` markers in the response; a response
 * containing `[judge:refuse]` gets a prose refusal instead of JSON (a model going off script).
 */
export function grade(body: ChatRequest): string {
  const user = body.messages.find((m) => m.role === "user")?.content ?? "";
  const response = [...user.matchAll(SECTION)].find((m) => m[1]!.startsWith("response"))?.[2] ?? "";
  if (response.includes("[judge:refuse]")) return "Sorry, I cannot grade this response.";
  const verdicts: Record<string, { reason: string; verdict: string }> = {};
  for (const c of readCriteria(user)) {
    const marker = new RegExp(`\\[${c.id.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}=([^\\]]+)\\]`).exec(response);
    const verdict = marker && c.choices.includes(marker[1]!) ? marker[1]! : c.choices[0]!;
    verdicts[c.id] = { reason: marker ? `The response is marked ${verdict} for ${c.id}.` : `Nothing in the response shows ${c.id}.`, verdict };
  }
  return JSON.stringify({ verdicts });
}

export async function startOpenAiServer(options: ServerOptions = {}): Promise<OpenAiServer> {
  const schemaSupported = options.schema ?? true;
  const faults: Fault[] = [];
  const requests: OpenAiServer["requests"] = [];
  let inflight = 0;
  let peak = 0;
  let id = 0;
  const held: (() => void)[] = [];

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    if (res.destroyed) return;
    res.writeHead(status, { "content-type": "application/json", ...headers });
    res.end(JSON.stringify(body));
  };
  const error = (res: ServerResponse, status: number, message: string, param: string | null, headers?: Record<string, string>) =>
    send(res, status, { error: { message, type: status === 429 ? "rate_limit_exceeded" : status >= 500 ? "server_error" : "invalid_request_error", param, code: null } }, headers);

  const hold = () =>
    new Promise<void>((resolve) => {
      if (!options.holdUntil || inflight >= options.holdUntil) {
        for (const h of held.splice(0)) h();
        return resolve();
      }
      held.push(resolve);
      setTimeout(resolve, options.holdMs ?? 200);
    });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const url = new URL(req.url ?? "/", "http://x");
    if (req.method !== "POST" || url.pathname !== "/v1/chat/completions") return error(res, 404, `Unknown request URL: ${req.method} ${url.pathname}`, null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      parsed = undefined;
    }
    requests.push({ body: parsed as ChatRequest, at: Date.now(), authorization: req.headers.authorization });
    if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
      return error(res, 401, "Incorrect API key provided", null);
    }
    let body: ChatRequest;
    try {
      body = validate(parsed, schemaSupported);
    } catch (e) {
      if (e instanceof BadRequest) return error(res, 400, e.message, e.param);
      throw e;
    }
    await hold();
    const fault = faults.shift();
    if (fault && "hang" in fault) return; // the client's timeout ends it
    if (fault && "drop" in fault) {
      req.socket.destroy();
      return;
    }
    if (fault && "status" in fault) return error(res, fault.status, fault.message ?? `fault ${fault.status}`, null, fault.headers);
    const structured = body.response_format?.type === "json_schema";
    const content = fault && "content" in fault ? fault.content : structured ? grade(body) : `Here is my grading.\n\n\`\`\`json\n${grade(body)}\n\`\`\`\n`;
    send(res, 200, {
      id: `chatcmpl-${++id}`,
      object: "chat.completion",
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      system_fingerprint: "fp_focal_test",
      choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, logprobs: null, finish_reason: (fault && "content" in fault && fault.finishReason) || "stop" }],
      usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 },
    });
  }

  const server = createServer((req, res) => {
    inflight++;
    peak = Math.max(peak, inflight);
    let done = false;
    const finish = () => {
      if (!done) {
        done = true;
        inflight--;
      }
    };
    res.on("close", finish);
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) error(res, 500, String(e), null);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    get peak() {
      return peak;
    },
    next: (...f: Fault[]) => faults.push(...f),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
