import { hexToBytes, type Hex, zeroHash } from "viem";

import { keccakBytes, keccakHex } from "../checkpoint/keccak.js";
import { type TensorCodec, decodeTensor, encodeTensor } from "../p2p/codec.js";
import { type Corpus, batchIds, evalIds, sequences } from "./data.js";
import { type ModelSpec, boundaryWidth } from "./spec.js";
import type { StageTrainer } from "./stage.js";

/**
 * The pipeline schedule, shared by swarm nodes and the single-process baseline. Each step,
 * shard 0 pushes every micro-batch forward; the last shard scores each one as it arrives and
 * sends its gradient back at once; middle shards relay both ways. Each shard sums gradients over
 * micro-batches in order and then updates, so where a shard runs cannot change what it computes.
 */

export type TensorType = "activation" | "gradient";

/**
 * Where a shard's tensors go and come from, encoded (`spec.compression.codec`): a libp2p link,
 * or memory in the baseline.
 */
export interface StageIO {
  /** To shard + 1 (activations) or shard − 1 (gradients). */
  send(type: TensorType, round: number, step: number, micro: number, payload: Uint8Array): Promise<void>;
  /** From shard − 1 (activations) or shard + 1 (gradients); exactly the expected tensor or an error. */
  receive(type: TensorType, round: number, step: number, micro: number): Promise<Uint8Array>;
}

/** What the schedule sees: float32 tensors of the boundary shape `[B, T, W]`. */
export interface TensorIO {
  send(type: TensorType, round: number, step: number, micro: number, data: Float32Array): Promise<void>;
  receive(type: TensorType, round: number, step: number, micro: number): Promise<Float32Array>;
}

/** The number format of the tensors between shards. */
export function boundaryCodec(spec: ModelSpec): TensorCodec {
  return spec.compression?.codec ?? "float32";
}

/** Shape of every tensor between shards: `[microBatchSize, context, boundaryWidth]`. */
export function boundaryShape(spec: ModelSpec): number[] {
  return [spec.training.microBatchSize, spec.architecture.context, boundaryWidth(spec)];
}

/**
 * Encodes what a shard sends and decodes what it receives with the spec's codec, folding the
 * encoded bytes (what crosses the wire) into `digests`. Both ends decode the same bytes, so the
 * sender's and the receiver's digests agree and every process computes the same values.
 */
export function tensorIO(io: StageIO, spec: ModelSpec, digests?: TensorDigests): TensorIO {
  const codec = boundaryCodec(spec);
  const shape = boundaryShape(spec);
  return {
    async send(type, round, step, micro, data) {
      const payload = encodeTensor(codec, shape, data);
      digests?.record("sent", type, round, step, micro, payload);
      await io.send(type, round, step, micro, payload);
    },
    async receive(type, round, step, micro) {
      const payload = await io.receive(type, round, step, micro);
      digests?.record("received", type, round, step, micro, payload);
      return decodeTensor(codec, shape, payload);
    },
  };
}

/** Running digests of the four tensor streams of a round: what the ledger's pipeline check compares. */
export class TensorDigests {
  sentActivations: Hex = zeroHash;
  receivedActivations: Hex = zeroHash;
  sentGradients: Hex = zeroHash;
  receivedGradients: Hex = zeroHash;
  /** Bytes sent to and received from neighbours this round. */
  bytesSent = 0;
  bytesReceived = 0;
  /** Seconds spent hashing tensors (the protocol's cost inside the training steps). */
  hashSeconds = 0;

  /**
   * Chains `keccak256(previous ‖ keccak256(header ‖ payload))`, the payload being the encoded
   * tensor (for float32: its little-endian values).
   */
  static fold(previous: Hex, round: number, step: number, micro: number, payload: Uint8Array): Hex {
    const header = new Uint8Array(12);
    const view = new DataView(header.buffer);
    view.setUint32(0, round);
    view.setUint32(4, step);
    view.setUint32(8, micro);
    return keccakHex(hexToBytes(previous), keccakBytes(header, payload));
  }

  record(
    direction: "sent" | "received",
    type: TensorType,
    round: number,
    step: number,
    micro: number,
    payload: Uint8Array,
  ): void {
    const key = `${direction}${type === "activation" ? "Activations" : "Gradients"}` as const;
    const t0 = performance.now();
    this[key] = TensorDigests.fold(this[key], round, step, micro, payload);
    this.hashSeconds += (performance.now() - t0) / 1000;
    if (direction === "sent") this.bytesSent += payload.byteLength;
    else this.bytesReceived += payload.byteLength;
  }
}

export interface StepContext {
  corpus: Corpus;
  /** The replica lane: part of the batch ids (`batchIds`). */
  lane: number;
  round: number;
  /** Step index within the round. */
  step: number;
}

/** Global step number (0-based) of a step of a round (rounds start at 1). */
export function globalStep(stepsPerRound: number, round: number, step: number): number {
  return (round - 1) * stepsPerRound + step;
}

/** Runs one training step of one shard. Returns the mean training loss on the last shard. */
export async function runStageStep(
  trainer: StageTrainer,
  io: TensorIO,
  ctx: StepContext,
): Promise<{ loss?: number; batchIds: number[][] }> {
  const { spec, layout } = trainer;
  const { microBatches } = spec.training;
  const { context } = spec.architecture;
  const g = globalStep(spec.training.stepsPerRound, ctx.round, ctx.step);
  const ids = Array.from({ length: microBatches }, (_, m) => batchIds(spec, ctx.corpus, g, m, ctx.lane));
  const micros = [...Array(microBatches).keys()];
  // Behind a bottleneck a shard embeds the tokens itself: batch ids are public.
  const tokensOf = (m: number) =>
    layout.bottleneck ? sequences(ctx.corpus.train, ids[m]!, context).inputs : undefined;
  if (layout.isLast) {
    let sum = 0;
    for (const m of micros) {
      const { inputs, targets } = sequences(ctx.corpus.train, ids[m]!, context);
      const x = layout.isFirst ? inputs : await io.receive("activation", ctx.round, ctx.step, m);
      const { loss, dx } = await trainer.lossMicro(x, targets, tokensOf(m));
      sum += loss;
      if (dx) await io.send("gradient", ctx.round, ctx.step, m, dx);
    }
    trainer.applyUpdate();
    return { loss: sum / microBatches, batchIds: ids };
  }
  for (const m of micros) {
    const x = layout.isFirst
      ? sequences(ctx.corpus.train, ids[m]!, context).inputs
      : await io.receive("activation", ctx.round, ctx.step, m);
    await io.send("activation", ctx.round, ctx.step, m, await trainer.forwardMicro(m, x, tokensOf(m)));
  }
  for (const m of micros) {
    const dy = await io.receive("gradient", ctx.round, ctx.step, m);
    const dx = await trainer.backwardMicro(m, dy);
    if (dx) await io.send("gradient", ctx.round, ctx.step, m, dx);
  }
  trainer.applyUpdate();
  return { batchIds: ids };
}

/**
 * Scores the held-out set through the pipeline (no gradients). Frames use step index
 * `stepsPerRound` so they never collide with training steps. Returns the loss on the last shard.
 */
export async function runStageEval(
  trainer: StageTrainer,
  io: TensorIO,
  corpus: Corpus,
  round: number,
): Promise<number | undefined> {
  const { spec, layout } = trainer;
  const step = spec.training.stepsPerRound;
  const batches = evalIds(spec, corpus);
  let sum = 0;
  for (const [e, ids] of batches.entries()) {
    const { inputs, targets } = sequences(corpus.heldOut, ids, spec.architecture.context);
    const x = layout.isFirst ? inputs : await io.receive("activation", round, step, e);
    const out = await trainer.evalMicro(x, targets, layout.bottleneck ? inputs : undefined);
    if (typeof out === "number") sum += out;
    else await io.send("activation", round, step, e, out);
  }
  return layout.isLast && batches.length ? sum / batches.length : undefined;
}

/** An async FIFO per (type, direction) between shards in one process: the baseline's wires. */
class Channel {
  private items: Uint8Array[] = [];
  private waiters: ((d: Uint8Array) => void)[] = [];
  push(d: Uint8Array): void {
    const w = this.waiters.shift();
    if (w) w(d);
    else this.items.push(d);
  }
  pull(): Promise<Uint8Array> {
    const d = this.items.shift();
    return d ? Promise.resolve(d) : new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** In-memory IOs for `shards` stages in one process (the centralized baseline). */
export function memoryIOs(shards: number): StageIO[] {
  const forward = Array.from({ length: shards }, () => new Channel()); // forward[i]: into shard i
  const backward = Array.from({ length: shards }, () => new Channel()); // backward[i]: into shard i
  return Array.from({ length: shards }, (_, i) => ({
    async send(type, _round, _step, _micro, data) {
      if (type === "activation") forward[i + 1]!.push(data.slice());
      else backward[i - 1]!.push(data.slice());
    },
    async receive(type) {
      return (type === "activation" ? forward[i]! : backward[i]!).pull();
    },
  }));
}
