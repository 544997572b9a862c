import { z } from "zod";

import { modelRegistryAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readOne, type ReadErrorType } from "../../utils/client.js";
import { validate, zModelId, zRound } from "../../utils/schemas.js";

export type GetParamsVersionParameters = DeploymentParameter & {
  modelId: bigint | number;
  /** The round whose parameters' version to read. */
  round: bigint | number;
};

/** The version of the parameters in force for the round (changes with every `scheduleParams`). */
export type GetParamsVersionReturnType = number;
export type GetParamsVersionErrorType = ReadErrorType;

/**
 * The registry's version of the round parameters in force for `round` of a model
 * (`paramsVersionAt`): a number that changes with every `scheduleParams`. A sealed commit names
 * it, so that a registrant cannot change the parameters under a commit in flight
 * (`ParamsChanged`). `signSealedCommit` reads it itself when not given. `ModelNotFound` for an
 * unknown model.
 *
 * @example
 * const paramsVersion = await getParamsVersion(client, { deployment, modelId: 1n, round: 1n })
 */
export async function getParamsVersion(
  client: AnyClient,
  parameters: GetParamsVersionParameters,
): Promise<GetParamsVersionReturnType> {
  const action = "getParamsVersion";
  const { deployment } = parameters;
  const { modelId, round } = validate(action, z.object({ modelId: zModelId, round: zRound }), {
    modelId: parameters.modelId,
    round: parameters.round,
  });
  const version = await readOne(client, deployment, action, {
    address: deployment.contracts.registry,
    abi: modelRegistryAbi,
    functionName: "paramsVersionAt",
    args: [modelId, round],
  });
  return Number(version);
}
