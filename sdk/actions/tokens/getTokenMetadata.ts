import { erc20Abi, type Address } from "viem";
import { z } from "zod";

import { type AnyClient, type DeploymentParameter, type ReadErrorType, readOne } from "../../utils/client.js";
import { validate, zAddress } from "../../utils/schemas.js";

export type GetTokenMetadataParameters = DeploymentParameter & {
  /** The ERC-20 token. */
  token: Address;
};

export interface GetTokenMetadataReturnType {
  /** The token, checksummed. */
  address: Address;
  decimals: number;
  /** Undefined where the token has no `symbol()` (it is optional in ERC-20). */
  symbol: string | undefined;
}
export type GetTokenMetadataErrorType = ReadErrorType;

/**
 * An ERC-20 token's decimals (required: amounts cannot be shown or parsed without them) and
 * symbol (optional in ERC-20: undefined where the token has none or it fails).
 *
 * @example
 * const { decimals, symbol } = await getTokenMetadata(client, { deployment, token: usdc })
 */
export async function getTokenMetadata(
  client: AnyClient,
  parameters: GetTokenMetadataParameters,
): Promise<GetTokenMetadataReturnType> {
  const action = "getTokenMetadata";
  const { deployment } = parameters;
  const { token } = validate(action, z.object({ token: zAddress }), { token: parameters.token });
  const [decimals, symbol] = await Promise.allSettled([
    readOne(client, deployment, action, { address: token, abi: erc20Abi, functionName: "decimals" }),
    readOne(client, deployment, action, { address: token, abi: erc20Abi, functionName: "symbol" }),
  ]);
  if (decimals.status === "rejected") throw decimals.reason;
  return { address: token, decimals: decimals.value, symbol: symbol.status === "fulfilled" ? symbol.value : undefined };
}
