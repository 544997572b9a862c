/**
 * Shard protocol SDK (viem core). Every action is `(client, parameters) => result` and is also
 * available bound to a deployment through `client.extend(shardActions(deployment))`.
 * ethers v6 users: `shard-protocol/sdk/ethers`. Node helpers for deployment files:
 * `shard-protocol/sdk/node`.
 */
export * from "./abis/index.js";
export * from "./constants.js";
export * from "./deployment.js";
export * from "./errors/base.js";
export * from "./errors/contract.js";
export * from "./errors/validation.js";
export { toTokenId, fromTokenId } from "./utils/ids.js";
export type { RoundParams, RoundParamsInput } from "./utils/params.js";
export { PARAMS_BOUNDS, minUnbondingDelay } from "./utils/params.js";
export {
  MULTICALL3_ADDRESS,
  TransactionRevertedError,
  type AnyClient,
  type ReadErrorType,
  type WriteErrorType,
  type WriteResult,
} from "./utils/client.js";

export { shardActions, type ShardActions } from "./decorators/shard.js";
export { contributionActions, type ContributionActions } from "./decorators/contributions.js";
export { modelActions } from "./decorators/models.js";
export { capTableActions } from "./decorators/ownership-events.js";
export { ownershipActions } from "./decorators/ownership.js";
export { revenueActions } from "./decorators/revenue.js";
export { seatActions } from "./decorators/seats.js";
export { stakingActions } from "./decorators/staking.js";
export { tokenActions } from "./decorators/tokens.js";

export * from "./actions/contributions/allocateGenesis.js";
export * from "./actions/contributions/attest.js";
export * from "./actions/contributions/authorizeNode.js";
export * from "./actions/contributions/challenge.js";
export * from "./actions/contributions/claimDispute.js";
export * from "./actions/contributions/checkpoint.js";
export * from "./actions/contributions/computeCheckpointHash.js";
export * from "./actions/contributions/expireSeal.js";
export * from "./actions/contributions/finalize.js";
export * from "./actions/contributions/getCommit.js";
export * from "./actions/contributions/getCommitSeal.js";
export * from "./actions/contributions/getDispute.js";
export * from "./actions/contributions/getPipelineLink.js";
export * from "./actions/contributions/getRevealedCheckpoints.js";
export * from "./actions/contributions/isNodeAuthorized.js";
export * from "./actions/contributions/rejectMerge.js";
export * from "./actions/contributions/rejectOrphan.js";
export * from "./actions/contributions/releaseVote.js";
export * from "./actions/contributions/resolve.js";
export * from "./actions/contributions/reveal.js";
export * from "./actions/contributions/signNodeConsent.js";
export * from "./actions/contributions/signSealedCommit.js";
export * from "./actions/contributions/submitCommit.js";
export * from "./actions/contributions/vote.js";
export * from "./actions/inference/index.js";
export * from "./actions/lineage/getLineage.js";
export * from "./actions/models/closeGenesis.js";
export * from "./actions/models/getModel.js";
export * from "./actions/models/getParamsVersion.js";
export * from "./actions/models/getRoundParams.js";
export * from "./actions/models/registerModel.js";
export * from "./actions/models/scheduleParams.js";
export * from "./actions/ownership/cursor.js";
export * from "./actions/ownership/errors.js";
export * from "./actions/ownership/getBalances.js";
export * from "./actions/ownership/getCapTable.js";
export * from "./actions/ownership/getHoldings.js";
export * from "./actions/ownership/syncCapTable.js";
export * from "./actions/ownership/getRevenueShare.js";
export * from "./actions/ownership/getShardSupply.js";
export * from "./actions/ownership/transferShards.js";
export * from "./actions/revenue/claim.js";
export * from "./actions/revenue/depositEscrow.js";
export * from "./actions/revenue/getClaimable.js";
export * from "./actions/revenue/getEscrow.js";
export * from "./actions/revenue/isReceiptNonceUsed.js";
export * from "./actions/revenue/pay.js";
export * from "./actions/revenue/receipt.js";
export * from "./actions/revenue/requestEscrowWithdrawal.js";
export * from "./actions/revenue/settleReceipts.js";
export * from "./actions/revenue/signUsageReceipt.js";
export * from "./actions/revenue/withdrawEscrow.js";
export * from "./actions/seats/claimSeat.js";
export { MAX_SEAT_LANES, MAX_SEAT_LEASE } from "./actions/seats/directory.js";
export * from "./actions/seats/getSeat.js";
export * from "./actions/seats/getSeats.js";
export * from "./actions/seats/leaveSeat.js";
export * from "./actions/seats/peer.js";
export * from "./actions/staking/getStake.js";
export * from "./actions/staking/requestUnstake.js";
export * from "./actions/staking/stake.js";
export * from "./actions/staking/withdrawStake.js";
export * from "./actions/tokens/getTokenBalance.js";
export * from "./actions/tokens/getTokenMetadata.js";
export * from "./actions/tokens/mintTestToken.js";
