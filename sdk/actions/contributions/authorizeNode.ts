import type { Address, Hex } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
  type WriteErrorType,
} from "../../utils/client.js";
import { validate, zAddress, zHex, zUint } from "../../utils/schemas.js";

export type AuthorizeNodeParameters = DeploymentParameter &
  AccountParameter & {
    /** The key that will sign sealed commits on behalf of the sender (the owner). */
    nodeKey: Address;
    /** False revokes the key (default true). */
    authorized?: boolean | undefined;
    /**
     * The node key's consent to serve the sender (`signNodeConsent`): required to authorize,
     * ignored to revoke.
     */
    consent?: { deadline: bigint; signature: Hex } | undefined;
  };

export type AuthorizeNodeReturnType = WriteResult;
export type AuthorizeNodeErrorType = WriteErrorType;

const schema = z
  .object({
    nodeKey: zAddress,
    authorized: z.boolean().default(true),
    consent: z.object({ deadline: zUint(64), signature: zHex }).optional(),
  })
  .refine((p) => !p.authorized || p.consent !== undefined, {
    message: "is required to authorize a node key (signNodeConsent by the node key)",
    path: ["consent"],
  });

/**
 * The sender (an owner, who stakes and receives the tokens) authorizes or revokes a node key
 * that signs sealed commits on its behalf. Authorizing needs the key's consent, signed by the key
 * with `signNodeConsent` (`SignatureExpired`, `InvalidSignature`, `NodeConsentMismatch` when
 * another key signed it, or for another owner); revoking needs none.
 *
 * @example
 * const consent = await signNodeConsent(nodeClient, { deployment, owner: ownerAccount.address })
 * await authorizeNode(ownerClient, { deployment, nodeKey: nodeAccount.address, consent })
 * await authorizeNode(ownerClient, { deployment, nodeKey: nodeAccount.address, authorized: false })
 */
export async function authorizeNode(
  client: AnyClient,
  parameters: AuthorizeNodeParameters,
): Promise<AuthorizeNodeReturnType> {
  const action = "authorizeNode";
  const { deployment, account } = parameters;
  const { nodeKey, authorized, consent } = validate(action, schema, {
    nodeKey: parameters.nodeKey,
    authorized: parameters.authorized,
    consent: parameters.consent,
  });
  const [deadline, signature]: [bigint, Hex] =
    authorized && consent !== undefined ? [consent.deadline, consent.signature] : [0n, "0x"];
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "authorizeNode",
      args: [nodeKey, authorized, deadline, signature],
    },
    account,
  );
  return { hash, receipt };
}
