import { getAbiItem, type Hex } from "viem";
import { getBlock, getLogs } from "viem/actions";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { toShardError } from "../../errors/contract.js";
import { type AnyClient, assertChain, type DeploymentParameter, type ReadErrorType } from "../../utils/client.js";
import { validate, zBytes32 } from "../../utils/schemas.js";

export type GetCommitSealParameters = DeploymentParameter & {
  commitId: Hex;
};

/** Where and when a commit was sealed, or null when no `CheckpointSealed` event names it. */
export type GetCommitSealReturnType = { blockNumber: bigint; timestamp: bigint } | null;
export type GetCommitSealErrorType = ReadErrorType;

const sealedEvent = getAbiItem({ abi: contributionLedgerAbi, name: "CheckpointSealed" });

/**
 * The block and time of a commit's seal, from the ledger's `CheckpointSealed` event (the last one,
 * should an expired seal have been sealed again). A node resuming a commit needs them to know when
 * its reveal window closes.
 *
 * @example
 * const seal = await getCommitSeal(client, { deployment, commitId })
 * if (seal) console.log(seal.blockNumber, seal.timestamp)
 */
export async function getCommitSeal(
  client: AnyClient,
  parameters: GetCommitSealParameters,
): Promise<GetCommitSealReturnType> {
  const action = "getCommitSeal";
  const { deployment } = parameters;
  const { commitId } = validate(action, z.object({ commitId: zBytes32 }), { commitId: parameters.commitId });
  try {
    await assertChain(client, deployment, action);
    const logs = await getLogs(client, {
      address: deployment.contracts.ledger,
      event: sealedEvent,
      args: { commitId },
      fromBlock: deployment.blockNumber,
      strict: true,
    });
    const log = logs.at(-1);
    if (log === undefined) return null;
    const block = await getBlock(client, { blockNumber: log.blockNumber });
    return { blockNumber: log.blockNumber, timestamp: block.timestamp };
  } catch (error) {
    throw toShardError(error, action);
  }
}
