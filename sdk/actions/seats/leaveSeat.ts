import { z } from "zod";

import { laneDirectoryAbi } from "../../abis/index.js";
import type { ContractNotDeployedError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteErrorType,
  type WriteResult,
  write,
} from "../../utils/client.js";
import { validate, zModelId, zShard } from "../../utils/schemas.js";
import { laneDirectoryOf, zLane } from "./directory.js";

export type LeaveSeatParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    shard: number;
    lane: number;
  };

export type LeaveSeatReturnType = WriteResult;
export type LeaveSeatErrorType = WriteErrorType | ContractNotDeployedError;

/**
 * Gives up a seat the account holds, so another node can take the lane at once (instead of
 * after the lease). Only the holder may leave, else `NotSeatHolder`.
 *
 * @example
 * await leaveSeat(client, { deployment, modelId: 1n, shard: 0, lane: 2 })
 */
export async function leaveSeat(client: AnyClient, parameters: LeaveSeatParameters): Promise<LeaveSeatReturnType> {
  const action = "leaveSeat";
  const { deployment, account } = parameters;
  const { modelId, shard, lane } = validate(
    action,
    z.object({ modelId: zModelId, shard: zShard, lane: zLane }),
    parameters,
  );
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: laneDirectoryOf(deployment, action),
      abi: laneDirectoryAbi,
      functionName: "leaveSeat",
      args: [modelId, shard, lane],
    },
    account,
  );
  return { hash, receipt };
}
