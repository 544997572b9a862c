import { getAbiItem, type Hex } from "viem";
import { getBlockNumber, getLogs } from "viem/actions";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { toShardError } from "../../errors/contract.js";
import { type AnyClient, assertChain, type DeploymentParameter, type ReadErrorType } from "../../utils/client.js";
import { blockRanges } from "../../utils/logs.js";
import { validate, zModelId, zUint } from "../../utils/schemas.js";
import type { Checkpoint } from "./checkpoint.js";

export type GetRevealedCheckpointsParameters = DeploymentParameter & {
  modelId: bigint | number;
  /** First block to scan (default: the deployment's block). */
  fromBlock?: bigint | undefined;
  /** Last block to scan (default: the latest block, read once). */
  toBlock?: bigint | undefined;
  /** Blocks per `eth_getLogs` request (default 10,000; public RPCs cap the range). */
  blockRange?: bigint | undefined;
};

/** One `CheckpointRevealed` event: a commit, the checkpoint it revealed, and where. */
export interface RevealedCheckpoint {
  commitId: Hex;
  checkpoint: Checkpoint;
  revealBlock: bigint;
  /** The reveal block's hash: unknown when the trainer sealed (verifiers sample with it). */
  revealBlockHash: Hex;
}

export interface GetRevealedCheckpointsReturnType {
  /** The span's last block: `toBlock`, or the latest block when none was given (the next scan starts after it). */
  toBlock: bigint;
  /** The reveals in chain order. */
  reveals: RevealedCheckpoint[];
}
export type GetRevealedCheckpointsErrorType = ReadErrorType;

const schema = z.object({
  modelId: zModelId,
  fromBlock: zUint(64).optional(),
  toBlock: zUint(64).optional(),
  blockRange: zUint(64)
    .refine((v) => v > 0n, "must be at least 1")
    .default(10_000n),
});

const revealedEvent = getAbiItem({ abi: contributionLedgerAbi, name: "CheckpointRevealed" });

/**
 * Every checkpoint of a model revealed in a span of blocks, from the ledger's `CheckpointRevealed`
 * events filtered by the model's indexed topic, fetched one block range at a time. Pass the
 * returned `toBlock + 1` as the next `fromBlock` to follow the chain.
 *
 * @example
 * const { toBlock, reveals } = await getRevealedCheckpoints(client, { deployment, modelId: 1n })
 * for (const r of reveals) console.log(r.checkpoint.shard, r.checkpoint.round, r.commitId)
 */
export async function getRevealedCheckpoints(
  client: AnyClient,
  parameters: GetRevealedCheckpointsParameters,
): Promise<GetRevealedCheckpointsReturnType> {
  const action = "getRevealedCheckpoints";
  const { deployment } = parameters;
  const { modelId, fromBlock, toBlock, blockRange } = validate(action, schema, {
    modelId: parameters.modelId,
    fromBlock: parameters.fromBlock,
    toBlock: parameters.toBlock,
    blockRange: parameters.blockRange,
  });
  const from = fromBlock ?? deployment.blockNumber;
  try {
    await assertChain(client, deployment, action);
    const to = toBlock ?? (await getBlockNumber(client, { cacheTime: 0 }));
    const reveals: RevealedCheckpoint[] = [];
    for (const [start, end] of blockRanges(from, to, blockRange)) {
      const logs = await getLogs(client, {
        address: deployment.contracts.ledger,
        event: revealedEvent,
        args: { modelId },
        fromBlock: start,
        toBlock: end,
        strict: true,
      });
      for (const log of logs) {
        reveals.push({
          commitId: log.args.commitId,
          checkpoint: log.args.checkpoint,
          revealBlock: log.blockNumber,
          revealBlockHash: log.blockHash,
        });
      }
    }
    return { toBlock: to, reveals };
  } catch (error) {
    throw toShardError(error, action);
  }
}
