import type { Address } from "viem";
import { z } from "zod";

import { validate, zAddress, zUint } from "./utils/schemas.js";

/** Addresses of one deployment of the protocol contracts. */
export interface ProtocolAddresses {
  registry: Address;
  token: Address;
  staking: Address;
  ledger: Address;
  settlement: Address;
  /** The seat directory of replica lanes; absent in deployments made before it existed. */
  laneDirectory?: Address | undefined;
}

/** Where the protocol lives on one chain: what every SDK action is given (or bound to). */
export interface Deployment {
  chainId: number;
  contracts: ProtocolAddresses;
  /** Block of the deployment: event scans (cap table, lineage) start here. */
  blockNumber: bigint;
  /** A Multicall3 contract for batched reads; found at the canonical address when omitted. */
  multicall3?: Address | undefined;
}

const zContracts = z.object({
  registry: zAddress,
  token: zAddress,
  staking: zAddress,
  ledger: zAddress,
  settlement: zAddress,
  laneDirectory: zAddress.optional(),
});

/** The shape of `deployments/<chainId>.json` (written by `npm run deploy`), and of explicit input. */
export const deploymentSchema = z.object({
  chainId: z.number().int().positive(),
  contracts: zContracts,
  blockNumber: zUint(64).default(0n),
  multicall3: zAddress.optional(),
});

/**
 * A deployment from explicit addresses (or a parsed `deployments/<chainId>.json`), validated.
 *
 * @example
 * const deployment = defineDeployment({ chainId: 31337, contracts: { registry, token, staking, ledger, settlement } })
 */
export function defineDeployment(input: z.input<typeof deploymentSchema>): Deployment {
  return validate("defineDeployment", deploymentSchema, input);
}
