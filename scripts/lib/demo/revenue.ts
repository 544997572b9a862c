/**
 * Stage 8 of the demo: a dApp pays for inference through shard 0's gateway (escrow, paid requests,
 * receipts settled in a batch); the model's revenue distributions read back from the token.
 */
import { getAddress, parseUnits } from "viem";
import { getInferenceQuote, shardTokenAbi } from "shard-protocol/sdk";

import type { DemoDeployment } from "./chain.js";
import { type SdkClient, shortAddress } from "./clients.js";
import { type DemoResult, sleep, type StageLog } from "./options.js";
import type { ServeNode } from "./serve.js";
import { formatAmount } from "./tables.js";

/** Prompts the dApp sends (characters of the model's vocabulary). */
export const PROMPTS = ["Call me Ishmael. ", "The whale ", "It was the sea that "];

/**
 * The dApp's escrow deposit in currency A, bound to the gateway: the quote names its payee (the
 * account that settles), and only that payee can draw on the escrow.
 */
async function deposit(
  d: SdkClient,
  deployment: DemoDeployment,
  gatewayUrl: string,
  log: (stage: string, text: string) => void,
): Promise<bigint> {
  const a = deployment.currencyA;
  const amount = parseUnits("5", a.decimals);
  const { payee } = await getInferenceQuote({ gatewayUrl });
  await d.depositEscrow({ currency: a.address, payee, amount });
  log(
    "inference",
    `dApp ${shortAddress(d.account.address)} deposited ${formatAmount(amount, a.decimals, a.symbol)} into escrow with the gateway ${shortAddress(payee)} (SDK depositEscrow)`,
  );
  return amount;
}

/** Every `ModelRevenueDistributed` of the model, in order. */
export async function readDistributions(
  client: SdkClient,
  deployment: DemoDeployment,
): Promise<DemoResult["revenue"]["distributions"]> {
  const events = await client.getContractEvents({
    address: deployment.addresses.token,
    abi: shardTokenAbi,
    eventName: "ModelRevenueDistributed",
    args: { modelId: deployment.modelId },
    fromBlock: deployment.deployBlock,
    toBlock: "latest",
  });
  return events.map((e) => ({ currency: getAddress(e.args.currency!), amount: e.args.amount! }));
}

/**
 * The dApp pays for inference: escrow in currency A, then one `requestInference` per prompt
 * through shard 0's gateway (quote checked, receipt signed, text back); the gateway settles the
 * receipts in a batch once all are pending.
 */
export async function inferThroughGateway(ctx: {
  dappClient: SdkClient;
  deployment: DemoDeployment;
  gateway: ServeNode;
  prompts: string[];
  pricePerUnit: bigint;
  log: StageLog;
}): Promise<{ generated: DemoResult["generated"]; revenue: DemoResult["revenue"] }> {
  const { dappClient: d, deployment, gateway, log } = ctx;
  const a = deployment.currencyA;
  const escrowDeposit = await deposit(d, deployment, gateway.gatewayUrl!, log);
  const generated: DemoResult["generated"] = [];
  const receipts: DemoResult["revenue"]["receipts"] = [];
  const lengths = [48, 64, 40];
  for (const [i, prompt] of ctx.prompts.entries()) {
    const r = await d.requestInference({
      gatewayUrl: gateway.gatewayUrl!,
      prompt,
      maxTokens: lengths[i % lengths.length]!,
      temperature: 0.8,
      seed: i + 1,
      modelId: deployment.modelId,
      maxPricePerUnit: ctx.pricePerUnit,
    });
    generated.push({ prompt, text: r.text });
    receipts.push({ units: r.charged.units, pricePerUnit: r.receipt.pricePerUnit, amount: r.charged.amount });
    log(
      "inference",
      `requestInference ${JSON.stringify(prompt)} → ${JSON.stringify(r.text)} (${r.tokens} characters, ${formatAmount(r.charged.amount, a.decimals, a.symbol)})`,
    );
  }
  // The gateway settles once the batch is full.
  let settled = 0;
  const events = () => gateway.process.events.filter((e) => e.event === "gateway.settled");
  for (let i = 0; i < 300 && (settled = events().reduce((n, e) => n + Number(e.settled), 0)) < receipts.length; i++)
    await sleep(100);
  if (settled < receipts.length) throw new Error(`the gateway settled ${settled} of ${receipts.length} receipts`);
  const settledA = (await readDistributions(d, deployment))
    .filter((x) => x.currency === a.address)
    .reduce((sum, x) => sum + x.amount, 0n);
  return { generated, revenue: { escrowDeposit, receipts, settledA, directB: 0n, distributions: [] } };
}
