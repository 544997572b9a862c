/**
 * Deploys the protocol and records it in `deployments/<chainId>.json`.
 *
 *   npx hardhat run scripts/deploy.ts                      # in-process network (throwaway)
 *   npx hardhat run scripts/deploy.ts --network localhost  # a running `npx hardhat node` / anvil
 *   RPC_URL=... DEPLOYER_PRIVATE_KEY=0x... npx hardhat run scripts/deploy.ts --network remote
 *
 * Environment: FORCE_DEPLOY=1 deploys again even if the recorded deployment still has code;
 * ESCROW_WITHDRAWAL_DELAY (seconds, default 86400); DEPLOY_TEST_TOKENS=1 also deploys two
 * mintable test ERC-20s (always on for chain 31337). On chain 31337 the first 10 accounts each get
 * 10,000 of both test tokens; `shard-node faucet` funds any other address there.
 */
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import path from "node:path";

import { network } from "hardhat";
import { parseUnits, type Address } from "viem";

import { DEFAULT_ESCROW_WITHDRAWAL_DELAY, deployProtocol, type ProtocolAddresses } from "./lib/protocol.js";

export interface DeploymentFile {
  chainId: number;
  network: string;
  deployer: Address;
  blockNumber: string;
  deployedAt: string;
  escrowWithdrawalDelay: string;
  contracts: ProtocolAddresses;
  testTokens?: { stake: Address; usd: Address };
}

/** Accounts of the local node that get test tokens on chain 31337. */
const FUNDED_ACCOUNTS = 10;

const DEPLOYMENTS_DIR = path.resolve(import.meta.dirname, "..", "deployments");

const connection = await network.create();
const { viem, networkName } = connection;
const publicClient = await viem.getPublicClient();
const [wallet] = await viem.getWalletClients();
if (wallet === undefined) {
  throw new Error(`Network "${networkName}" has no deployer account: set DEPLOYER_PRIVATE_KEY for --network remote.`);
}
const chainId = await publicClient.getChainId();
const file = path.join(DEPLOYMENTS_DIR, `${chainId}.json`);

const existing = await readExisting(file);
if (existing !== undefined && process.env.FORCE_DEPLOY !== "1") {
  const code = await publicClient.getCode({ address: existing.contracts.registry });
  if (code !== undefined && code !== "0x") {
    console.log(`Already deployed on chain ${chainId} at block ${existing.blockNumber} (${file}).`);
    console.log("Set FORCE_DEPLOY=1 to deploy a new instance.");
    console.table(existing.contracts);
    if (existing.contracts.laneDirectory === undefined) {
      console.log("That deployment predates the LaneDirectory (`--lane auto`); FORCE_DEPLOY=1 deploys one with it.");
    }
    process.exit(0);
  }
  console.log(`${file} names contracts with no code on this chain (a restarted local node?); deploying anew.`);
}

const escrowWithdrawalDelay = BigInt(process.env.ESCROW_WITHDRAWAL_DELAY ?? DEFAULT_ESCROW_WITHDRAWAL_DELAY);
const blockNumber = await publicClient.getBlockNumber();
console.log(`Deploying to ${networkName} (chain ${chainId}) from ${wallet.account.address}...`);
const protocol = await deployProtocol(viem, { escrowWithdrawalDelay });

const deployment: DeploymentFile = {
  chainId,
  network: networkName,
  deployer: wallet.account.address,
  blockNumber: (blockNumber + 1n).toString(),
  deployedAt: new Date().toISOString(),
  escrowWithdrawalDelay: escrowWithdrawalDelay.toString(),
  contracts: protocol.addresses,
};
if (chainId === 31337 || process.env.DEPLOY_TEST_TOKENS === "1") {
  const stake = await viem.deployContract("TestERC20", ["Test Stake", "tSTAKE", 18]);
  const usd = await viem.deployContract("TestERC20", ["Test USD", "tUSD", 6]);
  deployment.testTokens = { stake: stake.address, usd: usd.address };
  if (chainId === 31337) {
    // The local node's funded accounts get test tokens too, so any of them can stake and pay.
    const accounts = (await viem.getWalletClients()).slice(0, FUNDED_ACCOUNTS).map((w) => w.account.address);
    for (const account of accounts) {
      await stake.write.mint([account, parseUnits("10000", 18)]);
      await usd.write.mint([account, parseUnits("10000", 6)]);
    }
    console.log(`Minted 10,000 tSTAKE and 10,000 tUSD to each of the first ${accounts.length} accounts.`);
  }
}

await mkdir(DEPLOYMENTS_DIR, { recursive: true });
// Atomic: a crash mid-write never leaves a truncated deployment file behind.
await writeFile(`${file}.tmp`, `${JSON.stringify(deployment, null, 2)}\n`);
await rename(`${file}.tmp`, file);
console.table({ ...deployment.contracts, ...deployment.testTokens });
console.log(`Wrote ${path.relative(process.cwd(), file)}`);

async function readExisting(p: string): Promise<DeploymentFile | undefined> {
  let text: string;
  try {
    text = await readFile(p, "utf8");
  } catch {
    return undefined;
  }
  try {
    return JSON.parse(text) as DeploymentFile;
  } catch (error) {
    throw new Error(`${p} is not valid JSON; fix or delete it before deploying`, { cause: error });
  }
}
