import { z } from "zod";

import { modelRegistryAbi, stakingAbi } from "../../abis/index.js";
import { ensureAllowance } from "../../utils/allowance.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  readOne,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zModelId, zPositiveAmount, zRole } from "../../utils/schemas.js";

export type StakeParameters = DeploymentParameter &
  AccountParameter & {
    modelId: bigint | number;
    role: "trainer" | "verifier" | 0 | 1;
    /** Amount of the model's staking token, in its smallest unit. */
    amount: bigint;
    /** Approve the staking contract first if the allowance is short (default true). */
    approve?: boolean | undefined;
  };

export type StakeReturnType = WriteResult;
export type StakeErrorType = WriteErrorType;

/**
 * Stakes the model's staking token in a role, approving the staking contract first if needed.
 *
 * @example
 * await stake(client, { deployment, modelId: 1n, role: "trainer", amount: parseEther("100") })
 */
export async function stake(client: AnyClient, parameters: StakeParameters): Promise<StakeReturnType> {
  const action = "stake";
  const { deployment, account } = parameters;
  const { modelId, role, amount } = validate(
    action,
    z.object({ modelId: zModelId, role: zRole, amount: zPositiveAmount }),
    parameters,
  );
  if (parameters.approve !== false) {
    const info = await readOne(client, deployment, action, {
      address: deployment.contracts.registry,
      abi: modelRegistryAbi,
      functionName: "modelInfo",
      args: [modelId],
    });
    await ensureAllowance(client, deployment, action, {
      token: info.stakingToken,
      spender: deployment.contracts.staking,
      amount,
      account,
    });
  }
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    { address: deployment.contracts.staking, abi: stakingAbi, functionName: "stake", args: [modelId, role, amount] },
    account,
  );
  return { hash, receipt };
}
