/** RFC 9457 problem details (`application/problem+json`), naming the offending field. */

export interface InvalidParam {
  /** Path of the field, e.g. `groups[2].rows[0].accuracy`. */
  name: string;
  reason: string;
}

export class HttpError extends Error {
  readonly status: number;
  readonly field: string | undefined;
  readonly headers: Record<string, string>;
  /** The reason alone (without the field name), for `invalid-params`. */
  readonly reason: string | undefined;
  /** The problem `type` (PROBLEM_TYPES), when the status alone does not say what to do. */
  readonly type: string | undefined;
  constructor(status: number, message: string, field?: string, headers: Record<string, string> = {}, reason?: string, type?: string) {
    super(message);
    this.reason = reason;
    this.type = type;
    this.status = status;
    this.field = field;
    this.headers = headers;
  }
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  500: "Internal Server Error",
  502: "Bad Gateway",
  503: "Service Unavailable",
};

/** Problem types a client acts on differently from the status alone (RFC 9457 `type`). */
export const PROBLEM_TYPES = {
  /** Nothing was applied; retry after `Retry-After`. */
  storeUnavailable: "urn:focal-reward:problem:store-unavailable",
  /** The write may have landed; retry with the same Idempotency-Key to get the stored answer. */
  outcomeUnknown: "urn:focal-reward:problem:outcome-unknown",
} as const;

/** The JSON text of a problem. `field` is also given as `invalid-params` (the RFC's example extension). */
export function problemBody(status: number, detail: string, field?: string, reason = detail, type = "about:blank"): string {
  const body: Record<string, unknown> = {
    type,
    title: TITLES[status] ?? "Error",
    status,
    detail,
  };
  if (field !== undefined) {
    body.field = field;
    body["invalid-params"] = [{ name: field, reason }];
  }
  return JSON.stringify(body);
}

/** A problem+json response. */
export function problem(status: number, detail: string, field?: string, headers: Record<string, string> = {}, reason?: string, type?: string): Response {
  return new Response(problemBody(status, detail, field, reason, type), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}

/** A 400 for `field`. */
export function bad(field: string, reason: string): HttpError {
  return new HttpError(400, `${field}: ${reason}`, field, {}, reason);
}
