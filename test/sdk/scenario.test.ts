import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getAddress, parseEther, type Address } from "viem";

import { DEFAULT_ROUND_PARAMS } from "../../sdk/constants.js";
import { digest, networkHelpers, pipelineDigests, tokenId } from "../helpers/fixture.js";
import { clientFor, PATHS, sdkFixture, type SdkFixture } from "./helpers.js";

const addr = (f: SdkFixture, i: number) => getAddress(f.wallets[i]!.account.address) as Address;

/**
 * The whole protocol through the SDK alone: registration, stakes, sealed commits signed by a node
 * key (with its consent) and relayed after the registrant closed genesis, reveals, attestations,
 * finalization, a transfer, a direct payment, escrow receipts settled by the gateway they are
 * payable to, and claims, with exact amounts at every step.
 */
for (const path of PATHS) {
  describe(`SDK scenario (${path})`, () => {
    it("registration → commits → finalization → payment and settlement → claims", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const registrant = await clientFor(f, path, 0);
      const trainers = [await clientFor(f, path, 1), await clientFor(f, path, 2), await clientFor(f, path, 3)];
      const verifier = await clientFor(f, path, 4);
      const holder5 = await clientFor(f, path, 5);
      const dapp = await clientFor(f, path, 6);
      const gateway = await clientFor(f, path, 7);
      const relayer = await clientFor(f, path, 8);
      const nodeKey = await clientFor(f, path, 9);
      const usdc = getAddress(f.usdc.address);

      // 1. A three-shard model with revenue weights 2:1:1, paid in USDC.
      const { modelId } = await registrant.registerModel({
        specDigest: digest("scenario-spec"),
        specURI: "ipfs://bafyscenario",
        shardWeights: [2n, 1n, 1n],
        stakingToken: f.stake.address,
        currencies: [usdc],
        unbondingDelay: 7 * 86_400,
        params: { ...DEFAULT_ROUND_PARAMS, minAttestations: 1 },
      });
      assert.equal(modelId, 2n);

      // 2. Stakes; trainer 1 lets a separate node key sign its commits, the others sign their own.
      for (const t of trainers) await t.stake({ modelId, role: "trainer", amount: parseEther("100") });
      await verifier.stake({ modelId, role: "verifier", amount: parseEther("50") });
      const keys = [nodeKey, trainers[1]!, trainers[2]!];
      for (const [i, key] of keys.entries()) {
        const consent = await key.signNodeConsent({ owner: addr(f, i + 1) });
        await trainers[i]!.authorizeNode({ nodeKey: consent.nodeKey, consent });
      }
      // Round 1 opens once the registrant closes the genesis allocation (here: none).
      await registrant.closeGenesis({ modelId });

      // 3. Round 1 of one pipeline: each stage seals (signed, relayed), then reveals.
      const work = [600n, 300n, 100n];
      const checkpoints = work.map((workUnits, shard) => ({
        modelId,
        shard,
        round: 1n,
        lane: 0,
        owner: addr(f, shard + 1),
        parentRoot: `0x${"0".repeat(64)}` as const,
        root: digest(`scenario-root-${shard}`),
        transcriptDigest: digest(`scenario-transcript-${shard}`),
        ...pipelineDigests(shard, 3, "-scenario"),
        workUnits,
        lossMicros: 2_000_000n,
        checkpointURI: `ipfs://bafyckpt${shard}`,
        transcriptURI: `ipfs://bafytranscript${shard}`,
      }));
      const sealed = [];
      for (const [shard, checkpoint] of checkpoints.entries()) {
        const signer = shard === 0 ? nodeKey : trainers[shard]!;
        const signed = await signer.signSealedCommit({ checkpoint });
        const submitted = await relayer.submitCommit({ commit: signed.commit, signature: signed.signature });
        sealed.push({ checkpoint, salt: signed.salt, ...submitted });
      }
      for (const s of sealed) {
        await relayer.reveal({
          checkpoint: s.checkpoint,
          salt: s.salt,
          commitBlock: s.commitBlock,
          commitTime: s.commitTime,
        });
      }

      // 4. The verifier attests; after the challenge window anyone finalizes and tokens are minted.
      for (const s of sealed) await verifier.attest({ commitId: s.commitId });
      await networkHelpers.time.increase(3601);
      for (const [shard, s] of sealed.entries()) {
        const { minted, tokenId: id } = await relayer.finalize({ checkpoint: s.checkpoint });
        assert.equal(minted, work[shard]);
        assert.equal(id, tokenId(modelId, shard));
      }
      const lineage = await relayer.getLineage({ modelId, shard: 0 });
      assert.equal(lineage.length, 1);
      assert.equal(lineage[0]!.status, "finalized");

      // 5. Trainer 1 sells a third of its shard-0 tokens to wallet 5.
      await f.token.write.safeTransferFrom([addr(f, 1), addr(f, 5), tokenId(modelId, 0), 200n, "0x"], {
        account: f.wallets[1]!.account,
      });

      // 6. Revenue: a direct payment of 1.2 USDC and two receipts (0.24 USDC) settled by a gateway.
      // (Amounts that divide the supplies exactly, so no rounding dust stays behind.)
      await dapp.pay({ modelId, currency: usdc, amount: 1_200_000n });
      const payee = addr(f, 7);
      await dapp.depositEscrow({ currency: usdc, payee, amount: 500_000n });
      const receipts = [
        await dapp.signUsageReceipt({
          receipt: { modelId, currency: usdc, payee, units: 100n, pricePerUnit: 1_200n, nonce: 7n },
        }),
        await dapp.signUsageReceipt({
          receipt: { modelId, currency: usdc, payee, units: 60n, pricePerUnit: 2_000n, nonce: 8n },
        }),
      ];
      const settlement = await gateway.settleReceipts({ receipts });
      assert.equal(settlement.total, 240_000n);
      assert.deepEqual(settlement.skipped, []);
      assert.equal((await dapp.getEscrow({ payer: addr(f, 6), payee, currency: usdc })).balance, 260_000n);

      // 7. The cap table and revenue shares, then exact claims. 1.44 USDC splits 2:1:1 by shard:
      // shard 0 (0.72) 400:200, shard 1 (0.36) to trainer 2, shard 2 (0.36) to trainer 3.
      const table = await relayer.getCapTable({ modelId, confirmations: 0 });
      assert.deepEqual(
        table.shards.map((s) => s.holders.map((h) => [h.holder, h.balance, h.supply])),
        [
          [
            [addr(f, 1), 400n, 600n],
            [addr(f, 5), 200n, 600n],
          ],
          [[addr(f, 2), 300n, 300n]],
          [[addr(f, 3), 100n, 100n]],
        ],
      );
      const share5 = table.revenueShares.find((s) => s.holder === addr(f, 5))!;
      assert.equal(share5.shareWad, 10n ** 18n / 6n); // 2/4 × 200/600
      const expected: [number, bigint][] = [
        [1, 480_000n],
        [5, 240_000n],
        [2, 360_000n],
        [3, 360_000n],
      ];
      const clients = new Map([
        [1, trainers[0]!],
        [2, trainers[1]!],
        [3, trainers[2]!],
        [5, holder5],
      ]);
      for (const [index, amount] of expected) {
        const client = clients.get(index)!;
        assert.equal((await client.getClaimable({ holder: addr(f, index), modelId })).byCurrency[usdc], amount);
        const before = await f.usdc.read.balanceOf([addr(f, index)]);
        const { byCurrency } = await client.claim({ modelId });
        assert.equal(byCurrency[usdc], amount);
        assert.equal((await f.usdc.read.balanceOf([addr(f, index)])) - before, amount);
        assert.equal((await client.getClaimable({ holder: addr(f, index), modelId })).byCurrency[usdc], 0n);
      }
      // Everything that came in went out: the token holds no USDC of this model any more.
      assert.equal(await f.usdc.read.balanceOf([f.token.address]), 0n);
    });
  });
}
