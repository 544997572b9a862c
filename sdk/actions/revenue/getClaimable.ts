import type { Address } from "viem";

import { shardTokenAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readMany, type ReadErrorType } from "../../utils/client.js";
import { validate, zAddress } from "../../utils/schemas.js";
import { type ClaimTargetParameters, resolveClaimTargets } from "./resolveClaimTargets.js";

export type GetClaimableParameters = DeploymentParameter & ClaimTargetParameters & { holder: Address };

export interface GetClaimableReturnType {
  /** Claimable per currency, summed over the ids (every requested currency is present). */
  byCurrency: Record<Address, bigint>;
  /** Non-zero claimable amounts per (id, currency). */
  byId: { id: bigint; currency: Address; amount: bigint }[];
}
export type GetClaimableErrorType = ReadErrorType;

/**
 * What `holder` can claim now, per currency, across all shards of a model (or explicit ids), in
 * one batched read.
 *
 * @example
 * const { byCurrency } = await getClaimable(client, { deployment, holder, modelId: 1n })
 * console.log(byCurrency[usdc])
 */
export async function getClaimable(
  client: AnyClient,
  parameters: GetClaimableParameters,
): Promise<GetClaimableReturnType> {
  const action = "getClaimable";
  const holder = validate(action, zAddress, parameters.holder);
  const { ids, currencies } = await resolveClaimTargets(client, parameters.deployment, action, parameters);
  const pairs = currencies.flatMap((currency) => ids.map((id) => ({ id, currency })));
  const amounts = await readMany(
    client,
    parameters.deployment,
    action,
    pairs.map(
      ({ id, currency }) =>
        ({
          address: parameters.deployment.contracts.token,
          abi: shardTokenAbi,
          functionName: "claimable",
          args: [id, currency, holder],
        }) as const,
    ),
  );
  const byCurrency: Record<Address, bigint> = {};
  for (const currency of currencies) byCurrency[currency] = 0n;
  const byId: GetClaimableReturnType["byId"] = [];
  pairs.forEach(({ id, currency }, i) => {
    const amount = amounts[i]!;
    byCurrency[currency] = (byCurrency[currency] ?? 0n) + amount;
    if (amount > 0n) byId.push({ id, currency, amount });
  });
  return { byCurrency, byId };
}
