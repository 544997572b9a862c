import { getBalances } from "../actions/ownership/getBalances.js";
import { getRevenueShare } from "../actions/ownership/getRevenueShare.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/** Ownership reads: `client.extend(ownershipActions(deployment))`. */
export const ownershipActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, { getBalances, getRevenueShare });
