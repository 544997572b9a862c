import { getCapTable } from "../actions/ownership/getCapTable.js";
import { syncCapTable } from "../actions/ownership/syncCapTable.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/**
 * Ownership from the shard token's transfer events: `client.extend(capTableActions(deployment))`.
 *
 * @example
 * const client = publicClient.extend(capTableActions(deployment))
 * const { cursor } = await client.syncCapTable({})
 * const table = await client.getCapTable({ modelId: 1n, cursor })
 */
export const capTableActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, { syncCapTable, getCapTable });
