/**
 * The content of a merge commit, computed the same way by the node that commits it and by every
 * verifier that checks it: the base checkpoint (the accepted merge of the round before, or the
 * genesis weights for round 1) and the merged lanes' checkpoints, fetched by their on-chain URIs
 * and checked against their roots, merged by the spec's rule (`ml/merge.ts`), tagged with the
 * round, the attempt and the lanes, plus a manifest (the commit's transcript) naming all of it.
 */
import { bytesToHex, type Hex, keccak256, zeroHash } from "viem";
import { MERGE_LANES, mergedLanesBitmap, type Checkpoint } from "shard-protocol/sdk";

import { NodeError } from "../errors.js";
import type { ContentStore } from "../ipfs/store.js";
import { encodeMergedCheckpoint, mergeCheckpoints, mergeTagOf } from "../ml/merge.js";
import { genesisTensor, stageLayout } from "../ml/model.js";
import { type ModelSpec, mergeRule } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import { checkpointMaxBytes, fetchBounded } from "../verify/examine.js";
import { decodeCheckpoint, type EncodedCheckpoint } from "./checkpoint.js";
import type { MergePlan, RoundCommit } from "./merge-plan.js";

export const MERGE_MANIFEST_FORMAT = "shard-protocol/merge@1";

/** The merger's nonce a merge manifest names (`buildMerge`), or undefined. */
export function manifestNonce(bytes: Uint8Array): Hex | undefined {
  try {
    const nonce = (JSON.parse(new TextDecoder().decode(bytes)) as { nonce?: unknown }).nonce;
    return typeof nonce === "string" && /^0x[0-9a-f]{64}$/.test(nonce) ? (nonce as Hex) : undefined;
  } catch {
    return undefined;
  }
}

/** A fresh 32-byte nonce for a merge (`buildMerge`). */
export const randomNonce = (): Hex => bytesToHex(crypto.getRandomValues(new Uint8Array(32)));

/**
 * What is wrong with one input checkpoint of a merge (the base, or a lane's): `unfetched` (not
 * fetched within the timeout: maybe later), or its file is provably bad: it does not decode for
 * the shard and round (`checkpoint-malformed`, a training lane carrying an outer momentum
 * included) or hashes to another root than its commit's (`checkpoint-root`).
 */
export type MergeInputFault = "unfetched" | "checkpoint-malformed" | "checkpoint-root";

/** Content of a merge that cannot be fetched or does not hash to its on-chain root. */
export class MergeInputError extends NodeError {
  override name = "MergeInputError";
  constructor(
    message: string,
    details?: string,
    /** The input checkpoint at fault (its root) and how, when one is (not: no lane to merge, no base given). */
    readonly input?: { root: Hex; fault: MergeInputFault },
  ) {
    super(message, { details, retryable: true });
  }
}

/** A shard's genesis state: the spec's seeded weights, zero Adam moments, step 0 (backend-independent). */
export function genesisState(spec: ModelSpec, shard: number): StageState {
  const state: StageState = { params: {}, adamM: {}, adamV: {}, step: 0 };
  for (const info of stageLayout(spec, shard).params) {
    state.params[info.name] = genesisTensor(spec.training.seed, info);
    state.adamM[info.name] = new Float32Array(state.params[info.name]!.length);
    state.adamV[info.name] = new Float32Array(state.params[info.name]!.length);
  }
  return state;
}

export interface MergeSources {
  spec: ModelSpec;
  specDigest: Hex;
  modelId: bigint;
  store: ContentStore;
  fetchTimeoutMs: number;
  /** States already at hand, by root (a node's own lane checkpoint, its last merge). */
  known?: ReadonlyMap<Hex, StageState>;
}

/** Fetches a revealed checkpoint's state and checks its root. @throws MergeInputError */
export async function loadCheckpointState(src: MergeSources, shard: number, cp: Checkpoint): Promise<StageState> {
  const known = src.known?.get(cp.root);
  if (known) return known;
  const got = await fetchBounded(src.store, cp.checkpointURI, checkpointMaxBytes(src.spec, shard), src.fetchTimeoutMs);
  if ("error" in got)
    throw new MergeInputError(`checkpoint ${cp.root} of shard ${shard} not fetched`, got.error, {
      root: cp.root,
      fault: "unfetched",
    });
  let decoded;
  try {
    decoded = decodeCheckpoint(stageLayout(src.spec, shard), got.bytes, {
      modelId: String(src.modelId),
      specDigest: src.specDigest,
      stepsPerRound: src.spec.training.stepsPerRound,
      round: Number(cp.round),
    });
  } catch (err) {
    throw new MergeInputError(`checkpoint ${cp.root} of shard ${shard} is not readable`, (err as Error).message, {
      root: cp.root,
      fault: "checkpoint-malformed",
    });
  }
  if (decoded.root !== cp.root)
    throw new MergeInputError(`checkpoint of shard ${shard} hashes to ${decoded.root}, not ${cp.root}`, undefined, {
      root: cp.root,
      fault: "checkpoint-root",
    });
  return decoded.state;
}

export interface BuiltMerge {
  shard: number;
  round: bigint;
  attempt: number;
  lanes: number[];
  /** The merged state (with its tag): what the next round on this shard starts from. */
  state: StageState;
  checkpoint: EncodedCheckpoint;
  /** The manifest file (the commit's transcript) and its keccak256 (the transcript digest). */
  manifest: Uint8Array;
  manifestDigest: Hex;
  /** The merge commit's fields but the owner and the two URIs. */
  fields: Omit<Checkpoint, "owner" | "checkpointURI" | "transcriptURI">;
}

/**
 * Merges `plan`'s lanes on `shard` as merge attempt `attempt`. The base is the accepted merge of
 * the round before (`baseCommit`, its root must be `plan.base[shard]`) or, for round 1, genesis.
 *
 * @throws MergeInputError when a checkpoint cannot be fetched, does not decode, does not hash to its
 *   root, or (a lane's) carries an outer momentum (`input` names it); MergeMismatchError when the
 *   lanes cannot be merged otherwise (`ml/merge.ts`)
 */
export async function buildMerge(
  src: MergeSources,
  opts: {
    plan: MergePlan;
    shard: number;
    attempt: number;
    baseCommit?: RoundCommit | undefined;
    /**
     * The merger's random nonce, in the tag and the manifest: it makes the root unpredictable
     * before the reveal (`randomNonce()`); a verifier passes the one the manifest names.
     */
    nonce: Hex;
  },
): Promise<BuiltMerge> {
  const { plan, shard, attempt, nonce } = opts;
  if (plan.lanes.length === 0) throw new MergeInputError(`round ${plan.round} has no lane to merge`);
  const baseRoot = plan.base[shard]!;
  let base: StageState;
  if (baseRoot === zeroHash) base = genesisState(src.spec, shard);
  else {
    if (opts.baseCommit?.checkpoint.root !== baseRoot)
      throw new MergeInputError(`the base ${baseRoot} of round ${plan.round} on shard ${shard} is not given`);
    base = await loadCheckpointState(src, shard, opts.baseCommit.checkpoint);
  }
  const commits = plan.laneCommits[shard]!;
  const lanes = await Promise.all(
    commits.map(async (c) => ({ lane: c.checkpoint.lane, state: await loadCheckpointState(src, shard, c.checkpoint) })),
  );
  // A training checkpoint never carries an outer momentum (only merges do): such a lane is malformed.
  for (const [i, { lane, state }] of lanes.entries())
    if (state.outerMomentum)
      throw new MergeInputError(`lane ${lane}'s checkpoint of shard ${shard} carries an outer momentum`, undefined, {
        root: commits[i]!.checkpoint.root,
        fault: "checkpoint-malformed",
      });
  const rule = mergeRule(src.spec);
  const merged = mergeCheckpoints(rule, base, lanes);
  const round = Number(plan.round);
  const checkpoint = encodeMergedCheckpoint(
    stageLayout(src.spec, shard),
    merged,
    rule,
    plan.lanes,
    {
      modelId: String(src.modelId),
      shard,
      lane: MERGE_LANES + attempt,
      round,
      specDigest: src.specDigest,
      backend: "merge",
    },
    attempt,
    nonce,
  );
  const manifest = new TextEncoder().encode(
    JSON.stringify({
      format: MERGE_MANIFEST_FORMAT,
      modelId: String(src.modelId),
      shard,
      round,
      attempt,
      nonce,
      rule,
      base: baseRoot,
      lanes: commits.map((c) => ({ lane: c.checkpoint.lane, commitId: c.commitId, root: c.checkpoint.root })),
      root: checkpoint.root,
    }),
  );
  const manifestDigest = keccak256(manifest);
  const bitmap = mergedLanesBitmap(plan.lanes);
  return {
    shard,
    round: plan.round,
    attempt,
    lanes: plan.lanes,
    state: { ...merged, mergeTag: mergeTagOf(round, attempt, nonce, plan.lanes) },
    checkpoint,
    manifest,
    manifestDigest,
    fields: {
      modelId: src.modelId,
      shard,
      round: plan.round,
      lane: MERGE_LANES + attempt,
      parentRoot: baseRoot,
      root: checkpoint.root,
      transcriptDigest: manifestDigest,
      sentActivations: bitmap,
      receivedActivations: bitmap,
      sentGradients: zeroHash,
      receivedGradients: zeroHash,
      workUnits: 0n,
      lossMicros: 0n,
    },
  };
}
