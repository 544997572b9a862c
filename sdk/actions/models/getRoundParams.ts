import { z } from "zod";

import { modelRegistryAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, type ReadErrorType, readOne } from "../../utils/client.js";
import type { RoundParams } from "../../utils/params.js";
import { validate, zModelId, zRound } from "../../utils/schemas.js";

export type GetRoundParamsParameters = DeploymentParameter & {
  modelId: bigint | number;
  /** The round whose parameters to read. */
  round: bigint | number;
};

/** The parameters in force for the round: windows, stakes, bonds, quorum. */
export type GetRoundParamsReturnType = RoundParams;
export type GetRoundParamsErrorType = ReadErrorType;

/**
 * The round parameters in force for `round` of a model (`paramsAt`): the last ones scheduled to
 * take effect at or before it. `ModelNotFound` for an unknown model.
 *
 * @example
 * const { challengeWindow, minAttestations } = await getRoundParams(client, { deployment, modelId: 1n, round: 3n })
 */
export async function getRoundParams(
  client: AnyClient,
  parameters: GetRoundParamsParameters,
): Promise<GetRoundParamsReturnType> {
  const action = "getRoundParams";
  const { deployment } = parameters;
  const { modelId, round } = validate(action, z.object({ modelId: zModelId, round: zRound }), {
    modelId: parameters.modelId,
    round: parameters.round,
  });
  return readOne(client, deployment, action, {
    address: deployment.contracts.registry,
    abi: modelRegistryAbi,
    functionName: "paramsAt",
    args: [modelId, round],
  });
}
