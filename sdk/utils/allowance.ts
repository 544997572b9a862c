import { erc20Abi, type Account, type Address } from "viem";

import type { Deployment } from "../deployment.js";
import { type AnyClient, readOne, write } from "./client.js";

/**
 * Approves `spender` for `amount` of `token` if the current allowance of the sender is lower.
 * Returns the approval's transaction hash, or undefined when none was needed.
 */
export async function ensureAllowance(
  client: AnyClient,
  deployment: Deployment,
  action: string,
  parameters: { token: Address; spender: Address; amount: bigint; account: Account | Address | undefined },
) {
  const owner = parameters.account ?? client.account;
  const ownerAddress = typeof owner === "string" ? owner : owner?.address;
  if (ownerAddress === undefined) return undefined; // `write` below reports the missing account
  const allowance = await readOne(client, deployment, action, {
    address: parameters.token,
    abi: erc20Abi,
    functionName: "allowance",
    args: [ownerAddress, parameters.spender],
  });
  if (allowance >= parameters.amount) return undefined;
  const { hash } = await write(
    client,
    deployment,
    `${action} (approve)`,
    {
      address: parameters.token,
      abi: erc20Abi,
      functionName: "approve",
      args: [parameters.spender, parameters.amount],
    },
    parameters.account,
  );
  return hash;
}
