import { network } from "hardhat";
import { keccak256, parseEther, type Address, type Hex, zeroHash } from "viem";

import type { Checkpoint, SealedCommit } from "../../sdk/actions/contributions/checkpoint.js";
import { ledgerDomain, sealedCommitTypes } from "../../scripts/lib/eip712.js";
import { DEFAULT_ROUND_PARAMS, deployProtocol, sealedHash } from "../../scripts/lib/protocol.js";
import { nodeConsentTypes } from "../../sdk/constants.js";

/** One network connection per test file; fixtures snapshot and restore it. */
export const connection = await network.create();
export const { viem, networkHelpers } = connection;

export const DAY = 86_400n;

/** One token wei per work unit, one-hour windows: the protocol's local defaults. */
export const defaultParams = DEFAULT_ROUND_PARAMS;

export type RoundParams = typeof defaultParams;

/** The ledger's `Checkpoint` struct: one definition, in the SDK. */
export type { Checkpoint };

/** A deterministic 32-byte digest from a label, for tests. */
export const digest = (label: string): Hex => keccak256(new TextEncoder().encode(label));

/**
 * The protocol with two ERC-20s (STAKE for staking and bonds, USDC-like revenue currency), one
 * registered two-shard model (weights 3:1), and funded accounts:
 * wallets[0] deployer/registrant, [1..3] trainers, [4..5] verifiers, [6] payer, [7] challenger.
 */
export async function protocolFixture() {
  const protocol = await deployProtocol(viem);
  const wallets = await viem.getWalletClients();
  const publicClient = await viem.getPublicClient();
  const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
  const usdc = await viem.deployContract("TestERC20", ["USD Coin", "USDC", 6]);
  const dai = await viem.deployContract("TestERC20", ["Dai", "DAI", 18]);
  for (const w of wallets.slice(0, 10)) {
    await stake.write.mint([w.account.address, parseEther("1000000")]);
    await usdc.write.mint([w.account.address, 10n ** 15n]);
    await dai.write.mint([w.account.address, parseEther("1000000")]);
  }
  const config = {
    specDigest: digest("spec"),
    specURI: "ipfs://bafyspec",
    shardWeights: [3n, 1n],
    stakingToken: stake.address,
    currencies: [usdc.address, dai.address],
    unbondingDelay: 7 * 86_400,
    params: defaultParams,
  };
  await protocol.registry.write.registerModel([config]);
  return { ...protocol, stake, usdc, dai, wallets, publicClient, config, modelId: 1n };
}

export type Fixture = Awaited<ReturnType<typeof protocolFixture>>;

export const tokenId = (modelId: bigint, shard: number) => (modelId << 32n) | BigInt(shard);

/** A checkpoint with plausible defaults; override any field. */
export function makeCheckpoint(owner: Address, overrides: Partial<Checkpoint> = {}): Checkpoint {
  const base: Checkpoint = {
    modelId: 1n,
    shard: 0,
    round: 1n,
    lane: 0,
    owner,
    parentRoot: zeroHash,
    root: digest(`root-${owner}-${overrides.shard ?? 0}-${overrides.round ?? 1n}-${overrides.lane ?? 0}`),
    transcriptDigest: digest("transcript"),
    sentActivations: digest("act"),
    receivedActivations: zeroHash,
    sentGradients: zeroHash,
    receivedGradients: digest("grad"),
    workUnits: 1000n,
    lossMicros: 2_500_000n,
    checkpointURI: "ipfs://bafyckpt",
    transcriptURI: "ipfs://bafytranscript",
  };
  return { ...base, ...overrides };
}

/** Pipeline digests of stage `shard` of `shardCount` that agree with its neighbours. */
export function pipelineDigests(shard: number, shardCount: number, tag = "") {
  return {
    sentActivations: shard + 1 < shardCount ? digest(`act-${shard}${tag}`) : zeroHash,
    receivedActivations: shard > 0 ? digest(`act-${shard - 1}${tag}`) : zeroHash,
    sentGradients: shard > 0 ? digest(`grad-${shard - 1}${tag}`) : zeroHash,
    receivedGradients: shard + 1 < shardCount ? digest(`grad-${shard}${tag}`) : zeroHash,
  };
}

export const sealedHashOf = async (f: Fixture, cp: Checkpoint, salt: Hex) =>
  sealedHash(await f.ledger.read.checkpointHash([cp]), salt);

/** The ledger's `SealedCommit` struct: one definition, in the SDK. */
export type { SealedCommit };

/** EIP-712 signature of a sealed commit by `signer` (a wallet client). */
export async function signCommit(f: Fixture, signer: Fixture["wallets"][number], commit: SealedCommit) {
  const chainId = await f.publicClient.getChainId();
  return signer.signTypedData({
    account: signer.account,
    domain: ledgerDomain(chainId, f.ledger.address),
    types: sealedCommitTypes,
    primaryType: "SealedCommit",
    message: commit,
  });
}

/** The node key `key`'s EIP-712 consent to sign for `owner` until `deadline` (default in an hour). */
export async function signNodeConsent(f: Fixture, key: Fixture["wallets"][number], owner: Address, deadline?: bigint) {
  const until = deadline ?? BigInt(await networkHelpers.time.latest()) + 3600n;
  const signature = await key.signTypedData({
    account: key.account,
    domain: ledgerDomain(await f.publicClient.getChainId(), f.ledger.address),
    types: nodeConsentTypes,
    primaryType: "NodeConsent",
    message: { owner, nodeKey: key.account.address, deadline: until },
  });
  return { deadline: until, signature };
}

/** Owner (wallet `ownerIndex`) authorizes wallet `keyIndex` as its node key, with the key's consent. */
export async function authorizeKey(f: Fixture, ownerIndex: number, keyIndex: number) {
  const owner = f.wallets[ownerIndex]!;
  const key = f.wallets[keyIndex]!;
  const { deadline, signature } = await signNodeConsent(f, key, owner.account.address);
  return f.ledger.write.authorizeNode([key.account.address, true, deadline, signature], { account: owner.account });
}

/** The registrant closes the genesis allocation of `modelId` unless it already did (round 1 waits for it). */
export async function ensureGenesisClosed(f: Fixture, modelId: bigint) {
  const info = await f.registry.read.modelInfo([modelId]);
  if (info.genesisClosed) return;
  await f.registry.write.closeGenesis([modelId], { account: info.registrant });
}

/**
 * Seals `cp` (signed by the owner's own key, authorized on first use) and returns what a reveal
 * needs. The owner must already have trainer stake (`slashAmount` free for each pending commit).
 * A round-1 seal first closes the model's genesis allocation (as its registrant) if still open;
 * the commit names the parameter version in force for its round.
 */
export async function sealCheckpoint(f: Fixture, ownerIndex: number, cp: Checkpoint, salt: Hex = digest("salt")) {
  const owner = f.wallets[ownerIndex]!;
  if (!(await f.ledger.read.isAuthorized([owner.account.address, owner.account.address]))) {
    await authorizeKey(f, ownerIndex, ownerIndex);
  }
  if (cp.round === 1n) await ensureGenesisClosed(f, cp.modelId);
  const now = BigInt(await networkHelpers.time.latest());
  const commit: SealedCommit = {
    modelId: cp.modelId,
    shard: cp.shard,
    round: cp.round,
    lane: cp.lane,
    owner: cp.owner,
    parentRoot: cp.parentRoot,
    sealedHash: await sealedHashOf(f, cp, salt),
    paramsVersion: await f.registry.read.paramsVersionAt([cp.modelId, cp.round]),
    deadline: now + 3600n,
  };
  const signature = await signCommit(f, owner, commit);
  const hash = await f.ledger.write.commit([commit, signature]);
  const receipt = await f.publicClient.waitForTransactionReceipt({ hash });
  const block = await f.publicClient.getBlock({ blockNumber: receipt.blockNumber });
  return { commit, signature, salt, commitBlock: receipt.blockNumber, commitTime: block.timestamp, receipt };
}

/** Seals and reveals `cp` (two blocks), returning its commit id. */
export async function commitAndReveal(f: Fixture, ownerIndex: number, cp: Checkpoint, salt: Hex = digest("salt")) {
  const sealed = await sealCheckpoint(f, ownerIndex, cp, salt);
  await f.ledger.write.reveal([cp, salt, sealed.commitBlock, sealed.commitTime]);
  return f.ledger.read.commitIdOf([cp.modelId, cp.shard, cp.round, cp.lane]);
}

/** Stakes `amount` (default the minimum) for wallet `index` in `role` (0 trainer, 1 verifier). */
export async function stakeAs(f: Fixture, index: number, role: 0 | 1, amount?: bigint) {
  const w = f.wallets[index]!;
  const value = amount ?? (role === 0 ? defaultParams.minTrainerStake : defaultParams.minVerifierStake);
  await f.stake.write.approve([f.staking.address, value], { account: w.account });
  await f.staking.write.stake([f.modelId, role, value], { account: w.account });
}
