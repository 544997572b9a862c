/**
 * The demo's closing tables: the cap table from the SDK (built from the token's transfer events),
 * checked against the token's balances on-chain, and the revenue each holder claimed.
 */
import { type Address, getAddress } from "viem";
import { shardTokenAbi, toTokenId } from "shard-protocol/sdk";

import { type SdkClient, shortAddress } from "./clients.js";
import type { DemoParticipant, DemoResult } from "./options.js";
import { formatAmount, formatPercent, groupDigits, renderTable } from "./tables.js";

/** A currency of the demo. */
export interface Currency {
  address: Address;
  symbol: string;
  decimals: number;
}

/** `amounts` of each currency, as text: `1.5 dUSD, 3 dEUR`. */
export function describeClaims(amounts: Record<Address, bigint>, currencies: Currency[]): string {
  return currencies.map((c) => formatAmount(amounts[c.address] ?? 0n, c.decimals, c.symbol)).join(", ");
}

/**
 * The holders' balances and the shards' supplies from the SDK's cap table (each balance checked
 * against the token), and the two rendered tables.
 */
export async function demoTables(ctx: {
  reader: SdkClient;
  modelId: bigint;
  token: Address;
  shards: number;
  holders: DemoParticipant[];
  currencies: Currency[];
  claimed: DemoResult["claimed"];
  revenue: DemoResult["revenue"];
}): Promise<Pick<DemoResult, "balances" | "supplies" | "tables">> {
  const { reader, modelId, token, shards, holders, currencies, claimed, revenue } = ctx;
  const table = await reader.getCapTable({ modelId, confirmations: 0 });
  const supplies = table.shards.map((x) => x.supply);
  const balances: DemoResult["balances"] = {};
  const shareWad = new Map(table.revenueShares.map((x) => [getAddress(x.holder), x.shareWad]));
  for (const h of holders) {
    balances[h.address] = table.shards.map(
      (x) => x.holders.find((y) => getAddress(y.holder) === h.address)?.balance ?? 0n,
    );
    for (const [shard, balance] of balances[h.address]!.entries()) {
      const onChain = await reader.readContract({
        address: token,
        abi: shardTokenAbi,
        functionName: "balanceOf",
        args: [h.address, toTokenId({ modelId, shard })],
      });
      if (onChain !== balance)
        throw new Error(`cap table says ${balance} for ${h.name} on shard ${shard}, the token says ${onChain}`);
    }
  }
  const capTable = renderTable(
    [
      "holder",
      "trains",
      "address",
      ...Array.from({ length: shards }, (_, s) => `shard ${s} tokens`),
      "share of revenue",
    ],
    [
      ...holders.map((h) => [
        h.name,
        h.shard === undefined ? "" : `lane ${h.lane ?? 0}, shard ${h.shard}`,
        shortAddress(h.address),
        ...balances[h.address]!.map((b, s) => `${groupDigits(b)} (${formatPercent(b, supplies[s]!)})`),
        formatPercent(shareWad.get(h.address) ?? 0n, 10n ** 18n),
      ]),
      ["total", "", "", ...supplies.map((s) => `${groupDigits(s)} (100.00 %)`), "100.00 %"],
    ],
    ["left", "left", "left", ...supplies.map(() => "right" as const), "right"],
  );
  const coOwners = coOwnership(holders, balances, supplies);
  const paidIn = [revenue.settledA, revenue.directB];
  const revenueTable = renderTable(
    ["holder", ...currencies.map((c) => `claimed ${c.symbol}`)],
    [
      ...holders.map((h) => [
        h.name,
        ...currencies.map((c) => formatAmount(claimed[h.address]![c.address] ?? 0n, c.decimals, c.symbol)),
      ]),
      ["paid in", ...currencies.map((c, i) => formatAmount(paidIn[i]!, c.decimals, c.symbol))],
      [
        "dust (unclaimable)",
        ...currencies.map((c, i) =>
          formatAmount(
            paidIn[i]! - holders.reduce((sum, h) => sum + (claimed[h.address]![c.address] ?? 0n), 0n),
            c.decimals,
            c.symbol,
          ),
        ),
      ],
    ],
    ["left", ...currencies.map(() => "right" as const)],
  );
  return { balances, supplies, tables: { capTable, coOwners, revenue: revenueTable } };
}

/**
 * One line per shard: how many holders own it, how many of them trained it, and each holder's
 * share, largest first. E.g. `shard 0: 3 holders (2 of its trainers): trainer 2 50.00 %, …`.
 */
export function coOwnership(holders: DemoParticipant[], balances: DemoResult["balances"], supplies: bigint[]): string {
  return supplies
    .map((supply, s) => {
      const owners = holders
        .filter((h) => (balances[h.address]?.[s] ?? 0n) > 0n)
        .sort((a, b) => {
          const [x, y] = [balances[a.address]![s]!, balances[b.address]![s]!];
          return x > y ? -1 : x < y ? 1 : 0;
        });
      const trainers = owners.filter((h) => h.shard === s).length;
      const shares = owners.map((h) => `${h.name} ${formatPercent(balances[h.address]![s]!, supply)}`).join(", ");
      return `shard ${s}: ${owners.length} holder${owners.length === 1 ? "" : "s"} (${trainers} of its trainers)${shares ? `: ${shares}` : ""}`;
    })
    .join("\n");
}
