import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { initBackend } from "../../node/src/ml/backend.js";
import { genesisTensor, kvBytes, stageLayout } from "../../node/src/ml/model.js";
import { specDigest } from "../../node/src/ml/spec.js";
import { encodeTensor } from "../../node/src/p2p/codec.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import {
  INFER_PROTOCOL,
  InferenceStage,
  SessionRefusal,
  SessionStore,
  createInferenceServer,
  encodeMessage,
  inferenceShape,
} from "../../node/src/serve/index.js";
import { readMessage, writeMessage } from "../../node/src/serve/wire.js";
import { tinySpec } from "./helpers.js";

type Stream = Awaited<ReturnType<ShardHost["libp2p"]["dialProtocol"]>>;

const spec = tinySpec([1, 1]);
const weights = (shard: number) =>
  Object.fromEntries(stageLayout(spec, shard).params.map((p) => [p.name, genesisTensor(3, p)]));

describe("sessions: bounded KV caches", () => {
  let stage: InferenceStage;
  before(async () => {
    await initBackend("wasm");
    stage = new InferenceStage(spec, 1, weights(1));
  });
  after(() => stage.dispose());

  const limits = { maxSessions: 3, maxSessionsPerPeer: 2, maxBytes: 1e9, idleMs: 1000, maxAgeMs: 5000 };
  const reserve = kvBytes(spec, stageLayout(spec, 1), spec.architecture.context);
  const cache = async () => (await stage.runCached(undefined, [1, 2], new Float32Array(2 * 32).fill(0.1))).cache;
  const refusal = (code: string) => (e: unknown) => e instanceof SessionRefusal && e.code === code;

  it("keeps a session between requests, frees it at the end, and refuses a start it does not hold", async () => {
    const store = new SessionStore(limits, reserve);
    const s = store.open("p", "g", 0, 0);
    store.done(s, await cache(), false, 0);
    assert.equal(store.size, 1);
    assert.equal(store.bytes, reserve);
    assert.throws(() => store.open("p", "g", 3, 1), refusal("session-lost"));
    // Another peer cannot continue (or end) it.
    assert.throws(() => store.open("q", "g", 2, 1), refusal("session-lost"));
    const again = store.open("p", "g", 2, 1);
    assert.throws(() => store.open("p", "g", 2, 1), refusal("busy"));
    store.done(again, again.cache!, true, 1);
    assert.equal(store.size, 0);
  });

  it("bounds sessions per peer (the least recently used goes), in all, and by memory", async () => {
    const store = new SessionStore(limits, reserve);
    for (const [i, id] of ["a", "b", "c"].entries()) store.done(store.open("p", id, 0, i), await cache(), false, i);
    assert.equal(store.size, 2);
    assert.throws(() => store.open("p", "a", 2, 10), refusal("session-lost"));
    store.open("p", "b", 2, 10);
    store.open("p", "c", 2, 10);
    // Both of p's sessions busy: a third is refused, not evicted.
    assert.throws(() => store.open("p", "d", 0, 10), refusal("busy"));
    store.done(store.open("q", "x", 0, 10), await cache(), false, 10);
    assert.throws(() => store.open("r", "y", 0, 10), refusal("busy"));
    const small = new SessionStore({ ...limits, maxBytes: 2 * reserve }, reserve);
    small.open("p", "a", 0, 0);
    small.open("q", "b", 0, 0);
    assert.throws(() => small.open("r", "c", 0, 0), /bytes reserved/);
    store.clear();
    small.clear();
  });

  it("frees idle and old sessions", async () => {
    const store = new SessionStore(limits, reserve);
    store.done(store.open("p", "a", 0, 0), await cache(), false, 0);
    store.sweep(999);
    assert.equal(store.size, 1);
    store.sweep(1001);
    assert.equal(store.size, 0);
    const s = store.open("p", "b", 0, 0);
    for (let t = 500; t <= 5000; t += 500) {
      store.done(s, s.cache ?? (await cache()), false, t);
      store.sweep(t);
      if (t < 5000) assert.equal(store.open("p", "b", 2, t), s);
    }
    store.sweep(5001);
    assert.equal(store.size, 0);
  });
});

describe("sessions over libp2p: a hostile peer cannot pile them up", () => {
  const hosts: ShardHost[] = [];
  after(async () => {
    for (const h of hosts) await h.stop();
  });

  it("answers busy beyond maxSessions, session-lost for a session it does not hold, and frees ended ones", async () => {
    await initBackend("wasm");
    const shard = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    const raw = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    hosts.push(shard, raw);
    const server = await createInferenceServer({
      host: shard,
      spec,
      shard: 1,
      weights: weights(1),
      open: true,
      maxSessions: 3,
      maxPerPeer: 4,
    });
    after(() => server.stop());
    const ask = async (id: string, start: number, end: boolean, tokens = [1, 2]) => {
      const shape = inferenceShape(spec, tokens.length);
      const header = {
        kind: "infer",
        protocol: 2,
        requestId: `${id}.${start}`,
        specDigest: specDigest(spec),
        shard: 1,
        session: { id, start, end },
        tokens,
        activation: { dtype: "float32", shape },
      };
      const payload = encodeTensor("float32", shape, new Float32Array(tokens.length * 32).fill(0.5));
      const stream: Stream = await raw.libp2p.dialProtocol(shard.libp2p.getMultiaddrs()[0]!, INFER_PROTOCOL);
      const reply = readMessage(stream, { maxHeaderBytes: 1024, maxPayloadBytes: 0 }, 10_000);
      reply.catch(() => {});
      await writeMessage(stream, encodeMessage(header, payload), 10_000);
      return (await reply).header as { kind: string; code?: string; token?: number };
    };
    for (const id of ["a", "b", "c"]) assert.equal((await ask(id, 0, false)).kind, "token");
    // Per peer at most maxPerPeer (4), in all at most maxSessions (3): the fourth is refused.
    const refused = await ask("d", 0, false);
    assert.equal(refused.code, "busy");
    assert.equal((await ask("zz", 5, false)).code, "session-lost");
    // Continuing a session extends it; ending it frees its place.
    assert.equal((await ask("a", 2, false, [3])).kind, "token");
    assert.equal((await ask("a", 3, true, [4])).kind, "token");
    assert.equal((await ask("d", 0, true)).kind, "token");
    assert.equal((await ask("a", 4, false, [5])).code, "session-lost");
  });
});
