import { z } from "zod";

import { modelRegistryAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zModelId } from "../../utils/schemas.js";

export type CloseGenesisParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
  };

export type CloseGenesisReturnType = WriteResult;
export type CloseGenesisErrorType = WriteErrorType;

/**
 * The model's registrant closes its genesis allocation: no more `allocateGenesis`
 * (`GenesisClosed`), and round 1 can open (commits before it fail with `GenesisNotClosed`). Only
 * the registrant (`NotRegistrant`), once (`GenesisAlreadyClosed`).
 *
 * @example
 * await allocateGenesis(registrant, { deployment, modelId, shard: 0, allocations })
 * await closeGenesis(registrant, { deployment, modelId })
 */
export async function closeGenesis(
  client: AnyClient,
  parameters: CloseGenesisParameters,
): Promise<CloseGenesisReturnType> {
  const action = "closeGenesis";
  const { deployment, account } = parameters;
  const { modelId } = validate(action, z.object({ modelId: zModelId }), { modelId: parameters.modelId });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    { address: deployment.contracts.registry, abi: modelRegistryAbi, functionName: "closeGenesis", args: [modelId] },
    account,
  );
  return { hash, receipt };
}
