import type { Address } from "viem";

import type { Deployment } from "../../deployment.js";
import { ContractNotDeployedError } from "../../errors/validation.js";
import { zShard } from "../../utils/schemas.js";

/** Lanes per shard a seat may name (the lane directory's `MAX_SEAT_LANES`): lanes 0 to 1023. */
export const MAX_SEAT_LANES = 1024;

/** Longest seat lease in seconds (the lane directory's `MAX_LEASE`): one day. */
export const MAX_SEAT_LEASE = 86_400;

/** The lane directory of `deployment`, or `ContractNotDeployedError` for a deployment without one. */
export function laneDirectoryOf(deployment: Deployment, action: string): Address {
  const address = deployment.contracts.laneDirectory;
  if (address === undefined) throw new ContractNotDeployedError(action, "laneDirectory", deployment.chainId);
  return address;
}

/** A lane of the directory, 0 to `MAX_SEAT_LANES` − 1. */
export const zLane = zShard.refine((v) => v < MAX_SEAT_LANES, `must be below ${MAX_SEAT_LANES}`);
