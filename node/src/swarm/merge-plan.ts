/**
 * Which lanes of a round are merged, decided by on-chain state alone, so that every node and
 * every verifier reaches the same answer (docs/protocol.md, "Merging lanes").
 *
 * - The round's training commits are its commits on lanes 0 to 255 (`mergedLanesBitmap` holds 256
 *   bits); its merge commits are on lanes `MERGE_LANES + k`, attempt k.
 * - An attempt is complete when every shard revealed its merge commit of that attempt, all with
 *   the same lane bitmap and none rejected. The accepted merge of a round is its complete attempt
 *   revealed first (by the block of its last shard's reveal, then the attempt): an attempt sealed
 *   early and revealed late cannot take the place of one the next round already built on, and a
 *   lone attempt on one shard counts for nothing.
 * - The base of round r on a shard is the accepted merge of round r − 1 there (zero for round 1).
 * - The merge deadline of round r is its first reveal of a training commit built on the base (any
 *   status: a commit rejected later does not move it) plus the round's reveal window. Commits on
 *   another parent do not count, so nobody can start the clock of a round before its base exists.
 * - Lane L is merged when, for every shard, its commit was revealed by the deadline on the base and
 *   is not rejected, and every pipeline link of the lane matched; at most `maxMergedLanes` lanes,
 *   the lowest, so that finalizing a merge (which reads every merged commit) stays within a block.
 *   A lane with a commit rejected after the merge drops out: the merge that included it is taken
 *   down (`rejectMerge`) and the next attempt merges the others.
 *
 * Plain data in, plain data out (`planMerge`); `readRoundState` gathers the data from the chain.
 */
import { type Hex, zeroHash } from "viem";
import {
  type AnyClient,
  type Checkpoint,
  type CommitStatusName,
  type Deployment,
  MERGE_LANES,
  getCommit,
  getPipelineLink,
  mergedLanesBitmap,
  type RevealedCheckpoint,
} from "shard-protocol/sdk";

/** The highest training lane a merge can include (bit 255 of the bitmap). */
export const MAX_MERGED_LANE = 255;

/** A revealed commit of the round (or of the round before), with the ledger's word on it. */
export interface RoundCommit {
  commitId: Hex;
  checkpoint: Checkpoint;
  revealBlock: bigint;
  /** Unix time of the reveal (the ledger's `revealedAt`). */
  revealedAt: number;
  status: CommitStatusName;
}

export interface MergePlanInput {
  round: bigint;
  shardCount: number;
  /** The round's reveal window, seconds (`RoundParams.revealWindow`). */
  revealWindow: number;
  /** Revealed commits of rounds `round − 1` and `round` (others are ignored). */
  commits: readonly RoundCommit[];
  /** Whether the link at `boundary` of the round's training lane `lane` matched. */
  linkMatched: (lane: number, boundary: number) => boolean;
}

export interface MergePlan {
  round: bigint;
  /** Per shard: the checkpoint root the round's lanes build on (zero while round r − 1 has no accepted merge). */
  base: Hex[];
  /** The merge deadline (unix seconds), or undefined while no training commit of the round is revealed. */
  deadline: number | undefined;
  /** The lanes merged, increasing. */
  lanes: number[];
  /** `mergedLanesBitmap(lanes)`, or undefined with no lane. */
  bitmap: Hex | undefined;
  /** Per shard, the merged lanes' commits, in lane order. */
  laneCommits: RoundCommit[][];
  /** Per shard, the accepted merge commit of the round (all or none). */
  accepted: (RoundCommit | undefined)[];
  /**
   * Per shard, the attempt to commit a merge at: the lowest with no revealed commit on this shard
   * whose commits on other shards are not rejected and name this plan's lanes, so that one attempt
   * completes across shards (a sealed, unrevealed commit may still hold it: try the next).
   */
  nextAttempt: number[];
}

export const isMergeLane = (lane: number): boolean => lane >= MERGE_LANES;

/** Merged (lane, shard) commits a merge may read at finalize: about 3k gas each, 6 M gas at most. */
export const MAX_MERGED_COMMITS = 2048;

/** The most lanes a round of `shardCount` shards merges. */
export const maxMergedLanes = (shardCount: number): number =>
  Math.max(1, Math.min(MAX_MERGED_LANE + 1, Math.floor(MAX_MERGED_COMMITS / shardCount)));

/**
 * The accepted merge of a round among its merge commits (of every shard): the complete attempt
 * (every shard revealed, one bitmap, none rejected) revealed first. Per shard, its commit.
 */
export function acceptedMerge(merges: readonly RoundCommit[], shardCount: number): (RoundCommit | undefined)[] {
  const byAttempt = new Map<number, RoundCommit[]>();
  for (const m of merges) {
    if (!isMergeLane(m.checkpoint.lane)) continue;
    const k = m.checkpoint.lane - MERGE_LANES;
    byAttempt.set(k, [...(byAttempt.get(k) ?? []), m]);
  }
  let best: { k: number; block: bigint; commits: RoundCommit[] } | undefined;
  for (const [k, commits] of byAttempt) {
    const shards = new Set(commits.map((c) => c.checkpoint.shard));
    const complete =
      shards.size === shardCount &&
      commits.length === shardCount &&
      commits.every((c) => c.status !== "rejected" && c.status !== "none") &&
      commits.every((c) => c.checkpoint.sentActivations === commits[0]!.checkpoint.sentActivations);
    if (!complete) continue;
    const block = commits.reduce((b, c) => (c.revealBlock > b ? c.revealBlock : b), 0n);
    if (!best || block < best.block || (block === best.block && k < best.k)) best = { k, block, commits };
  }
  return Array.from({ length: shardCount }, (_, s) => best?.commits.find((c) => c.checkpoint.shard === s));
}

/** Decides a round's merge from on-chain data (see the module comment). */
export function planMerge(input: MergePlanInput): MergePlan {
  const { round, shardCount } = input;
  const shards = Array.from({ length: shardCount }, (_, s) => s);
  const mergesOf = (r: bigint) =>
    input.commits.filter((c) => c.checkpoint.round === r && isMergeLane(c.checkpoint.lane));
  const previous = round === 1n ? [] : acceptedMerge(mergesOf(round - 1n), shardCount);
  const base = shards.map((s) => (round === 1n ? zeroHash : (previous[s]?.checkpoint.root ?? zeroHash)));
  const baseReady = round === 1n || previous.every((m) => m !== undefined);
  const onBase = baseReady
    ? input.commits.filter(
        (c) =>
          c.checkpoint.round === round &&
          c.checkpoint.lane <= MAX_MERGED_LANE &&
          c.checkpoint.shard < shardCount &&
          c.checkpoint.parentRoot === base[c.checkpoint.shard],
      )
    : [];
  const first = onBase.length === 0 ? undefined : Math.min(...onBase.map((c) => c.revealedAt));
  const deadline = first === undefined ? undefined : first + input.revealWindow;
  const candidates = [...new Set(onBase.map((c) => c.checkpoint.lane))].sort((a, b) => a - b);
  const lanes = candidates
    .filter((lane) =>
      shards.every((s) => {
        const c = onBase.find((t) => t.checkpoint.shard === s && t.checkpoint.lane === lane);
        return (
          c !== undefined &&
          c.revealedAt <= deadline! &&
          c.status !== "rejected" &&
          (s + 1 === shardCount || input.linkMatched(lane, s))
        );
      }),
    )
    .slice(0, maxMergedLanes(shardCount));
  const laneCommits = shards.map((s) =>
    lanes.map((lane) => onBase.find((t) => t.checkpoint.shard === s && t.checkpoint.lane === lane)!),
  );
  const merges = mergesOf(round);
  const bitmap = lanes.length === 0 ? undefined : mergedLanesBitmap(lanes);
  // Per shard: the lowest attempt free there whose commits on the other shards (if any) are alive
  // and name this plan's lanes, so that the shards of one attempt complete it together.
  const nextAttempt = shards.map((s) => {
    for (let k = 0; ; k++) {
      const at = merges.filter((m) => m.checkpoint.lane - MERGE_LANES === k);
      if (at.some((m) => m.checkpoint.shard === s)) continue;
      if (at.every((m) => m.status !== "rejected" && m.checkpoint.sentActivations === bitmap)) return k;
    }
  });
  return {
    round,
    base,
    deadline,
    lanes,
    bitmap,
    laneCommits,
    accepted: acceptedMerge(merges, shardCount),
    nextAttempt,
  };
}

/** The ledger's word on the pipeline link values (`pipelineLink`): 1 is matched. */
const LINK_MATCHED = 1n;

/**
 * Reads what `planMerge` needs for `round` from the chain: the ledger's state of every revealed
 * commit of rounds `round − 1` and `round` among `reveals` (the model's `CheckpointRevealed`
 * events, which the caller keeps scanning), and the links of the round's training lanes.
 */
export async function readRoundState(
  client: AnyClient,
  opts: {
    deployment: Deployment;
    modelId: bigint;
    round: bigint;
    shardCount: number;
    revealWindow: number;
    reveals: readonly RevealedCheckpoint[];
  },
): Promise<MergePlanInput> {
  const { deployment, modelId, round } = opts;
  const relevant = opts.reveals.filter((r) => r.checkpoint.round === round || r.checkpoint.round + 1n === round);
  const commits: RoundCommit[] = [];
  for (const r of relevant) {
    const state = await getCommit(client, { deployment, commitId: r.commitId });
    commits.push({ ...r, revealedAt: state.revealedAt, status: state.status });
  }
  const links = new Map<string, boolean>();
  const lanes = new Set(
    commits
      .filter((c) => c.checkpoint.round === round && !isMergeLane(c.checkpoint.lane))
      .map((c) => c.checkpoint.lane),
  );
  for (const lane of lanes) {
    for (let boundary = 0; boundary + 1 < opts.shardCount; boundary++) {
      const value = await getPipelineLink(client, { deployment, modelId, round, lane, boundary });
      links.set(`${lane}:${boundary}`, BigInt(value) === LINK_MATCHED);
    }
  }
  return {
    round,
    shardCount: opts.shardCount,
    revealWindow: opts.revealWindow,
    commits,
    linkMatched: (lane, boundary) => links.get(`${lane}:${boundary}`) === true,
  };
}
