import assert from "node:assert/strict";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { type Hex, keccak256, parseEther, toHex, zeroHash } from "viem";
import { getCommit, getParamsVersion, signSealedCommit } from "shard-protocol/sdk";

import type { ContentStore } from "../../node/src/ipfs/store.js";
import { type CommitContext, checkpointOf, commitRound, sealRecord } from "../../node/src/swarm/commit.js";
import { Journal, type RoundRecord } from "../../node/src/swarm/journal.js";
import { defaultParams } from "../helpers/fixture.js";
import { type Actor, Lab, type LabModel } from "../helpers/lane.js";

/**
 * A node restarted with a seal journaled but not on-chain (phase `sealing`) finishes the same
 * commit, with the same salt: when the registrant scheduled new parameters for the round meanwhile
 * (the ledger refuses the seal with ParamsChanged), and when the seal was journaled before seals
 * named their parent and parameter version. Both are signed again with the journaled salt.
 */

const label = (s: string) => keccak256(toHex(s));

describe("commitRound resumes a journaled seal the ledger would refuse", () => {
  let lab: Lab;
  let model: LabModel;
  let trainer: Actor;

  before(async () => {
    lab = await Lab.create();
    model = await lab.model();
    trainer = lab.actor(1);
  });
  after(async () => {
    await lab?.close();
  });

  /** A decided round 1 of shard 0 on `lane` (content already published), and its commit context. */
  async function decided(lane: number): Promise<{ ctx: CommitContext; rec: RoundRecord }> {
    const dir = await mkdtemp(join(lab.dir, `journal-${lane}-`));
    const journal = await Journal.open(dir, {
      modelId: String(model.modelId),
      shard: 0,
      lane,
      specDigest: model.specDigest,
      owner: trainer.account.address,
    });
    await journal.prepare({
      round: 1,
      phase: "prepared",
      parentRoot: zeroHash,
      root: label(`root-${lane}`),
      checkpointFile: "checkpoint",
      transcriptFile: "transcript",
      transcriptDigest: label(`transcript-${lane}`),
      sentActivations: label(`act-${lane}`),
      receivedActivations: zeroHash,
      sentGradients: zeroHash,
      receivedGradients: label(`grad-${lane}`),
      workUnits: "1000",
      lossMicros: "2500000",
      evalLoss: null,
    });
    const rec = await journal.advance(1, "decided", {
      checkpointURI: "ipfs://bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi",
      transcriptURI: "ipfs://bafybeie5gq4jxvzmsym6hjlwxej4rwdoxt7wadqvmmwbqi7r27fclha2va",
    });
    const ctx: CommitContext = {
      client: trainer.client as never,
      account: trainer.account,
      deployment: lab.deployment,
      journal,
      store: undefined as unknown as ContentStore, // the content is published already
      modelId: model.modelId,
      shard: 0,
      lane,
    };
    return { ctx, rec };
  }

  /** Journals a signed seal for round 1, as commitRound does before it sends it (then "crashes"). */
  async function journalSeal(ctx: CommitContext, rec: RoundRecord) {
    const signed = await signSealedCommit(trainer.client as never, {
      deployment: lab.deployment,
      account: trainer.account,
      checkpoint: checkpointOf(ctx, rec),
    });
    await ctx.journal.advance(1, "sealing", { salt: signed.salt, seal: sealRecord(signed) });
    return signed;
  }

  const versionOfRound1 = () =>
    getParamsVersion(trainer.client as never, { deployment: lab.deployment, modelId: model.modelId, round: 1n });

  it("ParamsChanged: the registrant scheduled new parameters after the seal was signed; it is signed again (same salt) and revealed", async () => {
    const { ctx, rec } = await decided(0);
    const signed = await journalSeal(ctx, rec);
    const before = await versionOfRound1();
    assert.equal(signed.commit.paramsVersion, before);
    await lab.f.registry.write.scheduleParams([model.modelId, { ...defaultParams, challengeBond: parseEther("11") }]);
    const now = await versionOfRound1();
    assert.notEqual(now, before);

    const done = await commitRound(ctx, 1);
    assert.equal(done.phase, "revealed");
    assert.equal(done.salt, signed.salt, "the same salt");
    assert.equal(done.seal!.commit.sealedHash, signed.commit.sealedHash, "the same sealed hash");
    assert.equal(done.seal!.commit.paramsVersion, now);
    const c = await getCommit(trainer.client as never, {
      deployment: lab.deployment,
      modelId: model.modelId,
      shard: 0,
      round: 1n,
      lane: 0,
    });
    assert.equal(c.status, "pending");
    assert.equal(c.commitId, done.commitId);
  });

  it("a seal journaled before seals named their parent and parameter version is signed again and revealed", async () => {
    const { ctx, rec } = await decided(1);
    const signed = await journalSeal(ctx, rec);
    // The older journal format: neither field.
    const old = ctx.journal.record(1)!.seal!;
    delete old.commit.parentRoot;
    delete old.commit.paramsVersion;
    old.signature = "0x00" as Hex;
    const done = await commitRound(ctx, 1);
    assert.equal(done.phase, "revealed");
    assert.equal(done.salt, signed.salt);
    assert.equal(done.seal!.commit.parentRoot, zeroHash);
    assert.equal(done.seal!.commit.paramsVersion, await versionOfRound1());
  });
});
