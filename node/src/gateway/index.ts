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
 *
 * This file is the server (HTTP, admission, generation, lifecycle); `receipts.ts` is the
 * validator, `settler.ts` the settler, `journal.ts` the durable record, and the HTTP wire format
 * is the SDK's (`shard-protocol/sdk`'s `protocol.ts`), shared with the dApp's client.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

import { getAddress, type Address } from "viem";
import {
  GATEWAY_ROUTES,
  type GatewayRefusal,
  type GenerateAnswer,
  type InferenceQuote,
  type SignedUsageReceipt,
  zGenerateRequest,
} from "shard-protocol/sdk";

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
import { ReceiptJournal } from "./journal.js";
import { ReceiptChecks } from "./receipts.js";
import { Settler } from "./settler.js";
import { runGenerate } from "./generate.js";
import {
  DEFAULT_GATEWAY_MAX_CONCURRENT,
  type Gateway,
  type GatewayEvent,
  type GatewayOptions,
  type SettlementResult,
  zGatewayOptions,
} from "./types.js";

export * from "./errors.js";
export { receiptKey, TEMPORARY_SKIPS, type HeldReceipt, type TornTail } from "./journal.js";
export * from "./types.js";

/** Highest body a request may send: the prompt (4 bytes a character at most) and the receipt. */
const bodyLimit = (maxPromptChars: number) => maxPromptChars * 4 + 16 * 1024;
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
  const parsed = zGatewayOptions.safeParse(opts);
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
  readonly #checks: ReceiptChecks;
  readonly #settler: Settler;
  readonly #maxPromptChars: number;
  /** Receipts being checked or generated for: their nonces are taken and their amounts drawn. */
  readonly #inFlight = new Map<string, { payer: Address; amount: bigint }>();
  /** Requests being handled (close waits for them). */
  readonly #handling = new Set<Promise<void>>();
  /** Generate requests admitted and not yet answered (at most `maxConcurrent`). */
  #admitted = 0;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(opts: GatewayOptions, journal: ReceiptJournal) {
    this.#opts = opts;
    this.#journal = journal;
    this.#currency = getAddress(opts.currency);
    this.#payee = getAddress(opts.chain.account.address);
    const marginSec = BigInt(opts.settleMarginSec ?? Math.ceil((2 * opts.settleIntervalMs) / 1000) + 300);
    this.#checks = new ReceiptChecks(opts, { currency: this.#currency, payee: this.#payee, marginSec });
    this.#settler = new Settler({
      opts,
      journal,
      nonceUsed: (payer, nonce) => this.#checks.nonceUsed(payer, nonce),
      emit: (event) => this.#emit(event),
      closed: () => this.#closed,
    });
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
        used = await Promise.all(slice.map((r) => this.#checks.nonceUsed(r.receipt.payer, r.receipt.nonce)));
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
    this.#timer = setInterval(() => this.#settler.autoSettle(false), this.#opts.settleIntervalMs);
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
    return this.#settler.queue(false);
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
    await this.#settler.idle();
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
      await this.#opts.checkPrompt?.(request.prompt);
    } catch (error) {
      const e = error as { shortMessage?: unknown; message?: unknown; details?: unknown } | undefined;
      const message = typeof e?.shortMessage === "string" ? e.shortMessage : String(e?.message ?? error);
      throw refuse("InvalidPrompt", message, {
        details: `${typeof e?.details === "string" ? `${e.details}; ` : ""}nothing was charged`,
      });
    }
    const signed: SignedUsageReceipt = { receipt: request.receipt, signature: request.signature };
    const key = await this.#checks.offChain(request.maxTokens, signed);
    const { receipt } = signed;
    const amount = receipt.units * receipt.pricePerUnit;

    // Reserve the nonce and the amount first, so concurrent requests see each other.
    if (this.#journal.has(key) || this.#inFlight.has(key)) {
      throw refuse("NonceAlreadyUsed", `The payer's nonce ${receipt.nonce} is already held by this gateway.`);
    }
    this.#inFlight.set(key, { payer: receipt.payer, amount });
    try {
      // What the payer's other receipts already draw, counted before the escrow is read.
      let drawn = 0n;
      for (const r of this.#journal.pending()) if (r.receipt.payer === receipt.payer) drawn += r.amount;
      for (const [k, r] of this.#inFlight) if (k !== key && r.payer === receipt.payer) drawn += r.amount;
      await this.#checks.onChain(signed, amount, drawn);
      const result = await runGenerate(this.#opts.generate, request, this.#checks.digest(receipt));
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
      if (this.#journal.pending().length >= this.#opts.batchSize) this.#settler.autoSettle(true);
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
