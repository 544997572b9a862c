import type { Address, Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { type CommitStatusName, commitStatusNames, verdictNames } from "../../constants.js";
import { type AnyClient, type DeploymentParameter, readMany, type ReadErrorType } from "../../utils/client.js";
import { validate, zBytes32 } from "../../utils/schemas.js";
import { computeCommitId, zCommitKey } from "./checkpoint.js";
import type { Dispute } from "./getDispute.js";

/** A commit by `commitId`, or by its key (model, shard, round, lane) when no id is given. */
export type GetCommitParameters = DeploymentParameter & {
  commitId?: Hex | undefined;
  modelId?: bigint | number | undefined;
  shard?: number | undefined;
  round?: bigint | number | undefined;
  lane?: number | undefined;
};

/** The latest dispute of a commit (see `getDispute` for any other). */
export type CommitDispute = Dispute;

export interface GetCommitReturnType {
  commitId: Hex;
  /** Zero / 0 for a commit that was never revealed. */
  modelId: bigint;
  shard: number;
  round: bigint;
  /** The owner it was revealed for (zero address before reveal). */
  owner: Address;
  status: CommitStatusName;
  /** Unix time of the reveal (0 before). */
  revealedAt: number;
  attestations: number;
  /** Disputes opened so far. */
  disputes: number;
  /** A dispute found the commit valid. */
  upheld: boolean;
  /** Stored hash: the seal key before reveal, the checkpoint hash after (zero: no commit). */
  hash: Hex;
  /** The latest dispute, or null if it was never challenged. */
  dispute: CommitDispute | null;
}

export type GetCommitErrorType = ReadErrorType;

/**
 * What the ledger knows about a commit, by id or by (model, shard, round, lane): its status by
 * name, attestations, disputes, stored hash and latest dispute, in one batched read. An unknown
 * commit has status `none`.
 *
 * @example
 * const commit = await getCommit(client, { deployment, modelId: 1n, shard: 0, round: 1n, lane: 0 })
 * if (commit.status === "pending" && commit.dispute?.open) console.log("disputed until", commit.dispute.endsAt)
 */
export async function getCommit(client: AnyClient, parameters: GetCommitParameters): Promise<GetCommitReturnType> {
  const action = "getCommit";
  const { deployment } = parameters;
  const commitId =
    parameters.commitId !== undefined
      ? validate(action, zBytes32, parameters.commitId)
      : computeCommitId(
          validate(action, zCommitKey, {
            modelId: parameters.modelId,
            shard: parameters.shard,
            round: parameters.round,
            lane: parameters.lane,
          }),
        );
  const ledger = deployment.contracts.ledger;
  const [state, hash, dispute, owner] = await readMany(client, deployment, action, [
    { address: ledger, abi: contributionLedgerAbi, functionName: "commitState", args: [commitId] },
    { address: ledger, abi: contributionLedgerAbi, functionName: "commitHash", args: [commitId] },
    { address: ledger, abi: contributionLedgerAbi, functionName: "dispute", args: [commitId] },
    { address: ledger, abi: contributionLedgerAbi, functionName: "commitOwner", args: [commitId] },
  ]);
  return {
    commitId,
    modelId: state.modelId,
    shard: state.shard,
    round: state.round,
    owner,
    status: commitStatusNames[state.status] ?? "none",
    revealedAt: Number(state.revealedAt),
    attestations: state.attestations,
    disputes: state.disputes,
    upheld: state.upheld,
    hash,
    dispute:
      state.disputes === 0
        ? null
        : {
            index: state.disputes,
            challenger: dispute.challenger,
            endsAt: Number(dispute.endsAt),
            open: dispute.open,
            verdict: verdictNames[dispute.verdict] ?? "none",
            openedBlock: BigInt(dispute.openedBlock),
            bond: dispute.bond,
            shareBond: dispute.shareBond,
            validWeight: dispute.validWeight,
            invalidWeight: dispute.invalidWeight,
            quorum: dispute.quorum,
            reward: dispute.reward,
          },
  };
}
