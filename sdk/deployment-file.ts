import { readFile } from "node:fs/promises";
import path from "node:path";

import { getChainId } from "viem/actions";
import type { Client } from "viem";

import { defineDeployment, type Deployment } from "./deployment.js";
import { DeploymentNotFoundError } from "./errors/validation.js";
import { toShardError } from "./errors/contract.js";

export interface LoadDeploymentParameters {
  chainId: number;
  /** Folder of `<chainId>.json` files (default `./deployments`). */
  dir?: string | undefined;
}

/**
 * Reads `deployments/<chainId>.json`, as written by `npm run deploy`. Node only.
 *
 * @example
 * const deployment = await loadDeployment({ chainId: 31337 })
 */
export async function loadDeployment({ chainId, dir = "deployments" }: LoadDeploymentParameters): Promise<Deployment> {
  const file = path.resolve(dir, `${chainId}.json`);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new DeploymentNotFoundError(chainId, file, error);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new DeploymentNotFoundError(chainId, `${file} (not valid JSON)`, error);
  }
  return defineDeployment(json as Parameters<typeof defineDeployment>[0]);
}

/** The deployment for the chain `client` is connected to, from `dir`. Node only. */
export async function loadDeploymentFor(client: Client, dir?: string): Promise<Deployment> {
  let chainId: number;
  try {
    chainId = await getChainId(client);
  } catch (error) {
    throw toShardError(error, "loadDeployment");
  }
  return loadDeployment({ chainId, dir });
}
