/**
 * The gateway's settler: sends the receipts the journal holds to `settleReceipts` in batches of
 * `batchSize`, lenient, one batch at a time, journaling each outcome. A receipt skipped for a
 * reason that can pass is deferred with backoff; a batch whose transaction failed backs off whole
 * (in memory), and its nonces are checked on-chain before any resend, since it may have been mined.
 */
import type { Address } from "viem";
import { settleReceipts } from "shard-protocol/sdk";

import { type HeldReceipt, type ReceiptJournal, receiptKey, TEMPORARY_SKIPS } from "./journal.js";
import type { GatewayEvent, GatewayOptions, SettlementResult } from "./types.js";

const DAY_MS = 86_400_000;

export interface SettlerParameters {
  opts: GatewayOptions;
  journal: ReceiptJournal;
  /** Whether a payer's nonce with this gateway is used on-chain. */
  nonceUsed: (payer: Address, nonce: bigint) => Promise<boolean>;
  emit: (event: GatewayEvent) => void;
  /** Whether the gateway is closed (automatic settlement then starts nothing). */
  closed: () => boolean;
}

export class Settler {
  readonly #o: GatewayOptions;
  readonly #journal: ReceiptJournal;
  readonly #nonceUsed: SettlerParameters["nonceUsed"];
  readonly #emit: SettlerParameters["emit"];
  readonly #closed: SettlerParameters["closed"];
  /** Pending receipts a failed settlement may have sent: their nonces are checked before a resend. */
  readonly #attempted = new Set<string>();
  /** Receipts of a batch whose transaction failed: failures in a row and when to try again (not journaled). */
  readonly #failures = new Map<string, { count: number; retryAt: number }>();
  #settling: Promise<unknown> = Promise.resolve();
  #autoBusy = false;

  constructor(parameters: SettlerParameters) {
    this.#o = parameters.opts;
    this.#journal = parameters.journal;
    this.#nonceUsed = parameters.nonceUsed;
    this.#emit = parameters.emit;
    this.#closed = parameters.closed;
  }

  /** Resolves once the settlement running (if any) and those queued behind it are over. */
  idle(): Promise<unknown> {
    return this.#settling;
  }

  /** Settles after the settlement running, if any: the due receipts only, or every pending one. */
  queue(dueOnly: boolean): Promise<SettlementResult> {
    const run = this.#settling.then(() => this.#settle(dueOnly));
    this.#settling = run.catch(() => undefined);
    return run;
  }

  /** Receipts automatic settlement may send now: not deferred, nor held back after a failed batch, past now. */
  due(): HeldReceipt[] {
    const now = Date.now();
    return this.#journal.due(now).filter((r) => (this.#failures.get(r.key)?.retryAt ?? 0) <= now);
  }

  /**
   * When to send a receipt again after its `attempt`-th failure or deferral in a row: the settle
   * interval doubled each time (at most a day), but early enough to land before its deadline.
   */
  #retryAt(r: HeldReceipt, attempt: number): number {
    const base = this.#o.settleIntervalMs;
    const delay = Math.min(base * 2 ** Math.min(attempt - 1, 30), Math.max(base, DAY_MS));
    const now = Date.now();
    // The last try goes out a minute (or an interval, if longer) before the deadline, to be mined in time.
    const lastChance = Number(r.receipt.deadline) * 1000 - Math.max(base, 60_000);
    return Math.max(now + Math.min(base, delay), Math.min(now + delay, lastChance));
  }

  /** Starts a settlement in the background, unless one started this way is still running. */
  autoSettle(full: boolean): void {
    if (this.#closed() || this.#autoBusy) return;
    const due = this.due().length;
    if (due === 0 || (full && due < this.#o.batchSize)) return;
    this.#autoBusy = true;
    const keys = this.due();
    let failed = false;
    this.queue(true)
      .catch((error) => {
        // A run that broke off (the chain unreadable, the journal unwritable) backs off like a
        // failed batch: its receipts wait before the next try, which never starts at once.
        failed = true;
        let retryAt = Number.MAX_SAFE_INTEGER;
        for (const r of keys) {
          const count = (this.#failures.get(r.key)?.count ?? 0) + 1;
          const at = this.#retryAt(r, count);
          this.#failures.set(r.key, { count, retryAt: at });
          retryAt = Math.min(retryAt, at);
        }
        this.#emit({
          type: "settle-failed",
          receipts: due,
          error: error instanceof Error ? error.name : "Error",
          message: error instanceof Error ? error.message.split("\n")[0]! : String(error),
          retryAt,
        });
      })
      .finally(() => {
        this.#autoBusy = false;
        if (!failed && this.due().length >= this.#o.batchSize) this.autoSettle(true);
      });
  }

  async #settle(dueOnly: boolean): Promise<SettlementResult> {
    const result: SettlementResult = { transactions: [], settled: [], skipped: [], deferred: [], failed: [] };
    const { client, account, deployment } = this.#o.chain;
    const keys = new Set((dueOnly ? this.due() : this.#journal.pending()).map((r) => r.key));
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
        if (batch.length === this.#o.batchSize) break;
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
}
