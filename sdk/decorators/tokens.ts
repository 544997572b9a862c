import { getTokenBalance } from "../actions/tokens/getTokenBalance.js";
import { getTokenMetadata } from "../actions/tokens/getTokenMetadata.js";
import { mintTestToken } from "../actions/tokens/mintTestToken.js";
import type { Deployment } from "../deployment.js";
import type { AnyClient } from "../utils/client.js";
import { bindActions } from "./bind.js";

/**
 * ERC-20 reads (staking tokens, currencies), and minting the local test tokens:
 * `client.extend(tokenActions(deployment))`.
 */
export const tokenActions = (deployment: Deployment) => (client: AnyClient) =>
  bindActions(client, deployment, { getTokenBalance, getTokenMetadata, mintTestToken });
