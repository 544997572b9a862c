import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getAddress, parseEther, type Address } from "viem";

import {
  defaultParams,
  digest,
  makeCheckpoint,
  networkHelpers,
  sealCheckpoint,
  protocolFixture,
  stakeAs,
  viem,
  type Fixture,
  type RoundParams,
} from "../helpers/fixture.js";

/** Reveal + challenge + dispute windows of `defaultParams`: the shortest legal unbonding delay. */
const REQUIRED_UNBONDING = BigInt(
  defaultParams.revealWindow + defaultParams.challengeWindow + defaultParams.disputeWindow,
);

/** A second model's configuration (three shards, one currency), registered by wallet 3. */
function secondConfig(f: Fixture, overrides: Record<string, unknown> = {}) {
  return {
    specDigest: digest("spec-2"),
    specURI: "ipfs://bafyspec2",
    shardWeights: [5n, 7n, 11n],
    stakingToken: f.stake.address,
    currencies: [f.usdc.address],
    unbondingDelay: 8 * 86_400,
    params: defaultParams,
    ...overrides,
  };
}

/** Address lists compare case-insensitively (contract handles hold lower-case addresses). */
const checksummed = (list: readonly string[]) => list.map((a) => getAddress(a));

const paramsWith = (overrides: Partial<RoundParams>): RoundParams => ({ ...defaultParams, ...overrides });

/** Distinct non-zero addresses (the registry does not require currencies to be contracts). */
const fakeAddresses = (n: number, salt = 1): Address[] =>
  Array.from({ length: n }, (_, i) =>
    getAddress(`0x${(BigInt(salt) * 1000n + BigInt(i) + 1n).toString(16).padStart(40, "0")}`),
  );

/** Lets a test send transactions as a contract (the ledger), to reach checks behind its guard. */
async function impersonate(address: Address) {
  await networkHelpers.impersonateAccount(address);
  await networkHelpers.setBalance(address, parseEther("10"));
  return address;
}

describe("ModelRegistry.registerModel", () => {
  it("stores the model and emits ModelRegistered, ParamsScheduled and CurrencyAdded", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const registrant = f.wallets[3]!.account;
    const config = secondConfig(f, { currencies: [f.usdc.address, f.dai.address] });

    const modelId = (await f.registry.simulate.registerModel([config], { account: registrant.address })).result;
    assert.equal(modelId, 2n);
    const tx = f.registry.write.registerModel([config], { account: registrant });
    await viem.assertions.emitWithArgs(tx, f.registry, "ModelRegistered", [
      2n,
      registrant.address,
      config.specDigest,
      config.specURI,
      config.shardWeights,
      f.stake.address,
      config.unbondingDelay,
    ]);
    const receipt = await f.publicClient.getTransactionReceipt({ hash: await tx });
    const events = await f.registry.getEvents.ParamsScheduled(
      {},
      { fromBlock: receipt.blockNumber, toBlock: receipt.blockNumber },
    );
    assert.equal(events.length, 1);
    assert.equal(events[0]!.args.modelId, 2n);
    assert.equal(events[0]!.args.fromRound, 1n);
    assert.deepEqual(events[0]!.args.params, defaultParams);
    const added = await f.registry.getEvents.CurrencyAdded(
      { modelId: 2n },
      { fromBlock: receipt.blockNumber, toBlock: receipt.blockNumber },
    );
    assert.deepEqual(checksummed(added.map((e) => e.args.currency!)), checksummed([f.usdc.address, f.dai.address]));

    assert.equal(await f.registry.read.modelCount(), 2n);
    const info = await f.registry.read.modelInfo([2n]);
    assert.equal(getAddress(info.registrant), getAddress(registrant.address));
    assert.equal(getAddress(info.stakingToken), getAddress(f.stake.address));
    assert.equal(info.unbondingDelay, config.unbondingDelay);
    assert.equal(info.shardCount, 3);
    assert.equal(info.latestRound, 0n);
    assert.equal(info.specDigest, config.specDigest);
    assert.equal(await f.registry.read.specURI([2n]), "ipfs://bafyspec2");
    assert.deepEqual(await f.registry.read.shardWeights([2n]), [5n, 7n, 11n]);
    assert.deepEqual(checksummed(await f.registry.read.currencies([2n])), checksummed([f.usdc.address, f.dai.address]));
    assert.equal(await f.registry.read.isCurrency([2n, f.usdc.address]), true);
    assert.equal(await f.registry.read.isCurrency([2n, f.dai.address]), true);
    assert.equal(await f.registry.read.isCurrency([2n, f.stake.address]), false);
    assert.deepEqual(await f.registry.read.paramsAt([2n, 1n]), defaultParams);
    assert.deepEqual(await f.registry.read.paramsAt([2n, 1000n]), defaultParams);

    // The first model is untouched.
    assert.equal(
      getAddress((await f.registry.read.modelInfo([1n])).registrant),
      getAddress(f.wallets[0]!.account.address),
    );
    assert.deepEqual(await f.registry.read.shardWeights([1n]), [3n, 1n]);
    assert.equal(await f.registry.read.isCurrency([1n, f.dai.address]), true);
  });

  it("numbers models sequentially and keeps their data apart", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await f.registry.write.registerModel([secondConfig(f, { specURI: "ipfs://two" })]);
    await f.registry.write.registerModel([secondConfig(f, { specURI: "ipfs://three", shardWeights: [1n] })]);
    assert.equal(await f.registry.read.modelCount(), 3n);
    assert.equal(await f.registry.read.specURI([2n]), "ipfs://two");
    assert.equal(await f.registry.read.specURI([3n]), "ipfs://three");
    assert.equal((await f.registry.read.modelInfo([3n])).shardCount, 1);
  });

  it("accepts the boundaries: MAX_SHARDS shards, MAX_CURRENCIES currencies, no currency, minimum unbonding", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const maxShards = await f.registry.read.MAX_SHARDS();
    const maxCurrencies = await f.registry.read.MAX_CURRENCIES();
    assert.equal(maxShards, 256n);
    assert.equal(maxCurrencies, 8n);

    const weights = Array.from({ length: Number(maxShards) }, (_, i) => BigInt(i + 1));
    await f.registry.write.registerModel([secondConfig(f, { shardWeights: weights })]);
    assert.equal((await f.registry.read.modelInfo([2n])).shardCount, 256);
    assert.deepEqual(await f.registry.read.shardWeights([2n]), weights);

    const currencies = fakeAddresses(Number(maxCurrencies));
    await f.registry.write.registerModel([secondConfig(f, { currencies })]);
    assert.deepEqual(checksummed(await f.registry.read.currencies([3n])), currencies);

    await f.registry.write.registerModel([secondConfig(f, { currencies: [] })]);
    assert.deepEqual(checksummed(await f.registry.read.currencies([4n])), checksummed([]));

    await f.registry.write.registerModel([secondConfig(f, { unbondingDelay: Number(REQUIRED_UNBONDING) })]);
    assert.equal((await f.registry.read.modelInfo([5n])).unbondingDelay, Number(REQUIRED_UNBONDING));

    // Largest legal products and shares.
    const edge = paramsWith({
      workToTokenRate: 10n ** 18n,
      maxWorkPerCommit: 2n ** 96n - 1n,
      challengerShareBps: 10_000,
    });
    await f.registry.write.registerModel([secondConfig(f, { params: edge })]);
    assert.deepEqual(await f.registry.read.paramsAt([6n, 1n]), edge);
  });

  it("reverts InvalidShardCount for zero shards and for more than MAX_SHARDS", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { shardWeights: [] })]),
      f.registry,
      "InvalidShardCount",
      [0n],
    );
    const tooMany = Array.from({ length: 257 }, () => 1n);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { shardWeights: tooMany })]),
      f.registry,
      "InvalidShardCount",
      [257n],
    );
    assert.equal(await f.registry.read.modelCount(), 1n);
  });

  it("reverts ZeroShardWeight naming the first zero-weight shard", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { shardWeights: [3n, 0n, 1n, 0n] })]),
      f.registry,
      "ZeroShardWeight",
      [1n],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { shardWeights: [0n] })]),
      f.registry,
      "ZeroShardWeight",
      [0n],
    );
  });

  it("reverts ZeroAddress for a zero staking token or a zero currency", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const zero = "0x0000000000000000000000000000000000000000";
    await viem.assertions.revertWithCustomError(
      f.registry.write.registerModel([secondConfig(f, { stakingToken: zero })]),
      f.registry,
      "ZeroAddress",
    );
    await viem.assertions.revertWithCustomError(
      f.registry.write.registerModel([secondConfig(f, { currencies: [f.usdc.address, zero] })]),
      f.registry,
      "ZeroAddress",
    );
  });

  it("reverts TooManyCurrencies above MAX_CURRENCIES", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { currencies: fakeAddresses(9) })]),
      f.registry,
      "TooManyCurrencies",
      [9n],
    );
  });

  it("reverts CurrencyAlreadyAccepted for a duplicate currency", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([
        secondConfig(f, { currencies: [f.usdc.address, f.dai.address, f.usdc.address] }),
      ]),
      f.registry,
      "CurrencyAlreadyAccepted",
      [2n, f.usdc.address],
    );
    assert.equal(await f.registry.read.modelCount(), 1n);
  });

  it("reverts UnbondingTooShort below reveal + challenge + dispute windows", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { unbondingDelay: Number(REQUIRED_UNBONDING) - 1 })]),
      f.registry,
      "UnbondingTooShort",
      [Number(REQUIRED_UNBONDING) - 1, REQUIRED_UNBONDING],
    );
    // The requirement follows the configured windows.
    const long = paramsWith({ disputeWindow: 30 * 86_400 });
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { params: long })]),
      f.registry,
      "UnbondingTooShort",
      [8 * 86_400, BigInt(600 + 3600 + 30 * 86_400)],
    );
  });

  const invalid: [string, Partial<RoundParams>][] = [
    ["challengeWindow", { challengeWindow: 0 }],
    ["disputeWindow", { disputeWindow: 0 }],
    ["revealWindow", { revealWindow: 0 }],
    ["workToTokenRate", { workToTokenRate: 0n }],
    ["maxWorkPerCommit", { maxWorkPerCommit: 0n }],
    ["challengerShareBps", { challengerShareBps: 10_001 }],
    ["workToTokenRate*maxWorkPerCommit", { workToTokenRate: 10n ** 18n, maxWorkPerCommit: 2n ** 96n }],
    ["workToTokenRate*maxWorkPerCommit", { workToTokenRate: 2n ** 127n, maxWorkPerCommit: 10n ** 18n }],
  ];
  for (const [reason, overrides] of invalid) {
    it(`reverts InvalidParams("${reason}") for ${JSON.stringify(overrides, (_, v) => (typeof v === "bigint" ? v.toString() : v))}`, async () => {
      const f = await networkHelpers.loadFixture(protocolFixture);
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.registry.write.registerModel([secondConfig(f, { params: paramsWith(overrides) })]),
        f.registry,
        "InvalidParams",
        [reason],
      );
    });
  }

  it("views revert ModelNotFound for an unknown model (isCurrency answers false)", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    for (const id of [0n, 2n, 2n ** 64n - 1n]) {
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.registry.read.modelInfo([id]),
        f.registry,
        "ModelNotFound",
        [id],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(f.registry.read.specURI([id]), f.registry, "ModelNotFound", [
        id,
      ]);
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.registry.read.shardWeights([id]),
        f.registry,
        "ModelNotFound",
        [id],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.registry.read.currencies([id]),
        f.registry,
        "ModelNotFound",
        [id],
      );
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.registry.read.paramsAt([id, 1n]),
        f.registry,
        "ModelNotFound",
        [id],
      );
      assert.equal(await f.registry.read.isCurrency([id, f.usdc.address]), false);
    }
  });
});

describe("ModelRegistry.scheduleParams", () => {
  const newer = paramsWith({
    minTrainerStake: parseEther("200"),
    slashAmount: parseEther("80"),
    challengeWindow: 7200,
  });
  const newest = paramsWith({ minTrainerStake: parseEther("300"), minAttestations: 2, challengerShareBps: 2500 });

  it("before any commit applies from round 1, replacing the registration parameters", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    assert.equal((await f.registry.simulate.scheduleParams([1n, newer])).result, 1n);
    await viem.assertions.emitWithArgs(f.registry.write.scheduleParams([1n, newer]), f.registry, "ParamsScheduled", [
      1n,
      1n,
      newer,
    ]);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 1n]), newer);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 2n]), newer);
  });

  it("after a round-1 commit takes effect from round 2 only; a second schedule before round 2 opens replaces the first", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const trainer = f.wallets[1]!.account.address;
    await stakeAs(f, 1, 0); // exactly the round-1 minimum of 100
    await sealCheckpoint(f, 1, makeCheckpoint(trainer, { round: 1n }));
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);

    assert.equal((await f.registry.simulate.scheduleParams([1n, newer])).result, 2n);
    await viem.assertions.emitWithArgs(f.registry.write.scheduleParams([1n, newer]), f.registry, "ParamsScheduled", [
      1n,
      2n,
      newer,
    ]);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 1n]), defaultParams);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 2n]), newer);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 9n]), newer);

    // Round 2 has not opened: a second schedule replaces the first.
    await viem.assertions.emitWithArgs(f.registry.write.scheduleParams([1n, newest]), f.registry, "ParamsScheduled", [
      1n,
      2n,
      newest,
    ]);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 1n]), defaultParams);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 2n]), newest);

    // Round 1 is still open and keeps its minimum stake (100): another lane commits fine.
    await sealCheckpoint(f, 1, makeCheckpoint(trainer, { round: 1n, lane: 1 }));
    // Round 2 needs the new minimum (300).
    await viem.assertions.revertWithCustomErrorWithArgs(
      sealCheckpoint(f, 1, makeCheckpoint(trainer, { round: 2n })),
      f.ledger,
      "InsufficientTrainerStake",
      [1n, trainer, parseEther("100"), parseEther("300")],
    );
    await stakeAs(f, 1, 0, parseEther("200"));
    await sealCheckpoint(f, 1, makeCheckpoint(trainer, { round: 2n }));
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 2n);

    // Round 2 is open now: a new schedule starts at round 3 and leaves round 2 alone.
    assert.equal((await f.registry.simulate.scheduleParams([1n, newer])).result, 3n);
    await f.registry.write.scheduleParams([1n, newer]);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 1n]), defaultParams);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 2n]), newest);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 3n]), newer);
  });

  it("reverts NotRegistrant for anyone but the registrant", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const other = f.wallets[1]!.account;
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.scheduleParams([1n, newer], { account: other }),
      f.registry,
      "NotRegistrant",
      [1n, other.address],
    );
    assert.deepEqual(await f.registry.read.paramsAt([1n, 1n]), defaultParams);
  });

  it("reverts ModelNotFound for an unknown model", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.scheduleParams([7n, newer]),
      f.registry,
      "ModelNotFound",
      [7n],
    );
  });

  it("validates the parameters against the model's unbonding delay", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.scheduleParams([1n, paramsWith({ revealWindow: 0 })]),
      f.registry,
      "InvalidParams",
      ["revealWindow"],
    );
    // The fixture's delay is 7 days; windows of 7 days + 1 s in total are too long.
    const long = paramsWith({ revealWindow: 1, challengeWindow: 86_400, disputeWindow: 6 * 86_400 });
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.scheduleParams([1n, long]),
      f.registry,
      "UnbondingTooShort",
      [7 * 86_400, BigInt(7 * 86_400 + 1)],
    );
  });
});

describe("ModelRegistry.addCurrency", () => {
  it("accepts a new currency and emits CurrencyAdded", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const weth = await viem.deployContract("TestERC20", ["Wrapped Ether", "WETH", 18]);
    await viem.assertions.emitWithArgs(f.registry.write.addCurrency([1n, weth.address]), f.registry, "CurrencyAdded", [
      1n,
      weth.address,
    ]);
    assert.deepEqual(
      checksummed(await f.registry.read.currencies([1n])),
      checksummed([f.usdc.address, f.dai.address, weth.address]),
    );
    assert.equal(await f.registry.read.isCurrency([1n, weth.address]), true);
  });

  it("reverts NotRegistrant, ModelNotFound, ZeroAddress and CurrencyAlreadyAccepted", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const other = f.wallets[2]!.account;
    const [extra] = fakeAddresses(1);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.addCurrency([1n, extra!], { account: other }),
      f.registry,
      "NotRegistrant",
      [1n, other.address],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.addCurrency([2n, extra!]),
      f.registry,
      "ModelNotFound",
      [2n],
    );
    await viem.assertions.revertWithCustomError(
      f.registry.write.addCurrency([1n, "0x0000000000000000000000000000000000000000"]),
      f.registry,
      "ZeroAddress",
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.addCurrency([1n, f.dai.address]),
      f.registry,
      "CurrencyAlreadyAccepted",
      [1n, f.dai.address],
    );
    assert.deepEqual(checksummed(await f.registry.read.currencies([1n])), checksummed([f.usdc.address, f.dai.address]));
  });

  it("reverts TooManyCurrencies beyond MAX_CURRENCIES", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const more = fakeAddresses(6, 7); // 2 in the fixture + 6 = 8
    for (const c of more) await f.registry.write.addCurrency([1n, c]);
    assert.equal((await f.registry.read.currencies([1n])).length, 8);
    const [ninth] = fakeAddresses(1, 9);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.addCurrency([1n, ninth!]),
      f.registry,
      "TooManyCurrencies",
      [9n],
    );
    assert.equal(await f.registry.read.isCurrency([1n, ninth!]), false);
  });
});

describe("ModelRegistry.enterRound", () => {
  it("reverts NotLedger for any caller but the ledger", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    assert.equal(getAddress(await f.registry.read.ledger()), getAddress(f.ledger.address));
    for (const w of [f.wallets[0]!, f.wallets[1]!]) {
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.registry.write.enterRound([1n, 1n, 0], { account: w.account }),
        f.registry,
        "NotLedger",
        [w.account.address],
      );
    }
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 0n);
  });

  it("as the ledger: opens rounds one at a time and returns the round's minimum trainer stake", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const ledger = await impersonate(f.ledger.address);
    assert.equal(
      (await f.registry.simulate.enterRound([1n, 1n, 1], { account: ledger })).result,
      defaultParams.minTrainerStake,
    );
    await viem.assertions.emitWithArgs(
      f.registry.write.enterRound([1n, 1n, 1], { account: ledger }),
      f.registry,
      "RoundAdvanced",
      [1n, 1n],
    );
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);

    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 3n, 0], { account: ledger }),
      f.registry,
      "RoundSkipped",
      [1n, 3n, 1n],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 0n, 0], { account: ledger }),
      f.registry,
      "RoundSkipped",
      [1n, 0n, 1n],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 1n, 2], { account: ledger }),
      f.registry,
      "ShardOutOfRange",
      [1n, 2],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([5n, 1n, 0], { account: ledger }),
      f.registry,
      "ModelNotFound",
      [5n],
    );

    // Round 2 after a schedule: returns the new minimum; re-entering round 1 keeps the old one.
    await f.registry.write.scheduleParams([1n, paramsWith({ minTrainerStake: 7n })]);
    assert.equal((await f.registry.simulate.enterRound([1n, 2n, 0], { account: ledger })).result, 7n);
    await f.registry.write.enterRound([1n, 2n, 0], { account: ledger });
    assert.equal(
      (await f.registry.simulate.enterRound([1n, 1n, 0], { account: ledger })).result,
      defaultParams.minTrainerStake,
    );
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 2n);
  });
});
