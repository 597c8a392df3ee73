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
