import type { Address, Hash } from "viem";
import type { z } from "zod";

import { globalOptionsSchema } from "../config/schema.js";
import type { Output } from "../output.js";
import { formatAmount, modelNotFound, openSigner, parseOptions, tokenInfo, type TokenInfo } from "./common.js";
import { waitForConfirmations, type Connection } from "../chain.js";
import type { PrivateKeyAccount } from "viem/accounts";
import { holderConfigOf, openHolderSigner, readHoldings } from "./holder.js";

export const claimOptionsSchema = globalOptionsSchema;

export type ClaimOptions = z.input<typeof claimOptionsSchema>;

export interface ClaimResult {
  account: Address;
  chainId: number;
  /** The model claimed in; null: every model the account is owed revenue in (a holder without a model). */
  modelId: bigint | null;
  /** One transaction per model and currency that had revenue due; empty when nothing was due. */
  claims: { modelId: bigint; token: TokenInfo; amount: bigint; formatted: string; hash: Hash }[];
}

/**
 * Claims all revenue due to the account's shard tokens, in every currency the model accepts (one
 * transaction per currency with something due): in the configured model, or, for a holder with
 * no model configured (no shard either), in every model it is owed revenue in.
 *
 * @example
 * const { claims } = await claim({}, out)
 */
export async function claim(options: ClaimOptions, out: Output): Promise<ClaimResult> {
  const globals = parseOptions("claim", claimOptionsSchema, options);
  const holder = (await holderConfigOf(globals)).shard === undefined;
  const { config, account, connection } = holder ? await openHolderSigner(globals) : await openSigner(globals);
  try {
    let modelIds: bigint[];
    if (holder) {
      const view = await readHoldings(connection, account.address, config.modelId);
      modelIds = view.models.filter((m) => m.claimable.some((c) => c.amount > 0n)).map((m) => m.modelId);
    } else {
      const modelId = config.modelId!;
      const due = await connection.publicClient
        .getClaimable({ holder: account.address, modelId })
        .catch((error: unknown) => {
          throw modelNotFound(error, connection, modelId);
        });
      modelIds = due.byId.length === 0 ? [] : [modelId];
    }
    const base = { account: account.address, chainId: connection.chainId, modelId: config.modelId ?? null };
    if (modelIds.length === 0) {
      const where = config.modelId === undefined ? "any model" : `model ${config.modelId}`;
      out.print(`nothing to claim in ${where} for ${account.address}`);
      return { ...base, claims: [] };
    }
    const claims: ClaimResult["claims"] = [];
    for (const modelId of modelIds) claims.push(...(await claimModel(connection, modelId, config.confirmations, out)));
    return { ...base, claims };
  } finally {
    await connection.close();
  }
}

/** Claims the model's revenue due to the account, one transaction per currency, and prints each. */
async function claimModel(
  connection: Connection<PrivateKeyAccount>,
  modelId: bigint,
  confirmations: number,
  out: Output,
): Promise<ClaimResult["claims"]> {
  const { publicClient, walletClient } = connection;
  out.log(`claiming revenue of model ${modelId}…`);
  const { claims } = await walletClient.claim({ modelId });
  const result: ClaimResult["claims"] = [];
  for (const { currency, amount, hash } of claims) {
    await waitForConfirmations(publicClient, hash, confirmations);
    const token = await tokenInfo(publicClient, currency);
    const formatted = formatAmount(amount, token);
    out.print(`claimed ${formatted} in model ${modelId} (tx ${hash})`);
    result.push({ modelId, token, amount, formatted, hash });
  }
  return result;
}
