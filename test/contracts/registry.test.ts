import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { getAddress, parseEther, type Address } from "viem";

import {
  authorizeKey,
  commitAndReveal,
  defaultParams,
  digest,
  makeCheckpoint,
  networkHelpers,
  sealCheckpoint,
  sealedHashOf,
  signCommit,
  protocolFixture,
  stakeAs,
  viem,
  type Fixture,
  type RoundParams,
} from "../helpers/fixture.js";

const DAY = 86_400;
/** Longest reveal, challenge or dispute window (`MAX_WINDOW`). */
const MAX_WINDOW = 30 * DAY;

/** Reveal + challenge + dispute windows of `defaultParams`, plus one second: the shortest legal unbonding delay. */
const REQUIRED_UNBONDING = BigInt(
  defaultParams.revealWindow + defaultParams.challengeWindow + defaultParams.disputeWindow + 1,
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
    assert.equal(info.genesisClosed, false);
    assert.equal(await f.registry.read.specURI([2n]), "ipfs://bafyspec2");
    assert.deepEqual(await f.registry.read.shardWeights([2n]), [5n, 7n, 11n]);
    assert.deepEqual(checksummed(await f.registry.read.currencies([2n])), checksummed([f.usdc.address, f.dai.address]));
    assert.equal(await f.registry.read.isCurrency([2n, f.usdc.address]), true);
    assert.equal(await f.registry.read.isCurrency([2n, f.dai.address]), true);
    assert.equal(await f.registry.read.isCurrency([2n, f.stake.address]), false);
    assert.deepEqual(await f.registry.read.paramsAt([2n, 1n]), defaultParams);
    assert.deepEqual(await f.registry.read.paramsAt([2n, 1000n]), defaultParams);
    assert.equal(await f.registry.read.paramsVersionAt([2n, 1n]), 1);

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

    // Largest legal products, shares, counts and deposits.
    const edge = paramsWith({
      workToTokenRate: 10n ** 18n,
      maxWorkPerCommit: 2n ** 96n - 1n,
      challengerShareBps: 5_000,
      minAttestations: 16,
      quorumBps: 10_000,
      voterSlashBps: 5_000,
      slashAmount: defaultParams.minTrainerStake,
      sealDeposit: defaultParams.minTrainerStake,
    });
    await f.registry.write.registerModel([secondConfig(f, { params: edge })]);
    assert.deepEqual(await f.registry.read.paramsAt([6n, 1n]), edge);

    // Smallest legal quorum, slash, bond and verifier stake; no voter slash, no seal deposit, no share.
    const low = paramsWith({
      quorumBps: 1_000,
      voterSlashBps: 0,
      sealDeposit: 0n,
      challengerShareBps: 0,
      slashAmount: 1n,
      challengeBond: 1n,
      minVerifierStake: 1n,
    });
    await f.registry.write.registerModel([secondConfig(f, { params: low })]);
    assert.deepEqual(await f.registry.read.paramsAt([7n, 1n]), low);

    // Every window at MAX_WINDOW, with an unbonding delay one second longer than all three.
    const longest = paramsWith({ revealWindow: MAX_WINDOW, challengeWindow: MAX_WINDOW, disputeWindow: MAX_WINDOW });
    await f.registry.write.registerModel([secondConfig(f, { params: longest, unbondingDelay: 3 * MAX_WINDOW + 1 })]);
    assert.deepEqual(await f.registry.read.paramsAt([8n, 1n]), longest);
  });

  it("exposes the bounds as constants", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    assert.equal(await f.registry.read.MAX_WINDOW(), MAX_WINDOW);
    assert.equal(await f.registry.read.MAX_ATTESTATIONS(), 16);
    assert.equal(await f.registry.read.MAX_CHALLENGER_SHARE_BPS(), 5_000);
    assert.equal(await f.registry.read.MIN_QUORUM_BPS(), 1_000);
    assert.equal(await f.registry.read.MAX_VOTER_SLASH_BPS(), 5_000);
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

  it("reverts UnbondingTooShort unless the delay strictly outlasts reveal + challenge + dispute windows", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    // Exactly the sum of the windows is too short: a dispute ending on its last second must still find the stake.
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { unbondingDelay: Number(REQUIRED_UNBONDING) - 1 })]),
      f.registry,
      "UnbondingTooShort",
      [Number(REQUIRED_UNBONDING) - 1, REQUIRED_UNBONDING],
    );
    // The requirement follows the configured windows.
    const long = paramsWith({ disputeWindow: MAX_WINDOW });
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.registerModel([secondConfig(f, { params: long })]),
      f.registry,
      "UnbondingTooShort",
      [8 * DAY, BigInt(600 + 3600 + MAX_WINDOW + 1)],
    );
    assert.equal(await f.registry.read.modelCount(), 1n);
  });

  const invalid: [string, Partial<RoundParams>][] = [
    ["challengeWindow", { challengeWindow: 0 }],
    ["challengeWindow", { challengeWindow: MAX_WINDOW + 1 }],
    ["disputeWindow", { disputeWindow: 0 }],
    ["disputeWindow", { disputeWindow: MAX_WINDOW + 1 }],
    ["revealWindow", { revealWindow: 0 }],
    ["revealWindow", { revealWindow: MAX_WINDOW + 1 }],
    ["workToTokenRate", { workToTokenRate: 0n }],
    ["maxWorkPerCommit", { maxWorkPerCommit: 0n }],
    ["slashAmount", { slashAmount: 0n }],
    ["slashAmount", { slashAmount: defaultParams.minTrainerStake + 1n }],
    ["sealDeposit", { sealDeposit: defaultParams.slashAmount + 1n }],
    ["minVerifierStake", { minVerifierStake: 0n }],
    ["challengeBond", { challengeBond: 0n }],
    ["minAttestations", { minAttestations: 17 }],
    ["challengerShareBps", { challengerShareBps: 5_001 }],
    ["challengerShareBps", { challengerShareBps: 10_000 }],
    ["quorumBps", { quorumBps: 999 }],
    ["quorumBps", { quorumBps: 0 }],
    ["quorumBps", { quorumBps: 10_001 }],
    ["voterSlashBps", { voterSlashBps: 5_001 }],
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
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.registry.read.paramsVersionAt([id, 1n]),
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
    const [trainer, other] = [f.wallets[1]!.account.address, f.wallets[2]!.account.address];
    await stakeAs(f, 1, 0); // exactly the round-1 minimum of 100
    const parent = makeCheckpoint(trainer, { round: 1n });
    await commitAndReveal(f, 1, parent);
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

    // Round 1 is still open and keeps its minimum stake (100): another trainer staking exactly
    // that commits another lane fine.
    await stakeAs(f, 2, 0);
    await sealCheckpoint(f, 2, makeCheckpoint(other, { round: 1n, lane: 1 }));
    // Round 2 needs the new minimum (300).
    const child = makeCheckpoint(trainer, { round: 2n, parentRoot: parent.root });
    await viem.assertions.revertWithCustomErrorWithArgs(
      sealCheckpoint(f, 1, child),
      f.ledger,
      "InsufficientTrainerStake",
      [1n, trainer, parseEther("100"), parseEther("300")],
    );
    await stakeAs(f, 1, 0, parseEther("200"));
    await sealCheckpoint(f, 1, child);
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
    // The fixture's delay is 7 days; windows of exactly 7 days in total are too long, as the
    // delay must strictly outlast them.
    const long = paramsWith({ revealWindow: 1, challengeWindow: 86_400, disputeWindow: 6 * 86_400 - 1 });
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.scheduleParams([1n, long]),
      f.registry,
      "UnbondingTooShort",
      [7 * 86_400, BigInt(7 * 86_400 + 1)],
    );
    await f.registry.write.scheduleParams([1n, { ...long, disputeWindow: 6 * 86_400 - 2 }]);
    assert.equal((await f.registry.read.paramsAt([1n, 1n])).disputeWindow, 6 * 86_400 - 2);
    // The new bounds apply to a schedule as to a registration.
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.scheduleParams([1n, paramsWith({ quorumBps: 999 })]),
      f.registry,
      "InvalidParams",
      ["quorumBps"],
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
    await f.registry.write.closeGenesis([1n]);
    for (const w of [f.wallets[0]!, f.wallets[1]!]) {
      await viem.assertions.revertWithCustomErrorWithArgs(
        f.registry.write.enterRound([1n, 1n, 0, 1], { account: w.account }),
        f.registry,
        "NotLedger",
        [w.account.address],
      );
    }
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 0n);
  });

  it("as the ledger: opens rounds one at a time and returns the round's minimum trainer stake and slash", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const ledger = await impersonate(f.ledger.address);
    // Round 1 waits for the registrant to close genesis.
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 1n, 1, 1], { account: ledger }),
      f.registry,
      "GenesisNotClosed",
      [1n],
    );
    await f.registry.write.closeGenesis([1n]);
    assert.deepEqual((await f.registry.simulate.enterRound([1n, 1n, 1, 1], { account: ledger })).result, [
      defaultParams.minTrainerStake,
      defaultParams.slashAmount,
    ]);
    await viem.assertions.emitWithArgs(
      f.registry.write.enterRound([1n, 1n, 1, 1], { account: ledger }),
      f.registry,
      "RoundAdvanced",
      [1n, 1n],
    );
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);

    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 3n, 0, 1], { account: ledger }),
      f.registry,
      "RoundSkipped",
      [1n, 3n, 1n],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 0n, 0, 1], { account: ledger }),
      f.registry,
      "RoundSkipped",
      [1n, 0n, 1n],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 1n, 2, 1], { account: ledger }),
      f.registry,
      "ShardOutOfRange",
      [1n, 2],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([5n, 1n, 0, 1], { account: ledger }),
      f.registry,
      "ModelNotFound",
      [5n],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 1n, 0, 2], { account: ledger }),
      f.registry,
      "ParamsChanged",
      [1n, 1n, 2, 1],
    );

    // Round 2 after a schedule (version 2): returns the new minimum and slash; re-entering round
    // 1 keeps the old ones, under the old version only.
    await f.registry.write.scheduleParams([1n, paramsWith({ minTrainerStake: 7n, slashAmount: 6n, sealDeposit: 5n })]);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 2n, 0, 1], { account: ledger }),
      f.registry,
      "ParamsChanged",
      [1n, 2n, 1, 2],
    );
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);
    assert.deepEqual((await f.registry.simulate.enterRound([1n, 2n, 0, 2], { account: ledger })).result, [7n, 6n]);
    await f.registry.write.enterRound([1n, 2n, 0, 2], { account: ledger });
    assert.deepEqual((await f.registry.simulate.enterRound([1n, 1n, 0, 1], { account: ledger })).result, [
      defaultParams.minTrainerStake,
      defaultParams.slashAmount,
    ]);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.enterRound([1n, 1n, 0, 2], { account: ledger }),
      f.registry,
      "ParamsChanged",
      [1n, 1n, 2, 1],
    );
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 2n);
  });
});

describe("ModelRegistry.closeGenesis", () => {
  it("closes once, only by the registrant, and emits GenesisClosed", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    await f.registry.write.registerModel([secondConfig(f)], { account: f.wallets[3]!.account });
    const other = f.wallets[1]!.account;
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.closeGenesis([1n], { account: other }),
      f.registry,
      "NotRegistrant",
      [1n, other.address],
    );
    // The registrant of model 2 is not the registrant of model 1.
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.closeGenesis([1n], { account: f.wallets[3]!.account }),
      f.registry,
      "NotRegistrant",
      [1n, f.wallets[3]!.account.address],
    );
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.closeGenesis([9n]),
      f.registry,
      "ModelNotFound",
      [9n],
    );
    assert.equal((await f.registry.read.modelInfo([1n])).genesisClosed, false);

    await viem.assertions.emitWithArgs(f.registry.write.closeGenesis([1n]), f.registry, "GenesisClosed", [1n]);
    assert.equal((await f.registry.read.modelInfo([1n])).genesisClosed, true);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.registry.write.closeGenesis([1n]),
      f.registry,
      "GenesisAlreadyClosed",
      [1n],
    );
    // Model 2 is untouched, and its own registrant closes it.
    assert.equal((await f.registry.read.modelInfo([2n])).genesisClosed, false);
    await f.registry.write.closeGenesis([2n], { account: f.wallets[3]!.account });
    assert.equal((await f.registry.read.modelInfo([2n])).genesisClosed, true);
  });

  it("round 1 cannot open before it (GenesisNotClosed); genesis allocations stop after it (GenesisClosed)", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const trainer = f.wallets[1]!.account.address;
    await stakeAs(f, 1, 0);
    await authorizeKey(f, 1, 1);
    const cp = makeCheckpoint(trainer);
    const c = {
      modelId: 1n,
      shard: 0,
      round: 1n,
      lane: 0,
      owner: trainer,
      parentRoot: cp.parentRoot,
      sealedHash: await sealedHashOf(f, cp, digest("salt")),
      paramsVersion: await f.registry.read.paramsVersionAt([1n, 1n]),
      deadline: BigInt(await networkHelpers.time.latest()) + 3600n,
    };
    const sig = await signCommit(f, f.wallets[1]!, c);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([c, sig]),
      f.registry,
      "GenesisNotClosed",
      [1n],
    );
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 0n);
    assert.equal((await f.staking.read.stakeOf([1n, trainer, 0])).locked, 0n);

    // The registrant still allocates genesis, then closes it.
    await f.ledger.write.allocateGenesis([1n, 0, [f.wallets[6]!.account.address], [10n]]);
    await f.registry.write.closeGenesis([1n]);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.allocateGenesis([1n, 0, [f.wallets[6]!.account.address], [10n]]),
      f.ledger,
      "GenesisClosed",
      [1n],
    );
    // The same signed commit now opens round 1.
    await viem.assertions.emitWithArgs(f.ledger.write.commit([c, sig]), f.registry, "RoundAdvanced", [1n, 1n]);
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 1n);
  });
});

describe("ModelRegistry.paramsVersionAt", () => {
  it("changes with every scheduleParams, a replacement (even with equal parameters) too", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const version = (round: bigint) => f.registry.read.paramsVersionAt([1n, round]);
    assert.equal(await version(1n), 1);
    assert.equal(await version(1000n), 1);
    // Round 0 never opens; it reads the registration's version.
    assert.equal(await version(0n), 1);

    // Before any commit a schedule replaces the parameters from round 1 on: a new version each time.
    await f.registry.write.scheduleParams([1n, paramsWith({ challengeWindow: 7200 })]);
    assert.equal(await version(1n), 2);
    await f.registry.write.scheduleParams([1n, paramsWith({ challengeWindow: 7200 })]);
    assert.equal(await version(1n), 3);
    assert.equal(await version(9n), 3);
    assert.deepEqual(await f.registry.read.paramsAt([1n, 1n]), paramsWith({ challengeWindow: 7200 }));

    // Round 1 opens; a schedule applies from round 2 under a new version, round 1 keeps its own.
    await stakeAs(f, 1, 0);
    await sealCheckpoint(f, 1, makeCheckpoint(f.wallets[1]!.account.address));
    await f.registry.write.scheduleParams([1n, defaultParams]);
    assert.deepEqual([await version(1n), await version(2n), await version(50n)], [3, 4, 4]);
    // Replacing the round-2 schedule before round 2 opens: another version.
    await f.registry.write.scheduleParams([1n, defaultParams]);
    assert.deepEqual([await version(1n), await version(2n), await version(50n)], [3, 5, 5]);
    // Another model's versions are its own.
    await f.registry.write.registerModel([secondConfig(f)]);
    assert.equal(await f.registry.read.paramsVersionAt([2n, 1n]), 1);
  });

  it("a commit signed for a version that changed reverts ParamsChanged", async () => {
    const f = await networkHelpers.loadFixture(protocolFixture);
    const trainer = f.wallets[1]!.account.address;
    await stakeAs(f, 1, 0, parseEther("200"));
    await authorizeKey(f, 1, 1);
    await f.registry.write.closeGenesis([1n]);
    const sealFor = async (cp: ReturnType<typeof makeCheckpoint>, paramsVersion: number) => {
      const c = {
        modelId: cp.modelId,
        shard: cp.shard,
        round: cp.round,
        lane: cp.lane,
        owner: cp.owner,
        parentRoot: cp.parentRoot,
        sealedHash: await sealedHashOf(f, cp, digest("salt")),
        paramsVersion,
        deadline: BigInt(await networkHelpers.time.latest()) + 3600n,
      };
      return [c, await signCommit(f, f.wallets[1]!, c)] as const;
    };

    // The registrant reschedules round 1 (even to equal parameters) in front of a signed commit.
    const cp = makeCheckpoint(trainer);
    const stale = await sealFor(cp, await f.registry.read.paramsVersionAt([1n, 1n]));
    await f.registry.write.scheduleParams([1n, defaultParams]);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([...stale]),
      f.registry,
      "ParamsChanged",
      [1n, 1n, 1, 2],
    );
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 0n);
    // Signed again for the version in force, it goes through.
    const fresh = await sealFor(cp, 2);
    await f.ledger.write.commit([...fresh]);

    // The same for round 2: a schedule made after round 1 opened lands on round 2.
    await commitAndReveal(f, 1, makeCheckpoint(trainer, { lane: 1 }));
    const child = makeCheckpoint(trainer, {
      round: 2n,
      lane: 1,
      parentRoot: makeCheckpoint(trainer, { lane: 1 }).root,
    });
    const signed = await sealFor(child, await f.registry.read.paramsVersionAt([1n, 2n]));
    assert.equal(signed[0].paramsVersion, 2);
    await f.registry.write.scheduleParams([1n, paramsWith({ minAttestations: 1 })]);
    await viem.assertions.revertWithCustomErrorWithArgs(
      f.ledger.write.commit([...signed]),
      f.registry,
      "ParamsChanged",
      [1n, 2n, 2, 3],
    );
    await f.ledger.write.commit([...(await sealFor(child, 3))]);
    assert.equal((await f.registry.read.modelInfo([1n])).latestRound, 2n);
  });
});
