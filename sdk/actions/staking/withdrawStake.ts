import { z } from "zod";

import { stakingAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  eventOf,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zModelId, zRole } from "../../utils/schemas.js";

export type WithdrawStakeParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    role: "trainer" | "verifier" | 0 | 1;
  };

export type WithdrawStakeReturnType = WriteResult & { amount: bigint };
export type WithdrawStakeErrorType = WriteErrorType;

/**
 * Pays out the whole unbonding stake once its delay has passed (`StillUnbonding` before,
 * `NothingUnbonding` without a request).
 *
 * @example
 * const { amount } = await withdrawStake(client, { deployment, modelId: 1n, role: "trainer" })
 */
export async function withdrawStake(
  client: AnyClient,
  parameters: WithdrawStakeParameters,
): Promise<WithdrawStakeReturnType> {
  const action = "withdrawStake";
  const { modelId, role } = validate(action, z.object({ modelId: zModelId, role: zRole }), parameters);
  const { hash, receipt } = await write(
    client,
    parameters.deployment,
    action,
    {
      address: parameters.deployment.contracts.staking,
      abi: stakingAbi,
      functionName: "withdraw",
      args: [modelId, role],
    },
    parameters.account,
  );
  const event = eventOf(action, receipt, stakingAbi, "Withdrawn");
  return { hash, receipt, amount: event.args.amount };
}
