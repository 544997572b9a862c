/**
 * What commands print. For people, `print` writes lines on stdout; with `--json` they are dropped
 * and the CLI writes the command's result as one JSON object instead, so stdout holds nothing
 * else. `log` (progress, warnings) always goes to stderr.
 */
export interface Output {
  readonly json: boolean;
  /** A line of the human-readable result (stdout; omitted with `--json`). */
  print(line?: string): void;
  /** Progress and warnings (stderr, in both modes). */
  log(line: string): void;
}

export function createOutput(options: {
  json: boolean;
  stdout?: NodeJS.WritableStream | undefined;
  stderr?: NodeJS.WritableStream | undefined;
}): Output {
  const stdout = options.stdout ?? process.stdout;
  const stderr = options.stderr ?? process.stderr;
  return {
    json: options.json,
    print: (line = "") => {
      if (!options.json) stdout.write(`${line}\n`);
    },
    log: (line) => void stderr.write(`${line}\n`),
  };
}

/** JSON with bigints as decimal strings (token amounts exceed 2^53). */
export function toJson(value: unknown, space?: number): string {
  return JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v), space);
}

/** Aligned `label  value` lines. */
export function table(rows: [string, string][]): string[] {
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`);
}
