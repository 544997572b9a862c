import type { Address } from "viem";
import { z } from "zod";

import { globalOptionsSchema } from "../config/schema.js";
import { table, type Output } from "../output.js";
import { parseOptions } from "./common.js";
import { openHolderReader, parseAddress, printHoldings, readHoldings, type HoldingsView } from "./holder.js";

export const holdingsOptionsSchema = globalOptionsSchema.extend({
  /** Look up this address instead of the configured key's (no key needed). */
  address: z.string().optional(),
});

export type HoldingsOptions = z.input<typeof holdingsOptionsSchema>;

export type HoldingsResult = HoldingsView & { chainId: number; rpcUrl: string };

/**
 * An account's shard tokens per model and shard, its share of each shard's supply, and the
 * revenue it can claim per currency: the configured key's account, or any `--address`. Covers the
 * configured model (`--model`), or every registered model when none is configured.
 *
 * @example
 * const { models } = await holdings({ address: "0xA0b8…", json: true }, out)
 */
export async function holdings(options: HoldingsOptions, out: Output): Promise<HoldingsResult> {
  const { address: given, ...globals } = parseOptions("holdings", holdingsOptionsSchema, options);
  const address: Address | undefined = given === undefined ? undefined : parseAddress(given, "--address");
  const { config, address: account, connection } = await openHolderReader(globals, address);
  try {
    const view = await readHoldings(connection, account, config.modelId);
    const result: HoldingsResult = { ...view, chainId: connection.chainId, rpcUrl: connection.rpcUrl };
    for (const line of table([
      ["account", account],
      ["chain", `${connection.chainId} (${connection.rpcUrl})`],
    ]))
      out.print(line);
    printHoldings(view, out);
    return result;
  } finally {
    await connection.close();
  }
}
