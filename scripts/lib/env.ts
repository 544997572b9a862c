/** An integer setting of a script from the environment, `fallback` when unset; an error names the variable. */
export function intFromEnv(name: string, fallback: number, min: number, max: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`${name} must be an integer in [${min}, ${max}], got ${raw}`);
  return n;
}
