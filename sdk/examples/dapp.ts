/**
 * The five calls most dApp developers need, against a chain where the protocol is deployed and a
 * model has holders. Run it against a local node (after `npm run deploy -- --network localhost`
 * and some training) with:
 *
 *   RPC_URL=http://127.0.0.1:8545 PRIVATE_KEY=0x… MODEL_ID=1 CURRENCY=0x… npx tsx sdk/examples/dapp.ts
 *
 * (GATEWAY_PRIVATE_KEY=0x… plays the gateway that settles the receipt; default: the dApp itself.)
 * `test/sdk/examples.test.ts` runs it against a real JSON-RPC server on every `npm test`.
 */
import { createWalletClient, getAddress, http, publicActions, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { shardActions } from "../index.js";
import { loadDeploymentFor } from "../node.js";

export interface ExampleOptions {
  rpcUrl: string;
  privateKey: Hex;
  modelId: bigint;
  currency: Address;
  /** Key of the gateway that settles the dApp's receipt (default: the dApp's own key). */
  gatewayPrivateKey?: Hex | undefined;
  deploymentsDir?: string;
}

export async function main({
  rpcUrl,
  privateKey,
  modelId,
  currency: currencyInput,
  gatewayPrivateKey,
  deploymentsDir,
}: ExampleOptions) {
  const currency = getAddress(currencyInput); // amounts per currency are keyed by checksummed address
  // 1. A client bound to the deployment of the chain it is connected to.
  const account = privateKeyToAccount(privateKey);
  const wallet = createWalletClient({ account, transport: http(rpcUrl) }).extend(publicActions);
  const deployment = await loadDeploymentFor(wallet, deploymentsDir);
  const client = wallet.extend(shardActions(deployment));

  // 2. Who owns the model: every holder of every shard, and each holder's share of revenue.
  const table = await client.getCapTable({ modelId, confirmations: 0 });
  for (const shard of table.shards) {
    for (const h of shard.holders) console.log(`shard ${shard.shard}: ${h.holder} ${h.percentage}%`);
  }

  // 3. What one address owns, across every model and shard, and its share of this model's revenue.
  const positions = await client.getBalances({ account: account.address });
  const { percentage } = await client.getRevenueShare({ account: account.address, modelId });
  console.log(`${positions.length} shard positions; ${percentage}% of model ${modelId}'s revenue`);

  // 4. Pay for inference: directly, or into escrow with a gateway (the payee), by signing usage
  // receipts that only that gateway settles, in batches (`requestInference` does this against a
  // gateway's quote, whose `payee` is the gateway's settling address).
  const gatewayAccount = gatewayPrivateKey === undefined ? account : privateKeyToAccount(gatewayPrivateKey);
  const gateway = createWalletClient({ account: gatewayAccount, transport: http(rpcUrl) })
    .extend(publicActions)
    .extend(shardActions(deployment));
  const payee = gatewayAccount.address;
  await client.pay({ modelId, currency, amount: 1_000_000n });
  await client.depositEscrow({ currency, payee, amount: 500_000n });
  const receipt = await client.signUsageReceipt({
    receipt: { modelId, currency, payee, units: 100n, pricePerUnit: 2_000n },
  });
  const { total } = await gateway.settleReceipts({ receipts: [receipt] });

  // 5. Holders see and claim what they earned, in every currency the model accepts.
  const { byCurrency: due } = await client.getClaimable({ holder: account.address, modelId });
  const { byCurrency: claimed } = await client.claim({ modelId });
  console.log(`settled ${total}; claimable ${due[currency]}; claimed ${claimed[currency]}`);

  return { table, positions, percentage, settled: total, due, claimed };
}

if (process.argv[1]?.endsWith("dapp.ts") && process.env.RPC_URL !== undefined) {
  const env = (name: string) => {
    const value = process.env[name];
    if (value === undefined) throw new Error(`set ${name}`);
    return value;
  };
  await main({
    rpcUrl: env("RPC_URL"),
    privateKey: env("PRIVATE_KEY") as Hex,
    modelId: BigInt(env("MODEL_ID")),
    currency: env("CURRENCY") as Address,
    gatewayPrivateKey: process.env.GATEWAY_PRIVATE_KEY as Hex | undefined,
  });
}
