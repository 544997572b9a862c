import { parseEventLogs, type Address, type Hex } from "viem";

import { shardTokenAbi } from "../../abis/index.js";
import { AccountRequiredError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { getClaimable } from "./getClaimable.js";
import { type ClaimTargetParameters, resolveClaimTargets } from "./resolveClaimTargets.js";

export type ClaimParameters = DeploymentParameter & AccountParameter & ClaimTargetParameters;

export interface ClaimReturnType {
  /** One transaction per currency that had something to claim. */
  claims: { currency: Address; amount: bigint; hash: Hex }[];
  /** Claimed per currency (every requested currency is present, 0 where nothing was due). */
  byCurrency: Record<Address, bigint>;
}
export type ClaimErrorType = WriteErrorType;

/**
 * Claims the sender's revenue across many ids in one transaction per currency; currencies with
 * nothing due are skipped (no transaction). Amounts come from the `RevenueClaimed` events.
 *
 * @example
 * const { byCurrency } = await claim(client, { deployment, modelId: 1n }) // every shard, every currency
 * await claim(client, { deployment, ids: [id0, id1], currencies: [usdc] })
 */
export async function claim(client: AnyClient, parameters: ClaimParameters): Promise<ClaimReturnType> {
  const action = "claim";
  const { deployment } = parameters;
  const { ids, currencies } = await resolveClaimTargets(client, deployment, action, parameters);
  const account = parameters.account ?? client.account;
  const holder = typeof account === "string" ? account : account?.address;
  const byCurrency: Record<Address, bigint> = {};
  for (const currency of currencies) byCurrency[currency] = 0n;
  if (holder === undefined) throw new AccountRequiredError(action);
  const due = await getClaimable(client, { deployment, holder, ids, currencies });
  const claims: ClaimReturnType["claims"] = [];
  for (const currency of currencies) {
    const idsDue = due.byId.filter((entry) => entry.currency === currency).map((entry) => entry.id);
    if (idsDue.length === 0) continue;
    const { hash, receipt } = await write(
      client,
      deployment,
      action,
      { address: deployment.contracts.token, abi: shardTokenAbi, functionName: "claim", args: [idsDue, currency] },
      parameters.account,
    );
    const amount = parseEventLogs({ abi: shardTokenAbi, eventName: "RevenueClaimed", logs: receipt.logs }).reduce(
      (sum, log) => sum + log.args.amount,
      0n,
    );
    byCurrency[currency] = amount;
    claims.push({ currency, amount, hash });
  }
  return { claims, byCurrency };
}
