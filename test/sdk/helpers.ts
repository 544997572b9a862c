import { BrowserProvider, Wallet } from "ethers";
import { publicActions, toHex } from "viem";
import { mnemonicToAccount } from "viem/accounts";

import { shardActions } from "../../sdk/decorators/shard.js";
import { defineDeployment } from "../../sdk/deployment.js";
import { fromEthers } from "../../sdk/ethers.js";
import { connection, protocolFixture } from "../helpers/fixture.js";

/** The contract fixture plus the SDK's view of the deployment. */
export async function sdkFixture() {
  const f = await protocolFixture();
  const chainId = await f.publicClient.getChainId();
  const deployment = defineDeployment({ chainId, contracts: f.addresses, blockNumber: 0n });
  return { ...f, deployment };
}

export type SdkFixture = Awaited<ReturnType<typeof sdkFixture>>;

/** Hardhat's default accounts come from this mnemonic. */
const MNEMONIC = "test test test test test test test test test test test junk";

/** Private key of Hardhat's default account `index`. */
export const privateKeyOf = (index: number) =>
  toHex(mnemonicToAccount(MNEMONIC, { addressIndex: index }).getHdKey().privateKey!);

/** The two ways into the SDK that every SDK test runs through. */
export const PATHS = ["viem", "ethers"] as const;
export type ClientPath = (typeof PATHS)[number];

let ethersProvider: BrowserProvider | undefined;

/** The ethers provider over the test network (one per test file). */
export function ethersProviderFor() {
  ethersProvider ??= new BrowserProvider(connection.provider);
  return ethersProvider;
}

/**
 * An SDK client acting as wallet `index`: through viem (Hardhat's wallet client) or through the
 * ethers adapter (an ethers `Wallet` signing locally).
 */
export async function clientFor(f: SdkFixture, path: ClientPath, index: number) {
  if (path === "viem") {
    return f.wallets[index]!.extend(publicActions).extend(shardActions(f.deployment));
  }
  const provider = ethersProviderFor();
  const signer = new Wallet(privateKeyOf(index), provider);
  const { client } = await fromEthers({ provider, signer, deployment: f.deployment });
  return client;
}

export type SdkClient = Awaited<ReturnType<typeof clientFor>>;
