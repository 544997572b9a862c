import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getAddress, hashTypedData, parseEther, zeroAddress, type Address, type Hex } from "viem";

import { settlementDomain, usageReceiptTypes } from "../../scripts/lib/eip712.js";
import { networkHelpers, protocolFixture, tokenId, viem, type Fixture } from "../helpers/fixture.js";
import { addr, as, now, registerModel } from "../helpers/ledger.js";

const { assertions } = viem;

/** `SkipReason` of the settlement contract. */
const Skip = {
  Expired: 0,
  NonceUsed: 1,
  BadSignature: 2,
  InsufficientEscrow: 3,
  CurrencyNotAccepted: 4,
  ZeroAmount: 5,
  NoHolders: 6,
  WrongPayee: 7,
  DistributeFailed: 8,
};
const PAYER = 6;
/** The receipts' payee (a gateway): the only account that can settle them. */
const PAYEE = 9;
/** Neither payer nor payee. */
const OTHER = 8;
const DELAY = 86_400n;
const ESCROW = 10_000_000n;

interface Receipt {
  modelId: bigint;
  currency: Address;
  payer: Address;
  payee: Address;
  units: bigint;
  pricePerUnit: bigint;
  nonce: bigint;
  deadline: bigint;
}

const receiptTypes = usageReceiptTypes;

async function domainOf(f: Fixture) {
  return settlementDomain(await f.publicClient.getChainId(), f.settlement.address);
}

/** EIP-712 signature of `r` by wallet `signer`, in the settlement's domain unless overridden. */
async function signReceipt(
  f: Fixture,
  r: Receipt,
  signer = PAYER,
  domain: Partial<{ name: string; version: string; chainId: number; verifyingContract: Address }> = {},
): Promise<Hex> {
  const w = f.wallets[signer]!;
  return w.signTypedData({
    account: w.account,
    domain: { ...(await domainOf(f)), ...domain },
    types: receiptTypes,
    primaryType: "UsageReceipt",
    message: r,
  });
}

/**
 * The fixture with holders from genesis: shard 0 of model 1 held 300 by wallets[1] and 100 by
 * wallets[2], shard 1 held 100 by wallets[3]. Revenue R of model 1 thus pays 9R/16, 3R/16 and
 * R/4 to them. The payer (wallets[6]) has ESCROW USDC in escrow with the payee (wallets[9]).
 */
async function settlementFixture() {
  const f = await protocolFixture();
  await f.ledger.write.allocateGenesis([1n, 0, [addr(f, 1), addr(f, 2)], [300n, 100n]]);
  await f.ledger.write.allocateGenesis([1n, 1, [addr(f, 3)], [100n]]);
  await f.usdc.write.approve([f.settlement.address, ESCROW], as(f, PAYER));
  await f.settlement.write.depositEscrow([f.usdc.address, addr(f, PAYEE), ESCROW], as(f, PAYER));
  return f;
}

const setup = () => networkHelpers.loadFixture(settlementFixture);

let nextNonce = 1n;
/** A receipt of the payer to the payee for model 1 in USDC: 1,000 units at 400 = 400,000. */
async function receipt(f: Fixture, overrides: Partial<Receipt> = {}): Promise<Receipt> {
  return {
    modelId: 1n,
    currency: f.usdc.address,
    payer: addr(f, PAYER),
    payee: addr(f, PAYEE),
    units: 1000n,
    pricePerUnit: 400n,
    nonce: nextNonce++,
    deadline: (await now()) + 3600n,
    ...overrides,
  };
}

/** What each genesis holder of model 1 can claim in `currency`. */
async function claimables(f: Fixture, currency: Address) {
  return [
    await f.token.read.claimable([tokenId(1n, 0), currency, addr(f, 1)]),
    await f.token.read.claimable([tokenId(1n, 0), currency, addr(f, 2)]),
    await f.token.read.claimable([tokenId(1n, 1), currency, addr(f, 3)]),
  ];
}

/** The holders' shares of `amount` of model 1 revenue (amount divisible by 16). */
const shares = (amount: bigint) => [(amount * 9n) / 16n, (amount * 3n) / 16n, amount / 4n];

/** A snapshot of everything a settlement can change, to compare before and after. */
async function snapshot(f: Fixture, nonces: bigint[]) {
  return {
    escrow: await f.settlement.read.escrowOf([addr(f, PAYER), addr(f, PAYEE), f.usdc.address]),
    settlementBalance: await f.usdc.read.balanceOf([f.settlement.address]),
    tokenBalance: await f.usdc.read.balanceOf([f.token.address]),
    claimable: await claimables(f, f.usdc.address),
    nonces: await Promise.all(nonces.map((n) => f.settlement.read.nonceUsed([addr(f, PAYER), addr(f, PAYEE), n]))),
  };
}

describe("InferenceSettlement.pay", () => {
  it("pays a model directly and credits the shard holders' claimable revenue", async () => {
    const f = await setup();
    const payer = addr(f, 8);
    await f.usdc.write.approve([f.settlement.address, 4_000_000n], as(f, 8));
    const tokenBefore = await f.usdc.read.balanceOf([f.token.address]);
    const hash = await f.settlement.write.pay([1n, f.usdc.address, 4_000_000n], as(f, 8));
    await assertions.emitWithArgs(hash, f.settlement, "ModelPaid", [1n, payer, f.usdc.address, 4_000_000n]);
    await assertions.emitWithArgs(hash, f.token, "ModelRevenueDistributed", [1n, f.usdc.address, 4_000_000n]);
    assert.equal((await f.usdc.read.balanceOf([f.token.address])) - tokenBefore, 4_000_000n);
    assert.deepEqual(await claimables(f, f.usdc.address), [2_250_000n, 750_000n, 1_000_000n]);
    // The holder claims exactly that.
    const before = await f.usdc.read.balanceOf([addr(f, 1)]);
    await f.token.write.claim([[tokenId(1n, 0)], f.usdc.address], as(f, 1));
    assert.equal((await f.usdc.read.balanceOf([addr(f, 1)])) - before, 2_250_000n);
  });

  it("reverts CurrencyNotAccepted for a currency the model does not accept", async () => {
    const f = await setup();
    await f.stake.write.approve([f.settlement.address, 1000n], as(f, 8));
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.pay([1n, f.stake.address, 1000n], as(f, 8)),
      f.settlement,
      "CurrencyNotAccepted",
      [1n, f.stake.address],
    );
  });

  it("reverts ZeroAmount for a zero payment", async () => {
    const f = await setup();
    await assertions.revertWithCustomError(
      f.settlement.write.pay([1n, f.usdc.address, 0n], as(f, 8)),
      f.settlement,
      "ZeroAmount",
    );
  });

  it("reverts NoHolders (from the token) for a model nobody holds yet", async () => {
    const f = await setup();
    const m2 = await registerModel(f, { shardWeights: [1n] });
    await f.usdc.write.approve([f.settlement.address, 1000n], as(f, 8));
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.pay([m2, f.usdc.address, 1000n], as(f, 8)),
      f.token,
      "NoHolders",
      [m2],
    );
  });
});

describe("InferenceSettlement escrow", () => {
  it("deposits, emitting EscrowDeposited", async () => {
    const f = await setup();
    const payer = addr(f, 8);
    await f.dai.write.approve([f.settlement.address, parseEther("5")], as(f, 8));
    await assertions.emitWithArgs(
      f.settlement.write.depositEscrow([f.dai.address, addr(f, PAYEE), parseEther("5")], as(f, 8)),
      f.settlement,
      "EscrowDeposited",
      [payer, addr(f, PAYEE), f.dai.address, parseEther("5")],
    );
    assert.deepEqual(await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.dai.address]), {
      balance: parseEther("5"),
      withdrawing: 0n,
      unlockAt: 0n,
    });
    assert.equal(await f.dai.read.balanceOf([f.settlement.address]), parseEther("5"));
  });

  it("reverts ZeroAmount and ZeroAddress on deposit", async () => {
    const f = await setup();
    await assertions.revertWithCustomError(
      f.settlement.write.depositEscrow([f.usdc.address, addr(f, PAYEE), 0n], as(f, 8)),
      f.settlement,
      "ZeroAmount",
    );
    await assertions.revertWithCustomError(
      f.settlement.write.depositEscrow([zeroAddress, addr(f, PAYEE), 1n], as(f, 8)),
      f.settlement,
      "ZeroAddress",
    );
    await assertions.revertWithCustomError(
      f.settlement.write.depositEscrow([f.usdc.address, zeroAddress, 1n], as(f, 8)),
      f.settlement,
      "ZeroAddress",
    );
  });

  it("requests a withdrawal, locks it for the delay, then pays it out", async () => {
    const f = await setup();
    const payer = addr(f, PAYER);
    assert.equal(await f.settlement.read.withdrawalDelay(), DELAY);
    const t = (await now()) + 10n;
    await networkHelpers.time.setNextBlockTimestamp(t);
    await assertions.emitWithArgs(
      f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), 3_000_000n], as(f, PAYER)),
      f.settlement,
      "EscrowWithdrawalRequested",
      [payer, addr(f, PAYEE), f.usdc.address, 3_000_000n, t + DELAY],
    );
    assert.deepEqual(await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address]), {
      balance: ESCROW - 3_000_000n,
      withdrawing: 3_000_000n,
      unlockAt: t + DELAY,
    });

    await networkHelpers.time.setNextBlockTimestamp(t + DELAY - 1n);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, PAYEE)], as(f, PAYER)),
      f.settlement,
      "WithdrawalLocked",
      [payer, f.usdc.address, t + DELAY],
    );

    const before = await f.usdc.read.balanceOf([payer]);
    await networkHelpers.time.setNextBlockTimestamp(t + DELAY);
    await assertions.emitWithArgs(
      f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, PAYEE)], as(f, PAYER)),
      f.settlement,
      "EscrowWithdrawn",
      [payer, addr(f, PAYEE), f.usdc.address, 3_000_000n],
    );
    assert.equal((await f.usdc.read.balanceOf([payer])) - before, 3_000_000n);
    assert.equal((await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address])).withdrawing, 0n);
    assert.equal(
      (await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address])).balance,
      ESCROW - 3_000_000n,
    );
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, PAYEE)], as(f, PAYER)),
      f.settlement,
      "NothingToWithdraw",
      [payer, f.usdc.address],
    );
  });

  it("a second request adds to the amount and restarts the delay", async () => {
    const f = await setup();
    const payer = addr(f, PAYER);
    await f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), 1_000_000n], as(f, PAYER));
    await networkHelpers.time.increase(DELAY / 2n);
    const t = (await now()) + 1n;
    await networkHelpers.time.setNextBlockTimestamp(t);
    await f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), 2_000_000n], as(f, PAYER));
    const e = await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address]);
    assert.equal(e.withdrawing, 3_000_000n);
    assert.equal(e.unlockAt, t + DELAY);
    await networkHelpers.time.setNextBlockTimestamp(t + DELAY - 1n);
    await assertions.revertWithCustomError(
      f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, PAYEE)], as(f, PAYER)),
      f.settlement,
      "WithdrawalLocked",
    );
  });

  it("reverts NothingToWithdraw without a request", async () => {
    const f = await setup();
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, PAYEE)], as(f, PAYER)),
      f.settlement,
      "NothingToWithdraw",
      [addr(f, PAYER), f.usdc.address],
    );
  });

  it("reverts InsufficientEscrow and ZeroAmount on a withdrawal request", async () => {
    const f = await setup();
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), ESCROW + 1n], as(f, PAYER)),
      f.settlement,
      "InsufficientEscrow",
      [addr(f, PAYER), f.usdc.address, ESCROW + 1n, ESCROW],
    );
    await assertions.revertWithCustomError(
      f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), 0n], as(f, PAYER)),
      f.settlement,
      "ZeroAmount",
    );
    // What is already withdrawing cannot be requested again.
    await f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), ESCROW], as(f, PAYER));
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), 1n], as(f, PAYER)),
      f.settlement,
      "InsufficientEscrow",
      [addr(f, PAYER), f.usdc.address, 1n, 0n],
    );
  });

  it("escrow under withdrawal can still be drawn by receipts, free balance first", async () => {
    const f = await setup();
    const payer = addr(f, PAYER);
    await f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), ESCROW - 200_000n], as(f, PAYER));
    // 400,000 due: 200,000 from the balance, 200,000 from the amount withdrawing.
    const r = await receipt(f);
    await f.settlement.write.settle([[r], [await signReceipt(f, r)], true], as(f, PAYEE));
    const e = await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address]);
    assert.equal(e.balance, 0n);
    assert.equal(e.withdrawing, ESCROW - 400_000n);
    assert.deepEqual(await claimables(f, f.usdc.address), shares(400_000n));

    await networkHelpers.time.increase(DELAY);
    const before = await f.usdc.read.balanceOf([payer]);
    await f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, PAYEE)], as(f, PAYER));
    assert.equal((await f.usdc.read.balanceOf([payer])) - before, ESCROW - 400_000n);
    assert.equal(await f.usdc.read.balanceOf([f.settlement.address]), 0n);
  });

  it("receipts that draw the whole withdrawal leave NothingToWithdraw", async () => {
    const f = await setup();
    await f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, PAYEE), ESCROW], as(f, PAYER));
    const r = await receipt(f, { units: 1n, pricePerUnit: ESCROW });
    await f.settlement.write.settle([[r], [await signReceipt(f, r)], true], as(f, PAYEE));
    await networkHelpers.time.increase(DELAY);
    await assertions.revertWithCustomError(
      f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, PAYEE)], as(f, PAYER)),
      f.settlement,
      "NothingToWithdraw",
    );
  });
});

describe("InferenceSettlement.settle", () => {
  it("hashes receipts with the EIP-712 domain of the settlement contract", async () => {
    const f = await setup();
    const r = await receipt(f);
    assert.equal(
      await f.settlement.read.hashReceipt([r]),
      hashTypedData({ domain: await domainOf(f), types: receiptTypes, primaryType: "UsageReceipt", message: r }),
    );
  });

  it("settles a batch sent by its payee, crediting the holders, not the payee", async () => {
    const f = await setup();
    const payer = addr(f, PAYER);
    const r1 = await receipt(f);
    const r2 = await receipt(f, { units: 3n, pricePerUnit: 800_000n });
    const args = [[r1, r2], [await signReceipt(f, r1), await signReceipt(f, r2)], true] as const;
    const { result } = await f.settlement.simulate.settle(args, { account: addr(f, PAYEE) });
    assert.deepEqual(result, [2n, 2_800_000n]);

    const payeeBefore = await f.usdc.read.balanceOf([addr(f, PAYEE)]);
    const hash = await f.settlement.write.settle(args, as(f, PAYEE));
    await assertions.emitWithArgs(hash, f.settlement, "ReceiptSettled", [
      payer,
      1n,
      f.usdc.address,
      r1.nonce,
      1000n,
      400_000n,
    ]);
    await assertions.emitWithArgs(hash, f.settlement, "ReceiptSettled", [
      payer,
      1n,
      f.usdc.address,
      r2.nonce,
      3n,
      2_400_000n,
    ]);
    // One distribution for the (model, currency) bucket.
    await assertions.emitWithArgs(hash, f.token, "ModelRevenueDistributed", [1n, f.usdc.address, 2_800_000n]);
    assert.equal(
      (await f.token.getEvents.ModelRevenueDistributed({}, { blockHash: (await receiptOf(f, hash)).blockHash })).length,
      1,
    );

    assert.equal(
      (await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address])).balance,
      ESCROW - 2_800_000n,
    );
    assert.equal(await f.usdc.read.balanceOf([f.settlement.address]), ESCROW - 2_800_000n);
    assert.equal(await f.usdc.read.balanceOf([f.token.address]), 2_800_000n);
    assert.deepEqual(await claimables(f, f.usdc.address), shares(2_800_000n));
    assert.equal(await f.settlement.read.nonceUsed([payer, addr(f, PAYEE), r1.nonce]), true);
    assert.equal(await f.settlement.read.nonceUsed([payer, addr(f, PAYEE), r2.nonce]), true);
    // The payee is not paid by the protocol and pays nothing: the revenue goes to the holders.
    assert.equal(await f.usdc.read.balanceOf([addr(f, PAYEE)]), payeeBefore);
  });

  it("replay of a settled receipt: NonceAlreadyUsed (strict), ReceiptSkipped NonceUsed (lenient)", async () => {
    const f = await setup();
    const r = await receipt(f);
    const sig = await signReceipt(f, r);
    await f.settlement.write.settle([[r], [sig], true], as(f, PAYEE));
    const before = await snapshot(f, [r.nonce]);

    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[r], [sig], true], as(f, PAYEE)),
      f.settlement,
      "NonceAlreadyUsed",
      [r.payer, r.nonce],
    );
    const { result } = await f.settlement.simulate.settle([[r], [sig], false], { account: addr(f, PAYEE) });
    assert.deepEqual(result, [0n, 0n]);
    await assertions.emitWithArgs(
      f.settlement.write.settle([[r], [sig], false], as(f, PAYEE)),
      f.settlement,
      "ReceiptSkipped",
      [r.payer, r.nonce, Skip.NonceUsed],
    );
    assert.deepEqual(await snapshot(f, [r.nonce]), before);
  });

  it("the same receipt twice in one lenient batch settles once", async () => {
    const f = await setup();
    const r = await receipt(f);
    const sig = await signReceipt(f, r);
    const { result } = await f.settlement.simulate.settle([[r, r], [sig, sig], false], { account: addr(f, PAYEE) });
    assert.deepEqual(result, [1n, 400_000n]);
    await assertions.emitWithArgs(
      f.settlement.write.settle([[r, r], [sig, sig], false], as(f, PAYEE)),
      f.settlement,
      "ReceiptSkipped",
      [r.payer, r.nonce, Skip.NonceUsed],
    );
    assert.equal(
      (await f.settlement.read.escrowOf([r.payer, addr(f, PAYEE), f.usdc.address])).balance,
      ESCROW - 400_000n,
    );
  });

  it("reverts ReceiptExpired after the deadline (and settles at the deadline)", async () => {
    const f = await setup();
    const t = (await now()) + 100n;
    const r = await receipt(f, { deadline: t });
    const sig = await signReceipt(f, r);
    await networkHelpers.time.setNextBlockTimestamp(t + 1n);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[r], [sig], true], as(f, PAYEE)),
      f.settlement,
      "ReceiptExpired",
      [r.payer, r.nonce, t],
    );
    await assertions.emitWithArgs(
      f.settlement.write.settle([[r], [sig], false], as(f, PAYEE)),
      f.settlement,
      "ReceiptSkipped",
      [r.payer, r.nonce, Skip.Expired],
    );
    assert.equal(await f.settlement.read.nonceUsed([r.payer, r.payee, r.nonce]), false);

    const onTime = await receipt(f, { deadline: (await now()) + 10n });
    await networkHelpers.time.setNextBlockTimestamp(onTime.deadline);
    await f.settlement.write.settle([[onTime], [await signReceipt(f, onTime)], true], as(f, PAYEE));
    assert.equal(await f.settlement.read.nonceUsed([onTime.payer, onTime.payee, onTime.nonce]), true);
  });

  it("reverts InvalidReceiptSignature for a wrong signer or altered fields", async () => {
    const f = await setup();
    const r = await receipt(f);
    const byOther = await signReceipt(f, r, 5);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[r], [byOther], true], as(f, PAYEE)),
      f.settlement,
      "InvalidReceiptSignature",
      [r.payer, r.nonce],
    );
    await assertions.emitWithArgs(
      f.settlement.write.settle([[r], [byOther], false], as(f, PAYEE)),
      f.settlement,
      "ReceiptSkipped",
      [r.payer, r.nonce, Skip.BadSignature],
    );
    const sig = await signReceipt(f, r);
    for (const altered of [
      { ...r, units: r.units + 1n },
      { ...r, pricePerUnit: r.pricePerUnit + 1n },
      { ...r, deadline: r.deadline + 1n },
      { ...r, currency: f.dai.address },
    ]) {
      await assertions.revertWithCustomErrorWithArgs(
        f.settlement.write.settle([[altered], [sig], true], as(f, PAYEE)),
        f.settlement,
        "InvalidReceiptSignature",
        [r.payer, r.nonce],
      );
    }
    // The payee is signed too: another account cannot name itself payee of the payer's receipt.
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[{ ...r, payee: addr(f, OTHER) }], [sig], true], as(f, OTHER)),
      f.settlement,
      "InvalidReceiptSignature",
      [r.payer, r.nonce],
    );
    // A malformed signature is a bad signature too, not a revert from ECDSA.
    await assertions.revertWithCustomError(
      f.settlement.write.settle([[r], ["0xdead"], true], as(f, PAYEE)),
      f.settlement,
      "InvalidReceiptSignature",
    );
    // A receipt "from" another payer, signed by someone else, cannot draw on that payer's escrow.
    const stolen = { ...r, payer: addr(f, 5) };
    await assertions.revertWithCustomError(
      f.settlement.write.settle([[stolen], [await signReceipt(f, stolen)], true], as(f, PAYEE)),
      f.settlement,
      "InvalidReceiptSignature",
    );
    await f.settlement.write.settle([[r], [sig], true], as(f, PAYEE));
  });

  it("rejects a signature for another chain id, another verifying contract or another domain name", async () => {
    const f = await setup();
    const r = await receipt(f);
    const chainId = await f.publicClient.getChainId();
    const foreign = [
      await signReceipt(f, r, PAYER, { chainId: chainId + 1 }),
      await signReceipt(f, r, PAYER, { verifyingContract: f.ledger.address }),
      await signReceipt(f, r, PAYER, { name: "ShardProtocol ContributionLedger" }),
      await signReceipt(f, r, PAYER, { version: "2" }),
    ];
    for (const sig of foreign) {
      await assertions.revertWithCustomErrorWithArgs(
        f.settlement.write.settle([[r], [sig], true], as(f, PAYEE)),
        f.settlement,
        "InvalidReceiptSignature",
        [r.payer, r.nonce],
      );
    }
    // A second deployment of the settlement contract rejects receipts signed for this one.
    const other = await viem.deployContract("InferenceSettlement", [f.registry.address, f.token.address, DELAY]);
    await f.usdc.write.approve([other.address, ESCROW], as(f, PAYER));
    await other.write.depositEscrow([f.usdc.address, addr(f, PAYEE), ESCROW], as(f, PAYER));
    await assertions.revertWithCustomErrorWithArgs(
      other.write.settle([[r], [await signReceipt(f, r)], true], as(f, PAYEE)),
      other,
      "InvalidReceiptSignature",
      [r.payer, r.nonce],
    );
  });

  it("reverts InsufficientEscrow when the escrow cannot cover a receipt", async () => {
    const f = await setup();
    const r = await receipt(f, { units: 1n, pricePerUnit: ESCROW + 1n });
    const sig = await signReceipt(f, r);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[r], [sig], true], as(f, PAYEE)),
      f.settlement,
      "InsufficientEscrow",
      [r.payer, f.usdc.address, ESCROW + 1n, ESCROW],
    );
    await assertions.emitWithArgs(
      f.settlement.write.settle([[r], [sig], false], as(f, PAYEE)),
      f.settlement,
      "ReceiptSkipped",
      [r.payer, r.nonce, Skip.InsufficientEscrow],
    );
    // Escrow in another currency does not count.
    const dai = await receipt(f, { currency: f.dai.address, units: 1n, pricePerUnit: 1n });
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[dai], [await signReceipt(f, dai)], true], as(f, PAYEE)),
      f.settlement,
      "InsufficientEscrow",
      [r.payer, f.dai.address, 1n, 0n],
    );
  });

  it("reverts CurrencyNotAccepted and ZeroAmount for such receipts", async () => {
    const f = await setup();
    const stake = await receipt(f, { currency: f.stake.address });
    const sigStake = await signReceipt(f, stake);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[stake], [sigStake], true], as(f, PAYEE)),
      f.settlement,
      "CurrencyNotAccepted",
      [1n, f.stake.address],
    );
    const zero = await receipt(f, { units: 0n });
    const sigZero = await signReceipt(f, zero);
    await assertions.revertWithCustomError(
      f.settlement.write.settle([[zero], [sigZero], true], as(f, PAYEE)),
      f.settlement,
      "ZeroAmount",
    );
    const hash = await f.settlement.write.settle([[stake, zero], [sigStake, sigZero], false], as(f, PAYEE));
    await assertions.emitWithArgs(hash, f.settlement, "ReceiptSkipped", [
      stake.payer,
      stake.nonce,
      Skip.CurrencyNotAccepted,
    ]);
    await assertions.emitWithArgs(hash, f.settlement, "ReceiptSkipped", [zero.payer, zero.nonce, Skip.ZeroAmount]);
  });

  it("a lenient batch with one bad receipt settles the rest with exact amounts", async () => {
    const f = await setup();
    const good1 = await receipt(f, { units: 10n, pricePerUnit: 16_000n }); // 160,000
    const bad = await receipt(f, { units: 5n });
    const good2 = await receipt(f, { units: 2n, pricePerUnit: 320_000n }); // 640,000
    const sigs = [await signReceipt(f, good1), await signReceipt(f, bad, 5), await signReceipt(f, good2)];
    const args = [[good1, bad, good2], sigs, false] as const;
    const { result } = await f.settlement.simulate.settle(args, { account: addr(f, PAYEE) });
    assert.deepEqual(result, [2n, 800_000n]);

    const hash = await f.settlement.write.settle(args, as(f, PAYEE));
    await assertions.emitWithArgs(hash, f.settlement, "ReceiptSkipped", [bad.payer, bad.nonce, Skip.BadSignature]);
    await assertions.emitWithArgs(hash, f.settlement, "ReceiptSettled", [
      good2.payer,
      1n,
      f.usdc.address,
      good2.nonce,
      2n,
      640_000n,
    ]);
    assert.equal(
      (await f.settlement.read.escrowOf([bad.payer, addr(f, PAYEE), f.usdc.address])).balance,
      ESCROW - 800_000n,
    );
    assert.equal(await f.usdc.read.balanceOf([f.token.address]), 800_000n);
    assert.deepEqual(await claimables(f, f.usdc.address), shares(800_000n));
    assert.deepEqual(
      await Promise.all([good1, bad, good2].map((r) => f.settlement.read.nonceUsed([r.payer, r.payee, r.nonce]))),
      [true, false, true],
    );
  });

  it("a strict batch with one bad receipt reverts whole and changes nothing", async () => {
    const f = await setup();
    const good1 = await receipt(f);
    const bad = await receipt(f, { deadline: (await now()) - 1n });
    const good2 = await receipt(f);
    const before = await snapshot(f, [good1.nonce, bad.nonce, good2.nonce]);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle(
        [
          [good1, bad, good2],
          [await signReceipt(f, good1), await signReceipt(f, bad), await signReceipt(f, good2)],
          true,
        ],
        as(f, PAYEE),
      ),
      f.settlement,
      "ReceiptExpired",
      [bad.payer, bad.nonce, bad.deadline],
    );
    assert.deepEqual(await snapshot(f, [good1.nonce, bad.nonce, good2.nonce]), before);
  });

  it("skips (lenient) or reverts NoHolders (strict) for a model nobody holds yet, settling the rest", async () => {
    const f = await setup();
    const payer = addr(f, PAYER);
    const m2 = await registerModel(f, { shardWeights: [1n] });
    const orphan = await receipt(f, { modelId: m2 });
    const good = await receipt(f);
    const sigs = [await signReceipt(f, orphan), await signReceipt(f, good)];
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[orphan, good], sigs, true], as(f, PAYEE)),
      f.settlement,
      "NoHolders",
      [m2],
    );
    await assertions.emitWithArgs(
      f.settlement.write.settle([[orphan, good], sigs, false], as(f, PAYEE)),
      f.settlement,
      "ReceiptSkipped",
      [payer, orphan.nonce, Skip.NoHolders],
    );
    assert.equal(await f.settlement.read.nonceUsed([payer, orphan.payee, orphan.nonce]), false);
    assert.equal(await f.settlement.read.nonceUsed([payer, good.payee, good.nonce]), true);
    assert.equal(
      (await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address])).balance,
      ESCROW - 400_000n,
    );
  });

  it("reverts LengthMismatch and EmptyBatch", async () => {
    const f = await setup();
    const r = await receipt(f);
    const sig = await signReceipt(f, r);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[r, r], [sig], false], as(f, PAYEE)),
      f.settlement,
      "LengthMismatch",
      [2n, 1n],
    );
    await assertions.revertWithCustomError(
      f.settlement.write.settle([[], [], false], as(f, PAYEE)),
      f.settlement,
      "EmptyBatch",
    );
  });

  it("a batch across two currencies and two models credits each correctly", async () => {
    const f = await setup();
    const payer = addr(f, PAYER);
    const m2 = await registerModel(f, { shardWeights: [1n], currencies: [f.dai.address] });
    await f.ledger.write.allocateGenesis([m2, 0, [addr(f, 4)], [10n]]);
    await f.dai.write.approve([f.settlement.address, parseEther("100")], as(f, PAYER));
    await f.settlement.write.depositEscrow([f.dai.address, addr(f, PAYEE), parseEther("100")], as(f, PAYER));

    const receipts = [
      await receipt(f), // m1 USDC 400,000
      await receipt(f, { currency: f.dai.address, units: 16n, pricePerUnit: parseEther("1") }), // m1 DAI 16
      await receipt(f, { modelId: m2, currency: f.dai.address, units: 5n, pricePerUnit: parseEther("1") }), // m2 DAI 5
      await receipt(f, { units: 2n, pricePerUnit: 200_000n }), // m1 USDC 400,000
    ];
    const sigs = await Promise.all(receipts.map((r) => signReceipt(f, r)));
    const { result } = await f.settlement.simulate.settle([receipts, sigs, true], { account: addr(f, PAYEE) });
    assert.deepEqual(result, [4n, 800_000n + parseEther("21")]);
    const hash = await f.settlement.write.settle([receipts, sigs, true], as(f, PAYEE));
    const distributed = await f.token.getEvents.ModelRevenueDistributed(
      {},
      { blockHash: (await receiptOf(f, hash)).blockHash },
    );
    assert.deepEqual(
      distributed.map((e: (typeof distributed)[number]) => [
        e.args.modelId,
        getAddress(e.args.currency!),
        e.args.amount,
      ]),
      [
        [1n, getAddress(f.usdc.address), 800_000n],
        [1n, getAddress(f.dai.address), parseEther("16")],
        [m2, getAddress(f.dai.address), parseEther("5")],
      ],
    );

    assert.equal(
      (await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address])).balance,
      ESCROW - 800_000n,
    );
    assert.equal((await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.dai.address])).balance, parseEther("79"));
    assert.deepEqual(await claimables(f, f.usdc.address), shares(800_000n));
    assert.deepEqual(await claimables(f, f.dai.address), shares(parseEther("16")));
    assert.equal(await f.token.read.claimable([tokenId(m2, 0), f.dai.address, addr(f, 4)]), parseEther("5"));
    // Model 2 got no USDC, and model 1's holders nothing of model 2's revenue.
    assert.equal(await f.token.read.claimable([tokenId(m2, 0), f.usdc.address, addr(f, 4)]), 0n);
    assert.equal(await f.usdc.read.balanceOf([f.token.address]), 800_000n);
    assert.equal(await f.dai.read.balanceOf([f.token.address]), parseEther("21"));
  });

  it("a receipt for a currency model 2 does not accept is refused even if model 1 accepts it", async () => {
    const f = await setup();
    const m2 = await registerModel(f, { shardWeights: [1n], currencies: [f.dai.address] });
    const r = await receipt(f, { modelId: m2 });
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[r], [await signReceipt(f, r)], true], as(f, PAYEE)),
      f.settlement,
      "CurrencyNotAccepted",
      [m2, f.usdc.address],
    );
  });
});

describe("InferenceSettlement: receipts and escrow bound to a payee", () => {
  it("only the payee settles: NotPayee (strict), ReceiptSkipped WrongPayee (lenient)", async () => {
    const f = await setup();
    const r = await receipt(f);
    const sig = await signReceipt(f, r);
    const before = await snapshot(f, [r.nonce]);
    // Neither a third party nor the payer itself can settle the payee's receipt.
    for (const caller of [OTHER, PAYER]) {
      await assertions.revertWithCustomErrorWithArgs(
        f.settlement.write.settle([[r], [sig], true], as(f, caller)),
        f.settlement,
        "NotPayee",
        [r.payee, addr(f, caller)],
      );
      const { result } = await f.settlement.simulate.settle([[r], [sig], false], { account: addr(f, caller) });
      assert.deepEqual(result, [0n, 0n]);
      await assertions.emitWithArgs(
        f.settlement.write.settle([[r], [sig], false], as(f, caller)),
        f.settlement,
        "ReceiptSkipped",
        [r.payer, r.nonce, Skip.WrongPayee],
      );
    }
    assert.deepEqual(await snapshot(f, [r.nonce]), before);
    // The payee settles it.
    await f.settlement.write.settle([[r], [sig], true], as(f, PAYEE));
    assert.equal(await f.settlement.read.nonceUsed([r.payer, r.payee, r.nonce]), true);
  });

  it("a receipt draws only on the escrow with its own payee", async () => {
    const f = await setup();
    const payer = addr(f, PAYER);
    // A receipt to another payee finds no escrow there, though the payer has escrow with PAYEE.
    const r = await receipt(f, { payee: addr(f, OTHER) });
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([[r], [await signReceipt(f, r)], true], as(f, OTHER)),
      f.settlement,
      "InsufficientEscrow",
      [payer, f.usdc.address, 400_000n, 0n],
    );
    // With escrow of its own, the other payee draws on that alone.
    await f.usdc.write.approve([f.settlement.address, 1_000_000n], as(f, PAYER));
    await f.settlement.write.depositEscrow([f.usdc.address, addr(f, OTHER), 1_000_000n], as(f, PAYER));
    await f.settlement.write.settle([[r], [await signReceipt(f, r)], true], as(f, OTHER));
    assert.equal((await f.settlement.read.escrowOf([payer, addr(f, OTHER), f.usdc.address])).balance, 600_000n);
    assert.equal((await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address])).balance, ESCROW);
    assert.deepEqual(await claimables(f, f.usdc.address), shares(400_000n));
    // Withdrawals are per payee too.
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, OTHER), 600_001n], as(f, PAYER)),
      f.settlement,
      "InsufficientEscrow",
      [payer, f.usdc.address, 600_001n, 600_000n],
    );
    await f.settlement.write.requestEscrowWithdrawal([f.usdc.address, addr(f, OTHER), 600_000n], as(f, PAYER));
    await networkHelpers.time.increase(DELAY);
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, PAYEE)], as(f, PAYER)),
      f.settlement,
      "NothingToWithdraw",
      [payer, f.usdc.address],
    );
    const before = await f.usdc.read.balanceOf([payer]);
    await f.settlement.write.withdrawEscrow([f.usdc.address, addr(f, OTHER)], as(f, PAYER));
    assert.equal((await f.usdc.read.balanceOf([payer])) - before, 600_000n);
    assert.equal((await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.usdc.address])).balance, ESCROW);
  });

  it("a lenient batch undoes the bucket whose distribution reverts (DistributeFailed) and settles the rest", async () => {
    const f = await setup();
    const payer = addr(f, PAYER);
    // More than the accumulators of both shards (supplies 400 and 100) take at once (over
    // 2**62 per token wei): the token refuses it.
    const huge = 10n ** 22n;
    await f.usdc.write.mint([payer, huge]);
    await f.usdc.write.approve([f.settlement.address, huge], as(f, PAYER));
    await f.settlement.write.depositEscrow([f.usdc.address, addr(f, PAYEE), huge], as(f, PAYER));
    await f.dai.write.approve([f.settlement.address, parseEther("16")], as(f, PAYER));
    await f.settlement.write.depositEscrow([f.dai.address, addr(f, PAYEE), parseEther("16")], as(f, PAYER));

    const big = await receipt(f, { units: 1n, pricePerUnit: huge });
    const small = await receipt(f); // same (model, USDC) bucket: undone with it
    const dai = await receipt(f, { currency: f.dai.address, units: 16n, pricePerUnit: parseEther("1") });
    const receipts = [big, small, dai];
    const sigs = await Promise.all(receipts.map((r) => signReceipt(f, r)));
    const before = await snapshot(f, [big.nonce, small.nonce]);

    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.settle([receipts, sigs, true], as(f, PAYEE)),
      f.token,
      "NoHolders",
      [1n],
    );
    const { result } = await f.settlement.simulate.settle([receipts, sigs, false], { account: addr(f, PAYEE) });
    assert.deepEqual(result, [1n, parseEther("16")]);
    const hash = await f.settlement.write.settle([receipts, sigs, false], as(f, PAYEE));
    await assertions.emitWithArgs(hash, f.settlement, "ReceiptSkipped", [payer, big.nonce, Skip.DistributeFailed]);
    await assertions.emitWithArgs(hash, f.settlement, "ReceiptSkipped", [payer, small.nonce, Skip.DistributeFailed]);
    // The USDC receipts are undone: escrow, balances, claimables and nonces as before.
    assert.deepEqual(await snapshot(f, [big.nonce, small.nonce]), before);
    // The DAI bucket went through.
    assert.equal(await f.settlement.read.nonceUsed([payer, dai.payee, dai.nonce]), true);
    assert.deepEqual(await claimables(f, f.dai.address), shares(parseEther("16")));
    assert.equal((await f.settlement.read.escrowOf([payer, addr(f, PAYEE), f.dai.address])).balance, 0n);
    // The undone receipt can be settled later on its own.
    await f.settlement.write.settle([[small], [sigs[1]!], true], as(f, PAYEE));
    assert.deepEqual(await claimables(f, f.usdc.address), shares(400_000n));
  });

  it("distributeBucket is only for the settlement itself (NotSelf)", async () => {
    const f = await setup();
    await assertions.revertWithCustomErrorWithArgs(
      f.settlement.write.distributeBucket([1n, f.usdc.address, 1n], as(f, PAYEE)),
      f.settlement,
      "NotSelf",
      [addr(f, PAYEE)],
    );
  });
});

const receiptOf = (f: Fixture, hash: Hex) => f.publicClient.getTransactionReceipt({ hash });
