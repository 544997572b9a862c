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
import { validate, zUint } from "../../utils/schemas.js";
import { computeCommitId, type SealedCommitInput, zSealedCommit } from "./checkpoint.js";

export type ExpireSealParameters = DeploymentParameter &
  AccountParameter & {
    /**
     * The sealed commit as signed (`signSealedCommit(...).commit`); its `deadline` and
     * `paramsVersion` are not checked.
     */
    commit: SealedCommitInput;
    /** Number of the block that sealed the commit. */
    commitBlock: bigint | number;
    /** Timestamp of that block. */
    commitTime: bigint | number;
  };

export type ExpireSealReturnType = WriteResult & { commitId: Hex };
export type ExpireSealErrorType = WriteErrorType;

const schema = z.object({
  commit: zSealedCommit,
  commitBlock: zUint(64),
  commitTime: zUint(64),
});

/**
 * Clears a seal that was not revealed within its reveal window (`RevealWindowOpen` before that),
 * freeing its (model, shard, round, lane) to be committed again. The owner's locked stake is
 * released and the round's `sealDeposit` of it burned; the same sealed hash can never seal the
 * slot again (`SealSpent`). A commit other than the one sealed is `SealMismatch`. Anyone can
 * call it.
 *
 * @example
 * const signed = await signSealedCommit(nodeClient, { deployment, checkpoint })
 * const { commitBlock, commitTime } = await submitCommit(client, { deployment, ...signed })
 * // … the reveal window passes …
 * await expireSeal(client, { deployment, commit: signed.commit, commitBlock, commitTime })
 */
export async function expireSeal(client: AnyClient, parameters: ExpireSealParameters): Promise<ExpireSealReturnType> {
  const action = "expireSeal";
  const { deployment, account } = parameters;
  const { commit, commitBlock, commitTime } = validate(action, schema, {
    commit: parameters.commit,
    commitBlock: parameters.commitBlock,
    commitTime: parameters.commitTime,
  });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "expireSeal",
      args: [commit, commitBlock, commitTime],
    },
    account,
  );
  return { hash, receipt, commitId: computeCommitId(commit) };
}
