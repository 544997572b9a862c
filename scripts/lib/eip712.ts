import type { Address } from "viem";

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
    { name: "sealedHash", type: "bytes32" },
    { name: "deadline", type: "uint64" },
  ],
} as const;

export const usageReceiptTypes = {
  UsageReceipt: [
    { name: "modelId", type: "uint64" },
    { name: "currency", type: "address" },
    { name: "payer", type: "address" },
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
