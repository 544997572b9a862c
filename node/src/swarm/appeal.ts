import { type Hex, keccak256, toHex } from "viem";
import { type VerdictName, challenge, claimDispute, getCommit, getDispute, getPipelineLink } from "shard-protocol/sdk";

import type { CommitContext } from "./commit.js";
import type { RoundRecord } from "./journal.js";

/**
 * The honest trainer's appeal. A pipeline link whose two sides disagree blocks the finalization
 * of BOTH neighbouring commits unless a dispute upholds one of them, and a challenge that fails
 * forfeits its bond to the trainer. So a trainer whose boundary mismatched (its neighbour forged
 * a digest, or lied about what it received) challenges its own commit, once: verifiers replay the
 * round, vote it valid, the dispute upholds it, and the owner pulls the bonds back
 * (`claimAppeal`, the ledger's `claimDispute`). Net cost zero; the commit can then finalize even
 * though the link never matched. A challenge by the owner's own key is "own": it never earns a
 * share of a slash, so an appeal that fails costs the full slash (its bond comes back).
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
      await getPipelineLink(ctx.client, {
        deployment: ctx.deployment,
        modelId: ctx.modelId,
        round: BigInt(round),
        lane: ctx.lane,
        boundary,
      }),
    );
    if (value === LINK_MISMATCHED) return "mismatched";
    if (value !== LINK_MATCHED) state = "waiting";
  }
  return state;
}

export type AppealOutcome =
  | { round: number; link: "matched" }
  | { round: number; link: "waiting" }
  | { round: number; link: "mismatched"; appealed: boolean; commitId: Hex; dispute?: number | undefined };

/**
 * Checks the links of a revealed round and, when one mismatched, challenges this node's own commit
 * with `APPEAL_EVIDENCE` (at most once: not when the commit already had a dispute or is no longer
 * pending). The bond is paid by the node key's account; the owner claims it back after the
 * verdict (`claimAppeal`).
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
  // The appeal opened the commit's first dispute (or joined it, had a verifier opened it meanwhile).
  return { round: rec.round, link, appealed: true, commitId: c.commitId, dispute: 1 };
}

/**
 * Once the appeal's dispute is resolved, pays the owner its part (`claimDispute`): every bond when
 * the commit was upheld (Valid), its own bond back otherwise. Undefined while the dispute is open.
 * Anyone may send it; the tokens go to the commit's owner (this node's account).
 */
export async function claimAppeal(
  ctx: Pick<CommitContext, "client" | "account" | "deployment">,
  commitId: Hex,
  index: number,
): Promise<{ verdict: VerdictName; amount: bigint } | undefined> {
  const d = await getDispute(ctx.client, { deployment: ctx.deployment, commitId, index });
  if (d.verdict === "none") return undefined;
  const { amount } = await claimDispute(ctx.client, {
    deployment: ctx.deployment,
    account: ctx.account,
    commitId,
    index,
    recipient: ctx.account.address,
  });
  return { verdict: d.verdict, amount };
}
