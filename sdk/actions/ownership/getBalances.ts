import type { Address } from "viem";
import { z } from "zod";

import { modelRegistryAbi, shardTokenAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readMany, readOne, type ReadErrorType } from "../../utils/client.js";
import { toTokenId } from "../../utils/ids.js";
import { validate, zAddress, zModelId } from "../../utils/schemas.js";

export type GetBalancesParameters = DeploymentParameter & {
  account: Address;
  /** Only these models (default: every registered model). */
  modelIds?: readonly (bigint | number)[] | undefined;
};

export interface ShardPosition {
  modelId: bigint;
  shard: number;
  id: bigint;
  balance: bigint;
  supply: bigint;
  /** balance / supply, in percent. */
  percentage: number;
}

export type GetBalancesReturnType = ShardPosition[];
export type GetBalancesErrorType = ReadErrorType;

/** percent = 100 × part / whole, exact to 1e-12 before the float conversion. */
export const percentOf = (part: bigint, whole: bigint) =>
  whole === 0n ? 0 : Number((part * 100n * 10n ** 12n) / whole) / 1e12;

/**
 * Every shard token an address holds, across all models and shards, with the supply of each
 * and the address's percentage of it. Three batched reads whatever the number of models.
 *
 * @example
 * for (const p of await getBalances(client, { deployment, account })) console.log(p.modelId, p.shard, p.percentage)
 */
export async function getBalances(
  client: AnyClient,
  parameters: GetBalancesParameters,
): Promise<GetBalancesReturnType> {
  const action = "getBalances";
  const { deployment } = parameters;
  const input = validate(
    action,
    z.object({ account: zAddress, modelIds: z.array(zModelId).max(10_000).optional() }),
    parameters,
  );
  const { registry, token } = deployment.contracts;
  let modelIds = input.modelIds;
  if (modelIds === undefined) {
    const count = await readOne(client, deployment, action, {
      address: registry,
      abi: modelRegistryAbi,
      functionName: "modelCount",
    });
    modelIds = Array.from({ length: Number(count) }, (_, i) => BigInt(i + 1));
  }
  const infos = await readMany(
    client,
    deployment,
    action,
    modelIds.map(
      (modelId) => ({ address: registry, abi: modelRegistryAbi, functionName: "modelInfo", args: [modelId] }) as const,
    ),
  );
  const shards = modelIds.flatMap((modelId, m) =>
    Array.from({ length: infos[m]!.shardCount }, (_, shard) => ({ modelId, shard, id: toTokenId({ modelId, shard }) })),
  );
  if (shards.length === 0) return [];
  const ids = shards.map((s) => s.id);
  const [balances, ...supplies] = await readMany(client, deployment, action, [
    {
      address: token,
      abi: shardTokenAbi,
      functionName: "balanceOfBatch",
      args: [ids.map(() => input.account), ids],
    },
    ...ids.map((id) => ({ address: token, abi: shardTokenAbi, functionName: "totalSupply", args: [id] }) as const),
  ]);
  return shards
    .map((s, i) => {
      const balance = balances[i]!;
      const supply = supplies[i]!;
      return { ...s, balance, supply, percentage: percentOf(balance, supply) };
    })
    .filter((p) => p.balance > 0n);
}
