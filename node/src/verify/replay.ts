import { type Hex, keccak256 } from "viem";

import type { BackendInfo } from "../ml/backend.js";
import { batchIds, loadCorpus } from "../ml/data.js";
import { TensorDigests, globalStep, memoryIOs, runStageEval, runStageStep, tensorIO } from "../ml/pipeline.js";
import { type ModelSpec, canonicalJson } from "../ml/spec.js";
import { type StageState, StageTrainer } from "../ml/stage.js";
import { encodeCheckpoint } from "../swarm/checkpoint.js";

/**
 * The replay engine of a verifier: one round of one lane, every shard in this process, wired by
 * in-memory channels and driven by the very functions the swarm runs (`runStageStep`,
 * `runStageEval`, `tensorIO` with `TensorDigests`), so on the same backend it reproduces the
 * swarm's weights, checkpoint bytes, Merkle roots, pipeline digests and transcript bit for bit
 * (the single-process baseline, `runBaseline`, rests on the same property).
 */

/** The digests of the four tensor streams of one shard in one round (what the ledger compares). */
export interface PipelineDigests {
  sentActivations: Hex;
  receivedActivations: Hex;
  sentGradients: Hex;
  receivedGradients: Hex;
}

/** One training step as a transcript records it. */
export interface TranscriptStep {
  step: number;
  globalStep: number;
  batchIds: number[][];
  loss: number | null;
}

/** What an honest shard of the round would have produced, recomputed. */
export interface ShardReplay {
  shard: number;
  parentRoot: Hex;
  /** Merkle root over the replayed tensors. */
  root: Hex;
  /** The replayed checkpoint, encoded exactly as a trainer on this backend encodes it. */
  checkpoint: Uint8Array;
  state: StageState;
  digests: PipelineDigests;
  steps: TranscriptStep[];
  evalLoss: number | null;
  /** `round(mean training loss × 1e6)` on the last shard, 0 elsewhere (as trainers declare it). */
  lossMicros: bigint;
  /** `stepsPerRound × samples × parameterCount`. */
  workUnits: bigint;
  bytesSent: number;
  bytesReceived: number;
  /** The transcript a trainer on the verifier's backend writes for this round (canonical JSON). */
  transcript: Uint8Array;
  transcriptDigest: Hex;
}

export interface RoundReplay {
  lane: number;
  round: number;
  backend: string;
  shards: ShardReplay[];
  /** Wall time of the replay. */
  seconds: number;
}

/** A shard's starting point: its parent checkpoint (decoded, root checked), or genesis. */
export interface ReplayParent {
  /** Undefined: the spec's genesis weights (round 1). */
  state?: StageState | undefined;
  /** Zero hash for genesis. */
  root: Hex;
}

export interface ReplayRoundParameters {
  spec: ModelSpec;
  /** Decimal model id, as checkpoints and transcripts record it. */
  modelId: string;
  specDigest: Hex;
  lane: number;
  round: number;
  /** One per shard, in shard order. */
  parents: ReplayParent[];
  backend: BackendInfo;
}

/** Samples per step: `microBatchSize × microBatches`. */
export const samplesPerStep = (spec: ModelSpec) => spec.training.microBatchSize * spec.training.microBatches;

/**
 * The public sampler's batch ids of every step of `round` of `lane` (`[step][micro][sequence]`):
 * what every shard's transcript of that lane must record.
 */
export function expectedBatchIds(spec: ModelSpec, round: number, lane: number): number[][][] {
  const corpus = loadCorpus(spec);
  return Array.from({ length: spec.training.stepsPerRound }, (_, step) => {
    const g = globalStep(spec.training.stepsPerRound, round, step);
    return Array.from({ length: spec.training.microBatches }, (_, m) => batchIds(spec, corpus, g, m, lane));
  });
}

/**
 * Replays `round` of a lane from the shards' parent checkpoints: the round's steps, the held-out
 * evaluation (its tensors are part of the pipeline digests, as in the swarm), then each shard's
 * checkpoint, Merkle root and transcript. Deterministic for a given backend.
 *
 * @throws RangeError when `parents` does not have one entry per shard of the spec.
 *
 * @example
 * const replay = await replayRound({ spec, modelId: "2", specDigest, lane: 0, round: 1,
 *   parents: spec.shards.map(() => ({ root: zeroHash })), backend })
 * replay.shards[0].root // the root an honest shard 0 commits
 */
export async function replayRound(p: ReplayRoundParameters): Promise<RoundReplay> {
  const { spec, round } = p;
  const n = spec.shards.length;
  if (p.parents.length !== n) throw new RangeError(`replayRound: ${p.parents.length} parents for ${n} shards`);
  if (!Number.isSafeInteger(round) || round < 1) throw new RangeError(`replayRound: round ${round} is not ≥ 1`);
  const t0 = performance.now();
  const corpus = loadCorpus(spec);
  const trainers = p.parents.map((parent, i) => new StageTrainer(spec, i, parent.state));
  try {
    const digests = trainers.map(() => new TensorDigests());
    const ios = memoryIOs(n).map((io, i) => tensorIO(io, spec, digests[i]));
    const steps: TranscriptStep[][] = trainers.map(() => []);
    for (let step = 0; step < spec.training.stepsPerRound; step++) {
      const results = await Promise.all(
        trainers.map((t, i) => runStageStep(t, ios[i]!, { corpus, lane: p.lane, round, step })),
      );
      for (const [i, r] of results.entries())
        steps[i]!.push({
          step,
          globalStep: globalStep(spec.training.stepsPerRound, round, step),
          batchIds: r.batchIds,
          loss: r.loss ?? null,
        });
    }
    const evals = await Promise.all(trainers.map((t, i) => runStageEval(t, ios[i]!, corpus, round)));
    const shards: ShardReplay[] = [];
    for (const [i, trainer] of trainers.entries()) {
      const state = await trainer.state();
      const { bytes, root } = encodeCheckpoint(trainer.layout, state, {
        modelId: p.modelId,
        shard: i,
        lane: p.lane,
        round,
        specDigest: p.specDigest,
        backend: p.backend.name,
      });
      const d = digests[i]!;
      const losses = steps[i]!.map((s) => s.loss).filter((l): l is number => l !== null);
      const meanLoss = losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : undefined;
      const evalLoss = evals[i] ?? null;
      // Field for field what `runSwarmRound` writes.
      const transcript = new TextEncoder().encode(
        canonicalJson({
          format: "shard-protocol/transcript@1",
          modelId: p.modelId,
          shard: i,
          lane: p.lane,
          round,
          specDigest: p.specDigest,
          parentRoot: p.parents[i]!.root,
          root,
          backend: { name: p.backend.name, versions: p.backend.versions },
          hyperParameters: spec.training,
          compression: spec.compression ?? null,
          optimizerStep: state.step,
          steps: steps[i],
          evalLoss,
          received: { activations: d.receivedActivations, gradients: d.receivedGradients, bytes: d.bytesReceived },
          sent: { activations: d.sentActivations, gradients: d.sentGradients, bytes: d.bytesSent },
        }),
      );
      shards.push({
        shard: i,
        parentRoot: p.parents[i]!.root,
        root,
        checkpoint: bytes,
        state,
        digests: {
          sentActivations: d.sentActivations,
          receivedActivations: d.receivedActivations,
          sentGradients: d.sentGradients,
          receivedGradients: d.receivedGradients,
        },
        steps: steps[i]!,
        evalLoss,
        lossMicros: meanLoss === undefined ? 0n : BigInt(Math.round(meanLoss * 1e6)),
        workUnits: BigInt(spec.training.stepsPerRound * samplesPerStep(spec)) * BigInt(trainer.layout.parameterCount),
        bytesSent: d.bytesSent,
        bytesReceived: d.bytesReceived,
        transcript,
        transcriptDigest: keccak256(transcript),
      });
    }
    return { lane: p.lane, round, backend: p.backend.name, shards, seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const t of trainers) t.dispose();
  }
}
