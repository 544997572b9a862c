import { createContext, useContext } from "react";
import { type Chain, createPublicClient, defineChain, http } from "viem";
import { type Deployment, defineDeployment, shardActions } from "shard-protocol/sdk";

import type { AppConfig } from "../config-plugin.js";

/** The chain, deployment and a read client extended with the SDK's actions, for every page. */
export interface Env {
  rpcUrl: string;
  chain: Chain;
  deployment: Deployment;
  client: ReturnType<typeof readClient>;
  /** Blocks a cap table waits before it counts a transfer (0 on the local chain). */
  confirmations: number;
  ipfsGateway: string;
}

function readClient(chain: Chain, rpcUrl: string, deployment: Deployment) {
  return createPublicClient({ chain, transport: http(rpcUrl, { batch: true }) }).extend(shardActions(deployment));
}

/** Fetches the configuration the server was started with (`app/config-plugin.ts`). */
export async function loadEnv(): Promise<Env> {
  const response = await fetch("/shard-config.json");
  if (!response.ok) throw new Error(`GET /shard-config.json: ${response.status}`);
  const config = (await response.json()) as AppConfig;
  const deployment = defineDeployment({
    ...config.deployment,
    blockNumber: BigInt(config.deployment.blockNumber),
  } as never);
  const local = deployment.chainId === 31337;
  const chain = defineChain({
    id: deployment.chainId,
    name: local ? "Hardhat (local)" : `Chain ${deployment.chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: [config.rpcUrl] } },
  });
  return {
    rpcUrl: config.rpcUrl,
    chain,
    deployment,
    client: readClient(chain, config.rpcUrl, deployment),
    confirmations: local ? 0 : 12,
    ipfsGateway: "https://ipfs.io/ipfs/",
  };
}

const EnvContext = createContext<Env | null>(null);
export const EnvProvider = EnvContext.Provider;

export function useEnv(): Env {
  const env = useContext(EnvContext);
  if (env === null) throw new Error("useEnv outside EnvProvider");
  return env;
}
