import type { Address } from "viem";
import { z } from "zod";

import { modelRegistryAbi, shardTokenAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readMany, type ReadErrorType } from "../../utils/client.js";
import { toTokenId } from "../../utils/ids.js";
import { validate, zAddress, zModelId } from "../../utils/schemas.js";

export type GetRevenueShareParameters = DeploymentParameter & { account: Address; modelId: bigint | number };

export interface GetRevenueShareReturnType {
  /** Fraction of the model's next revenue this address earns, scaled by 1e18 (rounded down). */
  shareWad: bigint;
  /** The same as a percentage. */
  percentage: number;
  /** Per shard: weight, balance, supply. */
  shards: { shard: number; id: bigint; weight: bigint; balance: bigint; supply: bigint }[];
}
export type GetRevenueShareErrorType = ReadErrorType;

/**
 * An address's share of a model's revenue: Σ over shards of weight × balance / supply, divided by
 * the total weight of the shards that have supply (revenue is split only over those).
 *
 * @example
 * const { percentage } = await getRevenueShare(client, { deployment, account, modelId: 1n })
 */
export async function getRevenueShare(
  client: AnyClient,
  parameters: GetRevenueShareParameters,
): Promise<GetRevenueShareReturnType> {
  const action = "getRevenueShare";
  const { deployment } = parameters;
  const { account, modelId } = validate(action, z.object({ account: zAddress, modelId: zModelId }), parameters);
  const { registry, token } = deployment.contracts;
  const [weights] = await readMany(client, deployment, action, [
    { address: registry, abi: modelRegistryAbi, functionName: "shardWeights", args: [modelId] },
  ]);
  const ids = weights.map((_, shard) => toTokenId({ modelId, shard }));
  const [balances, ...supplies] = await readMany(client, deployment, action, [
    { address: token, abi: shardTokenAbi, functionName: "balanceOfBatch", args: [ids.map(() => account), ids] },
    ...ids.map((id) => ({ address: token, abi: shardTokenAbi, functionName: "totalSupply", args: [id] }) as const),
  ]);
  const shards = ids.map((id, shard) => ({
    shard,
    id,
    weight: weights[shard]!,
    balance: balances[shard]!,
    supply: supplies[shard]!,
  }));
  const shareWad = revenueShareWad(shards);
  return { shareWad, percentage: Number(shareWad) / 1e16, shards };
}

/** Σ weight × balance / supply over shards with supply, over their total weight, scaled by 1e18. */
export function revenueShareWad(shards: readonly { weight: bigint; balance: bigint; supply: bigint }[]): bigint {
  const live = shards.filter((s) => s.supply > 0n);
  const totalWeight = live.reduce((sum, s) => sum + s.weight, 0n);
  if (totalWeight === 0n) return 0n;
  // One common denominator keeps the sum exact before the single rounding at the end.
  const denominator = live.reduce((product, s) => product * s.supply, totalWeight);
  const numerator = live.reduce((sum, s) => sum + (s.weight * s.balance * denominator) / (s.supply * totalWeight), 0n);
  return (numerator * 10n ** 18n) / denominator;
}
