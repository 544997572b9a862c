import type { Address, Hex } from "viem";
import { z } from "zod";

import { modelRegistryAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readMany, readOne, type ReadErrorType } from "../../utils/client.js";
import { toTokenId } from "../../utils/ids.js";
import type { RoundParams } from "../../utils/params.js";
import { validate, zModelId, zRound } from "../../utils/schemas.js";

export type GetModelParameters = DeploymentParameter & {
  modelId: bigint | number;
  /** Round whose parameters to return (default: the next round to be committed). */
  round?: bigint | number | undefined;
};

export interface GetModelReturnType {
  modelId: bigint;
  registrant: Address;
  stakingToken: Address;
  unbondingDelay: number;
  shardCount: number;
  /** Highest round any commit was made for (0: none yet). */
  latestRound: bigint;
  specDigest: Hex;
  /** The registrant closed the genesis allocation (`closeGenesis`): round 1 can open. */
  genesisClosed: boolean;
  specURI: string;
  shardWeights: bigint[];
  /** Token id of each shard. */
  tokenIds: bigint[];
  currencies: Address[];
  /** The round `params` apply to. */
  round: bigint;
  params: RoundParams;
  /** Version of `params` (`paramsVersionAt`), which a sealed commit for `round` names. */
  paramsVersion: number;
}

export type GetModelErrorType = ReadErrorType;

/**
 * Everything the registry knows about a model: spec, shards and weights, currencies, staking
 * token and the round parameters in force. Throws `ContractRevertError` (`ModelNotFound`) for an
 * unknown model.
 *
 * @example
 * const model = await getModel(client, { deployment, modelId: 1n })
 * console.log(model.shardCount, model.specURI, model.params.minTrainerStake)
 */
export async function getModel(client: AnyClient, parameters: GetModelParameters): Promise<GetModelReturnType> {
  const action = "getModel";
  const { deployment } = parameters;
  const { modelId, round } = validate(action, z.object({ modelId: zModelId, round: zRound.optional() }), {
    modelId: parameters.modelId,
    round: parameters.round,
  });
  const registry = deployment.contracts.registry;
  const info = await readOne(client, deployment, action, {
    address: registry,
    abi: modelRegistryAbi,
    functionName: "modelInfo",
    args: [modelId],
  });
  const paramsRound = round ?? info.latestRound + 1n;
  const [specURI, shardWeights, currencies, params, paramsVersion] = await readMany(client, deployment, action, [
    { address: registry, abi: modelRegistryAbi, functionName: "specURI", args: [modelId] },
    { address: registry, abi: modelRegistryAbi, functionName: "shardWeights", args: [modelId] },
    { address: registry, abi: modelRegistryAbi, functionName: "currencies", args: [modelId] },
    { address: registry, abi: modelRegistryAbi, functionName: "paramsAt", args: [modelId, paramsRound] },
    { address: registry, abi: modelRegistryAbi, functionName: "paramsVersionAt", args: [modelId, paramsRound] },
  ]);
  return {
    modelId,
    registrant: info.registrant,
    stakingToken: info.stakingToken,
    unbondingDelay: info.unbondingDelay,
    shardCount: info.shardCount,
    latestRound: info.latestRound,
    specDigest: info.specDigest,
    genesisClosed: info.genesisClosed,
    specURI,
    shardWeights: [...shardWeights],
    tokenIds: Array.from({ length: info.shardCount }, (_, shard) => toTokenId({ modelId, shard })),
    currencies: [...currencies],
    round: paramsRound,
    params: { ...params },
    paramsVersion: Number(paramsVersion),
  };
}
