import type { Address, Hash } from "viem";
import { percentOf } from "shard-protocol/sdk";
import { z } from "zod";

import { waitForConfirmations } from "../chain.js";
import { globalOptionsSchema } from "../config/schema.js";
import { NodeError } from "../errors.js";
import { UsageError } from "../exit.js";
import type { Output } from "../output.js";
import { parseOptions, readModel } from "./common.js";
import { count, formatPercent, openHolderSigner, parseAddress } from "./holder.js";

export const transferOptionsSchema = globalOptionsSchema.extend({
  to: z.string({ error: "is required" }),
  amount: z
    .string({ error: "is required" })
    .trim()
    .regex(/^([0-9]+|all)$/, "must be a whole number of shard tokens, such as 500, or all"),
});

export type TransferOptions = z.input<typeof transferOptionsSchema>;

export interface TransferResult {
  account: Address;
  to: Address;
  chainId: number;
  modelId: bigint;
  shard: number;
  tokenId: bigint;
  amount: bigint;
  hash: Hash;
  /** Balances and shares of the shard's supply after the transfer. */
  after: { account: bigint; to: bigint; supply: bigint; accountPercentage: number; toPercentage: number };
}

/** The account holds fewer tokens of the shard than it asked to transfer; nothing was sent. */
export class InsufficientShardsError extends NodeError {
  override name = "InsufficientShardsError";
}

/**
 * Moves shard tokens of (`--model`, `--shard`) from the account to `<to>` (`safeTransferFrom`),
 * after checking the balance. Both flags must be given on the command line, never taken from the
 * config, so a transfer always names the tokens it moves. Revenue earned before the transfer
 * stays claimable by the sender.
 *
 * @example
 * await transfer({ to: "0xA0b8…", amount: "500", model: "1", shard: "0" }, out)
 */
export async function transfer(options: TransferOptions, out: Output): Promise<TransferResult> {
  const {
    to: toText,
    amount: amountText,
    ...globals
  } = parseOptions("transfer", transferOptionsSchema, options, ["to", "amount"]);
  const to = parseAddress(toText, "<to>");
  const missing = (["model", "shard"] as const).filter((flag) => globals[flag] === undefined);
  if (missing.length > 0) {
    throw new UsageError(
      "Name the shard tokens to transfer.",
      missing.map((flag) => ({
        path: `--${flag}`,
        message: "is required on the command line (a transfer never takes it from the config)",
      })),
    );
  }
  if (amountText !== "all" && BigInt(amountText) === 0n) {
    throw new UsageError(`Invalid amount ${amountText}.`, [{ path: "<amount>", message: "must be more than 0" }]);
  }
  const { config, account, connection } = await openHolderSigner(globals);
  try {
    const { publicClient, walletClient } = connection;
    const modelId = config.modelId!;
    const shard = config.shard!;
    if (to === account.address) {
      throw new UsageError(`Invalid address ${toText}.`, [{ path: "<to>", message: "is the sending account itself" }]);
    }
    const model = await readModel(connection, modelId);
    if (shard >= model.shardCount) {
      throw new NodeError(`Model ${modelId} has ${model.shardCount} shards; there is no shard ${shard}.`);
    }
    // getRevenueShare reads every shard of the model for an account: balance and supply.
    const holdingOf = async (a: Address) =>
      (await publicClient.getRevenueShare({ account: a, modelId })).shards[shard]!;
    const { balance } = await holdingOf(account.address);
    const amount = amountText === "all" ? balance : BigInt(amountText);
    if (amount === 0n || amount > balance) {
      throw new InsufficientShardsError(
        `${account.address} holds ${count(balance, "token")} of model ${modelId} shard ${shard}; cannot transfer ${amountText === "all" ? "any" : amount}.`,
        { details: "nothing was sent; `shard-node holdings` lists what the account holds" },
      );
    }
    out.log(`transferring ${count(amount, "token")} of model ${modelId} shard ${shard} to ${to}…`);
    const { hash, id } = await walletClient.transferShards({ modelId, shard, to, amount });
    await waitForConfirmations(publicClient, hash, config.confirmations);
    const [mine, theirs] = await Promise.all([holdingOf(account.address), holdingOf(to)]);
    const after = {
      account: mine.balance,
      to: theirs.balance,
      supply: mine.supply,
      accountPercentage: percentOf(mine.balance, mine.supply),
      toPercentage: percentOf(theirs.balance, theirs.supply),
    };
    out.print(`transferred ${count(amount, "token")} of model ${modelId} shard ${shard} to ${to} (tx ${hash})`);
    out.print(`${account.address} now holds ${after.account} (${formatPercent(after.accountPercentage)})`);
    out.print(`${to} now holds ${after.to} (${formatPercent(after.toPercentage)})`);
    out.print("revenue earned before the transfer stays claimable by the sender (`shard-node claim`)");
    return {
      account: account.address,
      to,
      chainId: connection.chainId,
      modelId,
      shard,
      tokenId: id,
      amount,
      hash,
      after,
    };
  } finally {
    await connection.close();
  }
}
