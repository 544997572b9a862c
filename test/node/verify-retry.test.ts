import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import type { Hex } from "viem";
import { DEFAULT_ROUND_PARAMS, getCommit } from "shard-protocol/sdk";

import {
  type VerifierConfig,
  type VerifierEvent,
  DEFAULT_RETRY_POLICY,
  VerifierState,
  fetchDeadline,
  fetchPhase,
  finalMarginSeconds,
  retryDelayMs,
  runVerifier,
  verifyOnce,
} from "../../node/src/verify/index.js";
import { type Actor, Lab, type LabModel } from "../helpers/lane.js";

/**
 * A verifier never turns a failed fetch into a verdict: a round whose content does not arrive is
 * tried again with backoff (kept in its state file), and only near the end of the commit's window
 * is it reported as not fetched (and challenged as withheld). Real chain, real Helia over libp2p.
 */

const P = DEFAULT_ROUND_PARAMS;

describe("verify retry: the backoff schedule and the deadlines", () => {
  it("doubles from baseMs up to maxMs; refuses attempts below 1 and unordered policies", () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 7, 50, 5000].map((a) => retryDelayMs(a)),
      [15_000, 30_000, 60_000, 120_000, 240_000, 300_000, 300_000, 300_000, 300_000],
    );
    assert.equal(retryDelayMs(3, { baseMs: 100, maxMs: 1_000 }), 400);
    assert.deepEqual(DEFAULT_RETRY_POLICY, { baseMs: 15_000, maxMs: 300_000 });
    assert.throws(() => retryDelayMs(0), RangeError);
    assert.throws(() => retryDelayMs(1.5), RangeError);
    assert.throws(() => retryDelayMs(1, { baseMs: 10, maxMs: 5 }), /need 0 < baseMs ≤ maxMs/);
    assert.throws(() => retryDelayMs(1, { baseMs: 0, maxMs: 5 }), RangeError);
  });

  it("a failed fetch is final in the last 10 % of the window (at least 60 s, at most half of it)", () => {
    assert.equal(finalMarginSeconds(3600), 360);
    assert.equal(finalMarginSeconds(300), 60);
    assert.equal(finalMarginSeconds(60), 30);
    assert.equal(finalMarginSeconds(86_400), 8_640);
    const d = fetchDeadline({ revealedAt: 1_000, challengeWindow: 3600, disputeWindow: 1800 });
    assert.deepEqual(d, { kind: "challenge", at: 4_600, finalFrom: 4_240 });
    assert.deepEqual(
      [1_000, 4_239, 4_240, 4_599, 4_600, 9_999].map((t) => fetchPhase(t, d)),
      ["retry", "retry", "final", "final", "closed", "closed"],
    );
    // A dispute someone else opened: its end is the deadline (the vote), with the dispute window's margin.
    assert.deepEqual(
      fetchDeadline({ revealedAt: 1_000, challengeWindow: 3600, disputeWindow: 1800, disputeEndsAt: 6_000 }),
      { kind: "dispute", at: 6_000, finalFrom: 5_820 },
    );
  });

  it("the schedule and the reports are kept in the state file (a restart keeps them); older files read with none", async () => {
    const dir = await mkdtemp(join(tmpdir(), "verify-retry-state-"));
    try {
      const me = "0x00000000000000000000000000000000000000aa" as const;
      const id = `0x${"11".repeat(32)}` as Hex;
      const s = await VerifierState.open(dir, 7n, me);
      s.setRetry("0:3", { attempts: 2, firstAt: 1_000, nextAt: 31_000, detail: "ContentNotFoundError: x" });
      s.setUnfetched(id, {
        reason: "withheld",
        detail: "ipfs://b…: ContentNotFoundError",
        attempts: 2,
        kind: "challenge",
        deadline: 4_600,
        at: 4_300,
      });
      await s.save();
      const t = await VerifierState.open(dir, 7n, me);
      assert.deepEqual(t.retry("0:3"), {
        attempts: 2,
        firstAt: 1_000,
        nextAt: 31_000,
        detail: "ContentNotFoundError: x",
      });
      assert.deepEqual(t.retryKeys(), ["0:3"]);
      assert.equal(t.unfetched(id)?.reason, "withheld");
      assert.equal(t.verdict(id), undefined, "a report is no verdict");
      t.clearRetry("0:3");
      t.clearUnfetched(id);
      await t.save();
      const u = await VerifierState.open(dir, 7n, me);
      assert.deepEqual([u.retryKeys(), u.unfetched(id)], [[], undefined]);

      // A state file written before retries existed: read with an empty schedule.
      const json = JSON.parse(await readFile(s.file, "utf8")) as Record<string, unknown>;
      delete json.retries;
      delete json.unfetched;
      await writeFile(s.file, JSON.stringify(json));
      assert.deepEqual((await VerifierState.open(dir, 7n, me)).retryKeys(), []);
      // A malformed schedule is a corrupt state file.
      await writeFile(s.file, JSON.stringify({ ...json, retries: { "0:1": { attempts: 0 } } }));
      await assert.rejects(VerifierState.open(dir, 7n, me), { name: "VerifierStateError" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("verify retry: content that is not reachable yet is retried, not judged", () => {
  let lab: Lab;
  let V: Actor;

  before(async () => {
    lab = await Lab.create();
    V = lab.actor(4);
  });
  after(async () => {
    await lab?.close();
  });

  /** The verifier's content node, opened before any trainer's: connected to none of them. */
  const config = async (
    model: LabModel,
    node: string,
    events: VerifierEvent[],
    retry = { baseMs: 200, maxMs: 1_000 },
  ): Promise<VerifierConfig> => ({
    modelId: model.modelId,
    spec: model.spec,
    specDigest: model.specDigest,
    chain: { client: V.client as never, account: V.account, deployment: lab.deployment },
    store: (await lab.contentNode(node)).store,
    backend: lab.backend,
    sampleRate: 1,
    fetchTimeoutMs: 1_500,
    retry,
    dataDir: join(lab.dir, `verifier-${node}`),
    onEvent: (e) => events.push(e),
  });
  const statePath = (node: string, model: LabModel) =>
    join(VerifierState.directory(join(lab.dir, `verifier-${node}`), model.modelId, V.account.address), "state.json");
  const commitOf = (model: LabModel, shard: number) =>
    getCommit(V.client as never, { deployment: lab.deployment, modelId: model.modelId, shard, round: 1n, lane: 0 });

  it("a verifier started before the trainers' content is dialable retries, then attests once it connects", async () => {
    const model = await lab.model();
    const events: VerifierEvent[] = [];
    const cfg = await config(model, "late", events); // opened now: no trainer node exists yet
    await lab.runLane({ model, rounds: 1 });
    let connected = false;
    const last = await runVerifier({
      ...cfg,
      pollMs: 100,
      signal: AbortSignal.timeout(90_000),
      onEvent: (e) => {
        events.push(e);
        // The first failed try: the trainers' nodes come within reach (dialled now).
        if (e.type === "fetchRetry" && !connected) {
          connected = true;
          void lab.contentNode("late");
        }
      },
      until: (p) => p.commits.length === 2 && p.commits.every((c) => c.verdict !== undefined),
    });
    assert.ok(last, "a pass completed");
    const retries = events.filter((e) => e.type === "fetchRetry");
    assert.ok(retries.length >= 1);
    const first = retries[0]!;
    assert.ok(first.type === "fetchRetry");
    assert.deepEqual([first.lane, first.round, first.attempt], [0, 1, 1]);
    assert.match(first.detail, /ContentNotFoundError/);
    assert.equal(first.retryInSeconds, 0.2);
    // Never judged on the failed tries: no withheld verdict, no report, no challenge.
    assert.deepEqual(
      events.filter((e) => e.type === "notFetched" || e.type === "challenged"),
      [],
    );
    assert.ok(
      events.every((e) => e.type !== "verdict" || e.verdict.valid),
      "every verdict is valid",
    );
    assert.deepEqual(
      last.commits.map((c) => [c.shard, c.verdict?.reason, c.notFetched]),
      [
        [0, "ok", undefined],
        [1, "ok", undefined],
      ],
    );
    const attested = events.filter((e) => e.type === "attested").map((e) => (e as { commitId: Hex }).commitId);
    const ids = [(await commitOf(model, 0)).commitId, (await commitOf(model, 1)).commitId];
    assert.deepEqual(attested.sort(), ids.sort());
    for (const s of [0, 1]) assert.equal((await commitOf(model, s)).attestations, 1);
    const state = JSON.parse(await readFile(statePath("late", model), "utf8"));
    assert.deepEqual([state.retries, state.unfetched], [{}, {}], "the schedule is cleared");
    assert.deepEqual(
      Object.values(state.verdicts).map((v) => (v as { reason: string }).reason),
      ["ok", "ok"],
    );
  });

  it("content out of reach: retried on the persisted backoff (also after a restart), reported and challenged as withheld only near the window's end, checked once it arrives", async () => {
    const model = await lab.model();
    const events: VerifierEvent[] = [];
    const cfg = await config(model, "cut-off", events, { baseMs: 60_000, maxMs: 60_000 });
    await lab.runLane({ model, rounds: 1 });

    // Early in the window: a failed try is scheduled again, nothing is judged.
    const p1 = await verifyOnce(cfg);
    assert.deepEqual([p1.verdicts, p1.challenged, p1.notFetched, p1.attested], [[], [], [], []]);
    const r1 = events.filter((e) => e.type === "fetchRetry");
    assert.equal(r1.length, 1);
    assert.ok(r1[0]!.type === "fetchRetry" && /ContentNotFoundError/.test(r1[0]!.detail));
    const saved = JSON.parse(await readFile(statePath("cut-off", model), "utf8"));
    assert.equal(saved.retries["0:1"].attempts, 1);
    assert.ok(saved.retries["0:1"].nextAt - Date.now() > 50_000);
    assert.deepEqual([saved.verdicts, saved.unfetched], [{}, {}]);

    // A restarted verifier (a fresh verifyOnce reading the file) keeps the schedule: not due, no try.
    events.length = 0;
    const p2 = await verifyOnce(cfg);
    assert.deepEqual([p2.replayed, p2.verdicts, p2.notFetched], [[], [], []]);
    assert.deepEqual(
      events.filter((e) => e.type === "fetchRetry"),
      [],
    );

    // The last 10 % of the challenge window: tried at once despite the backoff, reported, challenged.
    await lab.increaseTime(P.challengeWindow - finalMarginSeconds(P.challengeWindow) + 30);
    events.length = 0;
    const p3 = await verifyOnce(cfg);
    const ids = [(await commitOf(model, 0)).commitId, (await commitOf(model, 1)).commitId];
    assert.deepEqual(
      p3.notFetched.map((n) => [n.shard, n.reason, n.attempts, n.kind, n.action]),
      [
        [0, "withheld", 2, "challenge", "challenge"],
        [1, "withheld", 2, "challenge", "challenge"],
      ],
    );
    assert.match(p3.notFetched[0]!.detail, /ContentNotFoundError/);
    assert.deepEqual(p3.challenged.sort(), [...ids].sort());
    assert.deepEqual(p3.verdicts, [], "no verdict is stored for content that did not arrive");
    const challenged = events.find((e) => e.type === "challenged")!;
    assert.ok(challenged.type === "challenged");
    assert.equal(JSON.parse(await readFile(challenged.finding, "utf8")).reason, "withheld");
    assert.deepEqual(
      p3.commits.map((c) => [c.verdict, c.notFetched?.reason]),
      [
        [undefined, "withheld"],
        [undefined, "withheld"],
      ],
    );
    // Reported once per deadline: the next pass (not due) says nothing more.
    const p4 = await verifyOnce(cfg);
    assert.deepEqual([p4.notFetched, p4.challenged], [[], []]);

    // The content comes within reach: once the backoff is due, the round is checked like any other.
    await lab.contentNode("cut-off");
    const state = JSON.parse(await readFile(statePath("cut-off", model), "utf8"));
    state.retries["0:1"].nextAt = Date.now(); // skip the 60 s wait
    await writeFile(statePath("cut-off", model), JSON.stringify(state));
    const p5 = await verifyOnce(cfg);
    assert.deepEqual(
      p5.verdicts.map((v) => [v.shard, v.valid, v.reason]),
      [
        [0, true, "ok"],
        [1, true, "ok"],
      ],
    );
    assert.ok(p5.commits.every((c) => c.notFetched === undefined && c.verdict?.valid));
    const after = JSON.parse(await readFile(statePath("cut-off", model), "utf8"));
    assert.deepEqual([after.retries, after.unfetched], [{}, {}]);
  });
});
