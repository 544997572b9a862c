/**
 * Every benchmark of the project in one command, and one table: each figure next to its reference
 * (an anchor measured in the same run of the same sub-benchmark, or a goal), with their ratio.
 *
 *   npm run bench                              gas, train, traffic, checkpoint, sdk
 *   BENCH_ONLY=gas,checkpoint npm run bench    a subset (names: gas, train, traffic, checkpoint, sdk)
 *
 * Runs the sub-benchmarks one after another as child processes (`npm run bench:<name>`, each still
 * runnable on its own), streaming their output to stderr with a `[name]` prefix, then reads the
 * JSON each one wrote under results/ and prints the table; writes results/bench.json (the rows, each
 * sub-benchmark's status, the machine). `bench:traffic` runs only where package.json has it.
 * An area left out by BENCH_ONLY shows the figures of its last run, marked with its date. Exits
 * non-zero, after printing what it has, when a sub-benchmark fails or writes no fresh results.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdir, readFile, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";

const repoRoot = path.resolve(import.meta.dirname, "..");
const resultsDir = path.join(repoRoot, "results");

interface Row {
  area: string;
  figure: string;
  value: number | null;
  unit: string;
  reference: number | null;
  /** What the reference is. */
  referenceIs: string;
  /** value / reference. */
  ratio: number | null;
}

/** The sub-benchmarks' JSON, read loosely (each area checks what it uses by using it). */
type Json = any;

interface Area {
  name: string;
  title: string;
  script: string;
  file: string;
  rows: (json: Json) => Row[];
}

/* FORMATTING */

const grouped = (n: number) => Math.round(n).toLocaleString("en-US");
function show(n: number | null, unit: string): string {
  if (n === null || !Number.isFinite(n)) return "—";
  switch (unit) {
    case "gas":
      return `${grouped(n)} gas`;
    case "MB/s":
      return `${n >= 100 ? grouped(n) : n.toFixed(1)} MB/s`;
    case "s":
      return `${n < 1 ? n.toFixed(3) : n.toFixed(2)} s`;
    case "samples/s":
      return `${n.toFixed(1)} samples/s`;
    case "loss":
      return n.toFixed(6);
    case "%":
      return `${(n * 100).toFixed(1)} %`;
    case "bytes":
      return n >= 1e5 ? `${(n / 1e6).toFixed(3)} MB` : `${grouped(n)} B`;
    default:
      return `${n} ${unit}`.trim();
  }
}
function showRatio(r: number | null): string {
  if (r === null || !Number.isFinite(r)) return "—";
  if (r === 0) return "0×";
  const digits = r >= 10 ? 1 : r >= 0.1 ? 2 : r >= 0.001 ? 4 : 6;
  return `${r.toFixed(digits)}×`;
}
const row = (
  area: string,
  figure: string,
  value: number | null,
  unit: string,
  reference: number | null,
  referenceIs: string,
): Row => ({
  area,
  figure,
  value,
  unit,
  reference,
  referenceIs,
  ratio: value !== null && reference !== null && reference !== 0 ? value / reference : null,
});

/* WHAT EACH AREA CONTRIBUTES */

const AREAS: Area[] = [
  {
    name: "gas",
    title: "gas",
    script: "bench:gas",
    file: "gas.json",
    rows(j) {
      const rows: Row[] = [];
      const erc20: number | undefined = j.erc20Transfer;
      const anchor = erc20 === undefined ? "" : "1 ERC-20 transfer tx";
      for (const op of j.operations as { operation: string; gas: number }[]) {
        rows.push(row("gas", op.operation, op.gas, "gas", erc20 ?? null, anchor));
      }
      const fanout = j.fanout?.byHolders as
        Record<string, { transactions: number; repeat: number; perHolderRepeat: number }> | undefined;
      for (const [holders, s] of Object.entries(j.holders as Record<string, Json>)) {
        const f = fanout?.[holders];
        const n = Number(holders).toLocaleString("en-US");
        const pushIs = f
          ? `pay the ${n} holder(s) 1 ERC-20 transfer each (measured, ${f.transactions} tx)`
          : "fan-out not measured";
        rows.push(row("gas", `deposit (pay), ${n} holder(s)`, s.deposit, "gas", f?.repeat ?? null, pushIs));
        rows.push(
          row(
            "gas",
            `claim 1 id, ${n} holder(s) (repeat; first ${grouped(s.claimFirst)})`,
            s.claimRepeat,
            "gas",
            f?.perHolderRepeat ?? null,
            f ? `the same push, per holder` : "fan-out not measured",
          ),
        );
      }
      return rows;
    },
  },
  {
    name: "train",
    title: "training",
    script: "bench:train",
    file: "bench-train.json",
    rows(j) {
      const p = j.pipeline;
      const b = j.baseline;
      const steps = (j.options?.rounds ?? 0) * (j.options?.stepsPerRound ?? 0);
      const rows = [
        row(
          "training",
          `samples/s, ${p.processes} shard processes (${j.machine?.backend ?? "?"})`,
          p.samplesPerSecond,
          "samples/s",
          b.samplesPerSecond,
          "baseline, 1 process",
        ),
        row("training", `held-out loss after ${steps} steps`, p.evalLoss, "loss", b.evalLoss, "baseline, same steps"),
      ];
      const o = p.overhead;
      if (o) {
        rows.push(
          row("training", "protocol overhead, upper bound (share of a round)", o.share, "%", 0.05, "goal ≤ 5 %"),
          row(
            "training",
            `round time with the protocol (A/B, ${o.measuredRounds ?? "?"} rounds)`,
            o.fullSeconds,
            "s",
            o.bareSeconds,
            "bare pipeline, same processes and links",
          ),
        );
      }
      rows.push(row("training", "bytes between stages per step", p.bytesPerStep, "bytes", null, "see traffic"));
      return rows;
    },
  },
  {
    name: "traffic",
    title: "traffic",
    script: "bench:traffic",
    file: "bench-traffic.json",
    rows(j) {
      const method = j.compressed?.method ? ` (${j.compressed.method})` : "";
      const rows = [
        row(
          "traffic",
          `bytes per step between stages, compressed${method}`,
          j.compressed?.bytesPerStep ?? null,
          "bytes",
          j.uncompressed?.bytesPerStep ?? null,
          "uncompressed float32",
        ),
        row(
          "traffic",
          `held-out loss, compressed${j.lossDelta === undefined ? "" : ` (Δ ${Number(j.lossDelta).toExponential(2)})`}`,
          j.compressed?.evalLoss ?? null,
          "loss",
          j.uncompressed?.evalLoss ?? null,
          "uncompressed, same steps",
        ),
      ];
      return rows;
    },
  },
  {
    name: "checkpoint",
    title: "checkpoints",
    script: "bench:checkpoint",
    file: "bench-checkpoint.json",
    rows(j) {
      const rows: Row[] = [];
      for (const c of j.cases as Json[]) {
        const label = `${c.name}, ${(c.fileBytes / 1e6).toFixed(2)} MB`;
        rows.push(
          row("checkpoints", `Merkle root (${label})`, c.merkle.MBps, "MB/s", c.sha256sum.MBps, "sha256sum, same file"),
          row(
            "checkpoints",
            `IPFS add, Helia (${label})`,
            c.ipfsAdd.MBps,
            "MB/s",
            c.sha256sum.MBps,
            "sha256sum, same file",
          ),
        );
      }
      return rows;
    },
  },
  {
    name: "sdk",
    title: "SDK",
    script: "bench:sdk",
    file: "sdk-bench.json",
    rows(j) {
      const runs = j.runs as { fetch: number; build: number; getCapTable: number }[];
      const best = (k: "fetch" | "build") => Math.min(...runs.map((r) => r[k]));
      const logs = Number(j.logs).toLocaleString("en-US");
      return [
        row(
          "SDK",
          `cap table from ${logs} logs, ${Number(j.holders).toLocaleString("en-US")} holders (build)`,
          best("build"),
          "s",
          3,
          "goal < 3 s",
        ),
        row("SDK", "cap table build vs fetching the logs", best("build"), "s", best("fetch"), "eth_getLogs, 1 range"),
      ];
    },
  },
];

/* RUNNING */

const scripts: Record<string, string> = JSON.parse(readFileSync(path.join(repoRoot, "package.json"), "utf8")).scripts;
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

function run(area: Area): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn("npm", ["run", "--silent", area.script], {
      cwd: repoRoot,
      stdio: ["ignore", "pipe", "pipe"],
      env: process.env,
    });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => process.stderr.write(`[${area.name}] ${line}\n`));
    }
    child.on("error", (err) => {
      process.stderr.write(`[${area.name}] could not start: ${err.message}\n`);
      resolve(127);
    });
    child.on("close", (code, signal) => resolve(code ?? (signal ? 128 : 1)));
  });
}

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
  const file = path.join(resultsDir, area.file);
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
  if (!scripts[area.script]) {
    outcomes[area.name] = { status: "not run", why: `package.json has no ${area.script} script`, fresh: false };
    process.stderr.write(`[${area.name}] skipped: package.json has no ${area.script} script\n`);
    continue;
  }
  process.stderr.write(`[${area.name}] npm run ${area.script}\n`);
  const t0 = Date.now();
  const exitCode = await run(area);
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
      ...row(area.title, `${area.script}: ${outcome?.status ?? "not run"} (${why})`, null, "", null, ""),
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
    areaRows.unshift(row(area.title, `${area.script} FAILED (${outcome.why}); its results follow`, null, "", null, ""));
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

const out = path.join(resultsDir, "bench.json");
await mkdir(resultsDir, { recursive: true });
await writeFile(
  out,
  `${JSON.stringify({ date: started.toISOString(), machine, selected, areas: outcomes, rows, notes }, null, 2)}\n`,
);
console.log(`Wrote ${path.relative(process.cwd(), out)}`);
const failures = Object.entries(outcomes).filter(([, o]) => o.status === "failed");
if (failed || failures.length > 0) {
  console.error(`Failed: ${failures.map(([n, o]) => `${n} (${o.why})`).join(", ") || "unreadable results"}`);
  process.exitCode = 1;
}
