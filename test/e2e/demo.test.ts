import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";

import { type Address } from "viem";

import { stageLayout } from "../../node/src/ml/model.js";
import { zModelSpec } from "../../node/src/ml/spec.js";
import { DemoAbortedError, type DemoResult, runDemo } from "../../scripts/demo.js";
import { MERGING_CHALLENGE_WINDOW } from "../../scripts/lib/demo/options.js";
import { ROOT } from "../../scripts/lib/demo/process.js";
import { formatPercent } from "../../scripts/lib/demo/tables.js";
import { tinySpec } from "../node/helpers.js";

const MAGNITUDE = 2n ** 96n;

/** `RevenueMath.split`: by weight, the last weighted part takes the remainder; zero-weight parts get nothing. */
function split(amount: bigint, weights: bigint[]): bigint[] {
  const total = weights.reduce((a, b) => a + b, 0n);
  const last = weights.findLastIndex((w) => w !== 0n);
  const parts = weights.map((w, i) => (w === 0n || i === last ? 0n : (amount * w) / total));
  parts[last] = amount - parts.reduce((a, b) => a + b, 0n);
  return parts;
}

/**
 * What each holder can claim, computed from the payments alone: each payment splits across the
 * shards by weight (shards without holders skipped), then raises the shard's per-token
 * accumulator by `part × 2^96 / supply`; a holder's due per shard is `accumulator × balance / 2^96`
 * rounded down. All minting and the transfer happen before any revenue, so no corrections apply.
 */
function expectedClaims(r: DemoResult, holders: Address[]): Record<Address, Record<Address, bigint>> {
  const currencies = [r.deployment.currencyA.address, r.deployment.currencyB.address];
  const perShare = new Map<string, bigint>();
  for (const { currency, amount } of r.revenue.distributions) {
    const weights = r.deployment.shardWeights.map((w, s) => (r.supplies[s]! > 0n ? w : 0n));
    split(amount, weights).forEach((part, s) => {
      if (part === 0n) return;
      const key = `${s}/${currency}`;
      perShare.set(key, (perShare.get(key) ?? 0n) + (part * MAGNITUDE) / r.supplies[s]!);
    });
  }
  const out: Record<Address, Record<Address, bigint>> = {};
  for (const h of holders) {
    out[h] = {};
    for (const c of currencies)
      out[h]![c] = r.supplies.reduce(
        (sum, _, s) => sum + ((perShare.get(`${s}/${c}`) ?? 0n) * r.balances[h]![s]!) / MAGNITUDE,
        0n,
      );
  }
  return out;
}

/** True while a process with this pid exists. */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}

const waitUntilGone = async (pids: number[]) => {
  for (let i = 0; i < 50 && pids.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
  return pids.filter(alive);
};

describe("npm run demo, end to end at a small size", () => {
  const base = tinySpec([1, 1]);
  const plain = zModelSpec.parse({ ...base, training: { ...base.training, stepsPerRound: 4 } });
  // Merging mode: the demo's default of 2 lanes, merged by the mean after each round.
  const spec = zModelSpec.parse({ ...plain, training: { ...plain.training, merge: { rule: "mean" } } });
  const rounds = 2;
  const shards = 2;
  const lanes = 2;

  it("trains 2 lanes in separate processes, merges them, mints exactly every lane's verified work, transfers, and pays out every payment exactly", async () => {
    assert.ok(existsSync(path.join(ROOT, "node/dist/cli.js")), "build the CLI first: npm run build");
    const pids: number[] = [];
    const lines: string[] = [];
    const r = await runDemo({
      shards,
      lanes,
      rounds,
      spec,
      // The default with lanes: it bounds the reveal window, and so how late lane 1 may reveal
      // and still be merged (10 s, the least, let it miss the merges here).
      challengeWindow: MERGING_CHALLENGE_WINDOW,
      log: (line) => lines.push(line),
      onProcess: (_, pid) => pids.push(pid),
    });

    // Separate OS processes (4 stake + 4 train + 4 serve + 4 claims at least), all gone at the end.
    assert.ok(pids.length >= 16, `${pids.length} processes`);
    assert.deepEqual(await waitUntilGone(pids), []);
    // Progress lines for every stage, training rounds included.
    for (const stage of [
      "chain",
      "deploy",
      "model",
      "stake",
      "training",
      "verification",
      "transfer",
      "inference",
      "claims",
    ])
      assert.ok(
        lines.some((l) => new RegExp(`^\\[\\d/9\\] ${stage}: `).test(l)),
        `no progress line for ${stage}`,
      );
    for (let lane = 0; lane < lanes; lane++)
      assert.ok(
        lines.some((l) => l.includes(`training: round ${rounds}/${rounds} decided by all 2 shards of lane ${lane}`)),
      );
    // The verifier process finalized every lane's commits and every merge; the gateway settled the
    // dApp's receipts in one batch.
    assert.ok(
      lines.includes(
        `[6/9] verification: ${lanes * shards * rounds + shards * rounds} commits finalized by shard-node verify`,
      ),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => /inference: gateway settled 3 receipt\(s\) in one batch/.test(l)));
    assert.equal(r.evalLoss.length, rounds);
    assert.ok(r.evalLoss[rounds - 1]! < Math.log([...spec.architecture.vocab].length), `loss ${r.evalLoss}`);

    // Minted = work units × rate per trainer, per lane, per shard, per round; work = steps × samples × parameters.
    const rate = r.deployment.params.workToTokenRate;
    const samples = BigInt(spec.training.stepsPerRound * spec.training.microBatchSize * spec.training.microBatches);
    assert.equal(r.lanes, lanes);
    assert.equal(r.trainers.length, lanes * shards);
    assert.equal(new Set(r.trainers.map((t) => t.address)).size, lanes * shards, "every trainer its own account");
    // trainers[lane * shards + shard]
    const [t0, t1, t2, t3] = r.trainers.map((t) => t.address) as [Address, Address, Address, Address];
    const holder = r.newHolder.address;
    const perRound = [0, 1].map((s) => (samples * BigInt(stageLayout(spec, s).parameterCount) * rate) / 10n ** 18n);
    for (let lane = 0; lane < lanes; lane++)
      for (const s of [0, 1]) {
        const work = samples * BigInt(stageLayout(spec, s).parameterCount);
        assert.deepEqual(r.workUnits[lane]![s], Array(rounds).fill(work), `lane ${lane} shard ${s}`);
        assert.deepEqual(r.minted[lane]![s], Array(rounds).fill(perRound[s]), `lane ${lane} shard ${s}`);
      }
    for (const s of [0, 1]) assert.equal(r.supplies[s], perRound[s]! * BigInt(rounds * lanes));

    // One merge per shard and round, of both lanes, committed by lane 0's node of the shard,
    // recomputed and finalized by the verifier; a merge mints nothing.
    assert.deepEqual(
      r.merges.map((m) => [m.round, m.shard, m.lanes, m.committer, m.minted]),
      [1, 2].flatMap((round) => [0, 1].map((s) => [round, s, [0, 1], r.trainers[s]!.address, 0n])),
    );
    assert.deepEqual(
      r.deployment.shardWeights,
      [0, 1].map((s) => BigInt(stageLayout(spec, s).parameterCount)),
    );

    // The transfer: a quarter of trainer 0's shard-0 tokens, exactly.
    const minted0 = perRound[0]! * BigInt(rounds);
    const minted1 = perRound[1]! * BigInt(rounds);
    assert.equal(r.transfer.amount, minted0 / 4n);
    assert.deepEqual(r.balances[t0], [minted0 - minted0 / 4n, 0n]);
    assert.deepEqual(r.balances[holder], [minted0 / 4n, 0n]);
    assert.deepEqual(r.balances[t1], [0n, minted1]);
    assert.deepEqual(r.balances[t2], [minted0, 0n]);
    assert.deepEqual(r.balances[t3], [0n, minted1]);
    // Co-ownership: every shard is held by at least 2 of its trainers (one per lane).
    for (const s of [0, 1]) {
      const owners = r.trainers.filter((t) => r.balances[t.address]![s]! > 0n);
      assert.ok(owners.length >= 2, `shard ${s} held by ${owners.length} trainer(s)`);
      assert.deepEqual(
        owners.map((t) => [t.lane, t.shard]),
        [
          [0, s],
          [1, s],
        ],
      );
    }

    // Revenue in: the receipts' units × price in currency A (one batch), the direct payment in B.
    const a = r.deployment.currencyA.address;
    const b = r.deployment.currencyB.address;
    const receiptsTotal = r.revenue.receipts.reduce((sum, x) => sum + x.units * x.pricePerUnit, 0n);
    assert.ok(receiptsTotal > 0n);
    assert.equal(r.revenue.settledA, receiptsTotal);
    const paid = (c: Address) =>
      r.revenue.distributions.filter((d) => d.currency === c).reduce((sum, d) => sum + d.amount, 0n);
    assert.equal(paid(a), receiptsTotal);
    assert.equal(paid(b), r.revenue.directB);

    // Claimed = split by shard weight, then pro rata, rounded down, exactly; the dust stays and is bounded.
    const holders = [t0, t1, t2, t3, holder];
    const expected = expectedClaims(r, holders);
    assert.deepEqual(r.claimed, expected);
    for (const c of [a, b]) {
      const claimed = holders.reduce((sum, h) => sum + r.claimed[h]![c]!, 0n);
      const dust = paid(c) - claimed;
      assert.ok(dust >= 0n && dust <= BigInt(holders.length * 2 + 2), `dust ${dust} in ${c}`);
      for (const h of holders) assert.ok(r.claimed[h]![c]! > 0n, `${h} claimed nothing in ${c}`);
    }

    // The dApp got text for its payments, one unit per character.
    assert.equal(r.generated.length, 3);
    const vocab = new Set(spec.architecture.vocab);
    for (const [i, g] of r.generated.entries()) {
      assert.equal(BigInt([...g.text].length), r.revenue.receipts[i]!.units, `request ${i}: one unit per character`);
      assert.ok(
        [...g.text].every((ch) => vocab.has(ch)),
        `request ${i}: ${JSON.stringify(g.text)}`,
      );
    }
    assert.deepEqual(
      r.revenue.receipts.map((x) => x.amount),
      r.revenue.receipts.map((x) => x.units * x.pricePerUnit),
    );

    // The tables name every holder with its balance and lane; the co-owners' lines every shard's owners.
    assert.match(r.tables.capTable, /trainer 0 +lane 0, shard 0/);
    assert.match(r.tables.capTable, /trainer 3 +lane 1, shard 1/);
    assert.match(r.tables.capTable, /new holder/);
    assert.match(r.tables.capTable, /37\.50 %/); // trainer 0: three quarters of its half of shard 0
    assert.match(r.tables.revenue, /dust/);
    assert.deepEqual(r.tables.coOwners.split("\n"), [
      `shard 0: 3 holders (2 of its trainers): trainer 2 50.00 %, trainer 0 37.50 %, new holder ${formatPercent(minted0 / 4n, 2n * minted0)}`,
      "shard 1: 2 holders (2 of its trainers): trainer 1 50.00 %, trainer 3 50.00 %",
    ]);
  });

  it("refuses more than one lane without a merge rule in the spec, before starting anything", async () => {
    const pids: number[] = [];
    await assert.rejects(
      runDemo({ shards, lanes: 2, rounds, spec: plain, onProcess: (_, pid) => pids.push(pid) }),
      (err: unknown) => err instanceof RangeError && /training\.merge/.test(err.message),
    );
    await assert.rejects(runDemo({ shards, lanes: 5, spec }), /lanes must be 1 to 4/);
    assert.deepEqual(pids, []);
  });

  it("stops every process it started when aborted mid-training, and rejects with DemoAbortedError", async () => {
    const pids: number[] = [];
    const controller = new AbortController();
    await assert.rejects(
      runDemo({
        shards: 2,
        lanes: 1, // one lane, no merging
        rounds: 50,
        spec: plain,
        log: (line) => {
          if (line.includes("training: round 1/50 · step")) controller.abort();
        },
        onProcess: (_, pid) => pids.push(pid),
        signal: controller.signal,
      }),
      (err: unknown) => err instanceof DemoAbortedError,
    );
    assert.ok(pids.length >= 4);
    assert.deepEqual(await waitUntilGone(pids), []);
  });
});
