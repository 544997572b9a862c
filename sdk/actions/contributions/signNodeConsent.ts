import type { Account, Address, Hex } from "viem";
import { getBlock, signTypedData } from "viem/actions";
import { z } from "zod";

import { ledgerDomain, nodeConsentTypes } from "../../constants.js";
import { toShardError } from "../../errors/contract.js";
import { AccountRequiredError } from "../../errors/validation.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  assertChain,
  type SignErrorType,
} from "../../utils/client.js";
import { validate, zAddress, zUint } from "../../utils/schemas.js";

export type SignNodeConsentParameters = DeploymentParameter &
  AccountParameter & {
    /** The owner the node key agrees to sign sealed commits for. */
    owner: Address;
    /** Unix time after which the consent is void (default: the latest block's time + 1 hour). */
    deadline?: bigint | number | undefined;
  };

export interface SignNodeConsentReturnType {
  owner: Address;
  /** The signing account: the node key. */
  nodeKey: Address;
  deadline: bigint;
  /** EIP-712 `NodeConsent(owner, nodeKey, deadline)` signature by the node key. */
  signature: Hex;
}

export type SignNodeConsentErrorType = SignErrorType;

/** Default validity of a consent, in seconds. */
const DEFAULT_VALIDITY = 3600n;

/**
 * The node key (the client's account) consents to serve `owner`: it signs the EIP-712
 * `NodeConsent(owner, nodeKey, deadline)` of the ledger's domain. Nothing is sent; the owner
 * passes `{ deadline, signature }` as `consent` to `authorizeNode`. Without it no owner can claim
 * a key it does not control.
 *
 * @example
 * const consent = await signNodeConsent(nodeClient, { deployment, owner: ownerAccount.address })
 * await authorizeNode(ownerClient, { deployment, nodeKey: consent.nodeKey, consent })
 */
export async function signNodeConsent(
  client: AnyClient,
  parameters: SignNodeConsentParameters,
): Promise<SignNodeConsentReturnType> {
  const action = "signNodeConsent";
  const { deployment } = parameters;
  const input = validate(action, z.object({ owner: zAddress, deadline: zUint(64).optional() }), {
    owner: parameters.owner,
    deadline: parameters.deadline,
  });
  const signer: Account | Address | undefined = parameters.account ?? client.account;
  if (signer === undefined) throw new AccountRequiredError(action);
  const nodeKey = validate(action, zAddress, typeof signer === "string" ? signer : signer.address);
  try {
    await assertChain(client, deployment, action);
    // Chain time, not the wall clock: the contract compares the deadline with block.timestamp.
    const deadline = input.deadline ?? (await getBlock(client, { blockTag: "latest" })).timestamp + DEFAULT_VALIDITY;
    const signature = await signTypedData(client, {
      account: signer,
      domain: ledgerDomain(deployment.chainId, deployment.contracts.ledger),
      types: nodeConsentTypes,
      primaryType: "NodeConsent",
      message: { owner: input.owner, nodeKey, deadline },
    });
    return { owner: input.owner, nodeKey, deadline, signature };
  } catch (error) {
    throw toShardError(error, action);
  }
}
