import type { Address } from "viem";
import { z } from "zod";

import { modelRegistryAbi, shardTokenAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readMany, readOne, type ReadErrorType } from "../../utils/client.js";
import { toTokenId } from "../../utils/ids.js";
import { validate, zAddress, zModelId } from "../../utils/schemas.js";
import { percentOf } from "./getBalances.js";

export type GetHoldingsParameters = DeploymentParameter & {
  account: Address;
  /** Only these models (default: every registered model, `modelCount` of the registry). */
  modelIds?: readonly (bigint | number)[] | undefined;
};

/** One shard token an account holds, or is still owed revenue on. */
export interface ShardHolding {
  shard: number;
  id: bigint;
  balance: bigint;
  supply: bigint;
  /** balance / supply, in percent. */
  percentage: number;
  /** Revenue claimable on this token now, per currency the model accepts (zeros included). */
  claimable: { currency: Address; amount: bigint }[];
}

/** An account's position in one model. */
export interface ModelHoldings {
  modelId: bigint;
  shardCount: number;
  /** Highest round any commit was made for (0: none yet). */
  latestRound: bigint;
  /** The currencies the model accepts revenue in. */
  currencies: Address[];
  /** Shards with a balance or something claimable, by shard index. */
  shards: ShardHolding[];
  /** Claimable summed over the model's shards, per currency (every accepted currency present). */
  claimable: Record<Address, bigint>;
}

export type GetHoldingsReturnType = ModelHoldings[];
export type GetHoldingsErrorType = ReadErrorType;

/**
 * What an account holds across models: per shard its balance, the token's supply, its share of
 * it, and the revenue it can claim per currency. Models where it holds nothing and is owed
 * nothing are left out (tokens sold after revenue arrived still leave that revenue claimable, so
 * a model can appear with zero balances). Three batched reads whatever the number of models.
 *
 * @example
 * for (const m of await getHoldings(client, { deployment, account }))
 *   for (const s of m.shards) console.log(m.modelId, s.shard, s.balance, s.percentage)
 */
export async function getHoldings(
  client: AnyClient,
  parameters: GetHoldingsParameters,
): Promise<GetHoldingsReturnType> {
  const action = "getHoldings";
  const { deployment } = parameters;
  const input = validate(action, z.object({ account: zAddress, modelIds: z.array(zModelId).max(10_000).optional() }), {
    account: parameters.account,
    modelIds: parameters.modelIds,
  });
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
  if (modelIds.length === 0) return [];
  const models = await readMany(
    client,
    deployment,
    action,
    modelIds.flatMap((modelId) => [
      { address: registry, abi: modelRegistryAbi, functionName: "modelInfo", args: [modelId] } as const,
      { address: registry, abi: modelRegistryAbi, functionName: "currencies", args: [modelId] } as const,
    ]),
  );
  const scope = modelIds.map((modelId, m) => {
    const { shardCount, latestRound } = models[2 * m] as { shardCount: number; latestRound: bigint };
    const currencies = [...(models[2 * m + 1] as readonly Address[])];
    const ids = Array.from({ length: shardCount }, (_, shard) => toTokenId({ modelId, shard }));
    return { modelId, shardCount, latestRound, currencies, ids };
  });
  const ids = scope.flatMap((s) => s.ids);
  if (ids.length === 0) return [];
  const claims = scope.flatMap((s) => s.ids.flatMap((id) => s.currencies.map((currency) => ({ id, currency }))));
  const [balances, ...rest] = await readMany(client, deployment, action, [
    { address: token, abi: shardTokenAbi, functionName: "balanceOfBatch", args: [ids.map(() => input.account), ids] },
    ...ids.map((id) => ({ address: token, abi: shardTokenAbi, functionName: "totalSupply", args: [id] }) as const),
    ...claims.map(
      ({ id, currency }) =>
        ({
          address: token,
          abi: shardTokenAbi,
          functionName: "claimable",
          args: [id, currency, input.account],
        }) as const,
    ),
  ]);
  const supplies = rest.slice(0, ids.length);
  const owed = rest.slice(ids.length);
  const owedOf = new Map(claims.map((c, i) => [`${c.id}:${c.currency}`, owed[i]!]));
  let at = 0;
  const result: GetHoldingsReturnType = [];
  for (const s of scope) {
    const claimable: Record<Address, bigint> = {};
    for (const currency of s.currencies) claimable[currency] = 0n;
    const shards: ShardHolding[] = [];
    s.ids.forEach((id, shard) => {
      const balance = balances[at]!;
      const supply = supplies[at]!;
      at++;
      const due = s.currencies.map((currency) => ({ currency, amount: owedOf.get(`${id}:${currency}`) ?? 0n }));
      for (const { currency, amount } of due) claimable[currency] = (claimable[currency] ?? 0n) + amount;
      if (balance === 0n && due.every((d) => d.amount === 0n)) return;
      shards.push({ shard, id, balance, supply, percentage: percentOf(balance, supply), claimable: due });
    });
    if (shards.length > 0) {
      const { modelId, shardCount, latestRound, currencies } = s;
      result.push({ modelId, shardCount, latestRound, currencies, shards, claimable });
    }
  }
  return result;
}
