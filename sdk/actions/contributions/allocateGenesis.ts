import type { Address } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zAddress, zModelId, zPositiveAmount, zShard } from "../../utils/schemas.js";

export type AllocateGenesisParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    shard: number;
    /** Who receives how many shard tokens. */
    allocations: readonly { to: Address; amount: bigint | number | string }[];
  };

export type AllocateGenesisReturnType = WriteResult;
export type AllocateGenesisErrorType = WriteErrorType;

const schema = z.object({
  modelId: zModelId,
  shard: zShard,
  allocations: z.array(z.object({ to: zAddress, amount: zPositiveAmount })).min(1, "must not be empty"),
});

/**
 * The model's registrant mints a genesis allocation of a shard's tokens (e.g. to the authors of
 * the initial weights), only until it closes genesis with `closeGenesis` (`GenesisClosed`,
 * `NotRegistrant`, `ShardOutOfRange`); round 1 waits for that.
 *
 * @example
 * await allocateGenesis(registrant, { deployment, modelId: 1n, shard: 0, allocations: [{ to: author, amount: 10n ** 21n }] })
 */
export async function allocateGenesis(
  client: AnyClient,
  parameters: AllocateGenesisParameters,
): Promise<AllocateGenesisReturnType> {
  const action = "allocateGenesis";
  const { deployment, account } = parameters;
  const { modelId, shard, allocations } = validate(action, schema, {
    modelId: parameters.modelId,
    shard: parameters.shard,
    allocations: parameters.allocations,
  });
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "allocateGenesis",
      args: [modelId, shard, allocations.map((a) => a.to), allocations.map((a) => a.amount)],
    },
    account,
  );
  return { hash, receipt };
}
