/**
 * Which lanes of a round are merged, decided by on-chain state alone, so that every node and
 * every verifier reaches the same answer (docs/protocol.md, "Merging lanes").
 *
 * - The round's training commits are its commits on lanes 0 to 255 (`mergedLanesBitmap` holds 256
 *   bits); its merge commits are on lanes `MERGE_LANES + k`, attempt k.
 * - The base of round r on a shard is the accepted merge of round r − 1 on that shard (zero for
 *   round 1). The accepted merge of a (shard, round) is its revealed, not rejected merge commit of
 *   the lowest attempt.
 * - The merge deadline of round r is its first training reveal (the ledger's `revealedAt`) plus the
 *   round's reveal window.
 * - Lane L is merged when, for every shard, its commit was revealed by the deadline, built on the
 *   base and is not rejected, and every pipeline link of the lane matched. A lane with a commit
 *   rejected later drops out: the merge that included it is taken down (`rejectMerge`) and the
 *   next attempt merges the others.
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
  /** Per shard: the checkpoint root the round's lanes build on. */
  base: Hex[];
  /** The merge deadline (unix seconds), or undefined while no training commit of the round is revealed. */
  deadline: number | undefined;
  /** The lanes merged, increasing. */
  lanes: number[];
  /** `mergedLanesBitmap(lanes)`, or undefined with no lane. */
  bitmap: Hex | undefined;
  /** Per shard, the merged lanes' commits, in lane order. */
  laneCommits: RoundCommit[][];
  /** Per shard, the accepted merge commit of the round, if any. */
  accepted: (RoundCommit | undefined)[];
  /** Per shard, the lowest merge attempt with no revealed commit (a sealed one may still take it). */
  nextAttempt: number[];
}

export const isMergeLane = (lane: number): boolean => lane >= MERGE_LANES;

/** The accepted merge among a (shard, round)'s merge commits: revealed, not rejected, lowest attempt. */
export function acceptedMerge(merges: readonly RoundCommit[]): RoundCommit | undefined {
  return [...merges]
    .filter((m) => isMergeLane(m.checkpoint.lane) && m.status !== "rejected" && m.status !== "none")
    .sort((a, b) => a.checkpoint.lane - b.checkpoint.lane)[0];
}

/** Decides a round's merge from on-chain data (see the module comment). */
export function planMerge(input: MergePlanInput): MergePlan {
  const { round, shardCount } = input;
  const shards = Array.from({ length: shardCount }, (_, s) => s);
  const of = (r: bigint, s: number, merge: boolean) =>
    input.commits.filter(
      (c) => c.checkpoint.round === r && c.checkpoint.shard === s && isMergeLane(c.checkpoint.lane) === merge,
    );
  const base = shards.map((s) =>
    round === 1n ? zeroHash : (acceptedMerge(of(round - 1n, s, true))?.checkpoint.root ?? zeroHash),
  );
  const training = shards.flatMap((s) => of(round, s, false));
  const first = training.length === 0 ? undefined : Math.min(...training.map((c) => c.revealedAt));
  const deadline = first === undefined ? undefined : first + input.revealWindow;
  const candidates = [...new Set(training.map((c) => c.checkpoint.lane))]
    .filter((l) => l <= MAX_MERGED_LANE)
    .sort((a, b) => a - b);
  const lanes = candidates.filter((lane) =>
    shards.every((s) => {
      const c = training.find((t) => t.checkpoint.shard === s && t.checkpoint.lane === lane);
      return (
        c !== undefined &&
        c.revealedAt <= deadline! &&
        c.status !== "rejected" &&
        c.checkpoint.parentRoot === base[s] &&
        (s + 1 === shardCount || input.linkMatched(lane, s))
      );
    }),
  );
  const laneCommits = shards.map((s) =>
    lanes.map((lane) => training.find((t) => t.checkpoint.shard === s && t.checkpoint.lane === lane)!),
  );
  const accepted = shards.map((s) => acceptedMerge(of(round, s, true)));
  const nextAttempt = shards.map((s) => {
    const used = new Set(of(round, s, true).map((m) => m.checkpoint.lane - MERGE_LANES));
    let k = 0;
    while (used.has(k)) k++;
    return k;
  });
  return {
    round,
    base,
    deadline,
    lanes,
    bitmap: lanes.length === 0 ? undefined : mergedLanesBitmap(lanes),
    laneCommits,
    accepted,
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
