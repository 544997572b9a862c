import { getStake } from "../actions/staking/getStake.js";
import { requestUnstake } from "../actions/staking/requestUnstake.js";
import { stake } from "../actions/staking/stake.js";
import { withdrawStake } from "../actions/staking/withdrawStake.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/** Staking: `client.extend(stakingActions(deployment))`. */
export const stakingActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, { stake, requestUnstake, withdrawStake, getStake });
