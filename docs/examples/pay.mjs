// A dApp pays a model's revenue with the SDK: run in the clone after `npm install`, e.g.
//   PRIVATE_KEY=0x… MODEL_ID=1 AMOUNT=100 node docs/examples/pay.mjs
// It pays AMOUNT of the local deployment's test currency (tUSD); the holders then claim it.
import { readFile } from "node:fs/promises";

import { createWalletClient, http, parseUnits, publicActions } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { shardActions } from "shard-protocol/sdk";
import { loadDeploymentFor } from "shard-protocol/sdk/node";

const account = privateKeyToAccount(process.env.PRIVATE_KEY);
const wallet = createWalletClient({ account, transport: http(process.env.RPC_URL ?? "http://127.0.0.1:8545") }).extend(
  publicActions,
);
const client = wallet.extend(shardActions(await loadDeploymentFor(wallet))); // reads deployments/<chainId>.json
const { testTokens } = JSON.parse(await readFile(`deployments/${await client.getChainId()}.json`, "utf8"));
const modelId = BigInt(process.env.MODEL_ID ?? "1");
const { hash } = await client.pay({
  modelId,
  currency: testTokens.usd,
  amount: parseUnits(process.env.AMOUNT ?? "100", 6),
});
console.log(`paid ${process.env.AMOUNT ?? "100"} tUSD to model ${modelId} (tx ${hash})`);
