import { type Hex, keccak256, toHex } from "viem";
import { readContract } from "viem/actions";
import { challenge, contributionLedgerAbi, getCommit } from "shard-protocol/sdk";

import type { CommitContext } from "./commit.js";
import type { RoundRecord } from "./journal.js";

/**
 * The honest trainer's appeal. A pipeline link whose two sides disagree blocks the finalization
 * of BOTH neighbouring commits unless a dispute upholds one of them, and a challenge that fails
 * pays its bond back to the trainer. So a trainer whose boundary mismatched (its neighbour forged
 * a digest, or lied about what it received) challenges its own commit, once: verifiers replay the
 * round, vote it valid, the dispute upholds it and returns the bond. Net cost zero; the commit can
 * then finalize even though the link never matched.
 */

/** Evidence digest of an appeal (a trainer challenging its own commit). */
export const APPEAL_EVIDENCE: Hex = keccak256(toHex("appeal"));

/** The ledger's link sentinels (`pipelineLink`): anything else is the first side's digest, still waiting for the other. */
const LINK_MATCHED = 1n;
const LINK_MISMATCHED = 2n;

export type LinkState = "matched" | "mismatched" | "waiting";

/** The pipeline boundaries of `shard` (boundary b sits between shards b and b + 1). */
export function boundariesOf(shard: number, shardCount: number): number[] {
  return [...(shard > 0 ? [shard - 1] : []), ...(shard + 1 < shardCount ? [shard] : [])];
}

/** The state of the links of a revealed round at this shard's boundaries: the worst of them. */
export async function linkState(ctx: CommitContext, round: number, shardCount: number): Promise<LinkState> {
  let state: LinkState = "matched";
  for (const boundary of boundariesOf(ctx.shard, shardCount)) {
    const value = BigInt(
      (await readContract(ctx.client, {
        address: ctx.deployment.contracts.ledger,
        abi: contributionLedgerAbi,
        functionName: "pipelineLink",
        args: [ctx.modelId, BigInt(round), ctx.lane, boundary],
      })) as Hex,
    );
    if (value === LINK_MISMATCHED) return "mismatched";
    if (value !== LINK_MATCHED) state = "waiting";
  }
  return state;
}

export type AppealOutcome =
  | { round: number; link: "matched" }
  | { round: number; link: "waiting" }
  | { round: number; link: "mismatched"; appealed: boolean; commitId: Hex };

/**
 * Checks the links of a revealed round and, when one mismatched, challenges this node's own commit
 * with `APPEAL_EVIDENCE` (at most once: not when the commit already had a dispute or is no longer
 * pending). The bond is paid by the node key's account and returned to the commit's owner when
 * the dispute upholds it.
 */
export async function appealIfMismatched(
  ctx: CommitContext,
  rec: RoundRecord,
  shardCount: number,
): Promise<AppealOutcome> {
  const link = await linkState(ctx, rec.round, shardCount);
  if (link === "matched") return { round: rec.round, link };
  if (link === "waiting") return { round: rec.round, link };
  const c = await getCommit(ctx.client, {
    deployment: ctx.deployment,
    modelId: ctx.modelId,
    shard: ctx.shard,
    round: BigInt(rec.round),
    lane: ctx.lane,
  });
  if (c.status !== "pending" || c.disputes > 0)
    return { round: rec.round, link, appealed: false, commitId: c.commitId };
  await challenge(ctx.client, {
    deployment: ctx.deployment,
    account: ctx.account,
    commitId: c.commitId,
    evidence: APPEAL_EVIDENCE,
  });
  return { round: rec.round, link, appealed: true, commitId: c.commitId };
}
