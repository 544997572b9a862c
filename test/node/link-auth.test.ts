import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";

import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";

import { payloadBytes } from "../../node/src/p2p/codec.js";
import { type PeerAuthority, chainAuthority } from "../../node/src/p2p/auth.js";
import { HandshakeError, UnauthorizedPeerError } from "../../node/src/p2p/errors.js";
import { FrameDecoder } from "../../node/src/p2p/frame-decoder.js";
import { encodeFrame, type Frame } from "../../node/src/p2p/frames.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import {
  PIPELINE_PROTOCOL,
  acceptLink,
  dialLink,
  signHello,
  type LinkAuth,
  type LinkHello,
} from "../../node/src/p2p/link.js";
import { boundaryCodec, boundaryShape } from "../../node/src/ml/pipeline.js";
import { type SwarmEvent, runSwarmNode } from "../../node/src/swarm/node.js";
import { authorizeOwnKey } from "../../scripts/lib/protocol.js";
import { Lab, type LabModel } from "../helpers/lane.js";

/**
 * Issue 15, part 1: a listening trainer links only with an authenticated neighbour. A hello is
 * signed by a node key that the chain says a staked trainer of the model authorized, over the
 * hello's facts and the sender's own libp2p peer id (checked against the Noise-authenticated
 * connection), and, where the operator pinned one, comes from the pinned peer. Rounds apart are a
 * retryable refusal, never a fatal exit. Everything runs on real libp2p hosts over TCP on
 * 127.0.0.1, against the in-process Hardhat chain.
 *
 * Accounts: 1, 2 and 3 are staked trainers of the model with their own key authorized; 6 has
 * authorized its own key but staked nothing; intruders with fresh keys have neither.
 */

describe("pipeline links: authentication against the chain", () => {
  let lab: Lab;
  let model: LabModel;

  before(async () => {
    lab = await Lab.create();
    model = await lab.model({ trainers: [1, 2, 3] });
    await authorizeOwnKey(lab.f.wallets[6]!, lab.f.ledger.address); // authorized, unstaked
  });
  after(async () => {
    await lab.close();
  });

  const authority = (): PeerAuthority =>
    chainAuthority({ client: lab.actor(0).client as never, deployment: lab.deployment, modelId: model.modelId });
  /** The link auth of account `index`'s own key (authorized or not, staked or not). */
  const authOf = (index: number, extra: Partial<LinkAuth> = {}): LinkAuth => {
    const account = lab.actor(index).account;
    return { signer: account, owner: account.address, authority: authority(), ...extra };
  };
  const strangerAuth = (): LinkAuth => {
    const account = privateKeyToAccount(generatePrivateKey());
    return { signer: account, owner: account.address, authority: authority() };
  };
  const hello = (shard: number, round = 3): LinkHello => ({
    modelId: model.modelId,
    specDigest: model.specDigest,
    shard,
    lane: 0,
    round,
  });

  async function hosts(t: TestContext, count: number): Promise<ShardHost[]> {
    const started = await Promise.all(
      Array.from({ length: count }, () => createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] })),
    );
    t.after(async () => {
      for (const h of started) await h.stop();
    });
    return started;
  }

  /** Sends `header` as the hello of a raw pipeline stream from `from` to `to`; resolves with the first frame back. */
  async function rawHello(from: ShardHost, to: ShardHost, header: Parameters<typeof encodeFrame>[0]): Promise<Frame> {
    const stream = await from.libp2p.dialProtocol(to.libp2p.getMultiaddrs()[0]!, PIPELINE_PROTOCOL);
    const decoder = new FrameDecoder();
    const reply = new Promise<Frame>((resolve, reject) => {
      stream.addEventListener("message", (event) => {
        for (const chunk of event.data instanceof Uint8Array ? [event.data] : event.data) decoder.push(chunk);
        const frame = decoder.shift();
        if (frame) resolve(frame);
      });
      stream.addEventListener("close", () => reject(new Error("closed without a reply")));
    });
    stream.send(encodeFrame(header));
    return reply;
  }

  const unauthorized = (reason: UnauthorizedPeerError["reason"]) => (e: unknown) => {
    assert.ok(e instanceof UnauthorizedPeerError, `expected UnauthorizedPeerError, got ${String(e)}`);
    assert.equal(e.reason, reason, e.message);
    return true;
  };

  it("refuses an intruder that dials first (stranger key, unstaked owner, replayed hello, unsigned, unpinned) and links the honest neighbour", async (t) => {
    const [honest, listener, intruder, staked] = await hosts(t, 4);
    const target = listener!.multiaddrs()[0]!;
    const refused: HandshakeError[] = [];
    const accepting = acceptLink(listener!, {
      hello: hello(1),
      timeoutMs: 30_000,
      maxTensorBytes: 1024,
      auth: authOf(2),
      onRefused: (e) => refused.push(e),
    });

    // A libp2p host with its own key that no trainer authorized.
    await assert.rejects(
      dialLink(intruder!, { multiaddr: target, hello: hello(0), auth: strangerAuth() }),
      unauthorized("not-authorized"),
    );
    // A key authorized by an owner with no trainer stake in the model.
    await assert.rejects(
      dialLink(intruder!, { multiaddr: target, hello: hello(0), auth: authOf(6) }),
      unauthorized("unstaked"),
    );
    // The honest node's own signed hello, replayed from another peer id.
    const replayed = await signHello(honest!.peerId, hello(0), authOf(1));
    const answer = await rawHello(intruder!, listener!, replayed);
    assert.equal(answer.kind, "abort");
    assert.match(answer.kind === "abort" ? answer.reason : "", /^unauthorized peer-id: .*replayed/);
    // A hello that proves nothing, as before this change.
    await assert.rejects(dialLink(intruder!, { multiaddr: target, hello: hello(0) }), unauthorized("unauthenticated"));

    assert.deepEqual(
      refused.map((e) => (e.cause as UnauthorizedPeerError).reason),
      ["not-authorized", "unstaked", "peer-id", "unauthenticated"],
    );
    assert.ok(refused.every((e) => e.cause instanceof UnauthorizedPeerError && !e.retryable));

    // The honest neighbour still links, and its tensors arrive.
    const dialer = await dialLink(honest!, { multiaddr: target, hello: hello(0), auth: authOf(1) });
    const link = await accepting;
    assert.equal(link.remotePeer, honest!.peerId);
    assert.equal(link.remote.auth?.owner, lab.actor(1).account.address);
    assert.equal(dialer.remote.auth?.owner, lab.actor(2).account.address);
    const data = new Float32Array([1, 2, 3, 4]);
    await dialer.sendTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [4], data });
    assert.deepEqual(await link.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [4] }), data);
    await dialer.close();
    await link.close();

    // Pinned: a staked, authorized trainer that is not the configured previous peer is refused too.
    const pinned = acceptLink(listener!, {
      hello: hello(1),
      timeoutMs: 30_000,
      auth: authOf(2, { peer: honest!.peerId }),
    });
    await assert.rejects(
      dialLink(staked!, { multiaddr: target, hello: hello(0), auth: authOf(3) }),
      unauthorized("pinned"),
    );
    const again = await dialLink(honest!, { multiaddr: target, hello: hello(0), auth: authOf(1) });
    assert.equal((await pinned).remotePeer, honest!.peerId);
    await again.close();
  });

  it("authenticates the listener at the dialer too: an unsigned or unauthorized reply is refused", async (t) => {
    const [a, b] = await hosts(t, 2);
    const target = b!.multiaddrs()[0]!;
    const unsigned = acceptLink(b!, { hello: hello(1), timeoutMs: 10_000 });
    await assert.rejects(
      dialLink(a!, { multiaddr: target, hello: hello(0), auth: authOf(1) }),
      unauthorized("unauthenticated"),
    );
    // The listener linked on sending its hello; the dialer's abort ends that link before any tensor.
    const expected = { type: "activation", round: 3, step: 0, micro: 0, shape: [4] } as const;
    await assert.rejects((await unsigned).receiveTensor(expected), /unauthenticated/);
    const stranger = acceptLink(b!, { hello: hello(1), timeoutMs: 10_000, auth: strangerAuth() });
    await assert.rejects(
      dialLink(a!, { multiaddr: target, hello: hello(0), auth: authOf(1) }),
      unauthorized("not-authorized"),
    );
    await assert.rejects((await stranger).receiveTensor(expected), /not-authorized/);
  });

  it("refuses a hello 5 rounds ahead as retryable, and keeps waiting for the neighbour at its round", async (t) => {
    const [a, b] = await hosts(t, 2);
    const target = b!.multiaddrs()[0]!;
    const refused: HandshakeError[] = [];
    const accepting = acceptLink(b!, {
      hello: hello(1, 3),
      timeoutMs: 30_000,
      matchRound: false,
      roundWindow: 1,
      auth: authOf(2),
      onRefused: (e) => refused.push(e),
    });
    await assert.rejects(
      dialLink(a!, { multiaddr: target, hello: hello(0, 8), matchRound: false, roundWindow: 1, auth: authOf(1) }),
      (e) => {
        assert.ok(e instanceof HandshakeError);
        assert.equal(e.retryable, true);
        assert.match(e.details ?? "", /^retry: round 8 \(shard 0\) ≠ round 3 \(shard 1\)/);
        return true;
      },
    );
    assert.equal(refused.length, 1);
    assert.equal(refused[0]!.retryable, true);
    const dialer = await dialLink(a!, {
      multiaddr: target,
      hello: hello(0, 4),
      matchRound: false,
      roundWindow: 1,
      auth: authOf(1),
    });
    assert.equal((await accepting).remote.round, 4);
    await dialer.close();
  });

  it("a lane completes its round while intruders and a trainer 5 rounds ahead dial its listening shard first", async () => {
    const { spec, specDigest: digest, modelId } = model;
    const dir = join(lab.dir, "intruded");
    const stores = [await lab.contentNode("intruded-0"), await lab.contentNode("intruded-1")];
    const nodes = stores.map((s) => s.host);
    const [intruderHost, aheadHost] = await Promise.all(
      [0, 1].map(() => createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] })),
    );
    const events: SwarmEvent[][] = [[], []];
    let waiting!: () => void;
    const shard1Waiting = new Promise<void>((resolve) => (waiting = resolve));
    const run = (shard: number) => {
      const { client, account } = lab.actor(shard + 1);
      return runSwarmNode({
        spec,
        specDigest: digest,
        modelId,
        shard,
        lane: 7,
        dataDir: join(dir, `node-${shard}`),
        backend: lab.backend,
        host: nodes[shard]!,
        peers: { next: nodes[shard + 1]?.multiaddrs()[0] },
        chain: { client: client as never, account, deployment: lab.deployment },
        store: stores[shard]!.store,
        rounds: 1,
        peerTimeoutMs: 20_000,
        appealWaitMs: 0,
        onEvent: (e) => {
          events[shard]!.push(e);
          if (shard === 1 && e.type === "connecting") waiting();
        },
      });
    };
    try {
      const listening = run(1);
      await shard1Waiting;
      await new Promise((r) => setTimeout(r, 300));
      const target = nodes[1]!.multiaddrs()[0]!;
      const laneHello = (round: number): LinkHello => ({ modelId, specDigest: digest, shard: 0, lane: 7, round });
      const tensorBytes = payloadBytes(boundaryCodec(spec), boundaryShape(spec));
      const dial = (host: ShardHost, round: number, auth: LinkAuth | undefined) =>
        dialLink(host, {
          multiaddr: target,
          hello: laneHello(round),
          matchRound: false,
          roundWindow: 1,
          maxTensorBytes: tensorBytes,
          auth,
        });
      await assert.rejects(dial(intruderHost!, 1, strangerAuth()), unauthorized("not-authorized"));
      await assert.rejects(dial(intruderHost!, 1, authOf(6)), unauthorized("unstaked"));
      await assert.rejects(dial(intruderHost!, 1, undefined), unauthorized("unauthenticated"));
      const replayed = await signHello(nodes[0]!.peerId, laneHello(1), authOf(1));
      const answer = await rawHello(intruderHost!, nodes[1]!, replayed);
      assert.match(answer.kind === "abort" ? answer.reason : "", /^unauthorized peer-id/);
      // Account 3 is a staked trainer of the model: authenticated, but 5 rounds ahead.
      await assert.rejects(dial(aheadHost!, 6, authOf(3)), (e) => e instanceof HandshakeError && e.retryable);

      const results = await Promise.all([run(0), listening]);
      assert.deepEqual(
        results.map((r) => r.head),
        [1, 1],
      );
      // What shard 1 trained on is what shard 0 sent, and shard 0 got shard 1's gradients back.
      const [a, b] = results.map((r) => r.journal.head!);
      assert.equal(a!.sentActivations, b!.receivedActivations);
      assert.equal(b!.sentGradients, a!.receivedGradients);
      const connected = events[1]!.find((e) => e.type === "connected");
      assert.ok(connected && connected.type === "connected" && connected.prev === nodes[0]!.peerId);
      assert.ok(!events[1]!.some((e) => e.type === "stopped"));
    } finally {
      for (const h of [intruderHost!, aheadHost!]) await h.stop().catch(() => {});
    }
  });
});
