import { formatEther, parseEther, parseUnits, type Address, type Hash } from "viem";
import { getAddresses, sendTransaction } from "viem/actions";
import { z } from "zod";

import { connect, type ShardPublicClient } from "../chain.js";
import { loadAddress } from "../config/keys.js";
import { DEFAULTS } from "../config/defaults.js";
import { globalOptionsSchema } from "../config/schema.js";
import { NodeError } from "../errors.js";
import type { Output } from "../output.js";
import { formatAmount, parseOptions, tokenInfo, zAmountText, type TokenInfo } from "./common.js";
import { chainConfigOf, readTestTokens, zAddressText } from "./registrant.js";

/**
 * `faucet`: test tokens and gas on a local chain (Hardhat or anvil, chain 31337). It mints the
 * deployment's test tokens (`testTokens` in `deployments/31337.json`, written by `npm run deploy`)
 * and sends ETH, from the local node's first unlocked account. Any other chain is refused.
 */

/** The only chain the faucet serves: Hardhat's and anvil's local chain. */
export const FAUCET_CHAIN_ID = 31337;

export const faucetOptionsSchema = globalOptionsSchema.extend({
  /** Recipient (default: the configured key's address). */
  to: zAddressText.optional(),
  /** Whole tokens of each test token. */
  amount: zAmountText.default(DEFAULTS.faucet.amount),
  /** Whole ETH for gas (0: none). */
  eth: z
    .string()
    .trim()
    .regex(/^[0-9]+(\.[0-9]+)?$/, "must be an amount of ETH, such as 10 or 0.5")
    .default(DEFAULTS.faucet.eth),
  deployment: z.string().optional(),
});

export type FaucetOptions = z.input<typeof faucetOptionsSchema>;

export interface FaucetResult {
  chainId: number;
  to: Address;
  /** The local node's account the transactions came from. */
  from: Address;
  /** Each test token minted: what, how much, the new balance. */
  tokens: { token: TokenInfo; amount: bigint; balance: bigint; hash: Hash }[];
  eth: { amount: bigint; balance: bigint; hash: Hash | null };
}

/** The faucet was asked for on a chain where tokens may be real, or the local chain has no test tokens. */
export class FaucetUnavailableError extends NodeError {
  override name = "FaucetUnavailableError";
}

/**
 * Mints `amount` of each test token (the staking token and the payment currency) to `to` and sends
 * it `eth` ETH for gas. Only on chain 31337; elsewhere `FaucetUnavailableError`.
 *
 * @example
 * await faucet({ to: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8", amount: "500" }, out)
 */
export async function faucet(options: FaucetOptions, out: Output): Promise<FaucetResult> {
  const o = parseOptions("faucet", faucetOptionsSchema, options);
  const config = await chainConfigOf(o);
  if (config.chainId !== FAUCET_CHAIN_ID) {
    throw new FaucetUnavailableError(
      `The faucet works only on a local chain (${FAUCET_CHAIN_ID}), not on chain ${config.chainId}.`,
      {
        details:
          "test tokens exist only in a local deployment (`npm run deploy` against `npx hardhat node`); on any other chain, get the model's staking token and currency elsewhere",
      },
    );
  }
  const to = o.to ?? (await loadAddress({ keystore: config.keystore }));
  const connection = await connect(config); // also checks that the RPC is on chain 31337
  try {
    const { publicClient } = connection;
    const testTokens = await readTestTokens(config);
    if (testTokens === undefined) {
      throw new FaucetUnavailableError("The deployment has no test tokens.", {
        details: `deployments/${config.chainId}.json (or --deployment) lists no testTokens; deploy with \`npm run deploy -- --network localhost\``,
      });
    }
    const from = await unlockedAccount(publicClient);
    const tokens: FaucetResult["tokens"] = [];
    for (const address of [testTokens.stake, testTokens.usd]) {
      const token = await tokenInfo(publicClient, address);
      const amount = parseUnits(o.amount, token.decimals);
      const { hash } = await publicClient.mintTestToken({ token: address, to, amount, account: from });
      const balance = await publicClient.getTokenBalance({ token: address, account: to });
      out.print(`minted ${formatAmount(amount, token)} to ${to} (balance ${formatAmount(balance, token)})`);
      tokens.push({ token, amount, balance, hash });
    }
    const ethAmount = parseEther(o.eth);
    const ethHash = ethAmount === 0n ? null : await sendEth(publicClient, { from, to, value: ethAmount });
    const ethBalance = await publicClient.getBalance({ address: to });
    if (ethHash !== null) out.print(`sent ${o.eth} ETH to ${to} (balance ${formatEther(ethBalance)} ETH)`);
    return {
      chainId: connection.chainId,
      to,
      from,
      tokens,
      eth: { amount: ethAmount, balance: ethBalance, hash: ethHash },
    };
  } finally {
    await connection.close();
  }
}

/** The local node's first unlocked account (Hardhat and anvil have funded ones). */
async function unlockedAccount(client: ShardPublicClient): Promise<Address> {
  const [first] = await getAddresses(client);
  if (first === undefined) {
    throw new FaucetUnavailableError("The local node has no unlocked account to send from.", {
      details: "the faucet needs `npx hardhat node` or anvil, which unlock funded accounts",
    });
  }
  return first;
}

/** Sends ETH from an account the node unlocked (`eth_sendTransaction`), and waits for it to succeed. */
async function sendEth(client: ShardPublicClient, tx: { from: Address; to: Address; value: bigint }): Promise<Hash> {
  const hash = await sendTransaction(client, { account: tx.from, chain: client.chain, to: tx.to, value: tx.value });
  const receipt = await client.waitForTransactionReceipt({ hash });
  if (receipt.status !== "success") throw new NodeError(`The faucet's transaction ${hash} reverted.`);
  return hash;
}
