import type { Address, Hash } from "viem";
import { z } from "zod";

import { waitForConfirmations } from "../chain.js";
import { globalOptionsSchema } from "../config/schema.js";
import type { Output } from "../output.js";
import {
  formatAmount,
  openSigner,
  parseAmount,
  parseOptions,
  readModel,
  tokenInfo,
  zAmountText,
  zRole,
  type TokenInfo,
} from "./common.js";

export const unstakeOptionsSchema = globalOptionsSchema
  .extend({
    /** Whole tokens to start unbonding: `50`, `0.5`. */
    amount: zAmountText.optional(),
    /** Withdraw the stake whose unbonding delay has passed, instead. */
    withdraw: z.boolean().default(false),
    role: zRole,
  })
  .refine((o) => (o.amount === undefined) !== !o.withdraw, {
    message: "give an amount to start unbonding, or --withdraw to withdraw unbonded stake (not both)",
  });

export type UnstakeOptions = z.input<typeof unstakeOptionsSchema>;

export interface UnstakeResult {
  account: Address;
  chainId: number;
  modelId: bigint;
  role: "trainer" | "verifier";
  token: TokenInfo;
  /** `request`: `amount` started unbonding until `readyAt`; `withdraw`: `amount` was paid out. */
  action: "request" | "withdraw";
  amount: bigint;
  hash: Hash;
  /** When the unbonding stake can be withdrawn (unix seconds), for a request. */
  readyAt: bigint | null;
  stake: { active: bigint; unbonding: bigint; unbondingReadyAt: bigint };
}

/**
 * `unstake <amount>` moves stake to unbonding (withdrawable after the model's unbonding delay);
 * `unstake --withdraw` pays out the unbonded stake.
 *
 * @example
 * await unstake({ amount: "50" }, out)
 * await unstake({ withdraw: true }, out)
 */
export async function unstake(options: UnstakeOptions, out: Output): Promise<UnstakeResult> {
  const {
    amount: text,
    withdraw,
    role,
    ...globals
  } = parseOptions("unstake", unstakeOptionsSchema, options, ["amount"]);
  const { config, account, connection } = await openSigner(globals);
  try {
    const { publicClient, walletClient } = connection;
    const modelId = config.modelId;
    const model = await readModel(connection, modelId);
    const token = await tokenInfo(publicClient, model.stakingToken);
    let action: UnstakeResult["action"];
    let amount: bigint;
    let hash: Hash;
    let readyAt: bigint | null = null;
    if (withdraw) {
      action = "withdraw";
      out.log(`withdrawing unbonded ${role} stake from model ${modelId}…`);
      ({ hash, amount } = await walletClient.withdrawStake({ modelId, role }));
      await waitForConfirmations(publicClient, hash, config.confirmations);
      out.print(`withdrew ${formatAmount(amount, token)} of ${role} stake from model ${modelId} (tx ${hash})`);
    } else {
      action = "request";
      amount = parseAmount(text!, token);
      out.log(`unstaking ${formatAmount(amount, token)} of ${role} stake in model ${modelId}…`);
      const result = await walletClient.requestUnstake({ modelId, role, amount });
      ({ hash, readyAt } = result);
      await waitForConfirmations(publicClient, hash, config.confirmations);
      out.print(`unbonding ${formatAmount(amount, token)} of ${role} stake in model ${modelId} (tx ${hash})`);
      out.print(
        `withdraw it after ${new Date(Number(result.readyAt) * 1000).toISOString()} with \`shard-node unstake --withdraw\``,
      );
    }
    const position = (await publicClient.getStake({ modelId, account: account.address }))[role];
    out.print(
      `${role} stake now ${formatAmount(position.active, token)} active, ${formatAmount(position.unbonding, token)} unbonding`,
    );
    return {
      account: account.address,
      chainId: connection.chainId,
      modelId,
      role,
      token,
      action,
      amount,
      hash,
      readyAt,
      stake: position,
    };
  } finally {
    await connection.close();
  }
}
