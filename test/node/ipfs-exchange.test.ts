import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it, type TestContext } from "node:test";

import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";

import {
  ContentNotFoundError,
  ContentPeerDialError,
  ContentTooLargeError,
  HeliaStore,
  connectContentPeers,
  openContentStore,
} from "../../node/src/ipfs/index.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import { acceptLink, dialLink, type LinkHello } from "../../node/src/p2p/link.js";

const MiB = 1024 * 1024;

/** Deterministic bytes that do not compress or repeat across chunks. */
function bytesOf(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** A raw-leaf CID of bytes no store holds. */
const absentCid = async () => CID.createV1(raw.code, await sha256.digest(bytesOf(64, 777))).toString();

interface Node {
  host: ShardHost;
  store: HeliaStore;
  /** Closes the store, then stops the host (the order `train` uses). Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Online nodes on loopback, each a host with a Helia store in its own temp directory, stopped one
 * after the other when the test ends (two libp2p nodes closing the same connection at once each
 * wait out libp2p's close timeout).
 */
async function nodes(t: TestContext, count: number, fetchTimeoutMs = 1_500): Promise<Node[]> {
  const dir = await mkdtemp(path.join(tmpdir(), "ipfs-exchange-"));
  const started: Node[] = [];
  t.after(async () => {
    for (const node of started) await node.stop();
    await rm(dir, { recursive: true, force: true });
  });
  for (let i = 0; i < count; i++) {
    const host = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    const store = (await openContentStore({
      dataDir: path.join(dir, `node-${i}`),
      libp2p: host.libp2p,
      fetchTimeoutMs,
    })) as HeliaStore;
    let stopped = false;
    started.push({
      host,
      store,
      stop: async () => {
        if (stopped) return;
        stopped = true;
        await store.close();
        await host.stop();
      },
    });
  }
  return started;
}

describe("content exchange between embedded stores (bitswap over libp2p)", () => {
  it("fetches a multi-chunk file and a small one from a connected peer, byte for byte", async (t) => {
    const [a, b] = await nodes(t, 2);
    assert.equal(a!.store.online, true);
    const large = bytesOf(3 * MiB + 12_345, 1); // 4 leaves of 1 MiB or less, under a dag-pb root
    const small = bytesOf(200, 2);
    const largeCid = await a!.store.add(large);
    const smallCid = await a!.store.add(small);

    const peers = await connectContentPeers(b!.host, [a!.host.multiaddrs()[0]!]);
    assert.deepEqual(peers, [a!.host.peerId]);

    const started = performance.now();
    const [gotLarge, gotSmall] = await Promise.all([
      b!.store.get(largeCid, { maxBytes: 4 * MiB, signal: AbortSignal.timeout(20_000) }),
      b!.store.get(smallCid, { maxBytes: 1024 }),
    ]);
    t.diagnostic(`fetched ${large.length + small.length} bytes in ${(performance.now() - started).toFixed(0)} ms`);
    assert.ok(Buffer.from(gotLarge).equals(Buffer.from(large)), "the large file differs");
    assert.ok(Buffer.from(gotSmall).equals(Buffer.from(small)), "the small file differs");
    // Now local to B: the same bytes give the same CID there, and reading needs no peer.
    assert.equal(await b!.store.add(large), largeCid);
  });

  it("fails with a retryable ContentNotFoundError, within the fetch timeout, for a CID no peer has", async (t) => {
    const [a, b] = await nodes(t, 2, 800);
    await connectContentPeers(b!.host, [a!.host.multiaddrs()[0]!]);
    const absent = await absentCid();
    const started = performance.now();
    await assert.rejects(b!.store.get(absent, { maxBytes: 1024 }), (error: unknown) => {
      assert.ok(error instanceof ContentNotFoundError, String(error));
      assert.equal(error.cid, absent);
      assert.equal(error.retryable, true);
      assert.match(error.details ?? "", /800 ms/);
      return true;
    });
    const elapsed = performance.now() - started;
    assert.ok(elapsed >= 700 && elapsed < 5_000, `took ${elapsed.toFixed(0)} ms`);

    // The caller's deadline ends the search the same way; a cancellation throws its reason.
    await assert.rejects(
      b!.store.get(absent, { maxBytes: 1024, signal: AbortSignal.timeout(200) }),
      ContentNotFoundError,
    );
    const reason = new Error("shutting down");
    const controller = new AbortController();
    setTimeout(() => controller.abort(reason), 100);
    await assert.rejects(b!.store.get(absent, { maxBytes: 1024, signal: controller.signal }), (error: unknown) => {
      assert.equal(error, reason);
      return true;
    });
  });

  it("enforces maxBytes on remote content, without fetching past the root block", async (t) => {
    const [a, b] = await nodes(t, 2);
    const large = bytesOf(3 * MiB, 3);
    const cid = await a!.store.add(large);
    const small = await a!.store.add(bytesOf(5_000, 4)); // a single raw block
    await connectContentPeers(b!.host, [a!.host.multiaddrs()[0]!]);
    await assert.rejects(b!.store.get(cid, { maxBytes: 2 * MiB }), (error: unknown) => {
      assert.ok(error instanceof ContentTooLargeError, String(error));
      assert.equal(error.cid, cid);
      assert.equal(error.maxBytes, 2 * MiB);
      assert.match(error.details ?? "", new RegExp(`${3 * MiB} bytes`));
      return true;
    });
    await assert.rejects(b!.store.get(small, { maxBytes: 4_999 }), ContentTooLargeError);
    // The limit was the only problem: the same content within the limit is fetched.
    assert.equal((await b!.store.get(small, { maxBytes: 5_000 })).length, 5_000);
    // None of the large file's leaves (raw 1 MiB blocks) reached B's disk.
    await b!.stop();
    const reopened = await HeliaStore.open(b!.store.directory);
    t.after(() => reopened.close());
    for (let at = 0; at < large.length; at += MiB) {
      const leaf = CID.createV1(raw.code, await sha256.digest(large.subarray(at, at + MiB))).toString();
      assert.equal((await a!.store.get(leaf, { maxBytes: MiB })).length, Math.min(MiB, large.length - at)); // A has it
      await assert.rejects(reopened.get(leaf, { maxBytes: MiB }), ContentNotFoundError);
    }
    assert.equal((await reopened.get(small, { maxBytes: 5_000 })).length, 5_000);
  });

  it("serves fetched content on: C gets from B what B got from A, after A stopped", async (t) => {
    const [a, b, c] = await nodes(t, 3);
    const bytes = bytesOf(2 * MiB + 1, 5);
    const cid = await a!.store.add(bytes);
    await connectContentPeers(b!.host, [a!.host.multiaddrs()[0]!]);
    await b!.store.get(cid, { maxBytes: 3 * MiB });
    await a!.stop();

    await connectContentPeers(c!.host, [b!.host.multiaddrs()[0]!]);
    const got = await c!.store.get(cid, { maxBytes: 3 * MiB, signal: AbortSignal.timeout(20_000) });
    assert.ok(Buffer.from(got).equals(Buffer.from(bytes)));
  });

  it("carries a pipeline link and content exchange on the same hosts at once", async (t) => {
    const [a, b] = await nodes(t, 2);
    const hello = (shard: number): LinkHello => ({
      modelId: 7n,
      specDigest: `0x${"ab".repeat(32)}`,
      shard,
      lane: 0,
      round: 1,
    });
    const [dialer, listener] = await Promise.all([
      dialLink(a!.host, { multiaddr: b!.host.multiaddrs()[0]!, hello: hello(0) }),
      acceptLink(b!.host, { hello: hello(1), timeoutMs: 5_000 }),
    ]);
    const checkpoint = bytesOf(MiB + 7, 6);
    const cid = await a!.store.add(checkpoint);
    const activation = new Float32Array(4096).map((_, i) => i / 7);
    // No connectContentPeers: the link's connection is enough for bitswap.
    const [fetched, , received] = await Promise.all([
      b!.store.get(cid, { maxBytes: 2 * MiB, signal: AbortSignal.timeout(20_000) }),
      dialer.sendTensor({ type: "activation", round: 1, step: 0, micro: 0, shape: [64, 64], data: activation }),
      listener.receiveTensor({ type: "activation", round: 1, step: 0, micro: 0, shape: [64, 64] }),
    ]);
    assert.ok(Buffer.from(fetched).equals(Buffer.from(checkpoint)));
    assert.deepEqual(received, activation);
    await dialer.close();
    await listener.close();
  });

  it("names every address it could not dial, and keeps the connections that worked", async (t) => {
    const [a, b] = await nodes(t, 2);
    const closed = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    const dead = closed.multiaddrs()[0]!;
    await closed.stop();
    const good = a!.host.multiaddrs()[0]!;
    await assert.rejects(connectContentPeers(b!.host, [good, dead, "not-a-multiaddr"]), (error: unknown) => {
      assert.ok(error instanceof ContentPeerDialError, String(error));
      assert.deepEqual(error.multiaddrs, [dead, "not-a-multiaddr"]);
      assert.equal(error.retryable, true);
      assert.ok(error.shortMessage.includes(dead));
      assert.match(error.details ?? "", /not-a-multiaddr: not a multiaddr/);
      return true;
    });
    assert.ok(b!.host.libp2p.getConnections(a!.host.libp2p.peerId).length > 0);
  });

  it("stays offline without a libp2p node: a missing CID fails at once", async (t) => {
    const [a] = await nodes(t, 1);
    const dir = await mkdtemp(path.join(tmpdir(), "ipfs-offline-"));
    t.after(() => rm(dir, { recursive: true, force: true }));
    const offline = (await openContentStore({ dataDir: dir })) as HeliaStore;
    t.after(() => offline.close());
    assert.equal(offline.online, false);
    const cid = await a!.store.add(bytesOf(100, 8));
    const started = performance.now();
    await assert.rejects(offline.get(cid, { maxBytes: 1024 }), (error: unknown) => {
      assert.ok(error instanceof ContentNotFoundError);
      assert.equal(error.retryable, false);
      return true;
    });
    assert.ok(performance.now() - started < 500);
  });
});
