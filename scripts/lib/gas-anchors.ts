import { encodeFunctionData, type Address, type Hex } from "viem";
import type { ContractReturnType, HardhatViemHelpers, WalletClient } from "@nomicfoundation/hardhat-viem/types";

/**
 * The gas benchmark's anchors (see scripts/bench-gas.ts): what paying holders directly would cost,
 * against which the protocol's deposit and claim are read.
 */

/** ERC-20 transfers per fan-out transaction: ~30,000 gas each to a fresh holder, ~7.5M a transaction. */
export const FANOUT_CHUNK = 250;

export interface Fanout {
  holders: number;
  transactions: number;
  /** Gas of every transaction summed: to holders with no balance in the currency yet. */
  first: number;
  /** The same transfers again, to holders that now hold the currency (steady state). */
  repeat: number;
  perHolderFirst: number;
  perHolderRepeat: number;
}

export interface AnchorParameters {
  viem: HardhatViemHelpers;
  /** The currency, a mintable test token. */
  usd: ContractReturnType<"TestERC20">;
  /** Pays every transfer. */
  payer: WalletClient;
  /** The holders of each holder count, paid in that order. */
  holdersOf: Record<string, Address[]>;
  /** Recipient of the one plain transfer: an address that already holds the currency. */
  holderOfCurrency: Address;
  /** Gas of a mined transaction (throws if it reverted). */
  gasOf: (promise: Promise<Hex>) => Promise<number>;
}

/**
 * Measures the anchors: the fan-out (paying the same holders one ERC-20 transfer each, every
 * transfer executed, through Multicall3 `aggregate3` in transactions of FANOUT_CHUNK transfers;
 * twice: to holders without a balance in the currency, then again to the same holders), and one
 * plain ERC-20 `transfer` transaction to an address that already holds the currency.
 */
export async function measureAnchors(parameters: AnchorParameters) {
  const { viem, usd, payer, holdersOf, gasOf } = parameters;
  const multicall = await viem.deployContract("Multicall3");
  await usd.write.mint([multicall.address, 10n ** 24n]);
  async function payEach(holders: Address[]): Promise<{ gas: number; transactions: number }> {
    let gas = 0;
    let transactions = 0;
    for (let i = 0; i < holders.length; i += FANOUT_CHUNK) {
      const calls = holders.slice(i, i + FANOUT_CHUNK).map((to) => ({
        target: usd.address,
        allowFailure: false,
        callData: encodeFunctionData({ abi: usd.abi, functionName: "transfer", args: [to, 1000n] }),
      }));
      gas += await gasOf(multicall.write.aggregate3([calls], { account: payer.account }));
      transactions++;
    }
    return { gas, transactions };
  }
  const fanout: Record<string, Fanout> = {};
  for (const [n, holders] of Object.entries(holdersOf)) {
    const first = await payEach(holders);
    const repeat = await payEach(holders);
    fanout[n] = {
      holders: holders.length,
      transactions: first.transactions,
      first: first.gas,
      repeat: repeat.gas,
      perHolderFirst: Math.round(first.gas / holders.length),
      perHolderRepeat: Math.round(repeat.gas / holders.length),
    };
    process.stderr.write(`  fan-out to ${n} holders: ${JSON.stringify(fanout[n])}\n`);
  }
  const erc20Transfer = await gasOf(
    usd.write.transfer([parameters.holderOfCurrency, 1000n], { account: payer.account }),
  );
  process.stderr.write(`  ERC-20 transfer (existing recipient): ${erc20Transfer}\n`);
  return { fanout, erc20Transfer };
}
