import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { contributionActions } from "./contributions.js";
import { modelActions } from "./models.js";
import { capTableActions } from "./ownership-events.js";
import { ownershipActions } from "./ownership.js";
import { revenueActions } from "./revenue.js";
import { seatActions } from "./seats.js";
import { stakingActions } from "./staking.js";
import { tokenActions } from "./tokens.js";

/**
 * Every protocol action, bound to one deployment: `client.extend(shardActions(deployment))`.
 * Reads work on any client; writes need a client with an account (or an `account` parameter).
 *
 * @example
 * const client = createWalletClient({ account, chain, transport: http() }).extend(publicActions)
 *   .extend(shardActions(await loadDeployment({ chainId: chain.id })))
 * const model = await client.getModel({ modelId: 1n })
 */
export const shardActions = (deployment: Deployment) => (client: AnyClient) => ({
  deployment,
  ...modelActions(deployment)(client),
  ...ownershipActions(deployment)(client),
  ...capTableActions(deployment)(client),
  ...contributionActions(deployment)(client),
  ...stakingActions(deployment)(client),
  ...revenueActions(deployment)(client),
  ...tokenActions(deployment)(client),
  ...seatActions(deployment)(client),
});

export type ShardActions = ReturnType<ReturnType<typeof shardActions>>;
