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
import { validate, zBytes32, zUint } from "../../utils/schemas.js";
import { type CheckpointInput, computeCommitId, zCheckpoint } from "./checkpoint.js";

export type RevealParameters = DeploymentParameter &
  AccountParameter & {
    /** The checkpoint that was sealed. */
    checkpoint: CheckpointInput;
    /** The salt of the seal (`signSealedCommit(...).salt`). */
    salt: Hex;
    /** Number of the block that sealed the commit (`submitCommit(...).commitBlock`). */
    commitBlock: bigint | number;
    /** Timestamp of that block (`submitCommit(...).commitTime`). */
    commitTime: bigint | number;
  };

export type RevealReturnType = WriteResult & { commitId: Hex };
export type RevealErrorType = WriteErrorType;

const schema = z.object({ checkpoint: zCheckpoint, salt: zBytes32, commitBlock: zUint(64), commitTime: zUint(64) });

/**
 * Reveals the checkpoint of a sealed commit: in a later block than the seal (`RevealTooEarly`),
 * within the round's reveal window (`RevealWindowClosed`), with the checkpoint and salt that were
 * sealed (`SealMismatch`), building on a revealed, non-rejected checkpoint of the previous round
 * (`InvalidParent`). Anyone who knows the salt can send it.
 *
 * The call is simulated against the latest block, so send it once a block after `commitBlock`
 * exists; in the seal's own block it is refused with `RevealTooEarly` before anything is sent (on
 * a local chain with automine, mine a block first).
 *
 * @example
 * await reveal(client, { deployment, checkpoint, salt, commitBlock, commitTime })
 */
export async function reveal(client: AnyClient, parameters: RevealParameters): Promise<RevealReturnType> {
  const action = "reveal";
  const { deployment, account } = parameters;
  const { checkpoint, salt, commitBlock, commitTime } = validate(action, schema, {
    checkpoint: parameters.checkpoint,
    salt: parameters.salt,
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
      functionName: "reveal",
      args: [checkpoint, salt, commitBlock, commitTime],
    },
    account,
  );
  return { hash, receipt, commitId: computeCommitId(checkpoint) };
}
