import { erc20Abi, type Address } from "viem";
import { z } from "zod";

import { type AnyClient, type DeploymentParameter, type ReadErrorType, readOne } from "../../utils/client.js";
import { validate, zAddress } from "../../utils/schemas.js";

export type GetTokenBalanceParameters = DeploymentParameter & {
  /** The ERC-20 token (a staking token, a payment currency). */
  token: Address;
  account: Address;
};

/** The balance in the token's smallest unit. */
export type GetTokenBalanceReturnType = bigint;
export type GetTokenBalanceErrorType = ReadErrorType;

/**
 * An account's balance of an ERC-20 token (`balanceOf`), e.g. of a model's staking token before
 * staking, or of a currency before paying.
 *
 * @example
 * const balance = await getTokenBalance(client, { deployment, token: usdc, account })
 */
export async function getTokenBalance(
  client: AnyClient,
  parameters: GetTokenBalanceParameters,
): Promise<GetTokenBalanceReturnType> {
  const action = "getTokenBalance";
  const { token, account } = validate(action, z.object({ token: zAddress, account: zAddress }), {
    token: parameters.token,
    account: parameters.account,
  });
  return readOne(client, parameters.deployment, action, {
    address: token,
    abi: erc20Abi,
    functionName: "balanceOf",
    args: [account],
  });
}
