import type { Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import type { ShardBaseError } from "../../errors/base.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
} from "../../utils/client.js";
import { validate, zBytes32, zModelId, zRound, zShard, zSmallUint, zUint } from "../../utils/schemas.js";
import { computeCommitId } from "./checkpoint.js";

export type ExpireSealParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    shard: number;
    round: bigint | number;
    lane: number;
    /** The sealed hash of the commit (from its `CheckpointSealed` event or the signed commit). */
    sealedHash: Hex;
    /** Number of the block that sealed the commit. */
    commitBlock: bigint | number;
    /** Timestamp of that block. */
    commitTime: bigint | number;
  };

export type ExpireSealReturnType = WriteResult & { commitId: Hex };
export type ExpireSealErrorType = ShardBaseError;

const schema = z.object({
  modelId: zModelId,
  shard: zShard,
  round: zRound,
  lane: zSmallUint(32),
  sealedHash: zBytes32,
  commitBlock: zUint(64),
  commitTime: zUint(64),
});

/**
 * Clears a seal that was not revealed within its reveal window (`RevealWindowOpen` before that),
 * freeing its (model, shard, round, lane) to be committed again. Anyone can call it.
 *
 * @example
 * const { commitBlock, commitTime } = await submitCommit(client, { deployment, commit, signature })
 * // … the reveal window passes …
 * await expireSeal(client, { deployment, ...commit, commitBlock, commitTime })
 */
export async function expireSeal(client: AnyClient, parameters: ExpireSealParameters): Promise<ExpireSealReturnType> {
  const action = "expireSeal";
  const { deployment, account } = parameters;
  const p = validate(action, schema, {
    modelId: parameters.modelId,
    shard: parameters.shard,
    round: parameters.round,
    lane: parameters.lane,
    sealedHash: parameters.sealedHash,
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
      args: [p.modelId, p.shard, p.round, p.lane, p.sealedHash, p.commitBlock, p.commitTime],
    },
    account,
  );
  return { hash, receipt, commitId: computeCommitId(p) };
}
