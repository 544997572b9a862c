import type { Address } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import type { ShardBaseError } from "../../errors/base.js";
import {
  type AccountParameter,
  type AnyClient,
  type DeploymentParameter,
  type WriteResult,
  write,
} from "../../utils/client.js";
import { validate, zAddress } from "../../utils/schemas.js";

export type AuthorizeNodeParameters = DeploymentParameter &
  AccountParameter & {
    /** The key that will sign sealed commits on behalf of the sender (the owner). */
    nodeKey: Address;
    /** False revokes the key (default true). */
    authorized?: boolean | undefined;
  };

export type AuthorizeNodeReturnType = WriteResult;
export type AuthorizeNodeErrorType = ShardBaseError;

/**
 * The sender (an owner, who stakes and receives the tokens) authorizes or revokes a node key
 * that signs sealed commits on its behalf.
 *
 * @example
 * await authorizeNode(ownerClient, { deployment, nodeKey: nodeAccount.address })
 * await authorizeNode(ownerClient, { deployment, nodeKey: nodeAccount.address, authorized: false })
 */
export async function authorizeNode(
  client: AnyClient,
  parameters: AuthorizeNodeParameters,
): Promise<AuthorizeNodeReturnType> {
  const action = "authorizeNode";
  const { deployment, account } = parameters;
  const { nodeKey, authorized } = validate(
    action,
    z.object({ nodeKey: zAddress, authorized: z.boolean().default(true) }),
    { nodeKey: parameters.nodeKey, authorized: parameters.authorized },
  );
  const { hash, receipt } = await write(
    client,
    deployment,
    action,
    {
      address: deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      functionName: "authorizeNode",
      args: [nodeKey, authorized],
    },
    account,
  );
  return { hash, receipt };
}
