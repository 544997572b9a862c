import type { Address } from "viem";
import { z } from "zod";

import { contributionLedgerAbi } from "../../abis/index.js";
import { type AnyClient, type DeploymentParameter, type ReadErrorType, readOne } from "../../utils/client.js";
import { validate, zAddress } from "../../utils/schemas.js";

export type IsNodeAuthorizedParameters = DeploymentParameter & {
  /** The account that owns the commits. */
  owner: Address;
  /** The node key that would sign for it. */
  nodeKey: Address;
};

export type IsNodeAuthorizedReturnType = boolean;
export type IsNodeAuthorizedErrorType = ReadErrorType;

/**
 * Whether `owner` authorized `nodeKey` to sign commits for it (`authorizeNode`). The ledger
 * treats such a key as the owner: it may not attest or vote on the owner's commits (`OwnCommit`).
 *
 * @example
 * const ok = await isNodeAuthorized(client, { deployment, owner, nodeKey })
 */
export async function isNodeAuthorized(
  client: AnyClient,
  parameters: IsNodeAuthorizedParameters,
): Promise<IsNodeAuthorizedReturnType> {
  const action = "isNodeAuthorized";
  const { deployment } = parameters;
  const { owner, nodeKey } = validate(action, z.object({ owner: zAddress, nodeKey: zAddress }), {
    owner: parameters.owner,
    nodeKey: parameters.nodeKey,
  });
  return readOne(client, deployment, action, {
    address: deployment.contracts.ledger,
    abi: contributionLedgerAbi,
    functionName: "isAuthorized",
    args: [owner, nodeKey],
  });
}
