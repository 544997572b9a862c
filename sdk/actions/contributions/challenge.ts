import { zeroHash, type Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi, modelRegistryAbi } from "../../abis/index.js";
import { ensureAllowance } from "../../utils/allowance.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  readMany,
  readOne,
  eventOf,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zBytes32 } from "../../utils/schemas.js";

export type ChallengeParameters = DeploymentParameter &
  AccountParameter & {
    /** The pending commit to challenge. */
    commitId: Hex;
    /** Digest of the evidence (e.g. of a replay log on IPFS); default zero. */
    evidence?: Hex | undefined;
    /** Approve the ledger for the bond first if the allowance is short (default true). */
    approve?: boolean | undefined;
  };

export type ChallengeReturnType = WriteResult & {
  /** Bond posted, in the model's staking token, as the ledger received it. */
  bond: bigint;
  /** Unix time the dispute closes for votes; `resolve` after it. */
  endsAt: number;
};
export type ChallengeErrorType = WriteErrorType;

/**
 * Challenges a pending commit, posting the bond of the commit's round in the model's staking
 * token (approved to the ledger first if needed). Within the challenge window it opens a dispute
 * that staked verifiers `vote` on; while a dispute is open, until its `endsAt`, it joins that
 * dispute instead (`ChallengeWindowClosed`, `DisputeWindowClosed`, `AlreadyChallenged`,
 * `VoterCannotChallenge`, `TooManyDisputes`, `BondNotReceived`, `WrongStatus`). After `resolve`,
 * the bond (and a share of the slash, if the commit is found invalid) is pulled with
 * `claimDispute`.
 *
 * @example
 * const { bond, endsAt } = await challenge(client, { deployment, commitId, evidence: keccak256(replayLog) })
 */
export async function challenge(client: AnyClient, parameters: ChallengeParameters): Promise<ChallengeReturnType> {
  const action = "challenge";
  const { deployment, account } = parameters;
  const { commitId, evidence } = validate(
    action,
    z.object({ commitId: zBytes32, evidence: zBytes32.default(zeroHash) }),
    { commitId: parameters.commitId, evidence: parameters.evidence },
  );
  const { ledger, registry } = deployment.contracts;
  if (parameters.approve !== false) {
    const state = await readOne(client, deployment, action, {
      address: ledger,
      abi: contributionLedgerAbi,
      functionName: "commitState",
      args: [commitId],
    });
    // An unknown commit has model 0: leave it to the ledger to say so (WrongStatus).
    if (state.modelId !== 0n) {
      const [params, info] = await readMany(client, deployment, action, [
        { address: registry, abi: modelRegistryAbi, functionName: "paramsAt", args: [state.modelId, state.round] },
        { address: registry, abi: modelRegistryAbi, functionName: "modelInfo", args: [state.modelId] },
      ]);
      if (params.challengeBond > 0n) {
        await ensureAllowance(client, deployment, action, {
          token: info.stakingToken,
          spender: ledger,
          amount: params.challengeBond,
          account,
        });
      }
    }
  }
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    { address: ledger, abi: contributionLedgerAbi, functionName: "challenge", args: [commitId, evidence] },
    account,
  );
  const event = eventOf(action, receipt, contributionLedgerAbi, "CheckpointChallenged");
  return { hash, receipt, bond: event.args.bond, endsAt: Number(event.args.endsAt) };
}
