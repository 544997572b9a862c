/**
 * Gas benchmark: every protocol operation, deposit and claim with 1, 100 and 10,000 holders,
 * and batch settlement per receipt. Prints a table and writes results/gas.json.
 *
 * The anchors, measured in the same run:
 * - the fan-out: paying the same 1, 100, 10,000 holders one ERC-20 transfer each (the push
 *   alternative to deposit + claim), every transfer executed, through Multicall3 `aggregate3`
 *   in transactions of FANOUT_CHUNK transfers (10,000 holders: 40 transactions, gas summed).
 *   Measured twice: to holders without a balance in the currency (a fresh SSTORE each) and again
 *   to the same holders (steady state, the cheaper of the two);
 * - one plain ERC-20 `transfer` transaction to an address that already holds the currency.
 * (scripts/lib/gas-anchors.ts measures them.)
 *
 *   npm run bench -- gas
 */
import { network } from "hardhat";
import { getAddress, keccak256, parseEther, toHex, zeroHash, type Address, type Hex } from "viem";

import { FANOUT_CHUNK, measureAnchors } from "./lib/gas-anchors.js";
import { ledgerDomain, sealedCommitTypes, settlementDomain, usageReceiptTypes } from "./lib/eip712.js";
import { DEFAULT_ROUND_PARAMS, authorizeOwnKey, deployProtocol, sealedHash } from "./lib/protocol.js";
import { report } from "./lib/results.js";

const HOLDER_COUNTS = [1, 100, 10_000];
const GENESIS_BATCH = 250;
const RECEIPT_BATCHES = [1, 10, 100];

const { viem, networkHelpers } = await network.create();
const publicClient = await viem.getPublicClient();
const wallets = await viem.getWalletClients();
const [deployer, trainerA, trainerB, verifier, payer, challenger, joiner] = wallets as [
  (typeof wallets)[number],
  (typeof wallets)[number],
  (typeof wallets)[number],
  (typeof wallets)[number],
  (typeof wallets)[number],
  (typeof wallets)[number],
  (typeof wallets)[number],
];
const chainId = await publicClient.getChainId();

interface Row {
  operation: string;
  gas: number;
  note?: string;
}
const rows: Row[] = [];

async function gasOf(promise: Promise<Hex>): Promise<number> {
  const receipt = await publicClient.waitForTransactionReceipt({ hash: await promise });
  if (receipt.status !== "success") throw new Error("transaction reverted");
  return Number(receipt.gasUsed);
}
async function record(operation: string, promise: Promise<Hex>, note?: string) {
  const gas = await gasOf(promise);
  rows.push({ operation, gas, ...(note === undefined ? {} : { note }) });
  process.stderr.write(`  ${operation}: ${gas}\n`);
  return gas;
}

const p = await deployProtocol(viem);
const stake = await viem.deployContract("TestERC20", ["Stake", "STK", 18]);
const usd = await viem.deployContract("TestERC20", ["USD", "USD", 6]);
for (const w of wallets.slice(0, 8)) {
  await stake.write.mint([w.account.address, parseEther("1000000")]);
  await usd.write.mint([w.account.address, 10n ** 18n]);
  await stake.write.approve([p.staking.address, 2n ** 255n], { account: w.account });
  await stake.write.approve([p.ledger.address, 2n ** 255n], { account: w.account });
  await usd.write.approve([p.settlement.address, 2n ** 255n], { account: w.account });
}

const params = DEFAULT_ROUND_PARAMS;
const modelConfig = (shards: number) => ({
  specDigest: keccak256(toHex(`spec-${shards}`)),
  specURI: "ipfs://bafybench",
  shardWeights: Array.from({ length: shards }, (_, i) => BigInt(1000 + i)),
  stakingToken: stake.address,
  currencies: [usd.address],
  unbondingDelay: 7 * 86_400,
  params,
});
let modelCount = 0n;
async function register(shards: number, label?: string) {
  const promise = p.registry.write.registerModel([modelConfig(shards)]);
  if (label) await record(label, promise);
  else await gasOf(promise);
  return ++modelCount;
}

/* CONTRIBUTIONS */

const model = await register(2, "registerModel (2 shards)");
await record("closeGenesis", p.registry.write.closeGenesis([model]));
await record("stake (trainer)", p.staking.write.stake([model, 0, parseEther("1000")], { account: trainerA.account }));
await p.staking.write.stake([model, 0, parseEther("1000")], { account: trainerB.account });
await p.staking.write.stake([model, 1, parseEther("1000")], { account: verifier.account });
await p.staking.write.stake([model, 1, parseEther("1000")], { account: deployer.account });
await record("authorizeNode (with the key's consent)", authorizeOwnKey(trainerA, p.ledger.address));
await gasOf(authorizeOwnKey(trainerB, p.ledger.address));

const d = (s: string) => keccak256(toHex(s));
function checkpoint(owner: Address, shard: number, round: bigint, lane: number, parentRoot: Hex) {
  const last = shard === 1;
  return {
    modelId: model,
    shard,
    round,
    lane,
    owner,
    parentRoot,
    root: d(`root-${shard}-${round}-${lane}`),
    transcriptDigest: d("transcript"),
    sentActivations: last ? zeroHash : d(`act-${round}-${lane}`),
    receivedActivations: last ? d(`act-${round}-${lane}`) : zeroHash,
    sentGradients: last ? d(`grad-${round}-${lane}`) : zeroHash,
    receivedGradients: last ? zeroHash : d(`grad-${round}-${lane}`),
    workUnits: 1_000_000n,
    lossMicros: 2_000_000n,
    checkpointURI: "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
    transcriptURI: "ipfs://bafybeie5gq4jxvzmsym6hjlwxej4rwdoxt7wadqvmmwbqi7r27fclha2va",
  };
}
type Cp = ReturnType<typeof checkpoint>;
async function seal(wallet: typeof trainerA, cp: Cp, label?: string) {
  const salt = d(`salt-${cp.root}`);
  const sealed = sealedHash(await p.ledger.read.checkpointHash([cp]), salt);
  const commit = {
    modelId: cp.modelId,
    shard: cp.shard,
    round: cp.round,
    lane: cp.lane,
    owner: cp.owner,
    parentRoot: cp.parentRoot,
    sealedHash: sealed,
    paramsVersion: await p.registry.read.paramsVersionAt([cp.modelId, cp.round]),
    deadline: BigInt(await networkHelpers.time.latest()) + 3600n,
  };
  const signature = await wallet.signTypedData({
    account: wallet.account,
    domain: ledgerDomain(chainId, p.ledger.address),
    types: sealedCommitTypes,
    primaryType: "SealedCommit",
    message: commit,
  });
  // Relayed by the deployer, as a relayer would.
  const hash = await p.ledger.write.commit([commit, signature], { account: deployer.account });
  const receipt = await publicClient.waitForTransactionReceipt({ hash });
  if (label) {
    rows.push({ operation: label, gas: Number(receipt.gasUsed) });
    process.stderr.write(`  ${label}: ${receipt.gasUsed}\n`);
  }
  const block = await publicClient.getBlock({ blockNumber: receipt.blockNumber });
  return { commit, salt, commitBlock: receipt.blockNumber, commitTime: block.timestamp };
}
async function reveal(cp: Cp, s: Awaited<ReturnType<typeof seal>>, label?: string) {
  const promise = p.ledger.write.reveal([cp, s.salt, s.commitBlock, s.commitTime]);
  if (label) await record(label, promise);
  else await gasOf(promise);
}

const a1 = checkpoint(trainerA.account.address, 0, 1n, 0, zeroHash);
const b1 = checkpoint(trainerB.account.address, 1, 1n, 0, zeroHash);
const sa1 = await seal(trainerA, a1, "commit (first of a round, relayed)");
const sb1 = await seal(trainerB, b1, "commit (relayed)");
// A seal never revealed (lane 1), expired once its reveal window is over.
const unrevealed = await seal(trainerA, checkpoint(trainerA.account.address, 0, 1n, 1, zeroHash));
await reveal(a1, sa1, "reveal (first side of a pipeline link)");
await reveal(b1, sb1, "reveal (second side, link checked)");
const idA1 = await p.ledger.read.commitIdOf([model, 0, 1n, 0]);
await record("attest", p.ledger.write.attest([idA1], { account: verifier.account }));
await networkHelpers.time.increase(3601);
await record(
  "expireSeal (lock released, seal deposit burned)",
  p.ledger.write.expireSeal([unrevealed.commit, unrevealed.commitBlock, unrevealed.commitTime]),
);
await record("finalize (mints shard tokens, first mint)", p.ledger.write.finalize([a1]));
await p.ledger.write.finalize([b1]);

// A cheating round-2 commit on lane 0 and an honest child built on it (round 3).
const a2 = checkpoint(trainerA.account.address, 0, 2n, 0, a1.root);
const b2 = checkpoint(trainerB.account.address, 1, 2n, 0, b1.root);
const sa2 = await seal(trainerA, a2);
const sb2 = await seal(trainerB, b2);
await reveal(a2, sa2);
await reveal(b2, sb2);
const a3 = checkpoint(trainerA.account.address, 0, 3n, 0, a2.root);
await reveal(a3, await seal(trainerA, a3));
const idA2 = await p.ledger.read.commitIdOf([model, 0, 2n, 0]);
await record(
  "challenge (bond, opens a dispute)",
  p.ledger.write.challenge([idA2, d("evidence")], { account: challenger.account }),
);
await record(
  "challenge (bond, joins the open dispute)",
  p.ledger.write.challenge([idA2, d("evidence-2")], { account: joiner.account }),
);
await record("vote (weight at the opening, locked)", p.ledger.write.vote([idA2, true], { account: verifier.account }));
await p.ledger.write.vote([idA2, true], { account: deployer.account });
await networkHelpers.time.increase(3601);
await record("resolve (invalid: reject + slash, nothing paid)", p.ledger.write.resolve([a2]));
await record(
  "claimDispute (challenger: bond + share of the slash)",
  p.ledger.write.claimDispute([idA2, 1, challenger.account.address]),
);
await gasOf(p.ledger.write.claimDispute([idA2, 1, joiner.account.address]));
await record("releaseVote (winning side)", p.ledger.write.releaseVote([idA2, 1, verifier.account.address]));
await gasOf(p.ledger.write.releaseVote([idA2, 1, deployer.account.address]));
await record("rejectOrphan (cascade to a child)", p.ledger.write.rejectOrphan([a3]));
await networkHelpers.time.increase(3601);
await record("finalize (second mint to a holder)", p.ledger.write.finalize([b2]));
await record(
  "requestUnstake",
  p.staking.write.requestUnstake([model, 0, parseEther("10")], { account: trainerB.account }),
);
await networkHelpers.time.increase(7 * 86_400 + 1);
await record("withdraw", p.staking.write.withdraw([model, 0], { account: trainerB.account }));

/* REVENUE: deposit and claim against the number of holders */

const idOf = (m: bigint, shard: number) => (m << 32n) | BigInt(shard);
// Revenue left unclaimed in the token keeps its currency balance non-zero, so a claim that
// happens to empty it does not get the SSTORE-clearing refund and look cheaper than it is.
await record(
  "pay (direct deposit, 2 shards)",
  p.settlement.write.pay([model, usd.address, 1_000_000n], { account: payer.account }),
);
const scaling: Record<string, { deposit: number; claimFirst: number; claimRepeat: number; transfer: number }> = {};
const holdersOf: Record<string, Address[]> = {};
for (const n of HOLDER_COUNTS) {
  const m = await register(1);
  const holders: Address[] = [trainerA.account.address];
  for (let i = 1; i < n; i++) holders.push(getAddress(`0x${keccak256(toHex(`holder-${n}-${i}`)).slice(26)}`));
  holdersOf[String(n)] = holders;
  for (let i = 0; i < holders.length; i += GENESIS_BATCH) {
    const chunk = holders.slice(i, i + GENESIS_BATCH);
    await gasOf(p.ledger.write.allocateGenesis([m, 0, chunk, chunk.map(() => 1000n)]));
  }
  // The first deposit of a model in a currency also records the currency (one-off); measure the next.
  await gasOf(p.settlement.write.pay([m, usd.address, 1_000_000_000n], { account: payer.account }));
  const deposit = await gasOf(p.settlement.write.pay([m, usd.address, 1_000_000_000n], { account: payer.account }));
  const claimFirst = await gasOf(p.token.write.claim([[idOf(m, 0)], usd.address], { account: trainerA.account }));
  await gasOf(p.settlement.write.pay([m, usd.address, 1_000_000_000n], { account: payer.account }));
  const claimRepeat = await gasOf(p.token.write.claim([[idOf(m, 0)], usd.address], { account: trainerA.account }));
  const transfer = await gasOf(
    p.token.write.safeTransferFrom([trainerA.account.address, trainerB.account.address, idOf(m, 0), 10n, "0x"], {
      account: trainerA.account,
    }),
  );
  scaling[String(n)] = { deposit, claimFirst, claimRepeat, transfer };
  process.stderr.write(`  holders=${n}: ${JSON.stringify(scaling[String(n)])}\n`);
}
rows.push({ operation: "pay (direct deposit, 1 shard, 10,000 holders)", gas: scaling["10000"]!.deposit });
rows.push({
  operation: "claim 1 id (first claim)",
  gas: scaling["10000"]!.claimFirst,
  note: "writes the holder's fresh correction slot",
});
rows.push({ operation: "claim 1 id (repeat claim)", gas: scaling["10000"]!.claimRepeat });
rows.push({ operation: "shard transfer (1 revenue currency)", gas: scaling["10000"]!.transfer });
await record(
  "claim 2 ids",
  p.token.write.claim([[idOf(model, 0), idOf(model, 1)], usd.address], { account: trainerB.account }),
);

/* ANCHORS: paying the same holders one ERC-20 transfer each (push), and one plain transfer */

const { fanout, erc20Transfer } = await measureAnchors({
  viem,
  usd,
  payer,
  holdersOf,
  holderOfCurrency: trainerB.account.address,
  gasOf,
});

/* RECEIPTS */

// The deployer settles: it is the payee (the gateway) the escrow and the receipts name.
await record(
  "depositEscrow",
  p.settlement.write.depositEscrow([usd.address, deployer.account.address, 10n ** 15n], { account: payer.account }),
);
let nonce = 0n;
const perReceipt: Record<string, number> = {};
for (const size of RECEIPT_BATCHES) {
  const receipts = [];
  const signatures: Hex[] = [];
  const deadline = BigInt(await networkHelpers.time.latest()) + 3600n;
  for (let i = 0; i < size; i++) {
    const r = {
      modelId: model,
      currency: usd.address,
      payer: payer.account.address,
      payee: deployer.account.address,
      units: 1000n,
      pricePerUnit: 5n,
      nonce: nonce++,
      deadline,
    };
    receipts.push(r);
    signatures.push(
      await payer.signTypedData({
        account: payer.account,
        domain: settlementDomain(chainId, p.settlement.address),
        types: usageReceiptTypes,
        primaryType: "UsageReceipt",
        message: r,
      }),
    );
  }
  const gas = await gasOf(p.settlement.write.settle([receipts, signatures, true], { account: deployer.account }));
  perReceipt[String(size)] = Math.round(gas / size);
  rows.push({
    operation: `settle ${size} receipt(s), per receipt`,
    gas: perReceipt[String(size)]!,
    note: `total ${gas}`,
  });
}

/* REPORT */

const goals = [
  { goal: "commit <= 80,000", value: rows.find((r) => r.operation.startsWith("commit (first"))!.gas, limit: 80_000 },
  {
    goal: "commit (steady) <= 80,000",
    value: rows.find((r) => r.operation === "commit (relayed)")!.gas,
    limit: 80_000,
  },
  { goal: "claim of one id <= 60,000 (repeat)", value: scaling["10000"]!.claimRepeat, limit: 60_000 },
  { goal: "claim of one id <= 60,000 (first)", value: scaling["10000"]!.claimFirst, limit: 60_000 },
  { goal: "settlement <= 20,000 per receipt at 100", value: perReceipt["100"]!, limit: 20_000 },
  {
    goal: "deposit constant in holders (10,000 vs 1)",
    value: scaling["10000"]!.deposit - scaling["1"]!.deposit,
    limit: 0,
  },
  {
    goal: "claim constant in holders (10,000 vs 1)",
    value: scaling["10000"]!.claimRepeat - scaling["1"]!.claimRepeat,
    limit: 0,
  },
].map((g) => ({ ...g, met: g.value <= g.limit }));

await report(
  "gas",
  [
    {
      title: "\nGas per operation",
      rows: rows.map((r) => ({ operation: r.operation, gas: r.gas, note: r.note ?? "" })),
    },
    {
      title: "Deposit and claim against holders of the shard",
      rows: Object.entries(scaling).map(([holders, s]) => ({
        holders,
        "pay (deposit)": s.deposit,
        "claim (first)": s.claimFirst,
        "claim (repeat)": s.claimRepeat,
        transfer: s.transfer,
      })),
    },
    {
      title: `Paying the same holders one ERC-20 transfer each (Multicall3, ${FANOUT_CHUNK} transfers a transaction)`,
      rows: Object.values(fanout).map((f) => ({
        holders: f.holders,
        transactions: f.transactions,
        "gas (fresh holders)": f.first,
        "gas (repeat)": f.repeat,
        "per holder (repeat)": f.perHolderRepeat,
        "deposit / fan-out": (scaling[String(f.holders)]!.deposit / f.repeat).toFixed(4),
      })),
    },
    `One ERC-20 transfer transaction (recipient already holds the currency): ${erc20Transfer} gas`,
    { title: "Goals", rows: goals },
  ],
  {
    date: new Date().toISOString(),
    chainId,
    operations: rows,
    holders: scaling,
    fanout: { method: `Multicall3 aggregate3, ${FANOUT_CHUNK} ERC-20 transfers a transaction`, byHolders: fanout },
    erc20Transfer,
    receipts: perReceipt,
    goals,
  },
);
