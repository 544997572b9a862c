import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getAddress, parseEther } from "viem";

import { DEFAULT_ROUND_PARAMS } from "../../sdk/constants.js";
import { ContractRevertError } from "../../sdk/errors/contract.js";
import { InvalidParameterError } from "../../sdk/errors/validation.js";
import { digest, networkHelpers } from "../helpers/fixture.js";
import { clientFor, PATHS, sdkFixture } from "./helpers.js";

for (const path of PATHS) {
  describe(`models (${path})`, () => {
    it("registers a model and reads it back", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await clientFor(f, path, 3);
      const { modelId } = await client.registerModel({
        specDigest: digest("spec-2"),
        specURI: "ipfs://bafyspec2",
        shardWeights: [5n, 2n, 1n],
        stakingToken: f.stake.address,
        currencies: [f.usdc.address],
        unbondingDelay: 7 * 86_400,
        params: DEFAULT_ROUND_PARAMS,
      });
      assert.equal(modelId, 2n);
      const model = await client.getModel({ modelId });
      assert.equal(model.registrant, getAddress(f.wallets[3]!.account.address));
      assert.equal(model.shardCount, 3);
      assert.deepEqual(model.shardWeights, [5n, 2n, 1n]);
      assert.deepEqual(model.tokenIds, [(2n << 32n) | 0n, (2n << 32n) | 1n, (2n << 32n) | 2n]);
      assert.deepEqual(model.currencies, [getAddress(f.usdc.address)]);
      assert.equal(model.specURI, "ipfs://bafyspec2");
      assert.equal(model.round, 1n);
      assert.equal(model.params.minTrainerStake, DEFAULT_ROUND_PARAMS.minTrainerStake);
    });

    it("rejects an unknown model with a decoded ModelNotFound", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await clientFor(f, path, 1);
      await assert.rejects(client.getModel({ modelId: 9n }), (e: unknown) => {
        assert.ok(e instanceof ContractRevertError);
        assert.equal(e.errorName, "ModelNotFound");
        assert.equal(e.args.modelId, 9n);
        assert.match(e.shortMessage, /Model 9 is not registered/);
        return true;
      });
    });

    it("rejects a registration the registry refuses, before sending anything", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await clientFor(f, path, 1);
      const before = await f.publicClient.getTransactionCount({ address: f.wallets[1]!.account.address });
      await assert.rejects(
        client.registerModel({
          specDigest: digest("s"),
          specURI: "ipfs://x",
          shardWeights: [1n],
          stakingToken: f.stake.address,
          currencies: [f.usdc.address],
          unbondingDelay: 60,
          params: DEFAULT_ROUND_PARAMS,
        }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "UnbondingTooShort",
      );
      assert.equal(await f.publicClient.getTransactionCount({ address: f.wallets[1]!.account.address }), before);
    });

    it("validates inputs with zod and names the field", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await clientFor(f, path, 1);
      await assert.rejects(
        client.registerModel({
          specDigest: "0x1234",
          specURI: "ipfs://x",
          shardWeights: [0n],
          stakingToken: "0xnot",
          currencies: [],
          unbondingDelay: 1,
          params: DEFAULT_ROUND_PARAMS,
        } as never),
        (e: unknown) => {
          assert.ok(e instanceof InvalidParameterError);
          const paths = e.issues.map((i) => i.path).sort();
          assert.deepEqual(paths, ["shardWeights.0", "specDigest", "stakingToken"]);
          return true;
        },
      );
    });
  });

  describe(`staking (${path})`, () => {
    it("approves and stakes in one call", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await clientFor(f, path, 2);
      await client.stake({ modelId: 1n, role: "trainer", amount: parseEther("150") });
      const info = await f.staking.read.stakeOf([1n, f.wallets[2]!.account.address, 0]);
      assert.equal(info.active, parseEther("150"));
    });
  });
}
