/**
 * Replicas benchmark: 1, 2 and 4 lanes of the default spec in merging mode at the same steps per
 * lane, in this one process (scripts/lib/bench-replicas.ts says how): the merged model's held-out
 * loss against samples seen and against wall-clock, the merge time and the bytes moved per round
 * (checkpoints fetched for the merge, traffic between the stages), and aggregate samples/s, both
 * as measured here and projected for one node per machine. The single lane also runs on to as many
 * samples as the most lanes see, for the loss at equal samples. Prints tables and writes
 * results/bench-replicas.json.
 *
 *   npm run bench -- replicas
 *   BENCH_SHARDS=2 BENCH_ROUNDS=3 BENCH_STEPS=10 BENCH_LANES=1,2,4 BENCH_MERGE=mean BENCH_BANDWIDTH_MBPS=125 npm run bench -- replicas   (the defaults)
 *
 * BENCH_MERGE names the rule (`mean`, `diloco`, or both: `mean,diloco`; diloco with the paper's
 * outer learning rate 0.7 and Nesterov momentum 0.9). BENCH_BANDWIDTH_MBPS is the link each
 * machine fetches the other lanes' checkpoints over in the projection (125 MB/s: 1 Gbit/s).
 *
 * What one process on a small machine can show: the loss per sample and per round, the merge's
 * cost and the bytes. What it cannot: the lanes here run one after another on the same cores, so
 * the wall-clock of L lanes is L times one lane's; the projection is arithmetic over the measured
 * per-lane step time, merge time and checkpoint size (docs/benchmarks.md).
 */
import os from "node:os";

import { defaultSpec, initBackend, type ModelSpec, zModelSpec } from "../node/src/index.js";
import type { MergeRule } from "../node/src/ml/spec.js";
import {
  pooledLaneRoundSeconds,
  type ReplicaRun,
  type ReplicaSummary,
  runReplicas,
  summarize,
} from "./lib/bench-replicas.js";
import { intFromEnv } from "./lib/env.js";
import { report, type Section } from "./lib/results.js";

const SHARDS = intFromEnv("BENCH_SHARDS", 2, 1, 4);
const ROUNDS = intFromEnv("BENCH_ROUNDS", 3, 1, 1000);
const STEPS = intFromEnv("BENCH_STEPS", 10, 1, 100_000);
const BANDWIDTH = intFromEnv("BENCH_BANDWIDTH_MBPS", 125, 1, 1_000_000) * 1e6;

const RULES: Record<string, MergeRule> = {
  mean: { rule: "mean" },
  diloco: { rule: "diloco", outerLearningRate: 0.7, outerMomentum: 0.9, nesterov: true },
};

function listFromEnv(name: string, fallback: string): string[] {
  return (process.env[name] || fallback).split(",").map((x) => x.trim());
}
const LANES = listFromEnv("BENCH_LANES", "1,2,4").map((x) => {
  const n = Number(x);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`BENCH_LANES must list integers in [1, 64], got ${x}`);
  return n;
});
const MERGES = listFromEnv("BENCH_MERGE", "mean").map((x) => {
  if (!RULES[x]) throw new Error(`BENCH_MERGE must list mean and/or diloco, got ${x}`);
  return x;
});

/** The default spec's 4 blocks in `SHARDS` stages, `STEPS` steps per round, merged by `rule`. */
function specOf(rule: MergeRule): ModelSpec {
  const blocks = Array.from({ length: SHARDS }, (_, i) => Math.floor(4 / SHARDS) + (i < 4 % SHARDS ? 1 : 0));
  const base = defaultSpec({ shards: blocks });
  return zModelSpec.parse({ ...base, training: { ...base.training, stepsPerRound: STEPS, merge: rule } });
}

const backend = await initBackend("wasm");
// A warm-up round, not measured: the first steps of a process pay for compiling the kernels.
process.stderr.write("warm-up: one round of one lane, not measured\n");
await runReplicas(specOf(RULES.mean!), 1, 1);
const maxLanes = Math.max(...LANES);
const runs: ReplicaRun[] = [];
const summaries: ReplicaSummary[] = [];
/** The single lane run on to the samples of the most lanes (`maxLanes × ROUNDS` rounds). */
const longRuns: ReplicaRun[] = [];
const mb = (bytes: number) => Number((bytes / 1e6).toFixed(3));
for (const name of MERGES) {
  const spec = specOf(RULES[name]!);
  const ofRule: ReplicaRun[] = [];
  for (const lanes of LANES) {
    const rounds = lanes === 1 && maxLanes > 1 ? ROUNDS * maxLanes : ROUNDS;
    const run = await runReplicas(spec, lanes, rounds, (r) =>
      process.stderr.write(
        `${name}, ${lanes} lane(s), round ${r.round}/${rounds}: held-out loss ${r.evalLoss.toFixed(4)}, ${r.samplesSeen} samples, ${r.elapsedSeconds.toFixed(1)} s\n`,
      ),
    );
    // The comparison at the same steps per lane takes the first ROUNDS rounds.
    const same: ReplicaRun = { ...run, rounds: run.rounds.slice(0, ROUNDS) };
    runs.push(same);
    ofRule.push(run);
    if (rounds > ROUNDS) longRuns.push(run);
  }
  // The projection: every lane count at the same per-lane step time, pooled over all the rule's runs.
  const laneRound = pooledLaneRoundSeconds(ofRule);
  for (const run of runs.filter((r) => r.rule === RULES[name]!.rule))
    summaries.push(summarize(run, spec, BANDWIDTH, laneRound));
}

const samplesPerStep = specOf(RULES.mean!).training.microBatchSize * specOf(RULES.mean!).training.microBatches;
// The single lane's rounds past ROUNDS, marked "(on)": the loss at as many samples as the most lanes see.
const curves = [
  ...runs.map((r) => ({ run: r, tag: "" })),
  ...longRuns.map((r) => ({ run: { ...r, rounds: r.rounds.slice(ROUNDS) }, tag: " (on)" })),
];
const sections: Section[] = [
  `\nReplica lanes in merging mode: the default spec in ${SHARDS} shards, ${ROUNDS} rounds × ${STEPS} steps per lane (${samplesPerStep} samples a step), ${backend.name} backend, ${os.cpus().length} cpus, one process`,
  {
    title:
      "\nHeld-out loss of the merged model against samples seen and wall-clock (here: lanes one after another; projected: one node per machine)",
    rows: curves.flatMap(({ run, tag }) => {
      const s = summaries.find((x) => x.lanes === run.lanes && x.rule === run.rule)!;
      return run.rounds.map((r) => ({
        merge: run.rule,
        lanes: `${run.lanes}${tag}`,
        round: r.round,
        "samples seen": r.samplesSeen,
        "held-out loss": Number(r.evalLoss.toFixed(4)),
        "s here": Number(r.elapsedSeconds.toFixed(1)),
        "s projected": Number((r.round * s.projected.roundSeconds).toFixed(1)),
      }));
    }),
  },
  {
    title: `\nPer lane count, at ${ROUNDS * STEPS} steps per lane (projection: ${BANDWIDTH / 1e6} MB/s links)`,
    rows: summaries.map((s) => {
      const one = summaries.find((x) => x.rule === s.rule && x.lanes === 1);
      return {
        merge: s.rule,
        lanes: s.lanes,
        "samples seen": s.samplesSeen,
        "held-out loss": Number(s.evalLoss.toFixed(4)),
        "samples/s here": Number(s.aggregateSamplesPerSecondHere.toFixed(1)),
        "lane samples/s": Number(s.laneSamplesPerSecond.toFixed(1)),
        "merge s/round": Number(s.mergeSecondsPerRound.toFixed(3)),
        "ckpt MB fetched/node/round": mb(s.fetchedBytesPerNode),
        "ckpt MB fetched/round, all": mb(s.fetchedBytesTotal),
        "boundary MB/round": mb(s.boundaryBytesPerRound),
        "projected s/round": Number(s.projected.roundSeconds.toFixed(2)),
        "projected samples/s": Number(s.projected.aggregateSamplesPerSecond.toFixed(1)),
        "× 1 lane": one
          ? Number((s.projected.aggregateSamplesPerSecond / one.projected.aggregateSamplesPerSecond).toFixed(2))
          : null,
      };
    }),
  },
];
const json = {
  date: new Date().toISOString(),
  machine: { cpus: os.cpus().length, node: process.version, backend: backend.name, loadavg: os.loadavg() },
  options: {
    shards: SHARDS,
    rounds: ROUNDS,
    stepsPerRound: STEPS,
    lanes: LANES,
    merges: MERGES,
    bandwidthBytesPerSecond: BANDWIDTH,
    samplesPerStep,
  },
  summaries,
  runs,
  longRuns,
};
await report("bench-replicas", sections, json);
