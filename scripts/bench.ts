/**
 * Every benchmark of the project, one command:
 *
 *   npm run bench                              gas, train, traffic, checkpoint, sdk, replicas, then one table
 *   BENCH_ONLY=gas,checkpoint npm run bench    a subset of those, then the table
 *   npm run bench -- <area> [args]             one benchmark on its own: its own tables and results/*.json
 *   npm run bench -- help                      the areas (gas, train, traffic, infer, checkpoint, sdk,
 *                                              replicas, verify, probe-backend)
 *
 * Each area builds what it needs first (the contracts with Hardhat, the SDK and node packages with
 * `tsc -b`; each build once per run), then runs its script (scripts/bench-*.ts) in Hardhat
 * (`hardhat run`) or plain (`tsx`); scripts/lib/bench-areas.ts says which. Settings are environment
 * variables (docs/benchmarks.md); only probe-backend takes arguments.
 *
 * The summary (no area named) runs the table's areas one after another as child processes,
 * streaming their output to stderr with a `[name]` prefix, then reads the JSON each one wrote under
 * results/ and prints one table: each figure next to its reference (an anchor measured in the same
 * run of the same benchmark, or a goal), with their ratio; it writes results/bench.json (the rows,
 * each area's status, the machine). An area left out by BENCH_ONLY shows the figures of its last
 * run, marked with its date. Exits non-zero, after printing what it has, when an area fails or
 * writes no fresh results.
 */
import { spawn } from "node:child_process";
import { readFile, stat } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";

import {
  type Area,
  AREAS,
  type Build,
  BUILDS,
  EXTRA,
  grouped,
  type Json,
  row,
  type Row,
  type Runnable,
  show,
  showRatio,
} from "./lib/bench-areas.js";
import { REPO_ROOT, RESULTS_DIR, writeResults } from "./lib/results.js";

/* RUNNING */

const bin = path.join(REPO_ROOT, "node_modules", ".bin");
const childEnv = { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}` };
const built = new Set<Build>();

/** Runs one command; its output goes to this process's (with `prefix`: line by line to stderr, prefixed). */
function exec(argv: string[], prefix?: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: REPO_ROOT,
      stdio: prefix === undefined ? "inherit" : ["ignore", "pipe", "pipe"],
      env: childEnv,
    });
    if (prefix !== undefined)
      for (const stream of [child.stdout!, child.stderr!])
        createInterface({ input: stream }).on("line", (line) => process.stderr.write(`[${prefix}] ${line}\n`));
    child.on("error", (err) => {
      process.stderr.write(`${prefix === undefined ? "" : `[${prefix}] `}could not start ${argv[0]}: ${err.message}\n`);
      resolve(127);
    });
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

/** Builds what `area` needs (what this run has not built yet), then runs its script with `args`. */
async function runArea(area: Runnable, args: string[], prefix?: string): Promise<number> {
  for (const b of area.builds) {
    if (built.has(b)) continue;
    const code = await exec(BUILDS[b], prefix);
    if (code !== 0) return code;
    built.add(b);
  }
  const command = area.runner === "hardhat" ? ["hardhat", "run", "--no-compile", area.script] : ["tsx", area.script];
  return exec([...command, ...args], prefix);
}

function usage(): string {
  const all: Runnable[] = [...AREAS, ...EXTRA];
  const width = Math.max(...all.map((a) => a.name.length));
  return [
    "npm run bench                    every area of the summary table, then the table (BENCH_ONLY=a,b: a subset)",
    "npm run bench -- <area> [args]   one area on its own",
    "",
    "areas:",
    ...all.map((a) => `  ${a.name.padEnd(width)}  ${a.about}`),
  ].join("\n");
}

const [named, ...args] = process.argv.slice(2);
if (named !== undefined) {
  if (named === "help" || named === "--help" || named === "-h") {
    console.log(usage());
    process.exit(0);
  }
  const area = [...AREAS, ...EXTRA].find((a) => a.name === named);
  if (area === undefined) {
    console.error(`bench: unknown area ${JSON.stringify(named)}\n\n${usage()}`);
    process.exit(2);
  }
  if (area.runner === "hardhat" && args.length > 0) {
    console.error(
      `bench: ${area.name} takes no arguments (its settings are environment variables: docs/benchmarks.md)`,
    );
    process.exit(2);
  }
  process.exit(await runArea(area, args));
}

const names = AREAS.map((a) => a.name);
const only = (process.env.BENCH_ONLY ?? "")
  .split(",")
  .map((s) => s.trim())
  .filter(Boolean);
const unknown = only.filter((n) => !names.includes(n));
if (unknown.length > 0) {
  console.error(`BENCH_ONLY: unknown benchmark(s) ${unknown.join(", ")}; known: ${names.join(", ")}`);
  process.exit(2);
}
const selected = only.length > 0 ? only : names;

type Status = "ran" | "failed" | "not run";
interface Outcome {
  status: Status;
  why?: string;
  exitCode?: number;
  seconds?: number;
  /** When the results file was written (its `date`, else its mtime). */
  resultsDate?: string;
  fresh: boolean;
}

async function readResults(area: Area): Promise<{ json: Json; date: string; mtimeMs: number } | undefined> {
  const file = path.join(RESULTS_DIR, area.file);
  try {
    const [text, info] = await Promise.all([readFile(file, "utf8"), stat(file)]);
    const json = JSON.parse(text);
    return { json, date: typeof json.date === "string" ? json.date : info.mtime.toISOString(), mtimeMs: info.mtimeMs };
  } catch {
    return undefined;
  }
}

const started = new Date();
const outcomes: Record<string, Outcome> = {};
const rows: Row[] = [];
const notes: string[] = [];
let failed = false;

for (const area of AREAS) {
  if (!selected.includes(area.name)) continue;
  process.stderr.write(`[${area.name}] npm run bench -- ${area.name}\n`);
  const t0 = Date.now();
  const exitCode = await runArea(area, [], area.name);
  const seconds = (Date.now() - t0) / 1000;
  const results = await readResults(area);
  const fresh = results !== undefined && results.mtimeMs >= t0;
  const ok = exitCode === 0 && fresh;
  if (!ok) failed = true;
  outcomes[area.name] = {
    status: ok ? "ran" : "failed",
    ...(ok ? {} : { why: exitCode !== 0 ? `exit code ${exitCode}` : `wrote no results/${area.file}` }),
    exitCode,
    seconds,
    ...(results && fresh ? { resultsDate: results.date } : {}),
    fresh,
  };
  process.stderr.write(`[${area.name}] ${ok ? "done" : "FAILED"} in ${seconds.toFixed(1)} s (exit ${exitCode})\n`);
}

/* THE TABLE */

let gasJson: Json;

for (const area of AREAS) {
  const outcome = outcomes[area.name];
  const results = await readResults(area);
  const usable = results !== undefined && (outcome === undefined || outcome.fresh || outcome.status === "not run");
  if (!usable) {
    const why =
      outcome?.why ??
      (selected.includes(area.name) ? "no results" : `not in BENCH_ONLY, no earlier results/${area.file}`);
    rows.push({
      ...row(area.title, `bench ${area.name}: ${outcome?.status ?? "not run"} (${why})`, null, "", null, ""),
      ratio: null,
    });
    outcomes[area.name] ??= { status: "not run", why, fresh: false };
    continue;
  }
  let areaRows: Row[];
  try {
    areaRows = area.rows(results.json);
  } catch (err) {
    failed = true;
    rows.push(row(area.title, `results/${area.file} unreadable: ${(err as Error).message}`, null, "", null, ""));
    continue;
  }
  if (area.name === "gas") gasJson = results.json;
  if (outcome === undefined || outcome.status === "not run") {
    // Left out by BENCH_ONLY (or no script to run it): the last run's figures, marked.
    const mark = "†";
    const why = outcome?.why ?? "not in BENCH_ONLY";
    areaRows = areaRows.map((r) => ({ ...r, area: `${r.area} ${mark}` }));
    notes.push(`${mark} ${area.title}: not run now (${why}); figures of results/${area.file} from ${results.date}`);
    outcomes[area.name] = { status: "not run", why, resultsDate: results.date, fresh: false };
  } else if (outcome.status === "failed") {
    areaRows.unshift(
      row(area.title, `bench ${area.name} FAILED (${outcome.why}); its results follow`, null, "", null, ""),
    );
  }
  rows.push(...areaRows);
}

const header = ["area", "figure", "value", "reference", "ratio"];
const cells = rows.map((r) => [
  r.area,
  r.figure,
  r.value === null ? (r.unit === "" ? "" : "—") : show(r.value, r.unit),
  r.reference === null ? (r.referenceIs ? r.referenceIs : "") : `${show(r.reference, r.unit)}: ${r.referenceIs}`,
  r.ratio === null ? "" : r.unit === "loss" ? `${r.ratio.toFixed(6)}×` : showRatio(r.ratio),
]);
const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
const line = (c: string[]) =>
  `| ${c.map((x, i) => (i === 2 || i === 4 ? x.padStart(widths[i]!) : x.padEnd(widths[i]!))).join(" | ")} |`;
const cpus = os.cpus();
const machine = {
  cpus: cpus.length,
  model: cpus[0]?.model.trim() ?? "unknown",
  node: process.version,
  platform: `${process.platform} ${process.arch}`,
  memoryGiB: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
  loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
};
console.log(
  `\nBenchmarks, ${started.toISOString()}: ${machine.cpus} × ${machine.model}, Node ${machine.node}; ratio = value / reference`,
);
console.log(line(header));
console.log(line(widths.map((w) => "-".repeat(w))));
let previousArea = "";
for (const c of cells) {
  console.log(line(c[0] === previousArea ? ["", ...c.slice(1)] : c));
  previousArea = c[0]!;
}
for (const n of notes) console.log(n);
const gas = gasJson;
if (gas?.goals) {
  const goals = gas.goals as { goal: string; met: boolean }[];
  const missed = goals.filter((g) => !g.met).map((g) => g.goal);
  console.log(
    `Gas goals met: ${goals.length - missed.length} of ${goals.length}${missed.length ? ` (missed: ${missed.join("; ")})` : ""}.`,
  );
}
if (gas?.fanout) {
  console.log(
    `Gas references: "1 ERC-20 transfer tx" is one plain transfer transaction to an address that already holds the ` +
      `currency; the push figures pay each holder through Multicall3 (${gas.fanout.method}), every transfer executed ` +
      `(none extrapolated), to holders that already hold the currency (to fresh holders: ` +
      `${Object.entries(gas.fanout.byHolders as Record<string, { first: number }>)
        .map(([n, f]) => `${Number(n).toLocaleString("en-US")}: ${grouped(f.first)}`)
        .join(", ")} gas).`,
  );
}

await writeResults("bench", { date: started.toISOString(), machine, selected, areas: outcomes, rows, notes });
const failures = Object.entries(outcomes).filter(([, o]) => o.status === "failed");
if (failed || failures.length > 0) {
  console.error(`Failed: ${failures.map(([n, o]) => `${n} (${o.why})`).join(", ") || "unreadable results"}`);
  process.exitCode = 1;
}
