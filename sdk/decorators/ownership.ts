import { getBalances } from "../actions/ownership/getBalances.js";
import { getHoldings } from "../actions/ownership/getHoldings.js";
import { getRevenueShare } from "../actions/ownership/getRevenueShare.js";
import { getShardSupply } from "../actions/ownership/getShardSupply.js";
import { transferShards } from "../actions/ownership/transferShards.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/** Ownership: balances, holdings, revenue share, transfers: `client.extend(ownershipActions(deployment))`. */
export const ownershipActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, { getBalances, getHoldings, getRevenueShare, getShardSupply, transferShards });
