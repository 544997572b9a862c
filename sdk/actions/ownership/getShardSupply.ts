import { z } from "zod";

import { shardTokenAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, type ReadErrorType, readOne } from "../../utils/client.js";
import { validate, zAmount } from "../../utils/schemas.js";

export type GetShardSupplyParameters = DeploymentParameter & {
  /** The shard's token id (`toTokenId({ modelId, shard })`). */
  tokenId: bigint;
};

/** Every holder's tokens of the shard together (`totalSupply`). */
export type GetShardSupplyReturnType = bigint;
export type GetShardSupplyErrorType = ReadErrorType;

/**
 * The total supply of one shard's token: what its holders' revenue shares divide.
 *
 * @example
 * const supply = await getShardSupply(client, { deployment, tokenId: toTokenId({ modelId: 1n, shard: 0 }) })
 */
export async function getShardSupply(
  client: AnyClient,
  parameters: GetShardSupplyParameters,
): Promise<GetShardSupplyReturnType> {
  const action = "getShardSupply";
  const { tokenId } = validate(action, z.object({ tokenId: zAmount }), { tokenId: parameters.tokenId });
  return readOne(client, parameters.deployment, action, {
    address: parameters.deployment.contracts.token,
    abi: shardTokenAbi,
    functionName: "totalSupply",
    args: [tokenId],
  });
}
