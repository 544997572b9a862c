/**
 * Merging a shard's lanes. Several lanes (pipelines) train the same round from the same parent
 * checkpoint of the shard on different batches; afterwards their checkpoints are merged into one,
 * the parent of the next round. A verifier recomputes the merge, so it must give the same bits on
 * every machine and backend: it is plain TypeScript over the checkpoint's float32 arrays (no
 * TensorFlow.js), in a fixed order, with one rounding per stored value.
 *
 * Order and rounding. Lanes are taken in ascending lane number (the input is sorted; a lane number
 * given twice is an error). For every element, the lanes' values are summed in that order in
 * float64, starting from 0, and divided by the number of lanes (`s / k`, not `s * (1 / k)`); each
 * rule's arithmetic on that element continues in float64, and the value stored is rounded to
 * float32 once (`Math.fround`, round-to-nearest-even). Elements are independent of each other.
 *
 * What each part of the state becomes:
 *
 * - Weights: per the rule. `mean`: the mean of the lanes' weights. `diloco` (Douillard et al. 2023,
 *   arXiv:2311.08105): with `m` the mean of the lanes' weights and `b` the parent's weight, the
 *   outer gradient `g = b − m` (the mean of the lanes' deltas `b − laneᵢ`, computed as `b − m`),
 *   the momentum `u' = μ·u + g`, the step `d = g + μ·u'` with Nesterov or `d = u'` without, and the
 *   merged weight `b − lr·d` (PyTorch's SGD with momentum, no dampening). With `lr` 1 and `μ` 0
 *   this is the mean, as it is in exact arithmetic.
 * - Adam's moments (`adamM`, `adamV`): the mean of the lanes' moments under either rule, so the
 *   next round's inner optimizer continues from the lanes' average statistics. (The mean of second
 *   moments is not the second moment of the mean gradient; it is a documented choice, not a
 *   derivation.)
 * - The optimizer step: every lane must have taken the same number of updates, which the merged
 *   checkpoint keeps (the lanes trained the same round from the same parent).
 * - The outer momentum (`diloco` only): `u'` above, stored in the merged checkpoint as
 *   `outer.momentum/<name>`; a parent without it (genesis, or the first merge) counts as zeros.
 *   Lanes are trained checkpoints and never carry it. A `mean` merge has none.
 *
 * The parent (`base`) is the checkpoint the lanes started from: the previous merge, or genesis
 * (genesis weights, zero moments, step 0).
 */
import { bytesToHex, type Hex, hexToBytes, zeroHash } from "viem";

import { NodeError } from "../errors.js";
import { type CheckpointMeta, type EncodedCheckpoint, encodeCheckpoint } from "../swarm/checkpoint.js";
import type { StageLayout } from "./model.js";
import { type MergeRule, canonicalJson } from "./spec.js";
import type { StageState } from "./stage.js";

/** One lane's trained checkpoint of the shard. */
export interface LaneState {
  lane: number;
  state: StageState;
}

/** The lanes' checkpoints cannot be merged: none given, a lane twice, or tensors that differ. */
export class MergeMismatchError extends NodeError {
  override name = "MergeMismatchError";
  constructor(what: string, details?: string) {
    super(`The lanes cannot be merged: ${what}.`, { details });
  }
}

/** The lanes sorted by lane number; throws on an empty list or a repeated or invalid number. */
function sortedLanes(lanes: readonly LaneState[]): LaneState[] {
  if (lanes.length === 0) throw new MergeMismatchError("no lanes were given");
  const sorted = [...lanes].sort((a, b) => a.lane - b.lane);
  sorted.forEach(({ lane }, i) => {
    if (!Number.isSafeInteger(lane) || lane < 0) throw new MergeMismatchError(`lane number ${lane} is not a count`);
    if (i > 0 && sorted[i - 1]!.lane === lane) throw new MergeMismatchError(`lane ${lane} is given twice`);
  });
  return sorted;
}

type Group = "params" | "adamM" | "adamV";
const GROUPS: readonly Group[] = ["params", "adamM", "adamV"];

/** Checks that every lane holds exactly the base's tensors, with the same lengths, and one step. */
function checkShapes(base: StageState, lanes: readonly LaneState[]): string[] {
  const names = Object.keys(base.params).sort();
  for (const group of GROUPS.slice(1)) {
    const got = Object.keys(base[group]).sort();
    if (got.join("\n") !== names.join("\n"))
      throw new MergeMismatchError(`the parent's ${group} tensors do not match its weights`);
  }
  const describe = (s: StageState, group: Group, n: string) => `${s[group][n]?.length ?? "no"} values`;
  for (const { lane, state } of lanes) {
    for (const group of GROUPS) {
      const got = Object.keys(state[group]).sort();
      if (got.join("\n") !== names.join("\n")) {
        const missing = names.filter((n) => !Object.hasOwn(state[group], n));
        const extra = got.filter((n) => !Object.hasOwn(base.params, n));
        throw new MergeMismatchError(
          `lane ${lane}'s ${group} tensors are not the parent's`,
          `missing: ${missing.slice(0, 3).join(", ") || "none"}; extra: ${extra.slice(0, 3).join(", ") || "none"}`,
        );
      }
      for (const n of names) {
        if (!(state[group][n] instanceof Float32Array) || state[group][n].length !== base.params[n]!.length)
          throw new MergeMismatchError(
            `lane ${lane}'s ${group} tensor ${n} has ${describe(state, group, n)}, the parent's weight ${base.params[n]!.length}`,
          );
      }
    }
    if (state.outerMomentum) throw new MergeMismatchError(`lane ${lane} carries an outer momentum`);
    if (state.step !== lanes[0]!.state.step)
      throw new MergeMismatchError(
        `lane ${lane} took ${state.step} optimizer steps, lane ${lanes[0]!.lane} ${lanes[0]!.state.step}`,
      );
  }
  if (base.outerMomentum && Object.keys(base.outerMomentum).sort().join("\n") !== names.join("\n"))
    throw new MergeMismatchError("the parent's outer momentum tensors do not match its weights");
  for (const n of names) {
    if (!(base.params[n] instanceof Float32Array))
      throw new MergeMismatchError(`the parent's weight ${n} is not float32`);
    const u = base.outerMomentum?.[n];
    if (base.outerMomentum && (!(u instanceof Float32Array) || u.length !== base.params[n].length))
      throw new MergeMismatchError(`the parent's outer momentum ${n} does not match its weight`);
  }
  return names;
}

/** The lanes' element-wise sum in float64, accumulated in lane order. */
function laneSum(lanes: readonly LaneState[], group: Group, name: string): Float64Array {
  const sum = new Float64Array(lanes[0]!.state[group][name]!.length);
  for (const { state } of lanes) {
    const x = state[group][name]!;
    for (let j = 0; j < sum.length; j++) sum[j]! += x[j]!;
  }
  return sum;
}

/** The lanes' element-wise mean, rounded once to float32. */
function laneMean(lanes: readonly LaneState[], group: Group, name: string): Float32Array {
  const sum = laneSum(lanes, group, name);
  const k = lanes.length;
  const out = new Float32Array(sum.length);
  for (let j = 0; j < out.length; j++) out[j] = sum[j]! / k;
  return out;
}

/**
 * Merges a shard's lane checkpoints into one, by `rule`, from the parent `base` they all trained
 * from. The inputs are not modified; the result shares no arrays with them.
 *
 * @throws MergeMismatchError when no lanes are given, a lane number repeats, the lanes' tensors
 * (names, sizes) differ from the parent's, a lane carries an outer momentum, or the lanes' steps
 * differ.
 *
 * @example
 * const merged = mergeCheckpoints(mergeRule(spec), parent, [
 *   { lane: 0, state: await trainer0.state() },
 *   { lane: 1, state: await trainer1.state() },
 * ]);
 */
export function mergeCheckpoints(rule: MergeRule, base: StageState, lanes: readonly LaneState[]): StageState {
  const sorted = sortedLanes(lanes);
  const names = checkShapes(base, sorted);
  const k = sorted.length;
  const merged: StageState = { params: {}, adamM: {}, adamV: {}, step: sorted[0]!.state.step };
  for (const n of names) {
    merged.adamM[n] = laneMean(sorted, "adamM", n);
    merged.adamV[n] = laneMean(sorted, "adamV", n);
  }
  if (rule.rule === "mean") {
    for (const n of names) merged.params[n] = laneMean(sorted, "params", n);
    return merged;
  }
  const { outerLearningRate: lr, outerMomentum: mu, nesterov } = rule;
  merged.outerMomentum = {};
  for (const n of names) {
    const sum = laneSum(sorted, "params", n);
    const b = base.params[n]!;
    const u = base.outerMomentum?.[n];
    const params = new Float32Array(b.length);
    const momentum = new Float32Array(b.length);
    for (let j = 0; j < b.length; j++) {
      const g = b[j]! - sum[j]! / k;
      const u1 = mu * (u ? u[j]! : 0) + g;
      const d = nesterov ? g + mu * u1 : u1;
      params[j] = b[j]! - lr * d;
      momentum[j] = u1;
    }
    merged.params[n] = params;
    merged.outerMomentum[n] = momentum;
  }
  return merged;
}

/**
 * The merged checkpoint's file and Merkle root, computed exactly as a trained checkpoint's
 * (`encodeCheckpoint`): the root covers the tensors only: the merged state and its tag tensor
 * `merge/tag` = `[round, attempt, nonce, ...lanes]` (`mergeTagOf`), so that it differs from
 * every lane's root and from other attempts', and cannot be predicted before the reveal. The metadata is a checkpoint's (`meta`: the model, shard, round and the lane it is filed
 * under) plus `merge` (the rule, canonical JSON) and `mergedLanes` (the lane numbers, ascending,
 * comma-separated).
 *
 * @example
 * const { bytes, root } = encodeMergedCheckpoint(layout, merged, rule, [0, 1, 2], { ...meta, lane: 0 });
 */
/**
 * A merged checkpoint's tag: `[round, attempt, nonce as 8 int32 words, ...lanes]`. The merger's
 * random nonce makes the root unpredictable before the merge is revealed, so nobody can seal the
 * same root first (the ledger gives a root to the earliest seal).
 */
export function mergeTagOf(round: number, attempt: number, nonce: Hex, lanes: readonly number[]): Int32Array {
  const words = hexToBytes(nonce, { size: 32 });
  const view = new DataView(words.buffer, words.byteOffset, 32);
  const nonceWords = Array.from({ length: 8 }, (_, i) => view.getInt32(i * 4));
  return Int32Array.from([round, attempt, ...nonceWords, ...lanes]);
}

/** The nonce in a merged checkpoint's tag (`mergeTagOf`). */
export function nonceOfTag(tag: Int32Array): Hex {
  const bytes = new Uint8Array(32);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < 8; i++) view.setInt32(i * 4, tag[2 + i]!);
  return bytesToHex(bytes);
}

export function encodeMergedCheckpoint(
  layout: StageLayout,
  merged: StageState,
  rule: MergeRule,
  lanes: readonly number[],
  meta: CheckpointMeta,
  attempt = 0,
  nonce: Hex = zeroHash,
): EncodedCheckpoint {
  const sorted = [...lanes].sort((a, b) => a - b);
  const mergeTag = mergeTagOf(meta.round, attempt, nonce, sorted);
  return encodeCheckpoint(layout, { ...merged, mergeTag }, meta, {
    merge: canonicalJson(rule),
    mergedLanes: sorted.join(","),
  });
}
