import type { Address, Hash } from "viem";
import { z } from "zod";

import { waitForConfirmations } from "../chain.js";
import { globalOptionsSchema } from "../config/schema.js";
import { NodeError } from "../errors.js";
import type { Output } from "../output.js";
import {
  authorizeOwnKey,
  formatAmount,
  isNodeAuthorized,
  openSigner,
  parseAmount,
  parseOptions,
  readModel,
  tokenInfo,
  zAmountText,
  zRole,
  type TokenInfo,
} from "./common.js";

export const stakeOptionsSchema = globalOptionsSchema.extend({
  /** Whole tokens of the model's staking token: `100`, `0.5`. */
  amount: zAmountText,
  role: zRole,
  /** Authorize the account's own key to sign commits, if it is not yet (trainer stake only). */
  authorize: z.boolean().default(true),
});

export type StakeOptions = z.input<typeof stakeOptionsSchema>;

export interface StakeResult {
  account: Address;
  chainId: number;
  modelId: bigint;
  role: "trainer" | "verifier";
  token: TokenInfo;
  /** Staked, in the token's smallest unit. */
  amount: bigint;
  hash: Hash;
  /** The `authorizeNode` transaction, or null if the key was already authorized (or not asked). */
  authorizeHash: Hash | null;
  /** The account's stake in this role after the transaction. */
  stake: { active: bigint; unbonding: bigint; unbondingReadyAt: bigint; locked: bigint };
  /** The stake the role requires for the next round. */
  minimum: bigint;
}

/** The account holds less of the staking token than it asked to stake. */
export class InsufficientBalanceError extends NodeError {
  override name = "InsufficientBalanceError";
}

/**
 * Stakes `amount` whole tokens of the model's staking token (approving the staking contract
 * first when needed) and, for trainer stake, authorizes the account's key to sign commits (the
 * key's consent, then `authorizeNode`).
 *
 * @example
 * await stake({ amount: "100" }, createOutput({ json: false }))
 */
export async function stake(options: StakeOptions, out: Output): Promise<StakeResult> {
  const { amount: text, role, authorize, ...globals } = parseOptions("stake", stakeOptionsSchema, options, ["amount"]);
  const { config, account, connection } = await openSigner(globals);
  try {
    const { publicClient, walletClient } = connection;
    const modelId = config.modelId;
    const model = await readModel(connection, modelId);
    const token = await tokenInfo(publicClient, model.stakingToken);
    const amount = parseAmount(text, token);
    const balance = await publicClient.getTokenBalance({ token: token.address, account: account.address });
    if (balance < amount) {
      throw new InsufficientBalanceError(
        `${account.address} holds ${formatAmount(balance, token)}; staking ${formatAmount(amount, token)} needs more.`,
      );
    }

    out.log(`staking ${formatAmount(amount, token)} as ${role} in model ${modelId}…`);
    const { hash } = await walletClient.stake({ modelId, role, amount });
    await waitForConfirmations(publicClient, hash, config.confirmations);
    out.print(`staked ${formatAmount(amount, token)} as ${role} in model ${modelId} (tx ${hash})`);

    let authorizeHash: Hash | null = null;
    if (role === "trainer" && authorize && !(await isNodeAuthorized(publicClient, account.address, account.address))) {
      out.log(`authorizing ${account.address} to sign commits…`);
      authorizeHash = await authorizeOwnKey(connection);
      await waitForConfirmations(publicClient, authorizeHash, config.confirmations);
      out.print(`authorized ${account.address} to sign commits (tx ${authorizeHash})`);
    }

    const position = (await publicClient.getStake({ modelId, account: account.address }))[role];
    const minimum = role === "trainer" ? model.params.minTrainerStake : model.params.minVerifierStake;
    out.print(
      `${role} stake now ${formatAmount(position.active, token)} active` +
        (position.unbonding > 0n ? `, ${formatAmount(position.unbonding, token)} unbonding` : "") +
        ` (minimum ${formatAmount(minimum, token)})`,
    );
    return {
      account: account.address,
      chainId: connection.chainId,
      modelId,
      role,
      token,
      amount,
      hash,
      authorizeHash,
      stake: position,
      minimum,
    };
  } finally {
    await connection.close();
  }
}
