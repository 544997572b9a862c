/**
 * Where the gas of a claim goes: traces a holder's first and repeat claim of one id
 * (debug_traceTransaction) and sums the gas by kind of operation, in the shard token and in the
 * ERC-20 it calls; then the gas of a shard transfer to a new and to an existing holder. The setup
 * is the one of `npm run bench -- gas`: tokens minted before the model's first revenue, so the
 * first claim writes a fresh correction slot, and a claimer that already holds the currency.
 *
 *   npx hardhat run scripts/gas-claim-trace.ts
 */
import { network } from "hardhat";
import { keccak256, parseEther, toHex, type Hex } from "viem";

import { DEFAULT_ROUND_PARAMS, deployProtocol } from "./lib/protocol.js";

const { viem } = await network.create();
const publicClient = await viem.getPublicClient();
const [deployer, holder, payer, other] = await viem.getWalletClients();
const p = await deployProtocol(viem);
const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
const usd = await viem.deployContract("TestERC20", ["USD", "USD", 6]);
for (const w of [deployer!, holder!, payer!, other!]) {
  await usd.write.mint([w.account.address, 10n ** 18n]);
  await usd.write.approve([p.settlement.address, 2n ** 255n], { account: w.account });
}
await p.registry.write.registerModel([
  {
    specDigest: keccak256(toHex("spec")),
    specURI: "ipfs://bafytrace",
    shardWeights: [1000n],
    stakingToken: stake.address,
    currencies: [usd.address],
    unbondingDelay: 7 * 86_400,
    params: DEFAULT_ROUND_PARAMS,
  },
]);
const model = 1n;
const id = model << 32n;
await p.ledger.write.allocateGenesis([model, 0, [holder!.account.address, other!.account.address], [1000n, 1000n]]);
const pay = () => p.settlement.write.pay([model, usd.address, 1_000_000_000n], { account: payer!.account });
await pay();
await pay();

interface Log {
  op: string;
  gas: number;
  gasCost: number;
  depth: number;
}
async function breakdown(label: string, hash: Hex) {
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  const trace = (await publicClient.request({
    method: "debug_traceTransaction" as never,
    params: [hash, { disableStack: true, disableMemory: true, disableStorage: true }] as never,
  })) as { gas: number; structLogs: Log[] };
  const logs = trace.structLogs;
  const by: Record<string, number> = {};
  const add = (k: string, g: number) => (by[k] = (by[k] ?? 0) + g);
  for (let i = 0; i < logs.length; i++) {
    const l = logs[i]!;
    const where = l.depth === 1 ? "token" : "erc20";
    if (l.op === "CALL" || l.op === "STATICCALL") {
      // The call's own cost: gas before it, less gas after it returns, less what the callee used.
      let j = i + 1;
      while (j < logs.length && logs[j]!.depth > l.depth) j++;
      const inner = i + 1 < j ? logs[i + 1]!.gas - logs[j - 1]!.gas + logs[j - 1]!.gasCost : 0;
      const after = j < logs.length ? logs[j]!.gas : l.gas - inner;
      add(`${where} ${l.op} (access, excl. callee)`, l.gas - after - inner);
    } else if (["SLOAD", "SSTORE"].includes(l.op) || l.op.startsWith("LOG")) {
      add(`${where} ${l.op.startsWith("LOG") ? "LOG" : l.op}`, l.gasCost);
    } else add(`${where} other`, l.gasCost);
  }
  const execution = logs[0]!.gas - logs[logs.length - 1]!.gas + logs[logs.length - 1]!.gasCost;
  console.log(`\n${label}: ${receipt.gasUsed} gas; 21,000 + calldata: ${Number(receipt.gasUsed) - execution}`);
  for (const [k, v] of Object.entries(by).sort()) console.log(`  ${k.padEnd(40)} ${v}`);
}
await breakdown("first claim", await p.token.write.claim([[id], usd.address], { account: holder!.account }));
await pay();
await breakdown("repeat claim", await p.token.write.claim([[id], usd.address], { account: holder!.account }));

const transfer = (to: Hex) =>
  p.token.write.safeTransferFrom([holder!.account.address, to, id, 10n, "0x"], { account: holder!.account });
const gasOf = async (hash: Hex) => (await publicClient.waitForTransactionReceipt({ hash })).gasUsed;
console.log(`\nshard transfer to an existing holder: ${await gasOf(await transfer(other!.account.address))} gas`);
console.log(`shard transfer to a new holder: ${await gasOf(await transfer(deployer!.account.address))} gas`);
