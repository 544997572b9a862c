/** The gateway's public types: its options, the pipeline it fronts, its events and settlement results. */
import { isAddress, type Account, type Address, type Hex } from "viem";
import type { AnyClient, Deployment, SignedUsageReceipt, SkipReason } from "shard-protocol/sdk";
import { z } from "zod";

/** What the gateway asks the pipeline to generate. */
export interface GenerateRequest {
  prompt: string;
  /** At most this many characters (the receipt pays for exactly this many). */
  maxTokens: number;
  temperature?: number | undefined;
  seed?: number | undefined;
  /**
   * The EIP-712 digest of the usage receipt that pays for this request: shard 0 signs it into the
   * ticket every hop of the pipeline carries.
   */
  receiptDigest: Hex;
}

export interface GenerateResult {
  text: string;
  /** Characters generated (≤ maxTokens). */
  tokens: number;
}

/** The pipeline's entry point. A thrown error's `name` (e.g. `ShardUnavailableError`) reaches the dApp. */
export type Generate = (request: GenerateRequest) => Promise<GenerateResult>;

export interface GatewayOptions {
  modelId: bigint;
  /** The ERC-20 the receipts are in (one the model accepts). */
  currency: Address;
  /** The least price per generated character the gateway accepts. */
  pricePerUnit: bigint;
  /** The most characters one request may ask for. */
  maxTokensPerRequest: number;
  /**
   * The gateway's chain client (SDK actions are called on it), the account that sends settlements:
   * the payee every receipt must name.
   */
  chain: { client: AnyClient; account: Account; deployment: Deployment };
  /** Where the receipt journal lives (`receipts.jsonl`). */
  dataDir: string;
  /** Port 0: any free port (see `Gateway.url`). */
  listen: { host: string; port: number };
  /** Receipts per settlement transaction (1..500); a batch is sent as soon as this many are pending. */
  batchSize: number;
  /** Pending receipts are also settled this often, however few. */
  settleIntervalMs: number;
  generate: Generate;
  onEvent?: ((event: GatewayEvent) => void) | undefined;
  /**
   * A receipt must stay valid this many seconds past the chain's time to be accepted, so that it
   * can still settle (default: 2 × the settle interval + 5 minutes).
   */
  settleMarginSec?: number | undefined;
  /**
   * A receipt's deadline may be at most this many seconds past the chain's time (default 30 days):
   * a receipt the contract cannot settle yet is retried until its deadline, which bounds that.
   */
  maxDeadlineSec?: number | undefined;
  /**
   * Checks a prompt before anything else (no chain read, no reservation): throws where the model
   * cannot read it (for example serve's `encodePrompt`, refusing characters outside the vocabulary);
   * the request is then refused 400 `InvalidPrompt` with the error's message.
   */
  checkPrompt?: ((prompt: string) => void | Promise<void>) | undefined;
  /** The longest prompt accepted, in characters (default 16,384). */
  maxPromptChars?: number | undefined;
  /**
   * Requests served at once: what the pipeline carries (shard 0's `InferenceServer.capacity`, the
   * slots each shard grants one peer; default 4). More are answered 503 `GatewayBusy` with
   * `Retry-After`, charging nothing.
   */
  maxConcurrent?: number | undefined;
  /** The `Retry-After` of a 503, in seconds (default 1). */
  retryAfterSec?: number | undefined;
}

/** Default `maxConcurrent`: the slots a shard grants one peer by default (`DEFAULT_MAX_PER_PEER` of serve). */
export const DEFAULT_GATEWAY_MAX_CONCURRENT = 4;

export type GatewayEvent =
  | { type: "listening"; url: string }
  | { type: "recovered"; pending: number; settledOnChain: number }
  /** The journal's last line was cut short by a crash (never acknowledged): set aside in `savedTo`. */
  | { type: "journal-torn"; bytes: number; savedTo: string; key?: string | undefined }
  | { type: "served"; payer: Address; nonce: bigint; tokens: number; units: bigint; amount: bigint }
  | { type: "refused"; error: string; status: number; message: string }
  | { type: "settled"; tx: Hex; settled: number; skipped: number; deferred: number; amount: bigint }
  | { type: "settle-failed"; receipts: number; error: string; message: string; retryAt: number };

/** What one `settleNow` (or automatic settlement) did. */
export interface SettlementResult {
  /** Settlement transactions sent and mined. */
  transactions: Hex[];
  /** Receipts now settled: by `tx`, or (tx null) found already used on-chain after a lost answer or a restart. */
  settled: { payer: Address; nonce: bigint; amount: bigint; tx: Hex | null }[];
  /** Receipts a lenient batch skipped for a reason that cannot pass; they are never sent again. */
  skipped: { payer: Address; nonce: bigint; reason: SkipReason | "Unknown"; tx: Hex }[];
  /**
   * Receipts a lenient batch skipped for a reason that can pass (`TEMPORARY_SKIPS`: no holders
   * yet, ...): they stay pending and are sent again from `retryAt` (ms since the epoch) on.
   */
  deferred: { payer: Address; nonce: bigint; reason: SkipReason | "Unknown"; tx: Hex; retryAt: number }[];
  /**
   * Batches whose transaction failed (not sent, or reverted): their receipts stay pending and are
   * retried whole, by automatic settlement from `retryAt` on.
   */
  failed: { receipts: number; error: string; message: string; retryAt: number }[];
}

export interface Gateway {
  /** `http://host:port` the gateway answers on. */
  url: string;
  /**
   * Settles every receipt pending when called, deferred ones included, in batches of `batchSize`,
   * one transaction at a time (after any settlement already running). A failing batch stops the
   * run; it is retried later. (Automatic settlement sends only receipts whose backoff has passed.)
   */
  settleNow(): Promise<SettlementResult>;
  /** Receipts served and not yet settled or skipped, oldest first. */
  pending(): SignedUsageReceipt[];
  /**
   * Stops accepting requests, waits for the ones being served and any settlement running, and
   * closes the journal. Settles nothing itself: pending receipts stay in the journal and the next
   * `startGateway` on the same `dataDir` resumes them (call `settleNow` first to settle now).
   */
  close(): Promise<void>;
}

/** What `startGateway` checks of its options (the functions and the chain are trusted). */
export const zGatewayOptions = z.object({
  modelId: z
    .bigint()
    .positive()
    .lt(1n << 64n),
  currency: z.string().refine((v) => isAddress(v, { strict: false }), "must be an address"),
  pricePerUnit: z
    .bigint()
    .positive()
    .lt(1n << 128n),
  maxTokensPerRequest: z.number().int().positive().max(1_000_000),
  dataDir: z.string().min(1),
  listen: z.object({ host: z.string().min(1), port: z.number().int().min(0).max(65_535) }),
  batchSize: z.number().int().min(1).max(500),
  settleIntervalMs: z.number().int().min(100),
  settleMarginSec: z.number().int().min(0).optional(),
  maxDeadlineSec: z
    .number()
    .int()
    .min(60)
    .max(10 * 365 * 86_400)
    .optional(),
  maxPromptChars: z.number().int().positive().max(1_000_000).optional(),
  maxConcurrent: z.number().int().min(1).max(4096).optional(),
  retryAfterSec: z.number().int().min(1).max(3600).optional(),
});
