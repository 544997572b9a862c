import type { Hex } from "viem";

import { merkleRoot } from "../checkpoint/merkle.js";
import { type Tensors, encodeSafetensors, decodeSafetensors } from "../checkpoint/safetensors.js";
import { NodeError } from "../errors.js";
import type { StageLayout } from "../ml/model.js";
import type { StageState } from "../ml/stage.js";

/**
 * A shard checkpoint as a safetensors file: the weights (`param/<name>`), Adam's moments
 * (`adam.m/<name>`, `adam.v/<name>`) — everything a verifier needs to replay the next round —
 * and metadata naming the model, shard, round and optimizer step. A checkpoint merged from lanes
 * under the `diloco` rule also holds the outer momentum (`outer.momentum/<name>`, every tensor or
 * none). Its Merkle root over all tensors is the `root` committed on-chain.
 *
 * The optimizer step (Adam's update count, which its bias correction reads) is metadata, outside
 * the root, so it is never taken on the file's word: it is a function of the round
 * (`optimizerStepOf`: every round applies `stepsPerRound` updates to a checkpoint of the round
 * before, and a merge keeps its lanes' step), and `decodeCheckpoint` refuses a file that names
 * another step, or another round than the one the chain names.
 */

export const CHECKPOINT_FORMAT = "shard-protocol/checkpoint@1";

export class CheckpointMismatchError extends NodeError {
  override name = "CheckpointMismatchError";
  constructor(what: string, details?: string) {
    super(`The checkpoint does not fit this shard: ${what}.`, { details });
  }
}

export interface CheckpointMeta {
  modelId: string;
  shard: number;
  lane: number;
  round: number;
  specDigest: Hex;
  backend: string;
}

/** What `decodeCheckpoint` checks a checkpoint's metadata against. */
export interface CheckpointExpect {
  modelId: string;
  specDigest: Hex;
  /** The spec's `training.stepsPerRound`. */
  stepsPerRound: number;
  /**
   * The round the checkpoint is of, as the chain (or the node's journal) names it: the file's
   * round must be it. Undefined only where the optimizer step does not matter (serving weights);
   * the step must then still agree with the file's own round.
   */
  round: number | undefined;
}

/**
 * The optimizer step of a checkpoint of `round` (genesis is round 0): `round × stepsPerRound`.
 * Round r trains from a checkpoint of round r − 1 (the ledger's parent rule) for `stepsPerRound`
 * updates, and a merge of round r keeps its lanes' step.
 */
export function optimizerStepOf(round: number, stepsPerRound: number): number {
  return round * stepsPerRound;
}

/** The tensor naming a merged checkpoint's round, attempt and lanes (`StageState.mergeTag`). */
export const MERGE_TAG = "merge/tag";

export function stateToTensors(layout: StageLayout, state: StageState): Tensors {
  const out: Tensors = {};
  for (const { name, shape } of layout.params) {
    out[`param/${name}`] = { dtype: "F32", shape, data: state.params[name]! };
    out[`adam.m/${name}`] = { dtype: "F32", shape, data: state.adamM[name]! };
    out[`adam.v/${name}`] = { dtype: "F32", shape, data: state.adamV[name]! };
    if (state.outerMomentum) out[`outer.momentum/${name}`] = { dtype: "F32", shape, data: state.outerMomentum[name]! };
  }
  if (state.mergeTag) out[MERGE_TAG] = { dtype: "I32", shape: [state.mergeTag.length], data: state.mergeTag };
  return out;
}

export interface EncodedCheckpoint {
  bytes: Uint8Array;
  root: Hex;
}

/**
 * Encodes a shard's state as a checkpoint file, with its Merkle root. `extra` adds metadata entries
 * (a merged checkpoint names its rule and lanes); it cannot replace the standard ones.
 */
export function encodeCheckpoint(
  layout: StageLayout,
  state: StageState,
  meta: CheckpointMeta,
  extra: Record<string, string> = {},
): EncodedCheckpoint {
  const tensors = stateToTensors(layout, state);
  const bytes = encodeSafetensors(tensors, {
    ...extra,
    format: CHECKPOINT_FORMAT,
    modelId: meta.modelId,
    shard: String(meta.shard),
    lane: String(meta.lane),
    round: String(meta.round),
    optimizerStep: String(state.step),
    specDigest: meta.specDigest,
    backend: meta.backend,
  });
  return { bytes, root: merkleRoot(tensors) };
}

/**
 * Reads a checkpoint for `layout`, checking that it holds exactly this shard's tensors with their
 * shapes, and that its metadata names the expected model, shard, spec and round, and the optimizer
 * step of that round (`optimizerStepOf`).
 */
export function decodeCheckpoint(
  layout: StageLayout,
  bytes: Uint8Array,
  expect: CheckpointExpect,
): { state: StageState; root: Hex; meta: CheckpointMeta } {
  // Weights, two Adam moments, and the outer momentum of a `diloco` merge.
  const expectedBytes = layout.parameterCount * 4 * 4;
  const { tensors, metadata } = decodeSafetensors(bytes, {
    maxBytes: expectedBytes + 1024 * 1024,
    maxTensors: layout.params.length * 4 + 1,
  });
  if (metadata.format !== CHECKPOINT_FORMAT)
    throw new CheckpointMismatchError(`format is ${JSON.stringify(metadata.format)}, expected ${CHECKPOINT_FORMAT}`);
  if (metadata.modelId !== expect.modelId || Number(metadata.shard) !== layout.shard)
    throw new CheckpointMismatchError(
      `it is model ${metadata.modelId} shard ${metadata.shard}, expected model ${expect.modelId} shard ${layout.shard}`,
    );
  if (metadata.specDigest !== expect.specDigest)
    throw new CheckpointMismatchError("it was trained under another model spec", `spec digest ${metadata.specDigest}`);
  const round = Number(metadata.round);
  if (!/^(0|[1-9][0-9]*)$/.test(metadata.round ?? "") || !Number.isSafeInteger(round))
    throw new CheckpointMismatchError(`round ${JSON.stringify(metadata.round)} is not a count`);
  if (expect.round !== undefined && round !== expect.round)
    throw new CheckpointMismatchError(`it is a checkpoint of round ${round}, expected round ${expect.round}`);
  // The step is the round's (not the file's word): Adam's bias correction reads it, the root does not cover it.
  const step = optimizerStepOf(round, expect.stepsPerRound);
  if (metadata.optimizerStep !== String(step))
    throw new CheckpointMismatchError(
      `optimizer step ${JSON.stringify(metadata.optimizerStep)}, expected ${step} after round ${round} (${expect.stepsPerRound} steps a round)`,
    );
  const state: StageState = { params: {}, adamM: {}, adamV: {}, step };
  const hasOuter = layout.params.some(({ name }) => Object.hasOwn(tensors, `outer.momentum/${name}`));
  if (hasOuter) state.outerMomentum = {};
  const seen = new Set<string>();
  for (const { name, shape } of layout.params) {
    for (const [prefix, target] of [
      ["param/", state.params],
      ["adam.m/", state.adamM],
      ["adam.v/", state.adamV],
      ...(state.outerMomentum ? [["outer.momentum/", state.outerMomentum] as const] : []),
    ] as const) {
      const key = prefix + name;
      const t = tensors[key];
      if (!t) throw new CheckpointMismatchError(`tensor ${key} is missing`);
      if (t.dtype !== "F32" || t.shape.join() !== shape.join())
        throw new CheckpointMismatchError(`tensor ${key} is ${t.dtype}[${t.shape}], expected F32[${shape}]`);
      target[name] = t.data as Float32Array;
      seen.add(key);
    }
  }
  const tag = tensors[MERGE_TAG];
  if (tag) {
    if (tag.dtype !== "I32" || tag.shape.length !== 1 || tag.shape[0]! < 11 || tag.shape[0]! > 266)
      throw new CheckpointMismatchError(`tensor ${MERGE_TAG} is ${tag.dtype}[${tag.shape}], expected I32[11 to 266]`);
    state.mergeTag = tag.data as Int32Array;
    seen.add(MERGE_TAG);
  }
  const extra = Object.keys(tensors).filter((k) => !seen.has(k));
  if (extra.length)
    throw new CheckpointMismatchError(`it has tensors this shard does not own (${extra.slice(0, 3).join(", ")})`);
  return {
    state,
    root: merkleRoot(tensors),
    meta: {
      modelId: metadata.modelId,
      shard: layout.shard,
      lane: Number(metadata.lane),
      round,
      specDigest: metadata.specDigest as Hex,
      backend: metadata.backend ?? "",
    },
  };
}
