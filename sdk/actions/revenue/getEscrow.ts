import type { Address } from "viem";
import { z } from "zod";

import { inferenceSettlementAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, readOne, type ReadErrorType } from "../../utils/client.js";
import { validate, zAddress } from "../../utils/schemas.js";

export type GetEscrowParameters = DeploymentParameter & {
  payer: Address;
  /** The payee (gateway) the escrow is with. */
  payee: Address;
  currency: Address;
};

export interface GetEscrowReturnType {
  /** Available for receipts and for a withdrawal request. */
  balance: bigint;
  /** Requested for withdrawal; receipts still draw on it until it is withdrawn. */
  withdrawing: bigint;
  /** When `withdrawing` can be paid out (unix seconds). */
  unlockAt: bigint;
}
export type GetEscrowErrorType = ReadErrorType;

/**
 * A payer's escrow with one payee in one currency.
 *
 * @example
 * const { balance } = await getEscrow(client, { deployment, payer, payee: gateway, currency: usdc })
 */
export async function getEscrow(client: AnyClient, parameters: GetEscrowParameters): Promise<GetEscrowReturnType> {
  const action = "getEscrow";
  const { payer, payee, currency } = validate(
    action,
    z.object({ payer: zAddress, payee: zAddress, currency: zAddress }),
    { payer: parameters.payer, payee: parameters.payee, currency: parameters.currency },
  );
  const escrow = await readOne(client, parameters.deployment, action, {
    address: parameters.deployment.contracts.settlement,
    abi: inferenceSettlementAbi,
    functionName: "escrowOf",
    args: [payer, payee, currency],
  });
  return { balance: escrow.balance, withdrawing: escrow.withdrawing, unlockAt: BigInt(escrow.unlockAt) };
}
