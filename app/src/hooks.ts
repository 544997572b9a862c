import { keepPreviousData, useQueries, useQuery, type UseQueryResult } from "@tanstack/react-query";
import { useCallback, useState } from "react";
import { type Address, createWalletClient, custom, type EIP1193Provider, getAddress } from "viem";
import { useBlockNumber, useConnection } from "wagmi";
import { type GetTokenMetadataReturnType, ShardBaseError, shardActions } from "shard-protocol/sdk";

import { type Env, useEnv } from "./env.js";

/** The latest block, watched: every chain query below is keyed by it, so pages follow the chain. */
export function useBlock(): bigint | undefined {
  return useBlockNumber({ watch: true }).data;
}

/** A read that runs again at every new block; the previous result stays on screen meanwhile. */
export function useChainQuery<T>(
  key: readonly unknown[],
  read: (env: Env) => Promise<T>,
  enabled = true,
): UseQueryResult<T> {
  const env = useEnv();
  const block = useBlock();
  return useQuery({
    queryKey: [...key, block?.toString()],
    queryFn: () => read(env),
    enabled: enabled && block !== undefined,
    placeholderData: keepPreviousData,
  });
}

/** Decimals and symbol of ERC-20 tokens (fixed, so read once each). */
export function useTokens(addresses: readonly Address[]): Map<Address, GetTokenMetadataReturnType> {
  const env = useEnv();
  const results = useQueries({
    queries: addresses.map((token) => ({
      queryKey: ["token", getAddress(token)],
      queryFn: () => env.client.getTokenMetadata({ token }),
      staleTime: Infinity,
    })),
  });
  const map = new Map<Address, GetTokenMetadataReturnType>();
  for (const r of results) if (r.data) map.set(r.data.address, r.data);
  return map;
}

/** The connected wallet, and whether it is on the deployment's chain. */
export function useWallet() {
  const env = useEnv();
  const connection = useConnection();
  const address = connection.address ? getAddress(connection.address) : undefined;
  const wrongChain = connection.isConnected && connection.chainId !== env.deployment.chainId;
  return { address, connector: connection.connector, chainId: connection.chainId, wrongChain };
}

export type WriteState =
  | { status: "idle" }
  | { status: "pending"; label: string }
  | { status: "confirmed"; label: string; hashes: string[] }
  | { status: "failed"; label: string; message: string };

/** The SDK's actions on the connected wallet (writes simulate first; errors come decoded). */
async function walletClient(
  env: Env,
  connector: NonNullable<ReturnType<typeof useWallet>["connector"]>,
  account: Address,
) {
  const provider = (await connector.getProvider()) as EIP1193Provider;
  // No `chain`: the SDK asks the wallet for its chain and refuses another than the deployment's.
  return createWalletClient({ account, transport: custom(provider) }).extend(shardActions(env.deployment));
}

export type WalletActions = Awaited<ReturnType<typeof walletClient>>;

/**
 * Runs one write at a time with the wallet and tracks it: pending, then confirmed with its
 * transaction hashes, or failed with the SDK's one-sentence explanation.
 */
export function useWrite() {
  const env = useEnv();
  const { address, connector } = useWallet();
  const [state, setState] = useState<WriteState>({ status: "idle" });
  const run = useCallback(
    async (label: string, write: (wallet: WalletActions) => Promise<string[]>) => {
      if (!address || !connector) return;
      setState({ status: "pending", label });
      try {
        const hashes = await write(await walletClient(env, connector, address));
        setState({ status: "confirmed", label, hashes });
      } catch (error) {
        const message =
          error instanceof ShardBaseError ? error.shortMessage : error instanceof Error ? error.message : String(error);
        setState({ status: "failed", label, message });
      }
    },
    [env, address, connector],
  );
  return { state, run, busy: state.status === "pending" };
}
