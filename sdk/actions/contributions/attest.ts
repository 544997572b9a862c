import type { Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zBytes32 } from "../../utils/schemas.js";

export type AttestParameters = DeploymentParameter &
  AccountParameter & {
    /** The revealed commit the sender replayed and found valid. */
    commitId: Hex;
  };

export type AttestReturnType = WriteResult;
export type AttestErrorType = WriteErrorType;

/**
 * A staked verifier attests a pending commit (`InsufficientVerifierStake` without the round's
 * minimum verifier stake, `AlreadyAttested` on a second attestation, `OwnCommit` for the
 * commit's owner or its node keys, `WrongStatus` unless pending).
 *
 * @example
 * await attest(verifierClient, { deployment, commitId })
 */
export async function attest(client: AnyClient, parameters: AttestParameters): Promise<AttestReturnType> {
  const action = "attest";
  const { deployment, account } = parameters;
  const { commitId } = validate(action, z.object({ commitId: zBytes32 }), { commitId: parameters.commitId });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    { address: deployment.contracts.ledger, abi: contributionLedgerAbi, functionName: "attest", args: [commitId] },
    account,
  );
  return { hash, receipt };
}
