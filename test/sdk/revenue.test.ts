import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getAddress, parseEther, type Address } from "viem";

import { ContractRevertError } from "../../sdk/errors/contract.js";
import { AccountRequiredError, InvalidParameterError } from "../../sdk/errors/validation.js";
import {
  commitAndReveal,
  makeCheckpoint,
  networkHelpers,
  pipelineDigests,
  stakeAs,
  tokenId,
} from "../helpers/fixture.js";
import { clientFor, PATHS, sdkFixture, type SdkFixture } from "./helpers.js";

/** Wallets 1 and 2 hold 3000 of shard 0 and 1000 of shard 1 of model 1 (weights 3:1). */
async function mintedFixture() {
  const f = await sdkFixture();
  const [t0, t1] = [f.wallets[1]!.account.address, f.wallets[2]!.account.address];
  await stakeAs(f, 1, 0);
  await stakeAs(f, 2, 0);
  const cp0 = makeCheckpoint(t0, { shard: 0, ...pipelineDigests(0, 2), workUnits: 3000n });
  const cp1 = makeCheckpoint(t1, { shard: 1, ...pipelineDigests(1, 2), workUnits: 1000n });
  await commitAndReveal(f, 1, cp0);
  await commitAndReveal(f, 2, cp1);
  await networkHelpers.time.increase(3601);
  await f.ledger.write.finalize([cp0]);
  await f.ledger.write.finalize([cp1]);
  return f;
}

const addr = (f: SdkFixture, i: number) => getAddress(f.wallets[i]!.account.address) as Address;

for (const path of PATHS) {
  describe(`revenue (${path})`, () => {
    it("pays a model directly, approving first; holders see and claim exact amounts", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      const payer = await clientFor(f, path, 6);
      await payer.pay({ modelId: 1n, currency: f.usdc.address, amount: 4_000_000n });
      const holder = await clientFor(f, path, 1);
      const due = await holder.getClaimable({ holder: addr(f, 1), modelId: 1n });
      assert.equal(due.byCurrency[getAddress(f.usdc.address)], 3_000_000n);
      assert.equal(due.byCurrency[getAddress(f.dai.address)], 0n);
      assert.deepEqual(due.byId, [{ id: tokenId(1n, 0), currency: getAddress(f.usdc.address), amount: 3_000_000n }]);
      const before = await f.usdc.read.balanceOf([addr(f, 1)]);
      const { claims, byCurrency } = await holder.claim({ modelId: 1n });
      assert.equal(claims.length, 1, "no transaction for a currency with nothing due");
      assert.equal(byCurrency[getAddress(f.usdc.address)], 3_000_000n);
      assert.equal((await f.usdc.read.balanceOf([addr(f, 1)])) - before, 3_000_000n);
      const after = await holder.getClaimable({ holder: addr(f, 1), modelId: 1n });
      assert.equal(after.byCurrency[getAddress(f.usdc.address)], 0n);
    });

    it("claims across several ids in one transaction per currency", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      await f.token.write.safeTransferFrom([addr(f, 1), addr(f, 3), tokenId(1n, 0), 1500n, "0x"], {
        account: f.wallets[1]!.account,
      });
      await f.token.write.safeTransferFrom([addr(f, 2), addr(f, 3), tokenId(1n, 1), 500n, "0x"], {
        account: f.wallets[2]!.account,
      });
      const payer = await clientFor(f, path, 6);
      await payer.pay({ modelId: 1n, currency: f.usdc.address, amount: 8_000_000n });
      await payer.pay({ modelId: 1n, currency: f.dai.address, amount: parseEther("4") });
      const holder = await clientFor(f, path, 3);
      const { claims, byCurrency } = await holder.claim({
        ids: [tokenId(1n, 0), tokenId(1n, 1)],
        currencies: [f.usdc.address, f.dai.address],
      });
      assert.equal(claims.length, 2);
      // Half of shard 0 (6/8 of revenue) and half of shard 1 (2/8): 3/8 + 1/8 = 1/2.
      assert.equal(byCurrency[getAddress(f.usdc.address)], 4_000_000n);
      assert.equal(byCurrency[getAddress(f.dai.address)], parseEther("2"));
    });

    it("revenue share and balances across models and shards", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      await f.token.write.safeTransferFrom([addr(f, 1), addr(f, 2), tokenId(1n, 0), 1000n, "0x"], {
        account: f.wallets[1]!.account,
      });
      const client = await clientFor(f, path, 2);
      const positions = await client.getBalances({ account: addr(f, 2) });
      assert.deepEqual(
        positions.map((p) => [p.modelId, p.shard, p.balance, p.supply, p.percentage]),
        [
          [1n, 0, 1000n, 3000n, 33.333333333333],
          [1n, 1, 1000n, 1000n, 100],
        ],
      );
      // 3/4 × 1/3 + 1/4 × 1 = 1/2.
      const share = await client.getRevenueShare({ account: addr(f, 2), modelId: 1n });
      assert.equal(share.shareWad, 5n * 10n ** 17n);
      assert.equal(share.percentage, 50);
      // And the share is what a payment actually delivers.
      await (await clientFor(f, path, 6)).pay({ modelId: 1n, currency: f.usdc.address, amount: 1_000_000n });
      const due = await client.getClaimable({ holder: addr(f, 2), modelId: 1n, currencies: [f.usdc.address] });
      assert.equal(due.byCurrency[getAddress(f.usdc.address)], 500_000n);
    });

    it("getHoldings per shard with claimable; transferShards moves tokens, the accrued revenue stays", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      await (await clientFor(f, path, 6)).pay({ modelId: 1n, currency: f.usdc.address, amount: 4_000_000n });
      const holder = await clientFor(f, path, 1);
      const { id } = await holder.transferShards({ modelId: 1n, shard: 0, to: addr(f, 3), amount: 1000n });
      assert.equal(id, tokenId(1n, 0));
      const usdc = getAddress(f.usdc.address);
      const view = (holdings: Awaited<ReturnType<typeof holder.getHoldings>>) =>
        holdings.map((m) => [
          m.modelId,
          m.shards.map((s) => [
            s.shard,
            s.balance,
            s.supply,
            s.percentage,
            Object.fromEntries(s.claimable.map((c) => [c.currency, c.amount]))[usdc],
          ]),
          m.claimable[usdc],
        ]);
      // Wallet 1 earned all of shard 0's 3 USDC before it sent a third of its tokens.
      assert.deepEqual(view(await holder.getHoldings({ account: addr(f, 1) })), [
        [1n, [[0, 2000n, 3000n, 66.666666666666, 3_000_000n]], 3_000_000n],
      ]);
      assert.deepEqual(view(await holder.getHoldings({ account: addr(f, 3), modelIds: [1n] })), [
        [1n, [[0, 1000n, 3000n, 33.333333333333, 0n]], 0n],
      ]);
      assert.deepEqual(await holder.getHoldings({ account: addr(f, 7) }), []);
      await assert.rejects(
        holder.transferShards({ modelId: 1n, shard: 0, to: addr(f, 3), amount: 2001n }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "ERC1155InsufficientBalance",
      );
      await assert.rejects(
        holder.transferShards({ modelId: 1n, shard: 0, to: addr(f, 3), amount: 0n }),
        (e: unknown) => e instanceof InvalidParameterError && e.issues[0]?.path === "amount",
      );
    });

    it("escrow, signed receipts, batch settlement: lenient skips the bad, strict reverts", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      const dapp = await clientFor(f, path, 6);
      const gateway = await clientFor(f, path, 8);
      const payee = addr(f, 8);
      await dapp.depositEscrow({ currency: f.usdc.address, payee, amount: 1_000_000n });
      const good = await dapp.signUsageReceipt({
        receipt: { modelId: 1n, currency: f.usdc.address, payee, units: 100n, pricePerUnit: 2_000n, nonce: 1n },
      });
      assert.deepEqual([good.receipt.payer, good.receipt.payee], [addr(f, 6), payee]);
      const tooBig = await dapp.signUsageReceipt({
        receipt: { modelId: 1n, currency: f.usdc.address, payee, units: 1000n, pricePerUnit: 2_000n, nonce: 2n },
      });
      await assert.rejects(
        gateway.settleReceipts({ receipts: [good, tooBig], strict: true }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "InsufficientEscrow",
      );
      const result = await gateway.settleReceipts({ receipts: [good, tooBig] });
      assert.equal(result.total, 200_000n);
      assert.deepEqual(
        result.settled.map((s) => [s.payer, s.nonce, s.amount]),
        [[addr(f, 6), 1n, 200_000n]],
      );
      assert.deepEqual(result.skipped, [{ payer: addr(f, 6), nonce: 2n, reason: "InsufficientEscrow" }]);
      assert.equal((await dapp.getEscrow({ payer: addr(f, 6), payee, currency: f.usdc.address })).balance, 800_000n);
      // A receipt never settles twice.
      await assert.rejects(
        gateway.settleReceipts({ receipts: [good], strict: true }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "NonceAlreadyUsed",
      );
      const again = await gateway.settleReceipts({ receipts: [good] });
      assert.deepEqual(again.skipped, [{ payer: addr(f, 6), nonce: 1n, reason: "NonceUsed" }]);
      assert.equal(again.total, 0n);
      // The revenue reached the holders by weight.
      const holder = await clientFor(f, path, 1);
      const due = await holder.getClaimable({ holder: addr(f, 1), modelId: 1n, currencies: [f.usdc.address] });
      assert.equal(due.byCurrency[getAddress(f.usdc.address)], 150_000n);
    });

    it("a receipt signed by someone else than its payer is rejected", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      const dapp = await clientFor(f, path, 6);
      const gateway = await clientFor(f, path, 8);
      const payee = addr(f, 8);
      await dapp.depositEscrow({ currency: f.usdc.address, payee, amount: 1_000_000n });
      const signed = await dapp.signUsageReceipt({
        receipt: { modelId: 1n, currency: f.usdc.address, payee, units: 1n, pricePerUnit: 1n },
      });
      const forged = { ...signed, receipt: { ...signed.receipt, units: 2n } };
      await assert.rejects(
        gateway.settleReceipts({ receipts: [forged], strict: true }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "InvalidReceiptSignature",
      );
    });

    it("only the payee settles, from the payer's escrow with it", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      const dapp = await clientFor(f, path, 6);
      const gateway = await clientFor(f, path, 8);
      const payee = addr(f, 8);
      await dapp.depositEscrow({ currency: f.usdc.address, payee, amount: 1_000_000n });
      const signed = await dapp.signUsageReceipt({
        receipt: { modelId: 1n, currency: f.usdc.address, payee, units: 10n, pricePerUnit: 100n, nonce: 7n },
      });
      // Anyone else (the payer included) cannot settle it: strict reverts, lenient skips.
      await assert.rejects(dapp.settleReceipts({ receipts: [signed], strict: true }), (e: unknown) => {
        assert.ok(e instanceof ContractRevertError);
        assert.equal(e.errorName, "NotPayee");
        assert.deepEqual(e.args, { payee, caller: addr(f, 6) });
        assert.match(e.shortMessage, /Only the payee/);
        return true;
      });
      const other = await clientFor(f, path, 9);
      const skipped = await other.settleReceipts({ receipts: [signed] });
      assert.deepEqual(skipped.skipped, [{ payer: addr(f, 6), nonce: 7n, reason: "WrongPayee" }]);
      assert.equal(skipped.total, 0n);
      // A receipt for another payee cannot draw on the escrow with this one.
      const elsewhere = await dapp.signUsageReceipt({
        receipt: { modelId: 1n, currency: f.usdc.address, payee: addr(f, 9), units: 1n, pricePerUnit: 1n },
      });
      await assert.rejects(
        other.settleReceipts({ receipts: [elsewhere], strict: true }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "InsufficientEscrow",
      );
      const settled = await gateway.settleReceipts({ receipts: [signed] });
      assert.equal(settled.total, 1_000n);
      assert.equal(
        (await dapp.getEscrow({ payer: addr(f, 6), payee, currency: f.usdc.address })).balance,
        1_000_000n - 1_000n,
      );
      assert.equal(
        (await dapp.getEscrow({ payer: addr(f, 6), payee: addr(f, 9), currency: f.usdc.address })).balance,
        0n,
      );
    });

    it("escrow withdrawal waits out the delay", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      const dapp = await clientFor(f, path, 6);
      const payee = addr(f, 8);
      await dapp.depositEscrow({ currency: f.usdc.address, payee, amount: 1_000n });
      const { unlockAt } = await dapp.requestEscrowWithdrawal({ currency: f.usdc.address, payee, amount: 600n });
      assert.equal(unlockAt, BigInt(await networkHelpers.time.latest()) + 86_400n);
      await assert.rejects(
        dapp.withdrawEscrow({ currency: f.usdc.address, payee }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "WithdrawalLocked",
      );
      // The escrow with another payee has nothing to withdraw.
      await assert.rejects(
        dapp.withdrawEscrow({ currency: f.usdc.address, payee: addr(f, 9) }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "NothingToWithdraw",
      );
      await networkHelpers.time.increaseTo(unlockAt);
      const { amount } = await dapp.withdrawEscrow({ currency: f.usdc.address, payee });
      assert.equal(amount, 600n);
      const escrow = await dapp.getEscrow({ payer: addr(f, 6), payee, currency: f.usdc.address });
      assert.deepEqual([escrow.balance, escrow.withdrawing], [400n, 0n]);
    });

    it("rejects bad input before touching the chain", async () => {
      const f = await networkHelpers.loadFixture(mintedFixture);
      const client = await clientFor(f, path, 6);
      await assert.rejects(
        client.pay({ modelId: 0n, currency: f.usdc.address, amount: 0n }),
        (e: unknown) =>
          e instanceof InvalidParameterError && e.issues.map((i) => i.path).join(",") === "modelId,amount",
      );
      await assert.rejects(
        client.claim({ ids: [tokenId(1n, 0)] }),
        (e: unknown) => e instanceof InvalidParameterError && e.issues[0]!.path === "currencies",
      );
      await assert.rejects(
        client.depositEscrow({ currency: f.usdc.address, payee: "0x12" as Address, amount: 1n }),
        (e: unknown) => e instanceof InvalidParameterError && e.issues.map((i) => i.path).join(",") === "payee",
      );
      await assert.rejects(
        client.signUsageReceipt({
          receipt: { modelId: 1n, currency: f.usdc.address, payee: undefined as never, units: 1n, pricePerUnit: 1n },
        }),
        (e: unknown) => e instanceof InvalidParameterError && e.issues[0]!.path === "receipt.payee",
      );
      await assert.rejects(
        client.settleReceipts({ receipts: [] }),
        (e: unknown) => e instanceof InvalidParameterError && /empty/.test(e.message),
      );
      await assert.rejects(
        client.pay({ modelId: 1n, currency: f.stake.address, amount: 5n }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "CurrencyNotAccepted",
      );
    });
  });

  describe(`staking (${path})`, () => {
    it("stakes, requests unstake, withdraws after the delay", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await clientFor(f, path, 4);
      await client.stake({ modelId: 1n, role: "verifier", amount: parseEther("80") });
      const { readyAt } = await client.requestUnstake({ modelId: 1n, role: "verifier", amount: parseEther("30") });
      const position = await client.getStake({ modelId: 1n, account: addr(f, 4) });
      assert.deepEqual(position.verifier, {
        active: parseEther("50"),
        unbonding: parseEther("30"),
        unbondingReadyAt: readyAt,
        locked: 0n,
      });
      assert.deepEqual(position.trainer, { active: 0n, unbonding: 0n, unbondingReadyAt: 0n, locked: 0n });
      await assert.rejects(
        client.withdrawStake({ modelId: 1n, role: "verifier" }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "StillUnbonding",
      );
      await networkHelpers.time.increaseTo(readyAt);
      const { amount } = await client.withdrawStake({ modelId: 1n, role: "verifier" });
      assert.equal(amount, parseEther("30"));
    });

    it("cannot unstake more than is active", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await clientFor(f, path, 4);
      await assert.rejects(
        client.requestUnstake({ modelId: 1n, role: "trainer", amount: 1n }),
        (e: unknown) =>
          e instanceof ContractRevertError &&
          e.errorName === "InsufficientStake" &&
          /has 0 trainer stake/.test(e.message),
      );
    });
  });
}

describe("writes without an account", () => {
  it("fail with AccountRequiredError", async () => {
    const f = await networkHelpers.loadFixture(sdkFixture);
    const { shardActions } = await import("../../sdk/decorators/shard.js");
    const reader = f.publicClient.extend(shardActions(f.deployment));
    await assert.rejects(
      reader.pay({ modelId: 1n, currency: f.usdc.address, amount: 1n }),
      (e: unknown) => e instanceof AccountRequiredError,
    );
  });
});
