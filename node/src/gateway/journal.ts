import { mkdir, open, readFile, truncate, type FileHandle } from "node:fs/promises";
import { join } from "node:path";

import type { Address, Hex } from "viem";
import { skipReasons, type SignedUsageReceipt, type UsageReceipt } from "shard-protocol/sdk";
import { z } from "zod";

import { ReceiptJournalError } from "./errors.js";

/**
 * The gateway's record of the receipts it accepted, append-only: one JSON object per line in
 * `<dataDir>/receipts.jsonl`, each line written and fsync'd before the action it records is
 * acknowledged. A receipt moves from `accepted` (service delivered, not yet settled) to `settled`
 * (its nonce is used on-chain, by the transaction `tx` when known) or `skipped` (a lenient batch
 * skipped it, with the contract's reason; never retried). A line cut short by a crash is dropped
 * on open (it was never acknowledged).
 */

const zUintString = z.string().regex(/^\d{1,78}$/);
const zAddr = z.string().regex(/^0x[0-9a-fA-F]{40}$/);
const zHex = z.string().regex(/^0x([0-9a-fA-F]{2})*$/);

const zAccepted = z.object({
  t: z.literal("accepted"),
  receipt: z.object({
    modelId: zUintString,
    currency: zAddr,
    payer: zAddr,
    payee: zAddr,
    units: zUintString,
    pricePerUnit: zUintString,
    nonce: zUintString,
    deadline: zUintString,
  }),
  signature: zHex,
  tokens: z.number().int().min(0),
  at: z.number(),
});
const zSettled = z.object({
  t: z.literal("settled"),
  key: z.string(),
  tx: zHex.nullable(),
  amount: zUintString.nullable(),
  at: z.number(),
});
const zSkipped = z.object({
  t: z.literal("skipped"),
  key: z.string(),
  tx: zHex,
  reason: z.enum([...skipReasons, "Unknown"]),
  at: z.number(),
});
const zLine = z.discriminatedUnion("t", [zAccepted, zSettled, zSkipped]);
type Line = z.infer<typeof zLine>;

/** The journal's key of a receipt: payer (lower case) and nonce; unique on-chain. */
export const receiptKey = (payer: Address, nonce: bigint) => `${payer.toLowerCase()}:${nonce}`;

/** A receipt the gateway holds, with where it stands. */
export interface HeldReceipt extends SignedUsageReceipt {
  key: string;
  /** Characters generated for it. */
  tokens: number;
  /** What it draws from the payer's escrow: units × pricePerUnit. */
  amount: bigint;
  acceptedAt: number;
  state: "pending" | "settled" | "skipped";
  /** The settling (or skipping) transaction; null where the nonce was found used on-chain. */
  tx?: Hex | null | undefined;
  skipReason?: string | undefined;
}

export class ReceiptJournal {
  readonly path: string;
  readonly #held = new Map<string, HeldReceipt>();
  #file: FileHandle;
  /** Appends run one at a time, in order. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(path: string, file: FileHandle) {
    this.path = path;
    this.#file = file;
  }

  /** Opens (or creates) `<dir>/receipts.jsonl` and replays it. */
  static async open(dir: string): Promise<ReceiptJournal> {
    const path = join(dir, "receipts.jsonl");
    let text = "";
    try {
      await mkdir(dir, { recursive: true });
      text = await readFile(path, "utf8").catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return "";
        throw e;
      });
      // A line without its newline was cut short by a crash before it was acknowledged: drop it.
      const end = text.lastIndexOf("\n") + 1;
      if (end < text.length) {
        await truncate(path, Buffer.byteLength(text.slice(0, end)));
        text = text.slice(0, end);
      }
    } catch (cause) {
      throw new ReceiptJournalError(path, "Cannot read the receipt journal.", {
        cause,
        details: cause instanceof Error ? cause.message : undefined,
      });
    }
    let file: FileHandle;
    try {
      file = await open(path, "a");
      await syncDir(dir);
    } catch (cause) {
      throw new ReceiptJournalError(path, "Cannot open the receipt journal for writing.", { cause });
    }
    const journal = new ReceiptJournal(path, file);
    const lines = text.split("\n").slice(0, -1);
    for (const [i, raw] of lines.entries()) {
      let line: Line;
      try {
        line = zLine.parse(JSON.parse(raw));
      } catch (cause) {
        await file.close();
        throw new ReceiptJournalError(path, `Line ${i + 1} of the receipt journal is corrupt.`, {
          cause,
          details: "the file was edited or damaged; restore it from a backup (its receipts are revenue)",
        });
      }
      journal.#apply(line);
    }
    return journal;
  }

  /** Whether the journal holds this payer's nonce, in any state. */
  has(key: string): boolean {
    return this.#held.has(key);
  }

  get(key: string): HeldReceipt | undefined {
    return this.#held.get(key);
  }

  /** Receipts not yet settled or skipped, oldest first. */
  pending(): HeldReceipt[] {
    return [...this.#held.values()].filter((r) => r.state === "pending");
  }

  /** Every receipt held, oldest first. */
  all(): HeldReceipt[] {
    return [...this.#held.values()];
  }

  /** Records an accepted receipt (durably, before the response is sent). */
  async accept(signed: SignedUsageReceipt, tokens: number): Promise<HeldReceipt> {
    const r = signed.receipt;
    await this.#append({
      t: "accepted",
      receipt: {
        modelId: String(r.modelId),
        currency: r.currency,
        payer: r.payer,
        payee: r.payee,
        units: String(r.units),
        pricePerUnit: String(r.pricePerUnit),
        nonce: String(r.nonce),
        deadline: String(r.deadline),
      },
      signature: signed.signature,
      tokens,
      at: Date.now(),
    });
    return this.#held.get(receiptKey(r.payer, r.nonce))!;
  }

  /** Records a receipt as settled by `tx` (null: found used on-chain, transaction unknown). */
  async settled(key: string, tx: Hex | null, amount: bigint | null): Promise<void> {
    await this.#append({ t: "settled", key, tx, amount: amount === null ? null : String(amount), at: Date.now() });
  }

  /** Records a receipt as skipped by a lenient batch: it is never sent again. */
  async skipped(key: string, tx: Hex, reason: (typeof skipReasons)[number] | "Unknown"): Promise<void> {
    await this.#append({ t: "skipped", key, tx, reason, at: Date.now() });
  }

  async close(): Promise<void> {
    await this.#tail.catch(() => undefined);
    await this.#file.close();
  }

  #append(line: Line): Promise<void> {
    const run = this.#tail.then(async () => {
      try {
        await this.#file.appendFile(`${JSON.stringify(line)}\n`);
        await this.#file.datasync();
      } catch (cause) {
        throw new ReceiptJournalError(this.path, "Cannot write the receipt journal.", {
          cause,
          details: cause instanceof Error ? cause.message : undefined,
          retryable: true,
        });
      }
      this.#apply(line);
    });
    this.#tail = run.catch(() => undefined);
    return run;
  }

  #apply(line: Line): void {
    if (line.t === "accepted") {
      const r = line.receipt;
      const receipt: UsageReceipt = {
        modelId: BigInt(r.modelId),
        currency: r.currency as Address,
        payer: r.payer as Address,
        payee: r.payee as Address,
        units: BigInt(r.units),
        pricePerUnit: BigInt(r.pricePerUnit),
        nonce: BigInt(r.nonce),
        deadline: BigInt(r.deadline),
      };
      const key = receiptKey(receipt.payer, receipt.nonce);
      this.#held.set(key, {
        key,
        receipt,
        signature: line.signature as Hex,
        tokens: line.tokens,
        amount: receipt.units * receipt.pricePerUnit,
        acceptedAt: line.at,
        state: "pending",
      });
      return;
    }
    const held = this.#held.get(line.key);
    if (held === undefined) return;
    held.state = line.t;
    held.tx = line.tx as Hex | null;
    if (line.t === "skipped") held.skipReason = line.reason;
  }
}

/** Makes a new file's directory entry durable (no-op where directories cannot be fsync'd). */
async function syncDir(dir: string) {
  if (process.platform === "win32") return;
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
