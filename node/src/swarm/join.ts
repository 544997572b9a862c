/**
 * Going on from the model's newest merge without training the rounds before it, in merging mode:
 * a node that joins a model (an empty journal) or comes back after the other lanes merged rounds
 * without it. Its lane costs only those rounds; it trains the round after the merge, from the
 * merged checkpoint fetched over IPFS and checked against the root on-chain.
 *
 * The merge is taken on the chain's word (its accepted merge, `merge-plan.ts`): the node does not
 * recompute it (it lacks the lanes' checkpoints of rounds it was not in). A wrong merge is the
 * verifiers' to challenge; once it is taken down, the lanes built on it are not merged either.
 */
import { join } from "node:path";

import type { Hex } from "viem";
import { type AnyClient, type Deployment, MERGE_LANES, type RevealedCheckpoint, getCommit } from "shard-protocol/sdk";

import { writeFileAtomic } from "../checkpoint/atomic.js";
import { NodeError } from "../errors.js";
import type { ContentStore } from "../ipfs/store.js";
import { stageLayout } from "../ml/model.js";
import type { ModelSpec } from "../ml/spec.js";
import type { StageState } from "../ml/stage.js";
import { checkpointMaxBytes, fetchBounded } from "../verify/examine.js";
import { decodeCheckpoint } from "./checkpoint.js";
import type { Journal } from "./journal.js";
import { type RoundCommit, acceptedMerge, isMergeLane } from "./merge-plan.js";
import type { MergeLog, MergedRound } from "./merge-step.js";

/**
 * The newest round after `after` with an accepted merge (every shard's commit of one complete
 * attempt), among the model's `reveals`; undefined when there is none.
 */
export async function newestAcceptedMerge(
  client: AnyClient,
  opts: { deployment: Deployment; shardCount: number; reveals: readonly RevealedCheckpoint[]; after: number },
): Promise<{ round: number; commits: RoundCommit[] } | undefined> {
  const rounds = new Map<number, RevealedCheckpoint[]>();
  for (const r of opts.reveals) {
    const round = Number(r.checkpoint.round);
    if (!isMergeLane(r.checkpoint.lane) || round <= opts.after) continue;
    rounds.set(round, [...(rounds.get(round) ?? []), r]);
  }
  for (const round of [...rounds.keys()].sort((a, b) => b - a)) {
    const commits: RoundCommit[] = [];
    for (const r of rounds.get(round)!) {
      const state = await getCommit(client, { deployment: opts.deployment, commitId: r.commitId });
      commits.push({ ...r, revealedAt: state.revealedAt, status: state.status });
    }
    const accepted = acceptedMerge(commits, opts.shardCount);
    if (accepted.every((c) => c !== undefined)) return { round, commits: accepted as RoundCommit[] };
  }
  return undefined;
}

export interface AdoptContext {
  spec: ModelSpec;
  specDigest: Hex;
  modelId: bigint;
  shard: number;
  store: ContentStore;
  fetchTimeoutMs: number;
  journal: Journal;
  merges: MergeLog;
}

/**
 * Makes `commit` (this shard's accepted merge of `round`) the lane's base: fetches its checkpoint,
 * checks it hashes to the committed root, files it in the merge log and moves the journal's base
 * to `round` (a prepared round at or below it is dropped; decided rounds are still committed).
 *
 * @throws NodeError (retryable) when the checkpoint is not fetched in time; NodeError when it does
 *   not hash to its root (the merge's content is not what was committed: nothing to go on from).
 */
export async function adoptMerge(
  ctx: AdoptContext,
  round: number,
  commit: RoundCommit,
): Promise<{ merged: MergedRound; state: StageState }> {
  const cp = commit.checkpoint;
  const got = await fetchBounded(
    ctx.store,
    cp.checkpointURI,
    checkpointMaxBytes(ctx.spec, ctx.shard),
    ctx.fetchTimeoutMs,
  );
  if ("error" in got)
    throw new NodeError(`The merged checkpoint of round ${round} (shard ${ctx.shard}) is not fetched yet.`, {
      details: got.error,
      retryable: true,
    });
  let decoded;
  try {
    decoded = decodeCheckpoint(stageLayout(ctx.spec, ctx.shard), got.bytes, {
      modelId: String(ctx.modelId),
      specDigest: ctx.specDigest,
      stepsPerRound: ctx.spec.training.stepsPerRound,
      round,
    });
  } catch (err) {
    throw new NodeError(`The merged checkpoint of round ${round} (shard ${ctx.shard}) is not readable.`, {
      cause: err,
      retryable: true,
    });
  }
  if (decoded.root !== cp.root)
    throw new NodeError(
      `The merged checkpoint of round ${round} (shard ${ctx.shard}) hashes to ${decoded.root}, not to its committed root ${cp.root}.`,
      { retryable: true },
    );
  const file = `merge-${round}.safetensors`;
  await writeFileAtomic(join(ctx.merges.dir, file), got.bytes);
  const merged: MergedRound = {
    round,
    attempt: cp.lane - MERGE_LANES,
    // The tag is [round, attempt, nonce (8 words), ...lanes].
    lanes: [...(decoded.state.mergeTag ?? [])].slice(10),
    root: cp.root,
    file,
    committer: cp.owner,
    commitId: commit.commitId,
    own: false,
  };
  await ctx.merges.add(merged);
  await ctx.journal.setBase(round, cp.root);
  return { merged, state: decoded.state };
}
