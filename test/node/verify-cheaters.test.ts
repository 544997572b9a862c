import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { type Address, type Hex, keccak256 } from "viem";
import {
  type Checkpoint,
  DEFAULT_ROUND_PARAMS,
  challenge,
  claimDispute,
  expireSeal,
  getCommit,
  reveal,
  signSealedCommit,
  submitCommit,
  toTokenId,
} from "shard-protocol/sdk";

import { ipfsUri, parseIpfsUri } from "../../node/src/ipfs/store.js";
import { stageLayout } from "../../node/src/ml/model.js";
import { canonicalJson } from "../../node/src/ml/spec.js";
import { APPEAL_EVIDENCE, claimAppeal } from "../../node/src/swarm/appeal.js";
import { decodeCheckpoint, encodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { type CommitContext, checkpointOf } from "../../node/src/swarm/commit.js";
import { type VerifierPass, finalMarginSeconds, verifyOnce } from "../../node/src/verify/index.js";
import { type Actor, Lab, type LabModel, type LaneRun, TRAINER_STAKE, VERIFIER_STAKE } from "../helpers/lane.js";

/**
 * Each cheater of the protocol, in a real lane (libp2p hosts, Helia stores, the in-process chain),
 * is caught by two staked verifiers running `verifyOnce` (sample rate 1): the cheating commit is
 * challenged by one and voted invalid by the other, resolve rejects it and slashes exactly
 * `slashAmount` (the challenger pulls its bond and its share with claimDispute, the voter releases
 * its locked vote with releaseVote, both in their next passes), the commits built on it are
 * rejected by cascade, and every honest commit finalizes with exactly its work units in shard
 * tokens while its trainer's stake stays whole. Chain time moves with evm_increaseTime.
 */

const P = DEFAULT_ROUND_PARAMS;
const SHARE = (P.slashAmount * BigInt(P.challengerShareBps)) / 10_000n;
const minted = (workUnits: bigint) => (workUnits * P.workToTokenRate) / 10n ** 18n;

describe("verifiers catch each cheater; the ledger slashes it; honest peers lose nothing", () => {
  let lab: Lab;
  let A: Actor;
  let B: Actor;

  before(async () => {
    lab = await Lab.create();
    [A, B] = [lab.actor(4), lab.actor(5)];
  });
  after(async () => {
    await lab?.close();
  });

  /** One pass of verifier `v`, fetching over libp2p from every content node of the lab. */
  const pass = async (model: LabModel, v: Actor): Promise<VerifierPass> =>
    verifyOnce(await lab.verifierConfig(model, v));

  /**
   * A then B check the new reveals (challenge / vote), unless `first` gives those passes; windows
   * pass; passes until nothing is left to do.
   */
  async function settle(model: LabModel, first?: readonly [VerifierPass, VerifierPass]) {
    first ??= [await pass(model, A), await pass(model, B)] as const;
    await lab.increaseTime(P.challengeWindow + P.disputeWindow + 60);
    const later: VerifierPass[] = [];
    for (let i = 0; i < 6; i++) {
      const round = [await pass(model, A), await pass(model, B)];
      later.push(...round);
      const busy = round.some((p) => p.resolved.length + p.finalized.length + p.orphansRejected.length > 0);
      if (!busy && i > 0) break;
    }
    return { first, later, all: [...first, ...later] };
  }

  interface Balances {
    stake: Map<Address, bigint>;
    stk: Map<Address, bigint>;
  }
  async function balances(model: LabModel, who: readonly Actor[]): Promise<Balances> {
    const b: Balances = { stake: new Map(), stk: new Map() };
    for (const a of who) {
      const s = (await lab.f.staking.read.stakeOf([model.modelId, a.account.address, 0])) as { active: bigint };
      b.stake.set(a.account.address, s.active);
      b.stk.set(a.account.address, (await lab.f.stake.read.balanceOf([a.account.address])) as bigint);
    }
    return b;
  }
  const stakeOf = async (model: LabModel, a: Actor, role: 0 | 1) => {
    const s = (await lab.f.staking.read.stakeOf([model.modelId, a.account.address, role])) as {
      active: bigint;
      locked: bigint;
    };
    return { active: s.active, locked: s.locked };
  };
  const shardTokens = async (model: LabModel, owner: Address, shard: number) =>
    (await lab.f.token.read.balanceOf([owner, toTokenId({ modelId: model.modelId, shard })])) as bigint;
  const commitOf = (model: LabModel, lane: number, shard: number, round: number) =>
    getCommit(A.client as never, { deployment: lab.deployment, modelId: model.modelId, shard, round, lane });

  /**
   * The common verdict on a lane with one cheater: its commit at `round` rejected by a dispute A
   * opened and B voted invalid; its later rounds rejected by cascade; every other commit finalized
   * with its work units minted; exact stake and STK movements.
   */
  async function assertCaught(
    model: LabModel,
    run: LaneRun,
    cheat: { shard: number; round: number },
    before: Balances,
    s: Awaited<ReturnType<typeof settle>>,
  ) {
    const cheater = run.trainers[cheat.shard]!.account.address;
    const bad = await commitOf(model, run.lane, cheat.shard, cheat.round);
    assert.ok(s.first[0].challenged.includes(bad.commitId), "A challenged the cheating commit");
    assert.ok(
      s.first[1].voted.some((x) => x.commitId === bad.commitId && x.invalid),
      "B voted it invalid",
    );
    assert.equal(bad.status, "rejected");
    assert.equal(bad.dispute?.challenger, A.account.address);
    assert.ok(bad.dispute!.invalidWeight > bad.dispute!.validWeight);
    const resolved = s.all.flatMap((p) => p.resolved).filter((r) => r.commitId === bad.commitId);
    assert.deepEqual(resolved, [{ commitId: bad.commitId, verdict: "invalid", slashed: P.slashAmount }]);
    // Nothing is paid at resolve: A pulled its bond and share, B released the stake its vote locked.
    assert.deepEqual(
      s.all.flatMap((p) => p.claimed).filter((c) => c.commitId === bad.commitId),
      [{ commitId: bad.commitId, index: 1, amount: P.challengeBond + SHARE }],
    );
    assert.deepEqual(
      s.all.flatMap((p) => p.released).filter((c) => c.commitId === bad.commitId),
      [{ commitId: bad.commitId, index: 1, slashed: 0n }],
    );
    const after = await balances(model, [...run.trainers, A, B]);
    assert.equal(after.stake.get(cheater), TRAINER_STAKE - P.slashAmount, "exactly slashAmount slashed");
    // The challenger got its bond back and its share of the slash; B spent nothing.
    assert.equal(after.stk.get(A.account.address)! - before.stk.get(A.account.address)!, SHARE);
    assert.equal(after.stk.get(B.account.address), before.stk.get(B.account.address));
    // No stake stays locked: the verifiers' votes released, every trainer's commits settled.
    for (const v of [A, B]) assert.deepEqual(await stakeOf(model, v, 1), { active: VERIFIER_STAKE, locked: 0n });
    for (const t of run.trainers) assert.equal((await stakeOf(model, t, 0)).locked, 0n);
    assert.equal(await shardTokens(model, cheater, cheat.shard), 0n, "the cheater earned nothing");

    for (const [shard, r] of run.results.entries()) {
      const owner = run.trainers[shard]!.account.address;
      let expected = 0n;
      for (const rec of r.journal.rounds) {
        const c = await commitOf(model, run.lane, shard, rec.round);
        if (shard === cheat.shard && rec.round >= cheat.round) {
          assert.equal(c.status, "rejected", `shard ${shard} round ${rec.round}`);
          if (rec.round > cheat.round)
            assert.ok(
              s.all.some((p) => p.orphansRejected.includes(c.commitId)),
              `round ${rec.round} of the cheater rejected by cascade`,
            );
          continue;
        }
        assert.equal(c.status, "finalized", `shard ${shard} round ${rec.round}`);
        expected += minted(BigInt(rec.workUnits));
      }
      if (shard !== cheat.shard) {
        assert.equal(await shardTokens(model, owner, shard), expected, `shard ${shard} tokens = work × rate`);
        assert.equal(after.stake.get(owner), TRAINER_STAKE, `shard ${shard}'s trainer keeps its stake`);
        assert.ok(expected > 0n);
      }
    }
    return after;
  }

  async function cheaterCase(adversary: Parameters<Lab["runLane"]>[0]["adversary"] & {}, rounds: number) {
    const model = await lab.model();
    const trainers = [lab.actor(1), lab.actor(2)];
    const before = await balances(model, [...trainers, A, B]);
    const run = await lab.runLane({ model, rounds, adversary });
    return { model, run, before };
  }

  it("perturbed weights: the replay reaches other weights; its next round (built on it) is rejected by cascade", async () => {
    const { model, run, before } = await cheaterCase(
      { shard: 0, adversary: { kind: "perturb-weights", rounds: [1] } },
      2,
    );
    const s = await settle(model);
    const v = s.first[0].verdicts.find((x) => x.shard === 0 && x.round === 1)!;
    assert.equal(v.reason, "root-mismatch");
    // Round 2 replays cleanly from the nudged parent: only round 1 is wrong.
    assert.ok(s.first[0].verdicts.filter((x) => x.round === 2).every((x) => x.valid));
    await assertCaught(model, run, { shard: 0, round: 1 }, before, s);
  });

  it("inflated work: declared 4× the work units on-chain, caught as work-units", async () => {
    const { model, run, before } = await cheaterCase({ shard: 1, adversary: { kind: "inflate-work", factor: 4 } }, 2);
    const honest = BigInt(run.results[0]!.journal.record(1)!.workUnits);
    const declared = BigInt(run.results[1]!.journal.record(1)!.workUnits);
    const layouts = [0, 1].map((s) => stageLayout(model.spec, s).parameterCount);
    assert.equal(declared * BigInt(layouts[0]!), 4n * honest * BigInt(layouts[1]!));
    const s = await settle(model);
    assert.equal(s.first[0].verdicts.find((x) => x.shard === 1 && x.round === 1)!.reason, "work-units");
    await assertCaught(model, run, { shard: 1, round: 1 }, before, s);
  });

  it("forged pipeline digest: the link mismatches; the honest neighbour appeals at no cost and finalizes", async () => {
    const { model, run, before } = await cheaterCase({ shard: 0, adversary: { kind: "forge-digest" } }, 2);
    const [forger, honest] = run.results.map((r) => r.journal.record(1)!);
    assert.notEqual(forger!.sentActivations, honest!.receivedActivations, "the forged digest is committed");
    // The honest trainer saw the mismatch and challenged its own commit (once); the forger did not.
    const appealed = await commitOf(model, 0, 1, 1);
    assert.equal(appealed.dispute?.challenger, run.trainers[1]!.account.address);
    assert.equal(appealed.disputes, 1);
    assert.ok(run.events[1]!.some((e) => e.type === "link" && e.round === 1 && e.appealed === true));
    assert.equal(run.results[1]!.journal.record(1)!.link, "appealed");
    assert.equal(run.results[1]!.journal.record(2)!.link, "matched");
    assert.equal((await commitOf(model, 0, 0, 1)).disputes, 0, "the forger did not appeal");
    const s = await settle(model);
    assert.equal(s.first[0].verdicts.find((x) => x.shard === 0 && x.round === 1)!.reason, "pipeline-digest");
    // Both verifiers voted the appeal valid; it was upheld.
    for (const p of s.first) assert.ok(p.voted.some((x) => x.commitId === appealed.commitId && !x.invalid));
    const upheld = await commitOf(model, 0, 1, 1);
    assert.equal(upheld.upheld, true);
    const after = await assertCaught(model, run, { shard: 0, round: 1 }, before, s);
    // Upheld: the bonds wait in the ledger for the owner, who pulls them (its node does at its
    // next settlement; here, directly). The appeal cost the honest trainer nothing.
    const h = run.trainers[1]!;
    assert.equal(after.stk.get(h.account.address), before.stk.get(h.account.address)! - P.challengeBond);
    const got = await claimAppeal(
      { client: h.client as never, account: h.account, deployment: lab.deployment },
      appealed.commitId,
      1,
    );
    assert.deepEqual(got, { verdict: "valid", amount: P.challengeBond });
    assert.equal(await lab.f.stake.read.balanceOf([h.account.address]), before.stk.get(h.account.address));
    assert.equal(appealed.dispute?.bond, P.challengeBond);
    assert.equal(keccak256(new TextEncoder().encode("appeal")), APPEAL_EVIDENCE);
  });

  it("withheld checkpoint: committed CIDs nobody can fetch, retried while the window is young, then challenged (and voted) as withheld near its end", async () => {
    const { model, run, before } = await cheaterCase({ shard: 1, adversary: { kind: "withhold" } }, 1);
    const rec = run.results[1]!.journal.record(1)!;
    await assert.rejects(
      run.nodes[1]!.store.get(parseIpfsUri(rec.checkpointURI!), { maxBytes: 1 << 26 }),
      (e: Error) => e.name === "ContentNotFoundError",
    );
    const bad = await commitOf(model, run.lane, 1, 1);
    // Early in the window a failed fetch is only retried: no verdict, no report, no challenge.
    for (const p of [await pass(model, A), await pass(model, B)]) {
      assert.deepEqual([p.challenged, p.notFetched], [[], []]);
      assert.deepEqual(
        p.verdicts.map((v) => [v.shard, v.reason]),
        [[0, "ok"]],
      );
    }
    // The last 10 % of the challenge window: A tries again at once, reports it and challenges it.
    await lab.increaseTime(P.challengeWindow - finalMarginSeconds(P.challengeWindow) + 30);
    const a = await pass(model, A);
    assert.deepEqual(
      a.notFetched.map((n) => [n.commitId, n.reason, n.kind, n.action]),
      [[bad.commitId, "withheld", "challenge", "challenge"]],
    );
    assert.deepEqual(a.verdicts, [], "not fetched is no verdict");
    // B's deadline is now the end of A's dispute: it waits, and votes invalid near that end.
    const b0 = await pass(model, B);
    assert.deepEqual([b0.voted, b0.notFetched], [[], []]);
    await lab.increaseTime(P.disputeWindow - finalMarginSeconds(P.disputeWindow) + 30);
    const b = await pass(model, B);
    assert.deepEqual(
      b.notFetched.map((n) => [n.commitId, n.reason, n.kind, n.action]),
      [[bad.commitId, "withheld", "dispute", "vote"]],
    );
    const s = await settle(model, [a, b]);
    await assertCaught(model, run, { shard: 1, round: 1 }, before, s);
  });

  it("copies: an exact copy cannot be revealed (CheckpointRootTaken) and earns nothing; near copies are slashed; a frivolous challenger loses its bond", async () => {
    const model = await lab.model({ trainers: [1, 2, 6, 7] });
    const [t1, t2, c6, c7] = [1, 2, 6, 7].map((i) => lab.actor(i)) as [Actor, Actor, Actor, Actor];
    const before = await balances(model, [t1, t2, c6, c7, A, B]);
    const run = await lab.runLane({ model, rounds: 1 });
    // The copiers fetch the revealed content over libp2p and publish through their own node.
    const copier = await lab.contentNode("copier");
    const source = (shard: number): Checkpoint =>
      checkpointOf(
        { modelId: model.modelId, shard, lane: 0, account: run.trainers[shard]!.account } as CommitContext,
        run.results[shard]!.journal.record(1)!,
      );
    const sealAndReveal = async (who: Actor, cp: Checkpoint) => {
      const signed = await signSealedCommit(who.client as never, {
        deployment: lab.deployment,
        account: who.account,
        checkpoint: cp,
      });
      const sent = await submitCommit(who.client as never, {
        deployment: lab.deployment,
        account: who.account,
        commit: signed.commit,
        signature: signed.signature,
      });
      await lab.mine(); // a reveal must be in a later block than its seal
      const revealed = reveal(who.client as never, {
        deployment: lab.deployment,
        account: who.account,
        checkpoint: cp,
        salt: signed.salt,
        commitBlock: sent.commitBlock,
        commitTime: sent.commitTime,
      });
      return { signed, sent, revealed };
    };

    // Exact copy (lane 2): sealed, but its reveal is refused, so it can never be paid.
    const exact = { ...source(0), lane: 2, owner: c6.account.address };
    const ex = await sealAndReveal(c6, exact);
    await assert.rejects(
      ex.revealed,
      (e: Error & { errorName?: string }) => e.name === "ContractRevertError" && e.errorName === "CheckpointRootTaken",
    );
    assert.equal((await commitOf(model, 2, 0, 1)).status, "sealed");

    // Near copies (lane 1): one weight changed, transcripts rewritten to the new lane and root.
    const near: Checkpoint[] = [];
    for (const [shard, who] of [c6, c7].entries()) {
      const src = source(shard);
      const got = await copier.store.get(parseIpfsUri(src.checkpointURI), { maxBytes: 1 << 26 });
      const { state, meta } = decodeCheckpoint(stageLayout(model.spec, shard), got, {
        modelId: String(model.modelId),
        specDigest: model.specDigest,
        stepsPerRound: model.spec.training.stepsPerRound,
        round: Number(src.round),
      });
      const first = Object.keys(state.params)[0]!;
      state.params[first]![0]! += 1e-4;
      const { bytes, root } = encodeCheckpoint(stageLayout(model.spec, shard), state, { ...meta, lane: 1 });
      const transcript = JSON.parse(
        new TextDecoder().decode(await copier.store.get(parseIpfsUri(src.transcriptURI), { maxBytes: 1 << 22 })),
      ) as Record<string, unknown>;
      const tBytes = new TextEncoder().encode(canonicalJson({ ...transcript, lane: 1, root }));
      const cp: Checkpoint = {
        ...src,
        lane: 1,
        owner: who.account.address,
        root,
        transcriptDigest: keccak256(tBytes),
        checkpointURI: ipfsUri(await copier.store.add(bytes)),
        transcriptURI: ipfsUri(await copier.store.add(tBytes)),
      };
      await (
        await sealAndReveal(who, cp)
      ).revealed;
      near.push(cp);
    }

    // A frivolous challenge of an honest commit (lane 0, shard 0).
    const honest = await commitOf(model, 0, 0, 1);
    await challenge(A.client as never, { deployment: lab.deployment, account: A.account, commitId: honest.commitId });

    const s = await settle(model);
    // Frivolous: B (and only B: A opened it) voted valid; upheld; A's bond went to the trainer.
    assert.ok(s.first[1].voted.some((x) => x.commitId === honest.commitId && !x.invalid));
    const h = await commitOf(model, 0, 0, 1);
    assert.equal(h.upheld, true);
    assert.equal(h.status, "finalized");
    // Upheld: A's bond waits in the ledger until the owner claims it.
    let after = await balances(model, [t1, t2, c6, c7, A, B]);
    assert.equal(after.stk.get(t1.account.address), before.stk.get(t1.account.address));
    const pulled = await claimDispute(t1.client as never, {
      deployment: lab.deployment,
      account: t1.account,
      commitId: honest.commitId,
      index: 1,
    });
    assert.equal(pulled.amount, P.challengeBond);
    after = await balances(model, [t1, t2, c6, c7, A, B]);
    assert.equal(after.stk.get(t1.account.address)! - before.stk.get(t1.account.address)!, P.challengeBond);
    // A: +share of each near copy's slash, −the frivolous bond.
    assert.equal(after.stk.get(A.account.address)! - before.stk.get(A.account.address)!, 2n * SHARE - P.challengeBond);
    assert.equal(after.stk.get(B.account.address), before.stk.get(B.account.address));

    for (const [shard, who] of [c6, c7].entries()) {
      const c = await commitOf(model, 1, shard, 1);
      assert.equal(c.status, "rejected", `near copy of shard ${shard}`);
      assert.equal(c.dispute?.challenger, A.account.address);
      assert.ok(s.first[1].voted.some((x) => x.commitId === c.commitId && x.invalid));
      assert.equal(after.stake.get(who.account.address), TRAINER_STAKE - P.slashAmount);
      assert.equal(await shardTokens(model, who.account.address, shard), 0n);
    }
    for (const [shard, t] of [t1, t2].entries()) {
      assert.equal((await commitOf(model, 0, shard, 1)).status, "finalized");
      assert.equal(after.stake.get(t.account.address), TRAINER_STAKE);
      const work = BigInt(run.results[shard]!.journal.record(1)!.workUnits);
      assert.equal(await shardTokens(model, t.account.address, shard), minted(work));
    }
    // The exact copy's seal never became a commit, and expires once its reveal window is over:
    // its lock released, its seal deposit burned.
    assert.equal((await commitOf(model, 2, 0, 1)).status, "sealed");
    assert.deepEqual(await stakeOf(model, c6, 0), { active: TRAINER_STAKE - P.slashAmount, locked: P.slashAmount });
    await expireSeal(c6.client as never, {
      deployment: lab.deployment,
      account: c6.account,
      commit: ex.signed.commit,
      commitBlock: ex.sent.commitBlock,
      commitTime: ex.sent.commitTime,
    });
    assert.equal((await commitOf(model, 2, 0, 1)).status, "none");
    assert.deepEqual(await stakeOf(model, c6, 0), {
      active: TRAINER_STAKE - P.slashAmount - P.sealDeposit,
      locked: 0n,
    });
    assert.equal(near.length, 2);
  });
});
