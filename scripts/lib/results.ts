/**
 * The benchmarks' one results writer: every scripts/bench-*.ts ends by handing its report here,
 * which prints it (lines of text and tables, in order) and writes its figures to
 * results/<name>.json, the file `npm run bench` reads back for its summary table
 * (scripts/lib/bench-areas.ts) and docs/benchmarks.md quotes.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

export const REPO_ROOT = path.resolve(import.meta.dirname, "..", "..");
export const RESULTS_DIR = path.join(REPO_ROOT, "results");

/** A table of the report: a title line, then one row per object (console.table). */
export interface ResultTable {
  title?: string;
  rows: readonly object[];
}

/** A report is printed in order: a string is a line (or lines) of text, a table a table. */
export type Section = string | ResultTable;

export function printReport(sections: readonly Section[]): void {
  for (const s of sections) {
    if (typeof s === "string") {
      console.log(s);
    } else {
      if (s.title !== undefined) console.log(s.title);
      console.table(s.rows);
    }
  }
}

/** The path of results/<name>.json. */
export function resultsFile(name: string): string {
  return path.join(RESULTS_DIR, `${name}.json`);
}

/** Writes `json` to results/<name>.json (two-space indented, a final newline) and says so. */
export async function writeResults(name: string, json: object): Promise<string> {
  const out = resultsFile(name);
  await mkdir(path.dirname(out), { recursive: true });
  await writeFile(out, `${JSON.stringify(json, null, 2)}\n`);
  console.log(`Wrote ${path.relative(process.cwd(), out)}`);
  return out;
}

/** Prints the report, then writes the results: the end of every benchmark. */
export async function report(name: string, sections: readonly Section[], json: object): Promise<string> {
  printReport(sections);
  return writeResults(name, json);
}
