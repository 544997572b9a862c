/**
 * What `npm run bench` runs and reads: every benchmark area (how it is built and run, and the rows
 * its results/*.json contributes to the summary table), and how figures are shown.
 */

export interface Row {
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
export type Json = any;

/** How an area runs: builds first (each once per `npm run bench`), then its script. */
export interface Runnable {
  name: string;
  /** What it builds first: the contracts (Hardhat), the SDK and node packages (tsc -b). */
  builds: Build[];
  /** The script under scripts/, and how it runs: in Hardhat (`hardhat run`) or plain (`tsx`). */
  script: string;
  runner: "hardhat" | "tsx";
  /** What it is, for the usage text. */
  about: string;
}

/** An area of the summary table: a runnable benchmark, the results file it writes, its rows. */
export interface Area extends Runnable {
  title: string;
  /** Under results/. */
  file: string;
  rows: (json: Json) => Row[];
}

export type Build = "contracts" | "packages";

/** The command line of each build. */
export const BUILDS: Record<Build, string[]> = {
  contracts: ["hardhat", "build", "--no-tests", "--quiet"],
  packages: ["tsc", "-b", "sdk", "node"],
};

/* FORMATTING */

export const grouped = (n: number) => Math.round(n).toLocaleString("en-US");
export function show(n: number | null, unit: string): string {
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
export function showRatio(r: number | null): string {
  if (r === null || !Number.isFinite(r)) return "—";
  if (r === 0) return "0×";
  const digits = r >= 10 ? 1 : r >= 0.1 ? 2 : r >= 0.001 ? 4 : 6;
  return `${r.toFixed(digits)}×`;
}
export const row = (
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

export const AREAS: Area[] = [
  {
    name: "gas",
    title: "gas",
    builds: ["contracts"],
    script: "scripts/bench-gas.ts",
    runner: "hardhat",
    about: "gas of every operation, deposit/claim by holders, batch settlement",
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
    builds: ["packages", "contracts"],
    script: "scripts/bench-train.ts",
    runner: "hardhat",
    about: "training: baseline vs one process per shard, protocol vs bare pipeline",
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
    builds: [],
    script: "scripts/bench-traffic.ts",
    runner: "tsx",
    about: "bytes between stages and held-out loss, per compression setting",
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
    name: "infer",
    title: "inference",
    builds: [],
    script: "scripts/bench-infer.ts",
    runner: "tsx",
    about: "tokens/s through the shard pipeline with and without the KV cache, vs one process",
    file: "bench-infer.json",
    rows(j) {
      const at = j.pipelineVsLocalAt?.tokens ?? null;
      const run = (setup: string) => j.runs?.find((r: Json) => r.setup === setup && r.tokens === at);
      const tenth = (x: number | undefined) => (x === undefined ? null : Math.round(x * 10) / 10);
      return [
        row(
          "inference",
          `pipeline tokens/s, ${at} tokens, KV cache`,
          tenth(run("pipeline, with cache")?.tokensPerSecond),
          "tokens/s",
          tenth(run("one process, with cache")?.tokensPerSecond),
          "one process, KV cache",
        ),
        row("inference", "gateway runGenerate, added per request", tenth(j.gateway?.addedMs), "ms", 5, "goal"),
      ];
    },
  },
  {
    name: "checkpoint",
    title: "checkpoints",
    builds: [],
    script: "scripts/bench-checkpoint.ts",
    runner: "tsx",
    about: "Merkle root and IPFS add vs sha256sum",
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
    builds: ["contracts"],
    script: "scripts/bench-sdk.ts",
    runner: "hardhat",
    about: "cap table from 100,000 transfer logs",
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
  {
    name: "replicas",
    title: "replicas",
    builds: [],
    script: "scripts/bench-replicas.ts",
    runner: "tsx",
    about: "1, 2 and 4 merged lanes at the same steps per lane: loss, merge time, bytes, samples/s",
    file: "bench-replicas.json",
    rows(j) {
      const all = j.summaries as Json[];
      const rows: Row[] = [];
      for (const s of all) {
        const one = all.find((x) => x.rule === s.rule && x.lanes === 1);
        if (s.lanes === 1) continue;
        const tag = `${s.lanes} lanes, ${s.rule}`;
        rows.push(
          row(
            "replicas",
            `held-out loss after ${s.stepsPerLane} steps per lane, ${tag}`,
            s.evalLoss,
            "loss",
            one?.evalLoss ?? null,
            "1 lane, same steps",
          ),
          row(
            "replicas",
            `samples/s, ${tag}, one node per machine (projected)`,
            s.projected.aggregateSamplesPerSecond,
            "samples/s",
            one?.projected.aggregateSamplesPerSecond ?? null,
            "1 lane, same projection",
          ),
          row(
            "replicas",
            `merge time per round (all shards), ${tag}`,
            s.mergeSecondsPerRound,
            "s",
            s.projected.roundSeconds,
            "projected round",
          ),
          row(
            "replicas",
            `checkpoint bytes fetched per node per round, ${tag}`,
            s.fetchedBytesPerNode,
            "bytes",
            s.boundaryBytesPerRound / s.lanes,
            "one lane's boundary traffic per round",
          ),
        );
      }
      return rows;
    },
  },
];

/** Benchmarks outside the summary table: run only when named. */
export const EXTRA: Runnable[] = [
  {
    name: "verify",
    builds: ["packages", "contracts"],
    script: "scripts/bench-verify.ts",
    runner: "hardhat",
    about: "a round's replay vs its training, and the verifier's gas (results/bench-verify.json)",
  },
  {
    name: "probe-backend",
    builds: [],
    script: "scripts/probe-backend.ts",
    runner: "tsx",
    about: "one TensorFlow.js backend: speed, loss, bitwise repeatability (arguments: <backend> [steps])",
  },
];
