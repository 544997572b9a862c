import assert from "node:assert/strict";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { type Hex, keccak256, toHex } from "viem";

import { Journal, JournalError, type RoundRecord } from "../../node/src/swarm/journal.js";

const h = (label: string): Hex => keccak256(toHex(label));
const identity = {
  modelId: "1",
  shard: 0,
  lane: 2,
  specDigest: h("spec"),
  owner: "0x0000000000000000000000000000000000000001",
};

const record = (round: number, phase: RoundRecord["phase"]): RoundRecord => ({
  round,
  phase,
  parentRoot: h(`parent ${round}`),
  root: h(`root ${round}`),
  checkpointFile: `round-${round}.safetensors`,
  transcriptFile: `round-${round}.json`,
  transcriptDigest: h(`t ${round}`),
  sentActivations: h("sa"),
  receivedActivations: h("ra"),
  sentGradients: h("sg"),
  receivedGradients: h("rg"),
  workUnits: "10",
  lossMicros: "2000000",
  evalLoss: null,
});

describe("journal base: a lane going on from a merge it did not train", () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "journal-base-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("a joining node: empty journal, base at the merge; the next round prepared is base + 1", async () => {
    await mkdir(path.join(dir, "join"));
    const j = await Journal.open(path.join(dir, "join"), identity);
    assert.equal(j.headRound, 0);
    await j.setBase(3, h("merge 3"));
    assert.equal(j.headRound, 3);
    assert.equal(j.head, undefined, "no round of its own");
    await assert.rejects(j.prepare(record(2, "prepared")), JournalError);
    await j.prepare(record(4, "prepared"));
    await j.advance(4, "decided");
    assert.equal(j.headRound, 4);
    // Survives a restart.
    const again = await Journal.open(path.join(dir, "join"), identity);
    assert.deepEqual(again.base, { round: 3, root: h("merge 3") });
    assert.equal(again.headRound, 4);
  });

  it("a node back after a crash: decided rounds stay (still to commit), a prepared round at or below the base is dropped, the base never goes back", async () => {
    await mkdir(path.join(dir, "back"));
    const j = await Journal.open(path.join(dir, "back"), identity);
    await j.prepare(record(1, "prepared"));
    await j.advance(1, "decided");
    await j.prepare(record(2, "prepared"));
    await j.setBase(2, h("merge 2"));
    assert.equal(j.pending, undefined, "round 2 was merged without this lane");
    assert.deepEqual(
      j.unfinished.map((r) => r.round),
      [1],
      "round 1 is still committed",
    );
    assert.equal(j.headRound, 2);
    await assert.rejects(j.setBase(2, h("merge 2")), /already at round 2/);
    await assert.rejects(j.setBase(1, h("merge 1")), JournalError);
  });

  it("localLanes lists the lanes of (model, shard) with a journal in the folder, nothing else", async () => {
    const data = path.join(dir, "data");
    for (const name of ["1-0-2", "1-0-10", "1-1-0", "2-0-0", "1-0-x"]) {
      await mkdir(path.join(data, name), { recursive: true });
      await writeFile(path.join(data, name, "journal.json"), "{}");
    }
    await mkdir(path.join(data, "1-0-5"), { recursive: true }); // no journal
    assert.deepEqual(await Journal.localLanes(data, "1", 0), [2, 10]);
    assert.deepEqual(await Journal.localLanes(path.join(dir, "absent"), "1", 0), []);
    // An older journal without a base still reads.
    const old = JSON.parse(await readFile(path.join(dir, "back", "journal.json"), "utf8"));
    delete old.base;
    await mkdir(path.join(dir, "old"));
    await writeFile(path.join(dir, "old", "journal.json"), JSON.stringify(old));
    assert.equal((await Journal.open(path.join(dir, "old"), identity)).headRound, 1);
  });
});
