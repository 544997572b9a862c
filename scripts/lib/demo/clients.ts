import { type Address, createWalletClient, http, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { defineDeployment, shardActions, type ProtocolAddresses } from "shard-protocol/sdk";

import { privateKeyOf } from "./chain.js";

/** A viem wallet client of Hardhat account `index` (signing locally) with every protocol action bound. */
export function sdkClient(
  rpcUrl: string,
  chainId: number,
  contracts: ProtocolAddresses,
  index: number,
  deployBlock = 0n,
) {
  const deployment = defineDeployment({ chainId, contracts, blockNumber: deployBlock });
  const account = privateKeyToAccount(privateKeyOf(index));
  return createWalletClient({
    account,
    chain: {
      id: chainId,
      name: "demo",
      nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
      rpcUrls: { default: { http: [rpcUrl] } },
    },
    transport: http(rpcUrl),
    pollingInterval: 100,
  })
    .extend(publicActions)
    .extend(shardActions(deployment));
}

export type SdkClient = ReturnType<typeof sdkClient>;

/** Short label of an address: `0xf39F…2266`. */
export const shortAddress = (a: Address) => `${a.slice(0, 6)}…${a.slice(-4)}`;
