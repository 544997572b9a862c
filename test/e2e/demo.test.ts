import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";

import { type Address } from "viem";

import { stageLayout } from "../../node/src/ml/model.js";
import { zModelSpec } from "../../node/src/ml/spec.js";
import { DemoAbortedError, type DemoResult, runDemo } from "../../scripts/demo.js";
import { ROOT } from "../../scripts/lib/demo/process.js";
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
  const spec = zModelSpec.parse({ ...base, training: { ...base.training, stepsPerRound: 4 } });
  const rounds = 2;

  it("trains in separate processes, mints exactly the verified work, transfers, and pays out every payment exactly", async () => {
    assert.ok(existsSync(path.join(ROOT, "node/dist/cli.js")), "build the CLI first: npm run build");
    const pids: number[] = [];
    const lines: string[] = [];
    const r = await runDemo({
      shards: 2,
      rounds,
      spec,
      challengeWindow: 10, // the least: it bounds the reveal window
      log: (line) => lines.push(line),
      onProcess: (_, pid) => pids.push(pid),
    });

    // Separate OS processes (2 stake + 2 train + claims at least), all gone at the end.
    assert.ok(pids.length >= 6, `${pids.length} processes`);
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
    assert.ok(lines.some((l) => l.includes(`training: round ${rounds}/${rounds} decided`)));
    // The verifier process finalized every commit; the gateway settled the dApp's receipts in one batch.
    assert.ok(
      lines.includes(`[6/9] verification: ${2 * rounds} commits finalized by shard-node verify`),
      lines.join("\n"),
    );
    assert.ok(lines.some((l) => /inference: gateway settled 3 receipt\(s\) in one batch/.test(l)));
    assert.equal(r.evalLoss.length, rounds);
    assert.ok(r.evalLoss[rounds - 1]! < Math.log([...spec.architecture.vocab].length), `loss ${r.evalLoss}`);

    // Minted = work units × rate per trainer, per shard, per round; work = steps × samples × parameters.
    const rate = r.deployment.params.workToTokenRate;
    const samples = BigInt(spec.training.stepsPerRound * spec.training.microBatchSize * spec.training.microBatches);
    const [t0, t1] = r.trainers.map((t) => t.address) as [Address, Address];
    const holder = r.newHolder.address;
    const perRound = [0, 1].map((s) => (samples * BigInt(stageLayout(spec, s).parameterCount) * rate) / 10n ** 18n);
    for (const s of [0, 1]) {
      assert.deepEqual(r.workUnits[s], Array(rounds).fill(samples * BigInt(stageLayout(spec, s).parameterCount)));
      assert.deepEqual(r.minted[s], Array(rounds).fill(perRound[s]));
      assert.equal(r.supplies[s], perRound[s]! * BigInt(rounds));
    }
    assert.deepEqual(
      r.deployment.shardWeights,
      [0, 1].map((s) => BigInt(stageLayout(spec, s).parameterCount)),
    );

    // The transfer: a quarter of trainer 0's shard-0 tokens, exactly.
    const minted0 = perRound[0]! * BigInt(rounds);
    assert.equal(r.transfer.amount, minted0 / 4n);
    assert.deepEqual(r.balances[t0], [minted0 - minted0 / 4n, 0n]);
    assert.deepEqual(r.balances[holder], [minted0 / 4n, 0n]);
    assert.deepEqual(r.balances[t1], [0n, perRound[1]! * BigInt(rounds)]);

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
    const holders = [t0, t1, holder];
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

    // The tables name every holder with its balance.
    assert.match(r.tables.capTable, /trainer 0/);
    assert.match(r.tables.capTable, /new holder/);
    assert.match(r.tables.capTable, /75\.00 %/);
    assert.match(r.tables.revenue, /dust/);
  });

  it("stops every process it started when aborted mid-training, and rejects with DemoAbortedError", async () => {
    const pids: number[] = [];
    const controller = new AbortController();
    await assert.rejects(
      runDemo({
        shards: 2,
        rounds: 50,
        spec,
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
