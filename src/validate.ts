/** Error for the first infinite score of a row-major n x K buffer. */
export function infiniteScoreError(scores: ArrayLike<number>, k: number): RangeError {
  for (let i = 0; i < scores.length; i++) {
    const x = scores[i];
    if (x === Infinity || x === -Infinity) {
      return new RangeError(`scores: row ${Math.floor(i / k)}, criterion ${i % k} is ${x}; scores must be finite or NaN (absent)`);
    }
  }
  return new RangeError("scores: an infinite score was found");
}

/** A finite number, else a RangeError naming the option. */
export function finite(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== "number" || !Number.isFinite(value)) {
    throw new RangeError(`${name} must be a finite number, got ${String(value)}`);
  }
  return value;
}

export function oneOf<T extends string>(name: string, value: unknown, allowed: readonly T[], fallback: T): T {
  if (value === undefined) return fallback;
  if (typeof value !== "string" || !(allowed as readonly string[]).includes(value)) {
    throw new RangeError(`${name} must be one of ${allowed.map((a) => `"${a}"`).join(", ")}, got ${JSON.stringify(value)}`);
  }
  return value as T;
}

/** The largest finite float32: every number the kernels see must stay below it. */
export const F32_MAX = 3.4028234663852886e38;

/** Edit distance on the keys' letters alone (case, `_` and `-` ignored): `min_weight` is `minWeight`. */
function distance(a: string, b: string): number {
  const x = a.toLowerCase().replace(/[-_]/g, ""), y = b.toLowerCase().replace(/[-_]/g, "");
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[y.length];
}

/** The known name nearest to `key`, when it is near enough to be a typo of it. */
export function nearest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined, bestD = Infinity;
  for (const k of known) {
    const d = distance(key, k);
    if (d < bestD) [best, bestD] = [k, d];
  }
  return bestD <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined;
}

/** `"gama": did you mean "gamma"?` (or the list of known names when none is near). */
export function unknownName(what: string, key: string, known: readonly string[], quote = (s: string) => JSON.stringify(s)): string {
  const near = nearest(key, known);
  return near !== undefined
    ? `unknown ${what} ${quote(key)}: did you mean ${quote(near)}?`
    : `unknown ${what} ${quote(key)} (known: ${known.map(quote).join(", ")})`;
}

/** Refuses keys of `obj` outside `known` (spec "Validation ranges and strictness"). */
export function checkKeys(where: string, obj: object, known: readonly string[], what = "key"): void {
  for (const key of Object.keys(obj)) {
    if (!known.includes(key)) throw new TypeError(`${where}: ${unknownName(what, key, known)}`);
  }
}

/**
 * Names every JavaScript object carries: as criterion ids they would vanish from, or be found in,
 * `{ id: value }` records (weights, scores, labels, metrics), so they are refused everywhere.
 */
const RESERVED_IDS = new Set([
  "__proto__", "constructor", "prototype", "hasOwnProperty", "isPrototypeOf", "propertyIsEnumerable",
  "toString", "toLocaleString", "valueOf", "__defineGetter__", "__defineSetter__", "__lookupGetter__", "__lookupSetter__",
]);

/**
 * The one rule for criterion ids, wherever they come from (rubric, record keys, CSV header,
 * HTTP bodies): a non-empty string that is not a built-in property name of JavaScript objects.
 * Returns the id; throws a TypeError that names it and says what to do.
 */
export function checkCriterionId(id: unknown, where: string): string {
  if (typeof id !== "string" || id === "") throw new TypeError(`${where}: a criterion id must be a non-empty string, got ${JSON.stringify(id) ?? String(id)}`);
  if (RESERVED_IDS.has(id)) {
    throw new TypeError(`${where}: criterion id ${JSON.stringify(id)} is reserved (every JavaScript object has a property of that name, so records keyed by criterion would lose or misread it); rename the criterion`);
  }
  return id;
}

/** A number in [lo, hi] (ends open where asked), else a RangeError naming the option and the range. */
export function inRange(name: string, value: unknown, fallback: number, lo: number, hi: number, open: "" | "lo" | "hi" = ""): number {
  if (value === undefined) return fallback;
  const range = `${open === "lo" ? "(" : "["}${short(lo)}, ${short(hi)}${open === "hi" ? ")" : "]"}`;
  if (typeof value !== "number") throw new TypeError(`${name} must be a number in ${range}, got ${typeof value} ${JSON.stringify(value) ?? String(value)}`);
  const ok = (open === "lo" ? value > lo : value >= lo) && (open === "hi" ? value < hi : value <= hi);
  if (!ok) throw new RangeError(`${name} must be in ${range}, got ${value}`);
  return value;
}

/** 1e-6 and 1e6 rather than 0.000001 and 1000000. */
export function short(x: number): string {
  return x !== 0 && (Math.abs(x) >= 1e3 || Math.abs(x) < 1e-3) ? x.toExponential().replace("e+", "e") : String(x);
}
