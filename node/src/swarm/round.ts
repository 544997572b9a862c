import { join } from "node:path";

import { type Hex, keccak256 } from "viem";

import { writeFileAtomic } from "../checkpoint/atomic.js";
import type { PipelineLink } from "../p2p/link.js";
import type { BackendInfo } from "../ml/backend.js";
import type { Corpus } from "../ml/data.js";
import {
  type StageIO,
  TensorDigests,
  boundaryCodec,
  boundaryShape,
  globalStep,
  runStageEval,
  runStageStep,
  tensorIO,
} from "../ml/pipeline.js";
import { canonicalJson, type ModelSpec } from "../ml/spec.js";
import type { StageTrainer } from "../ml/stage.js";
import { encodeCheckpoint } from "./checkpoint.js";
import type { Journal, RoundRecord } from "./journal.js";
import type { RoundTamper } from "./tamper.js";

/**
 * One round of one shard inside the swarm: the round's training steps over the links to the
 * neighbouring shards, the held-out evaluation, the checkpoint and transcript written to disk
 * (`prepared`), and the agreement that makes the round all-or-nothing for the lane: "prepared"
 * travels back from the last shard to shard 0 (each shard forwards it once it has prepared too),
 * and shard 0, now knowing that every shard prepared, sends "decided" forward. Only a decided
 * round is committed on-chain; a round that fails before that is retried from the last decided
 * checkpoint by every shard.
 */

export interface Neighbours {
  /** Link to shard − 1 (absent on shard 0). */
  prev?: PipelineLink | undefined;
  /** Link to shard + 1 (absent on the last shard). */
  next?: PipelineLink | undefined;
  /** Bound on each wait for a neighbour. */
  timeoutMs: number;
}

/** The StageIO of a swarm node: encoded tensors of the boundary shape over its two links. */
export function linkIO(n: Neighbours, spec: ModelSpec): StageIO {
  const shape = boundaryShape(spec);
  const dtype = boundaryCodec(spec);
  const linkFor = (type: "activation" | "gradient", direction: "send" | "receive") => {
    const toward = (type === "activation") === (direction === "send") ? n.next : n.prev;
    if (!toward)
      throw new Error(`this shard has no neighbour to ${direction} ${type}s ${direction === "send" ? "to" : "from"}`);
    return toward;
  };
  return {
    send: (type, round, step, micro, payload) =>
      linkFor(type, "send").sendPayload(
        { type, round, step, micro, shape, dtype, payload },
        { timeoutMs: n.timeoutMs },
      ),
    receive: (type, round, step, micro) =>
      linkFor(type, "receive").receivePayload({ type, round, step, micro, shape, dtype }, { timeoutMs: n.timeoutMs }),
  };
}

export interface RoundContext {
  spec: ModelSpec;
  trainer: StageTrainer;
  corpus: Corpus;
  backend: BackendInfo;
  journal: Journal;
  modelId: string;
  specDigest: Hex;
  shard: number;
  lane: number;
  round: number;
  parentRoot: Hex;
  neighbours: Neighbours;
  /** Called after every step (the loss is known on the last shard only). */
  onStep?: (s: { round: number; step: number; loss: number | undefined; samplesPerSecond: number }) => void;
  /** Checked between steps: when set, the round is given up (the caller aborts the links). */
  shouldStop?: () => boolean;
  /** Tests and benchmarks only: change what this round commits (see `tamper.ts`). */
  tamper?: RoundTamper | undefined;
}

export class RoundStoppedError extends Error {
  override name = "RoundStoppedError";
}

export interface RoundOutcome {
  record: RoundRecord;
  evalLoss: number | undefined;
  bytesSent: number;
  bytesReceived: number;
  /** Seconds spent training (steps + eval) and on the checkpoint + agreement. */
  trainSeconds: number;
  checkpointSeconds: number;
  /** Seconds of the training time spent hashing the tensors sent and received. */
  digestSeconds: number;
  /** Whether a `tamper.state` hook replaced the trained state (the trainer must reload it). */
  stateTampered: boolean;
}

/** Runs, prepares and decides one round. Throws on any neighbour failure before the decision. */
export async function runSwarmRound(ctx: RoundContext): Promise<RoundOutcome> {
  const { spec, trainer, round } = ctx;
  const digests = new TensorDigests();
  const io = tensorIO(linkIO(ctx.neighbours, spec), spec, digests);
  const samples = spec.training.microBatchSize * spec.training.microBatches;
  const steps: { step: number; globalStep: number; batchIds: number[][]; loss: number | null }[] = [];
  const t0 = performance.now();
  for (let step = 0; step < spec.training.stepsPerRound; step++) {
    if (ctx.shouldStop?.()) throw new RoundStoppedError(`stopped at step ${step} of round ${round}`);
    const s0 = performance.now();
    const r = await runStageStep(trainer, io, { corpus: ctx.corpus, lane: ctx.lane, round, step });
    steps.push({
      step,
      globalStep: globalStep(spec.training.stepsPerRound, round, step),
      batchIds: r.batchIds,
      loss: r.loss ?? null,
    });
    ctx.onStep?.({ round, step, loss: r.loss, samplesPerSecond: samples / ((performance.now() - s0) / 1000) });
  }
  const evalLoss = await runStageEval(trainer, io, ctx.corpus, round);
  const t1 = performance.now();

  // Prepare: the checkpoint and transcript, on disk before anyone is told.
  const trained = await trainer.state();
  const state = ctx.tamper?.state?.(round, trained) ?? trained;
  const meta = {
    modelId: ctx.modelId,
    shard: ctx.shard,
    lane: ctx.lane,
    round,
    specDigest: ctx.specDigest,
    backend: ctx.backend.name,
  };
  const { bytes, root } = encodeCheckpoint(trainer.layout, state, meta);
  const checkpointFile = `round-${round}.safetensors`;
  const transcriptFile = `round-${round}.transcript.json`;
  const honestWork = BigInt(spec.training.stepsPerRound * samples) * BigInt(trainer.layout.parameterCount);
  const workUnits = ctx.tamper?.workUnits?.(round, honestWork) ?? honestWork;
  const real = {
    sentActivations: digests.sentActivations,
    receivedActivations: digests.receivedActivations,
    sentGradients: digests.sentGradients,
    receivedGradients: digests.receivedGradients,
  };
  const committed = ctx.tamper?.digests?.(round, real) ?? real;
  const losses = steps.map((s) => s.loss).filter((l): l is number => l !== null);
  const meanLoss = losses.length ? losses.reduce((a, b) => a + b, 0) / losses.length : undefined;
  const transcript = {
    format: "shard-protocol/transcript@1",
    modelId: ctx.modelId,
    shard: ctx.shard,
    lane: ctx.lane,
    round,
    specDigest: meta.specDigest,
    parentRoot: ctx.parentRoot,
    root,
    backend: { name: ctx.backend.name, versions: ctx.backend.versions },
    hyperParameters: spec.training,
    compression: spec.compression ?? null,
    optimizerStep: state.step,
    steps,
    evalLoss: evalLoss ?? null,
    received: {
      activations: committed.receivedActivations,
      gradients: committed.receivedGradients,
      bytes: digests.bytesReceived,
    },
    sent: { activations: committed.sentActivations, gradients: committed.sentGradients, bytes: digests.bytesSent },
  };
  const transcriptBytes = new TextEncoder().encode(canonicalJson(transcript));
  const dir = ctx.journal.dir;
  await writeFileAtomic(join(dir, checkpointFile), bytes);
  await writeFileAtomic(join(dir, transcriptFile), transcriptBytes);
  await ctx.journal.prepare({
    round,
    phase: "prepared",
    parentRoot: ctx.parentRoot,
    root,
    checkpointFile,
    transcriptFile,
    transcriptDigest: keccak256(transcriptBytes),
    ...committed,
    workUnits: workUnits.toString(),
    lossMicros: meanLoss === undefined ? "0" : String(Math.round(meanLoss * 1e6)),
    evalLoss: evalLoss ?? null,
  });

  // Agree: prepared flows back to shard 0, decided flows forward.
  const { prev, next, timeoutMs } = ctx.neighbours;
  if (next) await next.receiveEnd(round, { timeoutMs });
  if (prev) {
    await prev.sendEnd(round, { timeoutMs });
    await prev.receiveEnd(round, { timeoutMs });
  }
  const record = await ctx.journal.advance(round, "decided");
  if (next) await next.sendEnd(round, { timeoutMs });
  const t2 = performance.now();
  return {
    record,
    evalLoss,
    bytesSent: digests.bytesSent,
    bytesReceived: digests.bytesReceived,
    trainSeconds: (t1 - t0) / 1000,
    checkpointSeconds: (t2 - t1) / 1000,
    digestSeconds: digests.hashSeconds,
    stateTampered: state !== trained,
  };
}
