import type { Address } from "viem";
import { z } from "zod";

import { modelRegistryAbi } from "../../abis/index.js";
import type { Deployment } from "../../deployment.js";
import { InvalidParameterError } from "../../errors/validation.js";
import { type AnyClient, readMany } from "../../utils/client.js";
import { toTokenId } from "../../utils/ids.js";
import { validate, zAddress, zModelId, zUint } from "../../utils/schemas.js";

/** Which ids and currencies a claim (or claimable query) covers. */
export interface ClaimTargetParameters {
  /** All shards of this model (and, without `currencies`, all its accepted currencies). */
  modelId?: bigint | number | undefined;
  /** Explicit token ids (any models). */
  ids?: readonly bigint[] | undefined;
  /** Currencies to claim; default: the model's accepted currencies. */
  currencies?: readonly Address[] | undefined;
}

const schema = z.object({
  modelId: zModelId.optional(),
  ids: z.array(zUint(96)).max(1024, "at most 1024 ids").optional(),
  currencies: z.array(zAddress).max(8).optional(),
});

/** Resolves `modelId` / `ids` / `currencies` into explicit ids and currencies. */
export async function resolveClaimTargets(
  client: AnyClient,
  deployment: Deployment,
  action: string,
  parameters: ClaimTargetParameters,
): Promise<{ ids: bigint[]; currencies: Address[] }> {
  const input = validate(action, schema, {
    modelId: parameters.modelId,
    ids: parameters.ids,
    currencies: parameters.currencies,
  });
  if (input.ids === undefined && input.modelId === undefined) {
    throw new InvalidParameterError(action, [{ path: "modelId", message: "give `modelId` or `ids`" }]);
  }
  if (input.modelId === undefined && input.currencies === undefined) {
    throw new InvalidParameterError(action, [{ path: "currencies", message: "give `currencies` with explicit `ids`" }]);
  }
  let ids = input.ids;
  let currencies = input.currencies;
  if (input.modelId !== undefined) {
    const registry = deployment.contracts.registry;
    const [info, accepted] = await readMany(client, deployment, action, [
      { address: registry, abi: modelRegistryAbi, functionName: "modelInfo", args: [input.modelId] },
      { address: registry, abi: modelRegistryAbi, functionName: "currencies", args: [input.modelId] },
    ]);
    const modelId = input.modelId;
    ids ??= Array.from({ length: info.shardCount }, (_, shard) => toTokenId({ modelId, shard }));
    currencies ??= [...accepted];
  }
  return { ids: ids ?? [], currencies: currencies ?? [] };
}
