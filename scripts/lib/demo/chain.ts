import { writeFile, mkdir } from "node:fs/promises";
import path from "node:path";

import { network } from "hardhat";
import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";
import { type Address, type Hex, getAddress, parseEther, parseUnits, toHex } from "viem";
import { mnemonicToAccount } from "viem/accounts";

import { canonicalSpecBytes, type ModelSpec, specDigest, stageLayout } from "../../../node/src/index.js";
import { DEFAULT_ROUND_PARAMS, deployProtocol } from "../protocol.js";

/** Hardhat's default accounts (the local chain funds them with ETH). */
export const HARDHAT_MNEMONIC = "test test test test test test test test test test test junk";

/** Private key of Hardhat's default account `index`. */
export const privateKeyOf = (index: number): Hex =>
  toHex(mnemonicToAccount(HARDHAT_MNEMONIC, { addressIndex: index }).getHdKey().privateKey!);

/** Address of Hardhat's default account `index`. */
export const addressOf = (index: number): Address =>
  mnemonicToAccount(HARDHAT_MNEMONIC, { addressIndex: index }).address;

/** A local chain with a real JSON-RPC endpoint (Hardhat's EDR) and a viem connection to it over HTTP. */
export interface LocalChain {
  rpcUrl: string;
  chainId: number;
  connection: Awaited<ReturnType<typeof network.create>>;
  close(): Promise<void>;
}

/**
 * Starts Hardhat's EDR as a JSON-RPC server on 127.0.0.1 (a free port) and connects to it over
 * HTTP, as any other process does. Must run inside the Hardhat runtime (`hardhat run`, `hardhat test`).
 */
export async function startChain(): Promise<LocalChain> {
  const server = await network.createServer("default", "127.0.0.1", 0);
  const { port } = await server.listen();
  const rpcUrl = `http://127.0.0.1:${port}`;
  let connection: LocalChain["connection"];
  try {
    connection = await network.create({ network: "localhost", override: { url: rpcUrl } });
  } catch (err) {
    await server.close();
    throw err;
  }
  const chainId = await (await connection.viem.getPublicClient()).getChainId();
  return {
    rpcUrl,
    chainId,
    connection,
    close: async () => {
      await connection.close().catch(() => {});
      await server.close().catch(() => {});
    },
  };
}

/** The `ipfs://` URI of a small document as Helia's `addBytes` names it (CIDv1, raw leaf, sha2-256). */
export async function ipfsUriOf(bytes: Uint8Array): Promise<string> {
  return `ipfs://${CID.create(1, raw.code, await sha256.digest(bytes)).toString()}`;
}

/** Round parameters of the demo: seconds-long windows so rounds finalize while you watch. */
export interface DemoWindows {
  /** Seconds after a reveal during which the commit may be challenged (finalization waits for it). */
  challengeWindow: number;
  disputeWindow: number;
  revealWindow: number;
}

export interface DeployDemoOptions {
  spec: ModelSpec;
  /** Accounts that will train (each gets staking tokens). */
  trainers: number[];
  /** The verifier account (gets staking tokens). */
  verifier: number;
  /** The dApp account (gets both payment currencies). */
  dapp: number;
  windows: DemoWindows;
  /** Folder for the deployment JSON and the spec file. */
  dir: string;
}

/** Everything later stages need about the deployment. */
export interface DemoDeployment {
  addresses: Awaited<ReturnType<typeof deployProtocol>>["addresses"];
  stakingToken: Address;
  /** Currency A (6 decimals, escrow and receipts) and currency B (18 decimals, direct payment). */
  currencyA: { address: Address; symbol: string; decimals: number };
  currencyB: { address: Address; symbol: string; decimals: number };
  modelId: bigint;
  specFile: string;
  specURI: string;
  specDigest: Hex;
  shardWeights: bigint[];
  deploymentFile: string;
  deployBlock: bigint;
  params: typeof DEFAULT_ROUND_PARAMS;
}

/**
 * Deploys the protocol, a staking token and two payment currencies (test ERC-20s), funds the
 * participants, registers the model (spec digest and `ipfs://` URI on-chain, revenue weight of each
 * shard = its parameter count, one attestation needed per commit; genesis closed, no allocation) and writes the deployment JSON the
 * nodes read (`deployments/<chainId>.json` format) and the spec file (`--spec`) into `dir`.
 */
export async function deployDemo(chain: LocalChain, options: DeployDemoOptions): Promise<DemoDeployment> {
  const { viem } = chain.connection;
  const publicClient = await viem.getPublicClient();
  const deployBlock = await publicClient.getBlockNumber();
  const protocol = await deployProtocol(viem);
  const stake = await viem.deployContract("TestERC20", ["Demo Stake", "STK", 18]);
  const usdc = await viem.deployContract("TestERC20", ["Demo USD", "dUSD", 6]);
  const dai = await viem.deployContract("TestERC20", ["Demo Credits", "dCRD", 18]);

  for (const i of [...options.trainers, options.verifier]) await stake.write.mint([addressOf(i), parseEther("5000")]);
  await usdc.write.mint([addressOf(options.dapp), parseUnits("10000", 6)]);
  await dai.write.mint([addressOf(options.dapp), parseEther("10000")]);

  const { windows, spec } = options;
  const params = {
    ...DEFAULT_ROUND_PARAMS,
    challengeWindow: windows.challengeWindow,
    disputeWindow: windows.disputeWindow,
    revealWindow: windows.revealWindow,
    minAttestations: 1,
  };
  const bytes = canonicalSpecBytes(spec);
  const specURI = await ipfsUriOf(bytes);
  const digest = specDigest(spec);
  const shardWeights = spec.shards.map((_, i) => BigInt(stageLayout(spec, i).parameterCount));
  const hash = await protocol.registry.write.registerModel([
    {
      specDigest: digest,
      specURI,
      shardWeights,
      stakingToken: stake.address,
      currencies: [usdc.address, dai.address],
      // The registry requires unbonding to outlast reveal + challenge + dispute windows.
      unbondingDelay: windows.revealWindow + windows.challengeWindow + windows.disputeWindow + 60,
      params,
    },
  ]);
  await publicClient.waitForTransactionReceipt({ hash });
  const modelId = await protocol.registry.read.modelCount();
  // No genesis allocation: close it, so that round 1 can open.
  await publicClient.waitForTransactionReceipt({ hash: await protocol.registry.write.closeGenesis([modelId]) });

  await mkdir(path.join(options.dir, "deployments"), { recursive: true });
  const deploymentFile = path.join(options.dir, "deployments", `${chain.chainId}.json`);
  await writeFile(
    deploymentFile,
    JSON.stringify(
      { chainId: chain.chainId, blockNumber: deployBlock.toString(), contracts: protocol.addresses },
      null,
      2,
    ),
  );
  const specFile = path.join(options.dir, "spec.json");
  await writeFile(specFile, bytes);
  return {
    addresses: protocol.addresses,
    stakingToken: getAddress(stake.address),
    // Checksummed: the SDK keys amounts per currency by checksummed address.
    currencyA: { address: getAddress(usdc.address), symbol: "dUSD", decimals: 6 },
    currencyB: { address: getAddress(dai.address), symbol: "dCRD", decimals: 18 },
    modelId,
    specFile,
    specURI,
    specDigest: digest,
    shardWeights,
    deploymentFile,
    deployBlock,
    params,
  };
}
