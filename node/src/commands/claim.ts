import type { Address, Hash } from "viem";
import type { z } from "zod";

import { globalOptionsSchema } from "../config/schema.js";
import type { Output } from "../output.js";
import { formatAmount, modelNotFound, openSigner, parseOptions, tokenInfo, type TokenInfo } from "./common.js";
import { waitForConfirmations } from "../chain.js";

export const claimOptionsSchema = globalOptionsSchema;

export type ClaimOptions = z.input<typeof claimOptionsSchema>;

export interface ClaimResult {
  account: Address;
  chainId: number;
  modelId: bigint;
  /** One transaction per currency that had revenue due; empty when nothing was due. */
  claims: { token: TokenInfo; amount: bigint; hash: Hash }[];
}

/**
 * Claims all revenue due to the account's shard tokens of the model, in every currency the model
 * accepts (one transaction per currency with something due).
 *
 * @example
 * const { claims } = await claim({}, out)
 */
export async function claim(options: ClaimOptions, out: Output): Promise<ClaimResult> {
  const globals = parseOptions("claim", claimOptionsSchema, options);
  const { config, account, connection } = await openSigner(globals);
  try {
    const { publicClient, walletClient } = connection;
    const modelId = config.modelId;
    const due = await publicClient.getClaimable({ holder: account.address, modelId }).catch((error: unknown) => {
      throw modelNotFound(error, connection, modelId);
    });
    const base = { account: account.address, chainId: connection.chainId, modelId };
    if (due.byId.length === 0) {
      out.print(`nothing to claim in model ${modelId} for ${account.address}`);
      return { ...base, claims: [] };
    }
    out.log(`claiming revenue of model ${modelId}…`);
    const { claims } = await walletClient.claim({ modelId });
    const result: ClaimResult["claims"] = [];
    for (const { currency, amount, hash } of claims) {
      await waitForConfirmations(publicClient, hash, config.confirmations);
      const token = await tokenInfo(publicClient, currency);
      out.print(`claimed ${formatAmount(amount, token)} (tx ${hash})`);
      result.push({ token, amount, hash });
    }
    return { ...base, claims: result };
  } finally {
    await connection.close();
  }
}
