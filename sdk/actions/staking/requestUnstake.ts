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
import { validate, zModelId, zPositiveAmount, zRole } from "../../utils/schemas.js";

export type RequestUnstakeParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    role: "trainer" | "verifier" | 0 | 1;
    amount: bigint;
  };

/** `readyAt`: when the whole unbonding amount can be withdrawn (unix seconds). */
export type RequestUnstakeReturnType = WriteResult & { readyAt: bigint };
export type RequestUnstakeErrorType = WriteErrorType;

/**
 * Moves stake from active to unbonding; it can be withdrawn after the model's unbonding delay
 * (a new request restarts the delay for the whole unbonding amount). Unbonding stake no longer
 * counts, but can still be slashed. Locked stake (pending commits, unreleased votes; `getStake`'s
 * `locked`) cannot move (`InsufficientFreeStake`).
 *
 * @example
 * const { readyAt } = await requestUnstake(client, { deployment, modelId: 1n, role: "trainer", amount })
 */
export async function requestUnstake(
  client: AnyClient,
  parameters: RequestUnstakeParameters,
): Promise<RequestUnstakeReturnType> {
  const action = "requestUnstake";
  const { modelId, role, amount } = validate(
    action,
    z.object({ modelId: zModelId, role: zRole, amount: zPositiveAmount }),
    parameters,
  );
  const { hash, receipt } = await write(
    client,
    parameters.deployment,
    action,
    {
      address: parameters.deployment.contracts.staking,
      abi: stakingAbi,
      functionName: "requestUnstake",
      args: [modelId, role, amount],
    },
    parameters.account,
  );
  const event = eventOf(action, receipt, stakingAbi, "UnstakeRequested");
  return { hash, receipt, readyAt: event.args.readyAt };
}
