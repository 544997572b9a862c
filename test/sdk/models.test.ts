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
          shardWeights: Array.from({ length: 300 }, () => 1n),
          stakingToken: f.stake.address,
          currencies: [f.usdc.address],
          unbondingDelay: 7 * 86_400,
          params: DEFAULT_ROUND_PARAMS,
        }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "InvalidShardCount",
      );
      assert.equal(await f.publicClient.getTransactionCount({ address: f.wallets[1]!.account.address }), before);
    });

    it("checks the registry's parameter bounds in zod first, naming each field", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const client = await clientFor(f, path, 1);
      const register = (params: Partial<typeof DEFAULT_ROUND_PARAMS>, unbondingDelay = 7 * 86_400) =>
        client.registerModel({
          specDigest: digest("s"),
          specURI: "ipfs://x",
          shardWeights: [1n],
          stakingToken: f.stake.address,
          currencies: [f.usdc.address],
          unbondingDelay,
          params: { ...DEFAULT_ROUND_PARAMS, ...params },
        });
      const cases: [Partial<typeof DEFAULT_ROUND_PARAMS>, string][] = [
        [{ quorumBps: 999 }, "params.quorumBps"],
        [{ quorumBps: 10_001 }, "params.quorumBps"],
        [{ voterSlashBps: 5_001 }, "params.voterSlashBps"],
        [{ challengerShareBps: 5_001 }, "params.challengerShareBps"],
        [{ sealDeposit: DEFAULT_ROUND_PARAMS.slashAmount + 1n }, "params.sealDeposit"],
        [{ slashAmount: DEFAULT_ROUND_PARAMS.minTrainerStake + 1n }, "params.slashAmount"],
        [{ challengeBond: 0n }, "params.challengeBond"],
        [{ minVerifierStake: 0n }, "params.minVerifierStake"],
        [{ minAttestations: 17 }, "params.minAttestations"],
        [{ disputeWindow: 31 * 86_400 }, "params.disputeWindow"],
        [{ revealWindow: 0 }, "params.revealWindow"],
      ];
      for (const [params, field] of cases) {
        await assert.rejects(register(params), (e: unknown) => {
          assert.ok(e instanceof InvalidParameterError, field);
          // The field first (a longer window also asks for a longer unbonding delay).
          assert.equal(e.issues[0]!.path, field);
          return true;
        });
      }
      // Strictly longer than reveal + challenge + dispute windows.
      const windows = DEFAULT_ROUND_PARAMS.revealWindow + DEFAULT_ROUND_PARAMS.challengeWindow + 3600;
      await assert.rejects(register({}, windows), (e: unknown) => {
        assert.ok(e instanceof InvalidParameterError);
        assert.deepEqual(
          e.issues.map((i) => i.path),
          ["unbondingDelay"],
        );
        return true;
      });
      const { modelId } = await register({}, windows + 1);
      assert.equal(modelId, 2n);
    });

    it("closes genesis once, as the registrant, and versions the parameters", async () => {
      const f = await networkHelpers.loadFixture(sdkFixture);
      const registrant = await clientFor(f, path, 0);
      const other = await clientFor(f, path, 1);
      assert.equal((await other.getModel({ modelId: 1n })).genesisClosed, false);
      const version = await other.getParamsVersion({ modelId: 1n, round: 1n });
      assert.equal(typeof version, "number");
      assert.equal((await other.getModel({ modelId: 1n })).paramsVersion, version);
      await assert.rejects(other.closeGenesis({ modelId: 1n }), (e: unknown) => {
        assert.ok(e instanceof ContractRevertError);
        assert.equal(e.errorName, "NotRegistrant");
        return true;
      });
      await registrant.closeGenesis({ modelId: 1n });
      assert.equal((await other.getModel({ modelId: 1n })).genesisClosed, true);
      await assert.rejects(registrant.closeGenesis({ modelId: 1n }), (e: unknown) => {
        assert.ok(e instanceof ContractRevertError);
        assert.equal(e.errorName, "GenesisAlreadyClosed");
        assert.equal(e.args.modelId, 1n);
        assert.match(e.shortMessage, /already closed its genesis allocation/);
        return true;
      });
      await assert.rejects(
        registrant.allocateGenesis({
          modelId: 1n,
          shard: 0,
          allocations: [{ to: f.wallets[1]!.account.address, amount: 1n }],
        }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "GenesisClosed",
      );
      // A new schedule changes the version of the rounds it applies to.
      const changed = { ...DEFAULT_ROUND_PARAMS, challengeBond: parseEther("20") };
      await assert.rejects(
        other.scheduleParams({ modelId: 1n, params: changed }),
        (e: unknown) => e instanceof ContractRevertError && e.errorName === "NotRegistrant",
      );
      await assert.rejects(
        registrant.scheduleParams({ modelId: 1n, params: { ...changed, quorumBps: 10 } }),
        (e: unknown) => e instanceof InvalidParameterError && /quorumBps/.test(JSON.stringify(e.issues)),
      );
      const { fromRound } = await registrant.scheduleParams({ modelId: 1n, params: changed });
      assert.equal(fromRound, 1n);
      assert.equal((await other.getModel({ modelId: 1n })).params.challengeBond, parseEther("20"));
      assert.notEqual(await other.getParamsVersion({ modelId: 1n, round: 1n }), version);
      await assert.rejects(other.getParamsVersion({ modelId: 9n, round: 1n }), (e: unknown) => {
        assert.ok(e instanceof ContractRevertError);
        assert.equal(e.errorName, "ModelNotFound");
        return true;
      });
      await assert.rejects(other.getParamsVersion({ modelId: 0n, round: 1n }), InvalidParameterError);
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
          assert.deepEqual(paths, ["shardWeights.0", "specDigest", "stakingToken", "unbondingDelay"]);
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
      const { trainer, verifier } = await client.getStake({ modelId: 1n, account: f.wallets[2]!.account.address });
      assert.deepEqual(trainer, { active: parseEther("150"), unbonding: 0n, unbondingReadyAt: 0n, locked: 0n });
      assert.equal(verifier.locked, 0n);
    });
  });
}
