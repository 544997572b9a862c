import { z } from "zod";

import { modelRegistryAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { zRoundParams, type RoundParamsInput } from "../../utils/params.js";
import { validate, zModelId } from "../../utils/schemas.js";

export type ScheduleParamsParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    /** The new round parameters, all of them (read the current ones with `getModel` to change a few). */
    params: RoundParamsInput;
  };

export type ScheduleParamsReturnType = WriteResult & {
  /** The first round the new parameters apply to: the one after the latest round anyone committed to. */
  fromRound: bigint;
};
export type ScheduleParamsErrorType = WriteErrorType;

const schema = z.object({ modelId: zModelId, params: zRoundParams });

/**
 * The model's registrant schedules new round parameters. They apply from the round after the
 * latest one anyone has committed to, so commits in flight keep theirs. The parameters are
 * checked against the registry's bounds first (`InvalidParameterError` naming the field); the
 * registry refuses anyone but the registrant (`NotRegistrant`) and parameters whose windows
 * outlast the model's unbonding delay (`UnbondingTooShort`).
 *
 * @example
 * const model = await getModel(client, { deployment, modelId: 1n })
 * const { fromRound } = await scheduleParams(client, {
 *   deployment, modelId: 1n, params: { ...model.params, challengeWindow: 7_200 },
 * })
 */
export async function scheduleParams(
  client: AnyClient,
  parameters: ScheduleParamsParameters,
): Promise<ScheduleParamsReturnType> {
  const action = "scheduleParams";
  const { deployment, account } = parameters;
  const { modelId, params } = validate(action, schema, { modelId: parameters.modelId, params: parameters.params });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.registry,
      abi: modelRegistryAbi,
      functionName: "scheduleParams",
      args: [modelId, params],
    },
    account,
  );
  const event = eventOf(action, receipt, modelRegistryAbi, "ParamsScheduled");
  return { hash, receipt, fromRound: event.args.fromRound };
}
