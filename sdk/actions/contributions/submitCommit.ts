import { type Hex } from "viem";
import { getBlock } from "viem/actions";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { toShardError } from "../../errors/contract.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zHex } from "../../utils/schemas.js";
import { type SealedCommitInput, zSealedCommit } from "./checkpoint.js";

export type SubmitCommitParameters = DeploymentParameter &
  AccountParameter & {
    /** The signed sealed commit, with `parentRoot` and `paramsVersion` (`signSealedCommit(...).commit`). */
    commit: SealedCommitInput;
    /** The node key's EIP-712 signature of `commit`. */
    signature: Hex;
  };

export type SubmitCommitReturnType = WriteResult & {
  commitId: Hex;
  /** Number of the block that sealed the commit: `reveal` and `expireSeal` need it. */
  commitBlock: bigint;
  /** Timestamp of that block: `reveal` and `expireSeal` need it. */
  commitTime: bigint;
};

export type SubmitCommitErrorType = WriteErrorType;

/**
 * Relays a signed sealed commit to the ledger; any account can send it. The owner's active
 * trainer stake must meet the round's minimum (`InsufficientTrainerStake`), and the round's
 * `slashAmount` of it is locked until the commit is finalized, rejected or expired
 * (`InsufficientFreeStake` when the stake not yet locked is short). The signer must be an
 * authorized node key of the owner (`NodeNotAuthorized`), the deadline not passed
 * (`SignatureExpired`), the parent root revealed on the shard in the round before and not
 * rejected (`InvalidParent`), the parameter version still the round's (`ParamsChanged`), round 1
 * only after the registrant closed genesis (`GenesisNotClosed`), and a seal that expired cannot
 * seal again (`SealSpent`).
 *
 * @example
 * const signed = await signSealedCommit(nodeClient, { deployment, checkpoint })
 * const { commitId, commitBlock, commitTime } = await submitCommit(relayer, {
 *   deployment, commit: signed.commit, signature: signed.signature,
 * })
 */
export async function submitCommit(
  client: AnyClient,
  parameters: SubmitCommitParameters,
): Promise<SubmitCommitReturnType> {
  const action = "submitCommit";
  const { deployment, account } = parameters;
  const { commit, signature } = validate(action, z.object({ commit: zSealedCommit, signature: zHex }), {
    commit: parameters.commit,
    signature: parameters.signature,
  });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "commit",
      args: [commit, signature],
    },
    account,
  );
  const event = eventOf(action, receipt, contributionLedgerAbi, "CheckpointSealed");
  let commitTime: bigint;
  try {
    commitTime = (await getBlock(client, { blockNumber: receipt.blockNumber })).timestamp;
  } catch (error) {
    throw toShardError(error, action);
  }
  return { hash, receipt, commitId: event.args.commitId, commitBlock: receipt.blockNumber, commitTime };
}
