/**
 * The paying inference gateway: an HTTP front of a model's pipeline that serves a request only
 * against a valid EIP-712 usage receipt drawn on the payer's escrow, records the receipt durably
 * once the text is generated, and settles the receipts it holds on-chain in batches.
 *
 * Flow of `POST /v1/generate`: admit it if fewer than `maxConcurrent` requests are being served
 * (else 503 `GatewayBusy` with `Retry-After`) → check the receipt (model, currency, payee, units,
 * price, deadline, signature, nonce, escrow) → generate (with the receipt's EIP-712 digest, which
 * the pipeline's ticket binds) → on success only, append the receipt to the journal (fsync'd) →
 * answer. A failed generation answers an error and keeps nothing: the dApp pays
 * nothing. Receipts settle through the SDK's `settleReceipts` in lenient mode.
 *
 * The gateway is the receipts' payee: its settling account. A dApp deposits escrow with that payee
 * (the quote names it), receipts name it, and only it can settle them, so nobody else can draw on
 * an escrow the gateway counted on.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { getAddress, hashTypedData, isAddress, verifyTypedData, type Account, type Address, type Hex } from "viem";
import { getBlock } from "viem/actions";
import {
  GATEWAY_ROUTES,
  getEscrow,
  isReceiptNonceUsed,
  settleReceipts,
  settlementDomain,
  usageReceiptTypes,
  type AnyClient,
  type Deployment,
  type GatewayRefusal,
  type GenerateAnswer,
  type InferenceQuote,
  type SignedUsageReceipt,
  type SkipReason,
  zGenerateRequest,
} from "shard-protocol/sdk";
import { z } from "zod";

import {
  GatewayClosedError,
  GatewayListenError,
  GatewayOptionsError,
  GatewayRecoveryError,
  GatewayRequestError,
  ReceiptJournalError,
  refuse,
} from "./errors.js";
import { readJson, sendJson } from "./http.js";
import { ReceiptJournal, receiptKey, TEMPORARY_SKIPS, type HeldReceipt } from "./journal.js";

export * from "./errors.js";
export { receiptKey, TEMPORARY_SKIPS, type HeldReceipt, type TornTail } from "./journal.js";

/* TYPES */

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
   * Checks a prompt before anything else (no chain read, no reservation): throws where the model
   * cannot read it (for example serve's `encodePrompt`, refusing characters outside the vocabulary);
   * the request is then refused 400 `InvalidPrompt` with the error's message.
   */
  checkPrompt?: ((prompt: string) => void) | undefined;
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

/* OPTIONS AND REQUESTS */

const zOptions = z.object({
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
  maxPromptChars: z.number().int().positive().max(1_000_000).optional(),
  maxConcurrent: z.number().int().min(1).max(4096).optional(),
  retryAfterSec: z.number().int().min(1).max(3600).optional(),
});

const GENERATE_ERROR_NAME = /^[A-Z][A-Za-z0-9]{0,63}$/;
/** Highest body a request may send: the prompt (4 bytes a character at most) and the receipt. */
const bodyLimit = (maxPromptChars: number) => maxPromptChars * 4 + 16 * 1024;
const DAY_MS = 86_400_000;
/** Parallel on-chain reads when recovering a journal. */
const READ_CONCURRENCY = 32;

/* GATEWAY */

/**
 * Starts the gateway: replays the journal in `dataDir` (receipts whose nonce is already used
 * on-chain are marked settled, the others stay pending), listens on `listen`, and settles
 * pending receipts when `batchSize` are pending and every `settleIntervalMs`.
 *
 * Routes: `GET /v1/quote` → `{ chainId, settlement, modelId, currency, payee, pricePerUnit,
 * maxTokensPerRequest, unit: "generated character" }` (`payee`: the settling account, which the
 * payer's escrow and receipts must name); `POST /v1/generate` `{ prompt, maxTokens,
 * temperature?, seed?, receipt, signature }` → `{ text, tokens, charged: { units, amount }, nonce }`
 * (integers over 2^53 as decimal strings). Refusals answer `{ error, message }` with the status
 * of `GatewayErrorStatus`.
 *
 * Settlement is lenient: a batch with a bad receipt settles the rest, and each skipped receipt is
 * recorded with its `ReceiptSkipped` reason. One skipped for a reason that can pass (the model has
 * no holders yet, ...) is kept and sent again with backoff until it expires; the others are never
 * retried. A batch whose transaction fails (RPC trouble) is retried whole, with backoff. A receipt is charged for its full `units` (= the `maxTokens` asked), since
 * a receipt settles whole.
 *
 * @example
 * const gateway = await startGateway({ modelId: 1n, currency: usdc, pricePerUnit: 10n,
 *   maxTokensPerRequest: 256, chain: { client, account, deployment }, dataDir: "./gateway",
 *   listen: { host: "127.0.0.1", port: 8545 }, batchSize: 50, settleIntervalMs: 60_000,
 *   generate: (req) => pipeline.generate(req) })
 */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const parsed = zOptions.safeParse(opts);
  if (!parsed.success) {
    throw new GatewayOptionsError(
      parsed.error.issues.map((i) => ({ path: i.path.map(String).join("."), message: i.message })),
    );
  }
  const journal = await ReceiptJournal.open(opts.dataDir);
  const gateway = new GatewayServer(opts, journal);
  try {
    await gateway.recover();
    await gateway.listen();
  } catch (error) {
    await gateway.close();
    throw error;
  }
  return gateway;
}

class GatewayServer implements Gateway {
  url = "";
  readonly #opts: GatewayOptions;
  readonly #journal: ReceiptJournal;
  readonly #server: Server;
  readonly #currency: Address;
  /** The settling account: every receipt's payee, and whose escrow with the payer is read. */
  readonly #payee: Address;
  readonly #marginSec: bigint;
  readonly #maxPromptChars: number;
  /** Receipts being checked or generated for: their nonces are taken and their amounts drawn. */
  readonly #inFlight = new Map<string, { payer: Address; amount: bigint }>();
  /** Pending receipts a failed settlement may have sent: their nonces are checked before a resend. */
  readonly #attempted = new Set<string>();
  #settling: Promise<unknown> = Promise.resolve();
  /** Requests being handled (close waits for them). */
  readonly #handling = new Set<Promise<void>>();
  /** Generate requests admitted and not yet answered (at most `maxConcurrent`). */
  #admitted = 0;
  #autoBusy = false;
  /** Receipts of a batch whose transaction failed: failures in a row and when to try again (not journaled). */
  readonly #failures = new Map<string, { count: number; retryAt: number }>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: GatewayOptions, journal: ReceiptJournal) {
    this.#opts = opts;
    this.#journal = journal;
    this.#currency = getAddress(opts.currency);
    this.#payee = getAddress(opts.chain.account.address);
    this.#marginSec = BigInt(opts.settleMarginSec ?? Math.ceil((2 * opts.settleIntervalMs) / 1000) + 300);
    this.#maxPromptChars = opts.maxPromptChars ?? 16_384;
    this.#server = createServer((req, res) => {
      // #handle answers every error itself; should answering fail too, the connection is dropped.
      const handling = this.#handle(req, res).catch(() => void res.destroy());
      this.#handling.add(handling);
      void handling.finally(() => this.#handling.delete(handling));
    });
    this.#server.headersTimeout = 30_000;
    this.#server.requestTimeout = 10 * 60_000;
  }

  /** Pending receipts whose nonce is used on-chain were settled (before a crash): mark them so. */
  async recover(): Promise<void> {
    const torn = this.#journal.torn;
    if (torn !== undefined) this.#emit({ type: "journal-torn", ...torn });
    const pending = this.#journal.pending();
    let settledOnChain = 0;
    for (let i = 0; i < pending.length; i += READ_CONCURRENCY) {
      const slice = pending.slice(i, i + READ_CONCURRENCY);
      let used: boolean[];
      try {
        used = await Promise.all(slice.map((r) => this.#nonceUsed(r.receipt.payer, r.receipt.nonce)));
      } catch (error) {
        throw new GatewayRecoveryError(error);
      }
      for (const [j, r] of slice.entries()) {
        if (!used[j]) continue;
        await this.#journal.settled(r.key, null, null);
        settledOnChain++;
      }
    }
    this.#emit({ type: "recovered", pending: pending.length - settledOnChain, settledOnChain });
  }

  async listen(): Promise<void> {
    const { host, port } = this.#opts.listen;
    await new Promise<void>((resolve, reject) => {
      const onError = (error: unknown) => reject(new GatewayListenError(host, port, error));
      this.#server.once("error", onError);
      this.#server.listen(port, host, () => {
        this.#server.off("error", onError);
        resolve();
      });
    });
    const address = this.#server.address() as AddressInfo;
    const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
    this.url = `http://${shown}:${address.port}`;
    this.#timer = setInterval(() => this.#autoSettle(false), this.#opts.settleIntervalMs);
    this.#timer.unref();
    this.#emit({ type: "listening", url: this.url });
  }

  pending(): SignedUsageReceipt[] {
    return this.#journal.pending().map(({ receipt, signature }) => ({ receipt: { ...receipt }, signature }));
  }

  settleNow(): Promise<SettlementResult> {
    if (this.#closed) {
      return Promise.reject(new GatewayClosedError("settle"));
    }
    return this.#settleQueued(false);
  }

  #settleQueued(dueOnly: boolean): Promise<SettlementResult> {
    const run = this.#settling.then(() => this.#settle(dueOnly));
    this.#settling = run.catch(() => undefined);
    return run;
  }

  /** Receipts automatic settlement may send now: not deferred, nor held back after a failed batch, past now. */
  #due(): HeldReceipt[] {
    const now = Date.now();
    return this.#journal.due(now).filter((r) => (this.#failures.get(r.key)?.retryAt ?? 0) <= now);
  }

  /**
   * When to send a receipt again after its `attempt`-th failure or deferral in a row: the settle
   * interval doubled each time (at most a day), but early enough to land before its deadline.
   */
  #retryAt(r: HeldReceipt, attempt: number): number {
    const base = this.#opts.settleIntervalMs;
    const delay = Math.min(base * 2 ** Math.min(attempt - 1, 30), Math.max(base, DAY_MS));
    const now = Date.now();
    const lastChance = Number(r.receipt.deadline) * 1000 - base;
    return Math.max(now + Math.min(base, delay), Math.min(now + delay, lastChance));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    if (this.#server.listening) {
      const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      this.#server.closeIdleConnections();
      // Requests being served finish (and are answered); then no connection has anything left to say.
      await Promise.all(this.#handling);
      this.#server.closeAllConnections();
      await closed;
    }
    await this.#settling;
    await this.#journal.close();
  }

  /* HTTP */

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      const path = new URL(req.url ?? "/", "http://gateway").pathname;
      if (path === GATEWAY_ROUTES.quote) {
        if (req.method !== "GET") throw refuse("MethodNotAllowed", `Use GET for ${GATEWAY_ROUTES.quote}.`);
        sendJson(res, 200, this.#quote());
      } else if (path === GATEWAY_ROUTES.generate) {
        if (req.method !== "POST") throw refuse("MethodNotAllowed", `Use POST for ${GATEWAY_ROUTES.generate}.`);
        const body = await readJson(req, bodyLimit(this.#maxPromptChars));
        sendJson(res, 200, await this.#generate(body, () => res.destroyed || req.socket.destroyed));
      } else {
        throw refuse("NotFound", `No route ${path}.`);
      }
    } catch (error) {
      const e =
        error instanceof GatewayRequestError
          ? error
          : refuse("InternalError", "The gateway failed to serve the request.", { cause: error });
      this.#emit({ type: "refused", error: e.error, status: e.status, message: e.shortMessage });
      // No one is listening: drop the half-closed connection at once.
      if (e.error === "ClientGone") {
        req.socket.destroy();
        return;
      }
      // The rest of an oversized body is not read: close the connection rather than drain it.
      if (e.error === "BodyTooLarge") res.setHeader("connection", "close");
      if (e.status === 503 && !res.headersSent) res.setHeader("retry-after", String(this.#opts.retryAfterSec ?? 1));
      if (!res.headersSent) {
        const refusal: GatewayRefusal = {
          error: e.error,
          message: e.shortMessage,
          ...(e.details ? { details: e.details } : {}),
          ...(e.retryable ? { retryable: true } : {}),
        };
        sendJson(res, e.status, refusal);
      }
    }
  }

  #quote(): InferenceQuote {
    const { deployment } = this.#opts.chain;
    return {
      chainId: deployment.chainId,
      settlement: deployment.contracts.settlement,
      modelId: this.#opts.modelId,
      currency: this.#currency,
      payee: this.#payee,
      pricePerUnit: this.#opts.pricePerUnit,
      maxTokensPerRequest: this.#opts.maxTokensPerRequest,
      unit: "generated character",
    };
  }

  /**
   * Admits one request if fewer than `maxConcurrent` are being served (the pipeline takes no more
   * at once), else refuses it with `GatewayBusy` (503, `Retry-After`) before reading anything else.
   */
  async #generate(body: unknown, gone: () => boolean) {
    const max = this.#opts.maxConcurrent ?? DEFAULT_GATEWAY_MAX_CONCURRENT;
    if (this.#admitted >= max) {
      throw refuse("GatewayBusy", `The pipeline is serving ${this.#admitted} requests, all it can carry.`, {
        details: `retry after ${this.#opts.retryAfterSec ?? 1} s; nothing was charged`,
        retryable: true,
      });
    }
    this.#admitted++;
    try {
      return await this.#serve(body, gone);
    } finally {
      this.#admitted--;
    }
  }

  /** Serves one paid request; `gone()` says whether the dApp hung up (then nothing is charged). */
  async #serve(body: unknown, gone: () => boolean): Promise<GenerateAnswer> {
    const parsed = zGenerateRequest(this.#maxPromptChars).safeParse(body);
    if (!parsed.success) {
      throw refuse("InvalidRequest", "The request is not valid.", {
        details: parsed.error.issues.map((i) => `${i.path.map(String).join(".") || "(body)"}: ${i.message}`).join("; "),
      });
    }
    const request = parsed.data;
    try {
      this.#opts.checkPrompt?.(request.prompt);
    } catch (error) {
      const e = error as { shortMessage?: unknown; message?: unknown; details?: unknown } | undefined;
      const message = typeof e?.shortMessage === "string" ? e.shortMessage : String(e?.message ?? error);
      throw refuse("InvalidPrompt", message, {
        details: `${typeof e?.details === "string" ? `${e.details}; ` : ""}nothing was charged`,
      });
    }
    const signed: SignedUsageReceipt = { receipt: request.receipt, signature: request.signature };
    const key = await this.#checkOffChain(request.maxTokens, signed);
    const { receipt } = signed;
    const amount = receipt.units * receipt.pricePerUnit;

    // Reserve the nonce and the amount first, so concurrent requests see each other.
    if (this.#journal.has(key) || this.#inFlight.has(key)) {
      throw refuse("NonceAlreadyUsed", `The payer's nonce ${receipt.nonce} is already held by this gateway.`);
    }
    this.#inFlight.set(key, { payer: receipt.payer, amount });
    try {
      await this.#checkOnChain(key, signed, amount);
      const result = await this.#runGenerate(request, this.#digest(receipt));
      // The answer cannot reach a dApp that hung up: charge nothing rather than for text never received.
      if (gone()) throw refuse("ClientGone", "The dApp closed the connection before the answer; nothing was charged.");
      try {
        await this.#journal.accept(signed, result.tokens);
      } catch (error) {
        throw refuse("JournalUnavailable", "The gateway could not record the receipt; nothing was charged.", {
          cause: error,
          details: error instanceof ReceiptJournalError ? error.details : undefined,
          retryable: true,
        });
      }
      this.#emit({
        type: "served",
        payer: receipt.payer,
        nonce: receipt.nonce,
        tokens: result.tokens,
        units: receipt.units,
        amount,
      });
      return {
        text: result.text,
        tokens: result.tokens,
        charged: { units: receipt.units, amount },
        nonce: receipt.nonce,
      };
    } finally {
      this.#inFlight.delete(key);
      if (this.#journal.pending().length >= this.#opts.batchSize) this.#autoSettle(true);
    }
  }

  /** The checks that need no chain: terms of the quote and the payer's signature. */
  async #checkOffChain(maxTokens: number, { receipt, signature }: SignedUsageReceipt): Promise<string> {
    const o = this.#opts;
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
    if (!(await this.#verify(receipt, signature))) {
      throw refuse("InvalidReceiptSignature", `The signature does not recover the payer ${receipt.payer}.`);
    }
    return receiptKey(receipt.payer, receipt.nonce);
  }

  /** Whether `signature` recovers the payer over the settlement contract's EIP-712 domain. */
  async #verify(receipt: SignedUsageReceipt["receipt"], signature: Hex): Promise<boolean> {
    const { deployment } = this.#opts.chain;
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

  /** The checks against the chain: deadline (chain time), nonce, escrow with this payee less pending draws. */
  async #checkOnChain(key: string, { receipt }: SignedUsageReceipt, amount: bigint): Promise<void> {
    const { client, deployment } = this.#opts.chain;
    // What the payer's other receipts already draw; taken before reading the escrow, so a
    // settlement landing in between is counted twice (safe) rather than not at all.
    let drawn = 0n;
    for (const r of this.#journal.pending()) if (r.receipt.payer === receipt.payer) drawn += r.amount;
    for (const [k, r] of this.#inFlight) if (k !== key && r.payer === receipt.payer) drawn += r.amount;

    let block: { timestamp: bigint };
    let used: boolean;
    let escrow: { balance: bigint; withdrawing: bigint; unlockAt: bigint };
    try {
      [block, used, escrow] = await Promise.all([
        getBlock(client),
        this.#nonceUsed(receipt.payer, receipt.nonce),
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
  #digest(receipt: SignedUsageReceipt["receipt"]): Hex {
    const { deployment } = this.#opts.chain;
    return hashTypedData({
      domain: settlementDomain(deployment.chainId, deployment.contracts.settlement),
      types: usageReceiptTypes,
      primaryType: "UsageReceipt",
      message: receipt,
    });
  }

  async #runGenerate(request: Omit<GenerateRequest, "receiptDigest">, receiptDigest: Hex): Promise<GenerateResult> {
    let result: GenerateResult;
    try {
      result = await this.#opts.generate({
        prompt: request.prompt,
        maxTokens: request.maxTokens,
        ...(request.temperature !== undefined ? { temperature: request.temperature } : {}),
        ...(request.seed !== undefined ? { seed: request.seed } : {}),
        receiptDigest,
      });
    } catch (error) {
      const name =
        error instanceof Error && GENERATE_ERROR_NAME.test(error.name) && error.name !== "Error"
          ? error.name
          : "GenerateFailed";
      const e = error as { shortMessage?: unknown; message?: unknown; retryable?: unknown } | undefined;
      const message = typeof e?.shortMessage === "string" ? e.shortMessage : String(e?.message ?? error);
      // A shard without a free slot (shard 0's own bound, or one answering busy): retry shortly.
      if (
        name === "InferenceBusyError" ||
        (name === "InferenceRemoteError" && (error as { code?: unknown }).code === "busy")
      )
        throw refuse("GatewayBusy", `The pipeline is busy: ${message.split("\n")[0]}`, {
          cause: error,
          details: "nothing was charged",
          retryable: true,
        });
      throw new GatewayRequestError(name, 502, `Generation failed: ${message.split("\n")[0]}`, {
        cause: error,
        details: "nothing was charged",
        retryable: e?.retryable === true,
      });
    }
    if (
      typeof result?.text !== "string" ||
      !Number.isInteger(result.tokens) ||
      result.tokens < 0 ||
      result.tokens > request.maxTokens
    ) {
      throw new GatewayRequestError("GenerateFailed", 502, "Generation returned a malformed result.", {
        details: `tokens must be an integer in [0, ${request.maxTokens}]; nothing was charged`,
      });
    }
    return result;
  }

  /** Nonces are per (payer, payee): this gateway is the payee of every receipt it holds. */
  async #nonceUsed(payer: Address, nonce: bigint): Promise<boolean> {
    const { client, deployment } = this.#opts.chain;
    return isReceiptNonceUsed(client, { deployment, payer, payee: this.#payee, nonce });
  }

  /* SETTLEMENT */

  /** Starts a settlement in the background, unless one started this way is still running. */
  #autoSettle(full: boolean): void {
    if (this.#closed || this.#autoBusy) return;
    const due = this.#due().length;
    if (due === 0 || (full && due < this.#opts.batchSize)) return;
    this.#autoBusy = true;
    this.#settleQueued(true)
      .catch((error) =>
        this.#emit({
          type: "settle-failed",
          receipts: due,
          error: error instanceof Error ? error.name : "Error",
          message: error instanceof Error ? error.message.split("\n")[0]! : String(error),
          retryAt: Date.now() + this.#opts.settleIntervalMs,
        }),
      )
      .finally(() => {
        this.#autoBusy = false;
        if (this.#due().length >= this.#opts.batchSize) this.#autoSettle(true);
      });
  }

  async #settle(dueOnly: boolean): Promise<SettlementResult> {
    const result: SettlementResult = { transactions: [], settled: [], skipped: [], deferred: [], failed: [] };
    const { client, account, deployment } = this.#opts.chain;
    const keys = new Set((dueOnly ? this.#due() : this.#journal.pending()).map((r) => r.key));
    for (;;) {
      const batch: HeldReceipt[] = [];
      for (const r of this.#journal.pending()) {
        if (!keys.has(r.key)) continue;
        keys.delete(r.key);
        // A batch that failed may still have been mined (its answer lost): never send its nonces again.
        if (this.#attempted.has(r.key) && (await this.#nonceUsed(r.receipt.payer, r.receipt.nonce))) {
          await this.#journal.settled(r.key, null, null);
          this.#attempted.delete(r.key);
          result.settled.push({ payer: r.receipt.payer, nonce: r.receipt.nonce, amount: r.amount, tx: null });
          continue;
        }
        batch.push(r);
        if (batch.length === this.#opts.batchSize) break;
      }
      if (batch.length === 0) return result;

      // Until each is journaled, a receipt of this batch may have been settled by it (an answer
      // lost, a journal write failing): its nonce is checked on-chain before any resend.
      for (const r of batch) this.#attempted.add(r.key);
      let sent: Awaited<ReturnType<typeof settleReceipts>>;
      try {
        sent = await settleReceipts(client, {
          deployment,
          account,
          receipts: batch.map(({ receipt, signature }) => ({ receipt, signature })),
          strict: false,
        });
      } catch (error) {
        // RPC trouble or a reverted batch: each receipt of it backs off (in memory; a restart retries at once).
        let retryAt = Number.MAX_SAFE_INTEGER;
        for (const r of batch) {
          const count = (this.#failures.get(r.key)?.count ?? 0) + 1;
          const at = this.#retryAt(r, count);
          this.#failures.set(r.key, { count, retryAt: at });
          retryAt = Math.min(retryAt, at);
        }
        const failure = {
          receipts: batch.length,
          error: error instanceof Error ? error.name : "Error",
          message:
            error instanceof Error
              ? ((error as { shortMessage?: string }).shortMessage ?? error.message)
              : String(error),
          retryAt,
        };
        result.failed.push(failure);
        this.#emit({ type: "settle-failed", ...failure });
        return result;
      }
      result.transactions.push(sent.hash);
      const deferredBefore = result.deferred.length;
      const byKey = new Map(batch.map((r) => [r.key, r]));
      for (const r of batch) this.#failures.delete(r.key);
      for (const s of sent.settled) {
        const key = receiptKey(s.payer, s.nonce);
        if (!byKey.delete(key)) continue;
        await this.#journal.settled(key, sent.hash, s.amount);
        this.#attempted.delete(key);
        result.settled.push({ payer: s.payer, nonce: s.nonce, amount: s.amount, tx: sent.hash });
      }
      for (const s of sent.skipped) {
        const key = receiptKey(s.payer, s.nonce);
        const r = byKey.get(key);
        if (r === undefined || !byKey.delete(key)) continue;
        this.#attempted.delete(key);
        if (TEMPORARY_SKIPS.has(s.reason)) {
          const retryAt = this.#retryAt(r, r.deferrals + 1);
          await this.#journal.deferred(key, sent.hash, s.reason, retryAt);
          result.deferred.push({ payer: s.payer, nonce: s.nonce, reason: s.reason, tx: sent.hash, retryAt });
          continue;
        }
        await this.#journal.skipped(key, sent.hash, s.reason);
        result.skipped.push({ payer: s.payer, nonce: s.nonce, reason: s.reason, tx: sent.hash });
      }
      const deferredNow = result.deferred.length - deferredBefore;
      // Neither settled nor skipped (should not happen): they stay attempted and pending.
      this.#emit({
        type: "settled",
        tx: sent.hash,
        settled: sent.settled.length,
        skipped: sent.skipped.length - deferredNow,
        deferred: deferredNow,
        amount: sent.total,
      });
    }
  }

  #emit(event: GatewayEvent): void {
    try {
      this.#opts.onEvent?.(event);
    } catch {
      // A listener's failure must not break serving or settling.
    }
  }
}
