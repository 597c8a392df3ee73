/**
 * The service conformance script: one sequence of requests (stream state across calls, idempotent
 * replays, problem+json rejections, 404/405, the snapshot) that every runtime and store must
 * answer with the same bytes as the handler in Node.
 */

export const OPTIONS = {
  rubric: { criteria: [{ id: "accuracy", weight: 2 }, { id: "format", rule: { json: true } }, { id: "toxicity", weight: -1 }] },
  scope: "stream",
  judge: "rules",
};

/** The requests every runtime answers, in order. */
export const STEPS: { method: string; path: string; body?: unknown; headers?: Record<string, string> }[] = [
  { method: "GET", path: "/healthz" },
  { method: "POST", path: "/v1/score", body: { run: "rt", step: 1, groups: [{ id: "a", rows: [{ accuracy: 1, format: 0, toxicity: 0 }, { accuracy: 0.2, format: 1 }] }, { id: "b", rows: [{ accuracy: 0.5 }, { accuracy: 0.7, toxicity: 1 }] }] } },
  { method: "POST", path: "/v1/score", body: { run: "rt", step: 2, criteria: ["format", "accuracy"], scores: [1, 0.3, 0, 0.9, 1, 1, null, 0.1], groupSizes: [2, 2] }, headers: { "idempotency-key": "s2" } },
  { method: "POST", path: "/v1/score", body: { run: "rt", step: 2, criteria: ["format", "accuracy"], scores: [1, 0.3, 0, 0.9, 1, 1, null, 0.1], groupSizes: [2, 2] }, headers: { "idempotency-key": "s2" } },
  { method: "POST", path: "/get_reward?run=rt", body: { query: ['Q {"x": 1}', "Q nope", "R {}", "R ["], prompts: ["Q", "Q", "R", "R"] } },
  { method: "POST", path: "/v1/score", body: '{"run":"rt","groups":[{"id":"g","rows":[{"accuracy":1e999}]}]}' },
  { method: "POST", path: "/v1/score", body: { run: "rt", criteria: ["wit"], scores: [1], groupSizes: [1] } },
  { method: "GET", path: "/v1/score" },
  { method: "GET", path: "/nowhere" },
  { method: "GET", path: "/v1/runs/rt/state", headers: { accept: "application/json" } },
];

export interface Answer {
  status: number;
  replayed: string | null;
  type: string | null;
  body: string;
}

export async function play(send: (req: Request) => Promise<Response>): Promise<Answer[]> {
  const out: Answer[] = [];
  for (const s of STEPS) {
    const init: RequestInit = { method: s.method, headers: { "content-type": "application/json", ...s.headers } };
    if (s.body !== undefined) init.body = typeof s.body === "string" ? s.body : JSON.stringify(s.body);
    const res = await send(new Request(`http://127.0.0.1${s.path}`, init));
    out.push({ status: res.status, replayed: res.headers.get("idempotent-replayed"), type: res.headers.get("content-type"), body: await res.text() });
  }
  return out;
}

export function viaUrl(base: string) {
  return async (req: Request) => {
    const u = new URL(req.url);
    return fetch(`${base}${u.pathname}${u.search}`, { method: req.method, headers: req.headers, body: req.body ? await req.arrayBuffer() : undefined });
  };
}
