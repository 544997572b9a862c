import type { Address } from "viem";

import type { GlobalOptions } from "../config/schema.js";
import { table, type Output } from "../output.js";
import { formatAmount, readModel, tokenInfo, type TokenInfo } from "./common.js";
import { openHolderReader, printHoldings, readHoldings, type HoldingsView } from "./holder.js";

/** `status` without a shard: the account as a shard-token holder. */
export interface HolderStatusResult extends HoldingsView {
  view: "holder";
  chainId: number;
  rpcUrl: string;
  /** Stake the account has in the models it holds, only where it has some (a holder needs none). */
  stakes: {
    modelId: bigint;
    token: TokenInfo;
    trainer: { active: bigint; unbonding: bigint };
    verifier: { active: bigint; unbonding: bigint };
  }[];
}

/**
 * The holder's view of `status`: its shard tokens and claimable revenue in the configured model
 * or every model, and stake lines only where it has stake.
 *
 * @example
 * const { models, claimable } = await holderStatus({}, out)
 */
export async function holderStatus(globals: GlobalOptions, out: Output): Promise<HolderStatusResult> {
  const { config, address, connection } = await openHolderReader(globals);
  try {
    const { publicClient } = connection;
    const view = await readHoldings(connection, address, config.modelId);
    const stakes: HolderStatusResult["stakes"] = [];
    for (const { modelId } of view.models) {
      const { trainer, verifier } = await publicClient.getStake({ modelId, account: address });
      if (trainer.active + trainer.unbonding + verifier.active + verifier.unbonding === 0n) continue;
      const token = await tokenInfo(publicClient, (await readModel(connection, modelId)).stakingToken);
      const part = (p: typeof trainer) => ({ active: p.active, unbonding: p.unbonding });
      stakes.push({ modelId, token, trainer: part(trainer), verifier: part(verifier) });
    }
    const result: HolderStatusResult = {
      view: "holder",
      ...view,
      chainId: connection.chainId,
      rpcUrl: connection.rpcUrl,
      stakes,
    };
    printHolderStatus(result, address, out);
    return result;
  } finally {
    await connection.close();
  }
}

function printHolderStatus(s: HolderStatusResult, address: Address, out: Output) {
  const rows: [string, string][] = [
    ["account", address],
    ["chain", `${s.chainId} (${s.rpcUrl})`],
    ["view", `holder${s.modelId === null ? ", every model" : `, model ${s.modelId}`} (--shard <n> shows a trainer's)`],
  ];
  for (const stake of s.stakes) {
    const roles = (["trainer", "verifier"] as const)
      .filter((role) => stake[role].active + stake[role].unbonding > 0n)
      .map(
        (role) =>
          `${formatAmount(stake[role].active, stake.token)} active, ` +
          `${formatAmount(stake[role].unbonding, stake.token)} unbonding as ${role}`,
      );
    rows.push([`stake (model ${stake.modelId})`, roles.join("; ")]);
  }
  for (const line of table(rows)) out.print(line);
  printHoldings(s, out);
}
