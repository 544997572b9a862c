import type { Address } from "viem";
import { z } from "zod";

import { testTokenAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  write,
  type WriteErrorType,
  type WriteResult,
} from "../../utils/client.js";
import { validate, zAddress, zAmount } from "../../utils/schemas.js";

export type MintTestTokenParameters = DeploymentParameter &
  AccountParameter & {
    /** A test token: `testTokens.stake` or `testTokens.usd` in the local deployment file. */
    token: Address;
    /** The recipient. */
    to: Address;
    /** In the token's smallest unit. */
    amount: bigint;
  };

export type MintTestTokenReturnType = WriteResult;
export type MintTestTokenErrorType = WriteErrorType;

/**
 * Mints a local test token (`TestERC20.mint`, which anyone may call). Only for the test tokens that
 * `npm run deploy` deploys on a local chain (31337; `testTokens` in its deployment file): protocol
 * tokens on a real network have no such function, and the call reverts.
 *
 * @example
 * const { hash } = await mintTestToken(client, { deployment, token: testUsd, to, amount: 100_000000n })
 */
export async function mintTestToken(
  client: AnyClient,
  parameters: MintTestTokenParameters,
): Promise<MintTestTokenReturnType> {
  const action = "mintTestToken";
  const { token, to, amount } = validate(action, z.object({ token: zAddress, to: zAddress, amount: zAmount }), {
    token: parameters.token,
    to: parameters.to,
    amount: parameters.amount,
  });
  const { hash, receipt } = await write(
    client,
    parameters.deployment,
    action,
    { address: token, abi: testTokenAbi, functionName: "mint", args: [to, amount] },
    parameters.account,
  );
  return { hash, receipt };
}
