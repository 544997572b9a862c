/**
 * The gateway's receipt checks (its validator): a receipt's terms against the gateway's quote and
 * the payer's EIP-712 signature (no chain), then the chain's time, the nonce and the escrow.
 * Each failed check is a `GatewayRequestError` with its own stable name.
 */
import { getAddress, hashTypedData, verifyTypedData, type Address, type Hex } from "viem";
import { getBlock } from "viem/actions";
import {
  getEscrow,
  isReceiptNonceUsed,
  settlementDomain,
  usageReceiptTypes,
  type SignedUsageReceipt,
} from "shard-protocol/sdk";

import { refuse } from "./errors.js";
import { receiptKey } from "./journal.js";
import type { GatewayOptions } from "./types.js";

export class ReceiptChecks {
  readonly #o: GatewayOptions;
  readonly #currency: Address;
  readonly #payee: Address;
  readonly #marginSec: bigint;

  /** `payee`: the gateway's settling account; `marginSec`: the least time a receipt must have left to settle. */
  constructor(opts: GatewayOptions, parameters: { currency: Address; payee: Address; marginSec: bigint }) {
    this.#o = opts;
    this.#currency = parameters.currency;
    this.#payee = parameters.payee;
    this.#marginSec = parameters.marginSec;
  }

  /** The checks that need no chain: terms of the quote and the payer's signature. */
  async offChain(maxTokens: number, { receipt, signature }: SignedUsageReceipt): Promise<string> {
    const o = this.#o;
    if (maxTokens > o.maxTokensPerRequest) {
      throw refuse("MaxTokensExceeded", `maxTokens ${maxTokens} is over the gateway's ${o.maxTokensPerRequest}.`);
    }
    if (receipt.modelId !== o.modelId) {
      throw refuse(
        "WrongModel",
        `The receipt is for model ${receipt.modelId}; this gateway serves model ${o.modelId}.`,
      );
    }
    if (receipt.currency !== this.#currency) {
      throw refuse(
        "WrongCurrency",
        `The receipt is in ${receipt.currency}; this gateway charges in ${this.#currency}.`,
      );
    }
    if (getAddress(receipt.payee) !== this.#payee) {
      throw refuse("WrongPayee", `The receipt's payee is ${receipt.payee}; this gateway settles as ${this.#payee}.`, {
        details: "sign the receipt, and deposit the escrow, with the payee of the quote",
      });
    }
    if (receipt.units !== BigInt(maxTokens)) {
      throw refuse("UnitsMismatch", `The receipt pays for ${receipt.units} units but ${maxTokens} were asked.`, {
        details: "units must equal maxTokens (one unit per generated character)",
      });
    }
    if (receipt.pricePerUnit < o.pricePerUnit) {
      throw refuse("PriceTooLow", `The receipt pays ${receipt.pricePerUnit} per unit; the price is ${o.pricePerUnit}.`);
    }
    const canonical = canonicalSignatureProblem(signature);
    if (canonical !== undefined) {
      throw refuse("InvalidReceiptSignature", `The signature is not in the form the settlement contract accepts.`, {
        details: `${canonical}; sign the receipt with a standard EIP-712 signer (v 27 or 28, low s)`,
      });
    }
    if (!(await this.#verify(receipt, signature))) {
      throw refuse("InvalidReceiptSignature", `The signature does not recover the payer ${receipt.payer}.`);
    }
    return receiptKey(receipt.payer, receipt.nonce);
  }

  /** Whether `signature` recovers the payer over the settlement contract's EIP-712 domain. */
  async #verify(receipt: SignedUsageReceipt["receipt"], signature: Hex): Promise<boolean> {
    const { deployment } = this.#o.chain;
    try {
      return await verifyTypedData({
        address: receipt.payer,
        domain: settlementDomain(deployment.chainId, deployment.contracts.settlement),
        types: usageReceiptTypes,
        primaryType: "UsageReceipt",
        message: receipt,
        signature,
      });
    } catch {
      return false;
    }
  }

  /**
   * The checks against the chain: deadline (chain time), nonce, and escrow with this payee less
   * `drawn`, what the payer's other receipts already draw (counted before the escrow is read, so a
   * settlement landing in between is counted twice, which is safe, rather than not at all).
   */
  async onChain({ receipt }: SignedUsageReceipt, amount: bigint, drawn: bigint): Promise<void> {
    const { client, deployment } = this.#o.chain;
    let block: { timestamp: bigint };
    let used: boolean;
    let escrow: { balance: bigint; withdrawing: bigint; unlockAt: bigint };
    try {
      [block, used, escrow] = await Promise.all([
        getBlock(client),
        this.nonceUsed(receipt.payer, receipt.nonce),
        getEscrow(client, { deployment, payer: receipt.payer, payee: this.#payee, currency: this.#currency }),
      ]);
    } catch (error) {
      throw refuse("ChainUnavailable", "The gateway could not read the chain.", { cause: error, retryable: true });
    }
    if (receipt.deadline < block.timestamp + this.#marginSec) {
      throw refuse(
        "ReceiptExpired",
        receipt.deadline < block.timestamp
          ? `The receipt expired at ${receipt.deadline} (chain time ${block.timestamp}).`
          : `The receipt's deadline ${receipt.deadline} leaves too little time to settle it.`,
        { details: `the deadline must be at least ${this.#marginSec} s after the chain's time ${block.timestamp}` },
      );
    }
    const maxDeadline = block.timestamp + BigInt(this.#o.maxDeadlineSec ?? DEFAULT_MAX_DEADLINE_SEC);
    if (receipt.deadline > maxDeadline) {
      throw refuse("DeadlineTooFar", `The receipt's deadline ${receipt.deadline} is too far ahead.`, {
        details: `the deadline may be at most ${maxDeadline} (chain time ${block.timestamp} + ${this.#o.maxDeadlineSec ?? DEFAULT_MAX_DEADLINE_SEC} s)`,
      });
    }
    if (used) throw refuse("NonceAlreadyUsed", `The payer's nonce ${receipt.nonce} is already used on-chain.`);
    // An amount awaiting withdrawal still backs receipts, but only if it cannot leave before the
    // receipt's deadline.
    const available = escrow.balance + (BigInt(escrow.unlockAt) >= receipt.deadline ? escrow.withdrawing : 0n);
    if (available < drawn + amount) {
      throw refuse(
        "InsufficientEscrow",
        `The payer's escrow with this gateway covers ${available > drawn ? available - drawn : 0n}; the receipt needs ${amount}.`,
        { details: `escrow ${available}, drawn by receipts not yet settled ${drawn}` },
      );
    }
  }

  /** The receipt's EIP-712 digest (what the settlement contract's signature check hashes). */
  digest(receipt: SignedUsageReceipt["receipt"]): Hex {
    const { deployment } = this.#o.chain;
    return hashTypedData({
      domain: settlementDomain(deployment.chainId, deployment.contracts.settlement),
      types: usageReceiptTypes,
      primaryType: "UsageReceipt",
      message: receipt,
    });
  }

  /** Nonces are per (payer, payee): this gateway is the payee of every receipt it holds. */
  async nonceUsed(payer: Address, nonce: bigint): Promise<boolean> {
    const { client, deployment } = this.#o.chain;
    return isReceiptNonceUsed(client, { deployment, payer, payee: this.#payee, nonce });
  }
}

/** Default `maxDeadlineSec`: 30 days. */
export const DEFAULT_MAX_DEADLINE_SEC = 30 * 86_400;

/** secp256k1's group order halved: OpenZeppelin's ECDSA (the contract's check) refuses a larger s. */
const HALF_N = 0x7fffffffffffffffffffffffffffffff5d576e7357a4501ddfe92f46681b20a0n;

/**
 * Why the contract would refuse `signature` whatever it signs, or undefined: it must be 65 bytes
 * (r, s, v) with v 27 or 28 and s in the lower half of the curve order. viem's `verifyTypedData`
 * also accepts v 0/1 and high s; a receipt the gateway accepted with one of those would be
 * skipped on-chain as `BadSignature`, leaving the payer served and its escrow untouched.
 */
export function canonicalSignatureProblem(signature: Hex): string | undefined {
  if (signature.length !== 2 + 65 * 2) return `${(signature.length - 2) / 2} bytes, where 65 are expected`;
  const s = BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number.parseInt(signature.slice(130, 132), 16);
  if (v !== 27 && v !== 28) return `v is ${v}, where 27 or 28 is expected`;
  if (s === 0n || s > HALF_N) return "s is not in the lower half of the curve order";
  return undefined;
}
