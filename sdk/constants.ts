import { encodeAbiParameters, keccak256, parseEther, type Address, type Hex } from "viem";

/**
 * EIP-712 domains and types of the protocol's signed messages, as the contracts define them
 * (`ContributionLedger.SEALED_COMMIT_TYPEHASH`, `InferenceSettlement.RECEIPT_TYPEHASH`).
 */
export const sealedCommitTypes = {
  SealedCommit: [
    { name: "modelId", type: "uint64" },
    { name: "shard", type: "uint32" },
    { name: "round", type: "uint64" },
    { name: "lane", type: "uint32" },
    { name: "owner", type: "address" },
    { name: "parentRoot", type: "bytes32" },
    { name: "sealedHash", type: "bytes32" },
    { name: "paramsVersion", type: "uint32" },
    { name: "deadline", type: "uint64" },
  ],
} as const;

export const nodeConsentTypes = {
  NodeConsent: [
    { name: "owner", type: "address" },
    { name: "nodeKey", type: "address" },
    { name: "deadline", type: "uint64" },
  ],
} as const;

export const usageReceiptTypes = {
  UsageReceipt: [
    { name: "modelId", type: "uint64" },
    { name: "currency", type: "address" },
    { name: "payer", type: "address" },
    { name: "payee", type: "address" },
    { name: "units", type: "uint128" },
    { name: "pricePerUnit", type: "uint128" },
    { name: "nonce", type: "uint256" },
    { name: "deadline", type: "uint64" },
  ],
} as const;

export const ledgerDomain = (chainId: number, ledger: Address) =>
  ({ name: "ShardProtocol ContributionLedger", version: "1", chainId, verifyingContract: ledger }) as const;

export const settlementDomain = (chainId: number, settlement: Address) =>
  ({ name: "ShardProtocol InferenceSettlement", version: "1", chainId, verifyingContract: settlement }) as const;

/** The sealed hash of a commit: `keccak256(abi.encode(checkpointHash, salt))`, as the ledger checks it. */
export const sealedHash = (checkpointHash: Hex, salt: Hex): Hex =>
  keccak256(encodeAbiParameters([{ type: "bytes32" }, { type: "bytes32" }], [checkpointHash, salt]));

/**
 * The first merge lane (`MERGE_LANES` in the ledger): the commit on lane `MERGE_LANES + k` of a
 * (shard, round) is attempt k at merging the round's training lanes (lanes 0 to 255) on that shard.
 */
export const MERGE_LANES = 2 ** 31;

/** The lane bitmap a merge commit names in both activation digests (bit L: training lane L). */
export function mergedLanesBitmap(lanes: readonly number[]): Hex {
  let bits = 0n;
  for (const lane of lanes) {
    if (!Number.isInteger(lane) || lane < 0 || lane > 255)
      throw new RangeError(`lane ${lane} cannot be merged (0 to 255)`);
    bits |= 1n << BigInt(lane);
  }
  if (bits === 0n) throw new RangeError("a merge names at least one lane");
  return `0x${bits.toString(16).padStart(64, "0")}`;
}

/** The training lanes a merge commit's bitmap names, in increasing order. */
export function mergedLanesOf(bitmap: Hex): number[] {
  const bits = BigInt(bitmap);
  return Array.from({ length: 256 }, (_, lane) => lane).filter((lane) => (bits >> BigInt(lane)) & 1n);
}

/**
 * Round parameters for local chains, tests and benchmarks (`RoundParams` in IModelRegistry.sol):
 * one-hour challenge and dispute windows, ten-minute reveal window, one token wei per work unit.
 */
export const DEFAULT_ROUND_PARAMS = {
  minTrainerStake: parseEther("100"),
  minVerifierStake: parseEther("50"),
  challengeBond: parseEther("10"),
  slashAmount: parseEther("60"),
  workToTokenRate: 10n ** 18n,
  maxWorkPerCommit: 10n ** 24n,
  challengeWindow: 3600,
  disputeWindow: 3600,
  revealWindow: 600,
  minAttestations: 0,
  challengerShareBps: 5000,
  quorumBps: 3000,
  voterSlashBps: 1000,
  sealDeposit: parseEther("5"),
};

/** `Role` of the staking contract. */
export const Role = { Trainer: 0, Verifier: 1 } as const;

/** `CommitStatus` of the ledger. */
export const CommitStatus = { None: 0, Sealed: 1, Pending: 2, Finalized: 3, Rejected: 4 } as const;
export const commitStatusNames = ["none", "sealed", "pending", "finalized", "rejected"] as const;
export type CommitStatusName = (typeof commitStatusNames)[number];

/** `Verdict` of a resolved dispute (IContributionLedger.sol). */
export const Verdict = { None: 0, Invalid: 1, Valid: 2, Inconclusive: 3 } as const;
export const verdictNames = ["none", "invalid", "valid", "inconclusive"] as const;
export type VerdictName = (typeof verdictNames)[number];
