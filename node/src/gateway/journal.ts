import { appendFile, mkdir, open, readFile, truncate, writeFile, type FileHandle } from "node:fs/promises";
import { join } from "node:path";

import type { Address, Hex } from "viem";
import { skipReasons, type SignedUsageReceipt, type SkipReason, type UsageReceipt } from "shard-protocol/sdk";
import { z } from "zod";

import { ReceiptJournalError } from "./errors.js";

/**
 * The gateway's record of the receipts it accepted, append-only: one JSON object per line in
 * `<dataDir>/receipts.jsonl`, each line written and fsync'd before the action it records is
 * acknowledged. A receipt moves from `accepted` (service delivered, not yet settled) to `settled`
 * (its nonce is used on-chain, by the transaction `tx` when known) or `skipped` (a lenient batch
 * skipped it for a reason that cannot pass: expired, nonce used, bad signature, ...; never
 * retried). A receipt skipped for a reason that can pass (`TEMPORARY_SKIPS`: the model has no
 * holders yet, its distribution reverted, the payer's escrow ran short) is `deferred`: it stays
 * pending and is sent again from `retryAt` on, until the contract reports it expired.
 * A `skipped` line with a temporary reason, written by an older gateway, is read as deferred.
 *
 * A line cut short by a crash (the file's last bytes, with no newline) was never acknowledged:
 * on open it is moved to `receipts.jsonl.torn-<time>` and reported, never silently cut away.
 * A line that is complete but unreadable anywhere in the file stops the open with
 * `ReceiptJournalError`: acknowledged receipts are never rewritten away.
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
const zDeferred = z.object({
  t: z.literal("deferred"),
  key: z.string(),
  tx: zHex,
  reason: z.enum([...skipReasons, "Unknown"]),
  retryAt: z.number(),
  at: z.number(),
});
const zLine = z.discriminatedUnion("t", [zAccepted, zSettled, zSkipped, zDeferred]);
type Line = z.infer<typeof zLine>;

/** Skip reasons that can pass: the receipt is kept and sent again (with backoff) until it expires. */
export const TEMPORARY_SKIPS: ReadonlySet<string> = new Set<SkipReason>([
  "NoHolders",
  "DistributeFailed",
  "InsufficientEscrow",
]);

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
  /** Times a batch deferred it (a temporary skip reason). */
  deferrals: number;
  /** Not sent by automatic settlement before this time (ms since the epoch; 0: at once). */
  retryAt: number;
  /** Why it was last deferred. */
  deferReason?: string | undefined;
}

/** What `open` found at the end of the journal: a line cut short by a crash, kept aside. */
export interface TornTail {
  /** Bytes of the cut line. */
  bytes: number;
  /** Where they were saved. */
  savedTo: string;
  /** The payer:nonce key the fragment names, where it got that far (it was never acknowledged). */
  key?: string | undefined;
}

export class ReceiptJournal {
  readonly path: string;
  readonly #held = new Map<string, HeldReceipt>();
  #file: FileHandle;
  /** Bytes of complete, synced lines: a failed append is cut back to this. */
  #size = 0;
  /** Set when a failed append could not be cut back: no more appends until a restart. */
  #broken: unknown;
  /** Appends run one at a time, in order. */
  #tail: Promise<unknown> = Promise.resolve();

  private constructor(path: string, file: FileHandle) {
    this.path = path;
    this.#file = file;
  }

  /** What `open` found cut short at the end of the file and set aside (undefined: nothing). */
  torn: TornTail | undefined;

  /**
   * Opens (or creates) `<dir>/receipts.jsonl` and replays it. Every complete line is kept; a cut
   * last line is set aside (see the class comment and `torn`); an unreadable complete line throws
   * `ReceiptJournalError` and leaves the file as it was.
   */
  static async open(dir: string): Promise<ReceiptJournal> {
    const path = join(dir, "receipts.jsonl");
    let bytes: Buffer;
    try {
      await mkdir(dir, { recursive: true });
      bytes = await readFile(path).catch((e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") return Buffer.alloc(0);
        throw e;
      });
    } catch (cause) {
      throw new ReceiptJournalError(path, "Cannot read the receipt journal.", {
        cause,
        details: cause instanceof Error ? cause.message : undefined,
      });
    }
    // Complete lines end with a newline; whatever follows the last one is a line cut short.
    const end = bytes.lastIndexOf(0x0a) + 1;
    const lines: Line[] = [];
    let offset = 0;
    for (const [i, raw] of bytes.subarray(0, end).toString("utf8").split("\n").slice(0, -1).entries()) {
      const line = parseLine(raw);
      if (line === undefined) {
        throw new ReceiptJournalError(path, `Line ${i + 1} of the receipt journal is corrupt.`, {
          details: `at byte ${offset}: the file was edited or damaged; it was left as it is. Restore it from a backup (its receipts are revenue), or move the damaged line out by hand`,
        });
      }
      lines.push(line);
      offset += Buffer.byteLength(raw) + 1;
    }
    let torn: TornTail | undefined;
    const tail = bytes.subarray(end);
    try {
      if (tail.length > 0) {
        const whole = parseLine(tail.toString("utf8"));
        if (whole !== undefined) {
          // Written whole, only its newline is missing: keep it.
          await appendFile(path, "\n");
          lines.push(whole);
        } else {
          // Never acknowledged (a line is acknowledged after its newline is synced), but kept aside.
          const savedTo = `${path}.torn-${Date.now()}`;
          await writeFile(savedTo, tail, { flush: true });
          await truncate(path, end);
          const text = tail.toString("utf8");
          const payer = /"payer":"(0x[0-9a-fA-F]{40})"/.exec(text)?.[1];
          const nonce = /"nonce":"(\d{1,78})"/.exec(text)?.[1];
          torn = {
            bytes: tail.length,
            savedTo,
            key: payer !== undefined && nonce !== undefined ? receiptKey(payer as Address, BigInt(nonce)) : undefined,
          };
        }
      }
    } catch (cause) {
      throw new ReceiptJournalError(path, "Cannot set aside the receipt journal's cut last line.", {
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
    journal.torn = torn;
    try {
      journal.#size = (await file.stat()).size;
    } catch (cause) {
      await file.close();
      throw new ReceiptJournalError(path, "Cannot read the receipt journal's size.", { cause });
    }
    for (const line of lines) journal.#apply(line);
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

  /** Pending receipts automatic settlement may send at `now` (not deferred past it), oldest first. */
  due(now: number): HeldReceipt[] {
    return this.pending().filter((r) => r.retryAt <= now);
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

  /**
   * Records a receipt as skipped for a reason that can pass (`TEMPORARY_SKIPS`): it stays pending,
   * and automatic settlement sends it again from `retryAt` on.
   */
  async deferred(key: string, tx: Hex, reason: SkipReason | "Unknown", retryAt: number): Promise<void> {
    await this.#append({ t: "deferred", key, tx, reason, retryAt, at: Date.now() });
  }

  async close(): Promise<void> {
    await this.#tail.catch(() => undefined);
    await this.#file.close();
  }

  #append(line: Line): Promise<void> {
    const run = this.#tail.then(async () => {
      if (this.#broken !== undefined) {
        throw new ReceiptJournalError(this.path, "The receipt journal is unusable after a failed write.", {
          cause: this.#broken,
          details: "restart the gateway: the journal is replayed and every acknowledged receipt kept",
        });
      }
      const text = `${JSON.stringify(line)}\n`;
      try {
        await this.#file.appendFile(text);
        await this.#file.datasync();
      } catch (cause) {
        // A line written in part (disk full) or not synced is cut back off, so that the next line
        // does not glue onto it and the request answered "nothing charged" leaves no receipt behind.
        await this.#file.truncate(this.#size).catch((error: unknown) => (this.#broken = error));
        throw new ReceiptJournalError(this.path, "Cannot write the receipt journal.", {
          cause,
          details: cause instanceof Error ? cause.message : undefined,
          retryable: true,
        });
      }
      this.#size += Buffer.byteLength(text);
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
        deferrals: 0,
        retryAt: 0,
      });
      return;
    }
    const held = this.#held.get(line.key);
    if (held === undefined) return;
    if (line.t === "deferred" || (line.t === "skipped" && TEMPORARY_SKIPS.has(line.reason))) {
      held.deferrals++;
      held.retryAt = line.t === "deferred" ? line.retryAt : 0;
      held.deferReason = line.reason;
      held.tx = line.tx as Hex;
      return;
    }
    held.state = line.t;
    held.tx = line.tx as Hex | null;
    if (line.t === "skipped") held.skipReason = line.reason;
  }
}

/** A complete line of the journal, or undefined where it is not one. */
function parseLine(raw: string): Line | undefined {
  try {
    return zLine.parse(JSON.parse(raw));
  } catch {
    return undefined;
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
