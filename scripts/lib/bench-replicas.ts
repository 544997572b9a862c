/**
 * The replicas benchmark's engine: L lanes of a model trained for R rounds in merging mode, in
 * this one process, as the lanes test's reference does (test/node/lanes-merge.test.ts): every
 * round, each lane runs the single-process pipeline (`runBaseline`, all shards) for one round on
 * its own batches from the round's base, then each shard's lanes are merged by the spec's rule
 * (`mergeCheckpoints`) and encoded with their Merkle root (`encodeMergedCheckpoint`), as a merging
 * node does, and the merge is the next round's base. No chain, libp2p or IPFS: what those cost
 * per round is measured elsewhere (bench train) or counted here as bytes.
 *
 * Per round it measures the lanes' training seconds (steps only), the merge seconds per shard, the
 * encoded checkpoint bytes (what a merging node fetches of each other lane), the bytes between
 * the stages, and the merged model's held-out loss.
 */
import { encodeCheckpoint, type ModelSpec, runBaseline, type StageState, stageLayout } from "../../node/src/index.js";
import { encodeMergedCheckpoint, mergeCheckpoints } from "../../node/src/ml/merge.js";
import { mergeRule } from "../../node/src/ml/spec.js";
import { genesisState } from "../../node/src/swarm/merge-build.js";

/** One round of L lanes and their merge. */
export interface ReplicaRound {
  round: number;
  /** Samples trained by all lanes so far. */
  samplesSeen: number;
  /** Held-out loss of the merged model after this round. */
  evalLoss: number;
  /** Seconds of training steps this round, each lane (they run one after another here). */
  laneSeconds: number[];
  /** Seconds to merge and encode (Merkle root) each shard's lanes. */
  mergeSeconds: number[];
  /** Encoded bytes of one lane's checkpoint of each shard (weights, Adam moments, header). */
  checkpointBytes: number[];
  /** Bytes sent between the stages this round, all lanes (activations and gradients; eval excluded). */
  boundaryBytes: number;
  /** Seconds since the run began in this process (training, merging and evaluation). */
  elapsedSeconds: number;
}

export interface ReplicaRun {
  lanes: number;
  rule: string;
  /** Held-out loss of genesis. */
  initialLoss: number;
  rounds: ReplicaRound[];
}

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/** The held-out loss of `states` (every shard), and the bytes the evaluation sent between stages. */
async function heldOutLoss(
  spec: ModelSpec,
  states: StageState[],
  round: number,
): Promise<{ loss: number; bytes: number }> {
  let bytes = 0;
  const run = await runBaseline(spec, { rounds: 0, fromRound: round + 1, states, onSend: (n) => (bytes += n) });
  for (const t of run.trainers) t.dispose();
  const loss = run.evalLosses[0];
  if (loss === undefined) throw new Error("the spec scores no held-out sequences (training.evalSequences is 0)");
  return { loss, bytes };
}

/**
 * Trains `lanes` lanes of `spec` (which must set `training.merge`) for `rounds` rounds from
 * genesis, merging after each round; `onRound` is told each round as it ends.
 */
export async function runReplicas(
  spec: ModelSpec,
  lanes: number,
  rounds: number,
  onRound?: (r: ReplicaRound) => void,
): Promise<ReplicaRun> {
  const rule = mergeRule(spec);
  const shards = spec.shards.length;
  const samplesPerStep = spec.training.microBatchSize * spec.training.microBatches;
  const laneIds = Array.from({ length: lanes }, (_, i) => i);
  const t0 = performance.now();
  let base: StageState[] = Array.from({ length: shards }, (_, s) => genesisState(spec, s));
  // An evaluation's sends between the stages (the same every time): runBaseline scores the held-out
  // set before and after each lane's round, and those bytes are not training traffic.
  const { loss: initialLoss, bytes: evalBytes } = await heldOutLoss(spec, base, 0);
  const meta = (shard: number, lane: number, round: number) => ({
    modelId: "1",
    shard,
    lane,
    round,
    specDigest: `0x${"00".repeat(32)}` as const,
    backend: "bench",
  });
  const out: ReplicaRound[] = [];
  let samplesSeen = 0;
  for (let round = 1; round <= rounds; round++) {
    const laneStates: StageState[][] = [];
    const laneSeconds: number[] = [];
    let boundaryBytes = 0;
    for (const lane of laneIds) {
      let stepSeconds = 0;
      let sent = 0;
      const run = await runBaseline(spec, {
        rounds: 1,
        fromRound: round,
        lane,
        states: base,
        onStep: (s) => (stepSeconds += samplesPerStep / s.samplesPerSecond),
        onSend: (bytes) => (sent += bytes),
      });
      boundaryBytes += sent - 2 * evalBytes;
      laneStates.push(await Promise.all(run.trainers.map((t) => t.state())));
      for (const t of run.trainers) t.dispose();
      laneSeconds.push(stepSeconds);
      samplesSeen += samplesPerStep * spec.training.stepsPerRound;
    }
    const mergeSeconds: number[] = [];
    const checkpointBytes: number[] = [];
    const merged: StageState[] = [];
    for (let shard = 0; shard < shards; shard++) {
      const layout = stageLayout(spec, shard);
      checkpointBytes.push(encodeCheckpoint(layout, laneStates[0]![shard]!, meta(shard, 0, round)).bytes.byteLength);
      const t = performance.now();
      const m = mergeCheckpoints(
        rule,
        base[shard]!,
        laneIds.map((lane) => ({ lane, state: laneStates[lane]![shard]! })),
      );
      encodeMergedCheckpoint(layout, m, rule, laneIds, meta(shard, 2 ** 31, round));
      mergeSeconds.push((performance.now() - t) / 1000);
      merged.push(m);
    }
    base = merged;
    const { loss: evalLoss } = await heldOutLoss(spec, base, round);
    const r: ReplicaRound = {
      round,
      samplesSeen,
      evalLoss,
      laneSeconds,
      mergeSeconds,
      checkpointBytes,
      boundaryBytes,
      elapsedSeconds: (performance.now() - t0) / 1000,
    };
    out.push(r);
    onRound?.(r);
  }
  return { lanes, rule: rule.rule, initialLoss, rounds: out };
}

/** Seconds of one lane's steps of a round, pooled over `runs` (the same work whatever the lanes). */
export function pooledLaneRoundSeconds(runs: readonly ReplicaRun[]): number {
  const seconds = runs.flatMap((run) => run.rounds.flatMap((r) => r.laneSeconds));
  return sum(seconds) / seconds.length;
}

/**
 * What a run's rounds add up to, and the arithmetic for one node per machine at `bandwidth`
 * bytes/s. The projection takes one lane's round to last `laneRoundSeconds` (default: this run's
 * mean): pass the same figure for every lane count (`pooledLaneRoundSeconds`), since a lane's
 * steps on its own machines do not depend on how many other lanes there are, while the rates
 * measured here move with the machine's load from one run to the next.
 */
export function summarize(run: ReplicaRun, spec: ModelSpec, bandwidth: number, laneRoundSeconds?: number) {
  const { lanes, rounds } = run;
  const steps = spec.training.stepsPerRound;
  const samplesPerStep = spec.training.microBatchSize * spec.training.microBatches;
  const n = rounds.length;
  const trainSeconds = sum(rounds.map((r) => sum(r.laneSeconds)));
  const mergeSeconds = sum(rounds.map((r) => sum(r.mergeSeconds)));
  /** One lane's steps of a round, in seconds (the mean over lanes and rounds). */
  const measuredRoundSeconds = trainSeconds / (n * lanes);
  const projectedLaneRound = laneRoundSeconds ?? measuredRoundSeconds;
  /** The slowest shard's merge, per round: each shard's node merges on its own machine, in parallel. */
  const nodeMergeSeconds = sum(rounds.map((r) => Math.max(...r.mergeSeconds))) / n;
  const checkpointBytes = Math.max(...rounds[0]!.checkpointBytes);
  /** Each node of a shard fetches the other lanes' checkpoints of its shard (the merger to merge, the others to check). */
  const fetchedPerNode = (lanes - 1) * checkpointBytes;
  const fetchSeconds = fetchedPerNode / bandwidth;
  const roundSeconds = projectedLaneRound + nodeMergeSeconds + fetchSeconds;
  const laneRate = (steps * samplesPerStep) / measuredRoundSeconds;
  return {
    lanes,
    rule: run.rule,
    rounds: n,
    stepsPerLane: n * steps,
    samplesSeen: rounds.at(-1)!.samplesSeen,
    evalLoss: rounds.at(-1)!.evalLoss,
    /** In this process: every lane's steps and every merge one after another (plus evaluation). */
    elapsedSeconds: rounds.at(-1)!.elapsedSeconds,
    aggregateSamplesPerSecondHere: rounds.at(-1)!.samplesSeen / (trainSeconds + mergeSeconds),
    laneSamplesPerSecond: laneRate,
    mergeSecondsPerRound: mergeSeconds / n,
    nodeMergeSecondsPerRound: nodeMergeSeconds,
    checkpointBytes,
    /** Checkpoint bytes fetched per round: by each node, and by all nodes of all shards. */
    fetchedBytesPerNode: fetchedPerNode,
    fetchedBytesTotal: sum(rounds[0]!.checkpointBytes) * lanes * (lanes - 1),
    boundaryBytesPerRound: sum(rounds.map((r) => r.boundaryBytes)) / n,
    /** One node per machine: the round's steps, then the merge and the fetch of (lanes − 1) checkpoints. */
    projected: {
      bandwidth,
      laneRoundSeconds: projectedLaneRound,
      roundSeconds,
      fetchSeconds,
      aggregateSamplesPerSecond: (lanes * steps * samplesPerStep) / roundSeconds,
    },
  };
}

export type ReplicaSummary = ReturnType<typeof summarize>;
