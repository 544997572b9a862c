import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Writable } from "node:stream";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";

import * as tf from "@tensorflow/tfjs-core";
import { createWalletClient, custom, parseEther, publicActions, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { initBackend } from "../../node/src/ml/backend.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import { causalMask, forward, oneHot, stageLayout } from "../../node/src/ml/model.js";
import { boundaryCodec } from "../../node/src/ml/pipeline.js";
import { type ModelSpec, specDigest, zModelSpec } from "../../node/src/ml/spec.js";
import type { StageState } from "../../node/src/ml/stage.js";
import { decodeTensor, encodeTensor, payloadBytes } from "../../node/src/p2p/codec.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import {
  INFER_PROTOCOL,
  type InferenceServer,
  PromptError,
  ShardUnavailableError,
  createInferenceServer,
  createTicketIssuer,
  encodeMessage,
  inferenceShape,
  pickToken,
  promptSeed,
} from "../../node/src/serve/index.js";
import { serve } from "../../node/src/commands/serve.js";
import { HeliaStore } from "../../node/src/ipfs/helia.js";
import { createOutput } from "../../node/src/output.js";
import { type ContentStore, ipfsUri } from "../../node/src/ipfs/store.js";
import { canonicalSpecBytes } from "../../node/src/ml/spec.js";
import {
  CheckpointRootMismatchError,
  NoFinalizedCheckpointError,
  loadServeWeights,
} from "../../node/src/serve/index.js";
import { CheckpointMismatchError, encodeCheckpoint } from "../../node/src/swarm/checkpoint.js";
import { runSwarmNode } from "../../node/src/swarm/node.js";
import { contributionLedgerAbi, finalize } from "../../sdk/index.js";
import { authorizeOwnKey } from "../../scripts/lib/protocol.js";
import { connection, defaultParams } from "../helpers/fixture.js";
import { privateKeyOf, sdkFixture } from "../sdk/helpers.js";
import { bits, tinySpec } from "./helpers.js";

type Stream = Awaited<ReturnType<ShardHost["libp2p"]["dialProtocol"]>>;

const compressed = (shards: number[]) =>
  zModelSpec.parse({ ...tinySpec(shards), compression: { rank: 4, codec: "int8" } });

/** Shard states after a round of real training (the single-process baseline). */
async function trained(spec: ModelSpec): Promise<StageState[]> {
  const { trainers } = await runBaseline(spec, { rounds: 1 });
  const states = await Promise.all(trainers.map((t) => t.state()));
  for (const t of trainers) t.dispose();
  return states;
}

/**
 * The reference: every shard's weights in one process, `forward` shard after shard with the
 * boundary tensor passed through the spec's codec as the wire does, the window padded with a
 * different token than the servers use (the causal mask makes padding irrelevant).
 */
function reference(
  spec: ModelSpec,
  states: StageState[],
  prompt: string,
  maxTokens: number,
  temperature = 0,
  seed?: number,
) {
  const vocab = [...spec.architecture.vocab];
  const v = vocab.length;
  const { context } = spec.architecture;
  const tokens = [...prompt].map((c) => vocab.indexOf(c));
  const mask = causalMask(context);
  const params = states.map((s, i) =>
    Object.fromEntries(stageLayout(spec, i).params.map((p) => [p.name, tf.tensor(s.params[p.name]!, p.shape)])),
  );
  const out: number[] = [];
  for (let k = 0; k < maxTokens; k++) {
    const window = tokens.slice(-context);
    const padded = new Int32Array(context).fill(v - 1);
    padded.set(window);
    const logits = tf.tidy(() => {
      const ids = oneHot(padded, v);
      let x: tf.Tensor = ids;
      for (let i = 0; i < states.length; i++) {
        const layout = stageLayout(spec, i);
        const y = forward(spec, layout, params[i]!, x, mask, ids);
        if (layout.isLast) return tf.slice(y, [window.length - 1, 0], [1, v]);
        const shape = inferenceShape(spec);
        const wire = decodeTensor(
          boundaryCodec(spec),
          shape,
          encodeTensor(boundaryCodec(spec), shape, y.dataSync() as Float32Array),
        );
        x = tf.tensor(wire, shape);
      }
      throw new Error("unreachable");
    });
    const row = logits.dataSync() as Float32Array;
    logits.dispose();
    const sampling = temperature ? { temperature, seed: seed ?? promptSeed(prompt), index: k } : undefined;
    const token = pickToken(row, sampling);
    out.push(token);
    tokens.push(token);
  }
  mask.dispose();
  for (const p of params) for (const t of Object.values(p)) t.dispose();
  return out.map((t) => vocab[t]).join("");
}

interface Pipeline {
  hosts: ShardHost[];
  servers: InferenceServer[];
  first: InferenceServer;
}

/** One host and one server per shard on loopback, last shard first; stopped when the test ends. */
async function pipeline(t: TestContext, spec: ModelSpec, states: StageState[], timeoutMs = 5000): Promise<Pipeline> {
  const n = spec.shards.length;
  const hosts: ShardHost[] = [];
  const servers: InferenceServer[] = [];
  for (let i = 0; i < n; i++) hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
  t.after(async () => {
    for (const s of servers) await s.stop();
    for (const h of hosts) await h.stop();
  });
  for (let i = n - 1; i >= 0; i--)
    servers[i] = await createInferenceServer({
      host: hosts[i]!,
      spec,
      shard: i,
      state: states[i]!,
      next: i < n - 1 ? hosts[i + 1]!.multiaddrs()[0] : undefined,
      timeoutMs,
      // Tickets are tested in serve-tickets.test.ts: here any peer is served.
      open: true,
    });
  return { hosts, servers, first: servers[0]! };
}

/** Sends raw bytes to a shard's inference protocol and returns the reply header (or why there is none). */
async function rawRequest(from: ShardHost, to: ShardHost, bytes: Uint8Array): Promise<unknown> {
  const stream: Stream = await from.libp2p.dialProtocol(to.libp2p.getMultiaddrs()[0]!, INFER_PROTOCOL);
  const chunks: Uint8Array[] = [];
  const done = new Promise<void>((resolve) => {
    stream.addEventListener("message", (e) => {
      const d = e.data as Uint8Array | Iterable<Uint8Array>;
      chunks.push(...(d instanceof Uint8Array ? [d] : [...d]));
    });
    stream.addEventListener("remoteCloseWrite", () => resolve());
    stream.addEventListener("close", () => resolve());
  });
  stream.send(bytes);
  await stream.close().catch(() => {});
  await done;
  const all = Buffer.concat(chunks);
  if (all.length === 0) return undefined;
  let value = 0;
  let scale = 1;
  let i = 0;
  for (; ; i++) {
    value += (all[i]! & 0x7f) * scale;
    if ((all[i]! & 0x80) === 0) break;
    scale *= 128;
  }
  return JSON.parse(all.subarray(i + 1, i + 1 + value).toString("utf8"));
}

describe("inference through the shard pipeline", () => {
  const spec2 = tinySpec([1, 1]);
  const spec3 = compressed([1, 1, 1]);
  let states2: StageState[];
  let states3: StageState[];
  // Longer than the context (32): the window slides.
  const prompt = "Call me Ishmael. Some years ago--never mind how long precisely";

  before(async () => {
    await initBackend("wasm");
    states2 = await trained(spec2);
    states3 = await trained(spec3);
  });

  it("generates through 2 shards exactly what one process computes through both (greedy)", async (t) => {
    const { first } = await pipeline(t, spec2, states2);
    const result = await first.generate({ prompt, maxTokens: 24 });
    assert.equal(result.tokens, 24);
    assert.equal([...result.text].length, 24);
    assert.equal(result.text, reference(spec2, states2, prompt, 24));
    assert.ok(result.seconds > 0);
    // A short prompt (well inside the context) too.
    const short = await first.generate({ prompt: "The ", maxTokens: 8 });
    assert.equal(short.text, reference(spec2, states2, "The ", 8));
  });

  it("generates through 3 shards behind an int8 bottleneck like the reference; seeded sampling repeats", async (t) => {
    const { first, servers } = await pipeline(t, spec3, states3);
    const greedy = await first.generate({ prompt, maxTokens: 16 });
    assert.equal(greedy.text, reference(spec3, states3, prompt, 16));
    const a = await first.generate({ prompt, maxTokens: 16, temperature: 1.5, seed: 7 });
    const b = await first.generate({ prompt, maxTokens: 16, temperature: 1.5, seed: 7 });
    assert.equal(a.text, b.text);
    assert.equal(a.text, reference(spec3, states3, prompt, 16, 1.5, 7));
    const c = await first.generate({ prompt, maxTokens: 16, temperature: 1.5, seed: 8 });
    assert.equal(c.text, reference(spec3, states3, prompt, 16, 1.5, 8));
    // The default seed comes from the prompt: reproducible too.
    const d1 = await first.generate({ prompt, maxTokens: 8, temperature: 1 });
    const d2 = await first.generate({ prompt, maxTokens: 8, temperature: 1 });
    assert.equal(d1.text, d2.text);
    assert.equal(servers[2]!.stats.served, 16 * 4 + 16);
  });

  it("refuses a prompt with characters outside the vocabulary, naming them", async (t) => {
    const { first, servers } = await pipeline(t, spec2, states2);
    await assert.rejects(first.generate({ prompt: "Call me #Ishmael~#", maxTokens: 4 }), (e: PromptError) => {
      assert.equal(e.name, "PromptError");
      assert.ok(e instanceof PromptError);
      assert.deepEqual(e.unknown, ["#", "~"]);
      return true;
    });
    await assert.rejects(first.generate({ prompt: "", maxTokens: 4 }), PromptError);
    assert.equal(servers[1]!.stats.served, 0, "nothing was sent down the pipeline");
  });

  it("fails with ShardUnavailableError naming a stopped last or middle shard, and no text", async (t) => {
    const p = await pipeline(t, spec3, states3, 2000);
    assert.equal((await p.first.generate({ prompt: "The ", maxTokens: 2 })).tokens, 2);
    await p.servers[2]!.stop();
    await p.hosts[2]!.stop();
    let t0 = Date.now();
    await assert.rejects(p.first.generate({ prompt: "The ", maxTokens: 4 }), (e: ShardUnavailableError) => {
      assert.ok(e instanceof ShardUnavailableError);
      assert.equal(e.shard, 2);
      assert.equal(e.retryable, true);
      return true;
    });
    assert.ok(Date.now() - t0 < 2 * 2000 + 1000, `took ${Date.now() - t0} ms`);
    await p.servers[1]!.stop();
    await p.hosts[1]!.stop();
    t0 = Date.now();
    await assert.rejects(p.first.generate({ prompt: "The ", maxTokens: 4 }), (e: ShardUnavailableError) => {
      assert.equal(e.name, "ShardUnavailableError");
      assert.equal(e.shard, 1);
      return true;
    });
    assert.ok(Date.now() - t0 < 2 * 2000 + 1000, `took ${Date.now() - t0} ms`);
  });

  it("names a hung last shard within the hop timeouts", async (t) => {
    const hosts: ShardHost[] = [];
    const servers: InferenceServer[] = [];
    t.after(async () => {
      for (const s of servers) await s.stop();
      for (const h of hosts) await h.stop();
    });
    for (let i = 0; i < 3; i++) hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
    // Shard 2 takes requests and never answers.
    await hosts[2]!.libp2p.handle(INFER_PROTOCOL, () => {});
    const timeoutMs = 1000;
    const serve = async (shard: number) =>
      servers.push(
        await createInferenceServer({
          host: hosts[shard]!,
          spec: spec3,
          shard,
          state: states3[shard]!,
          next: hosts[shard + 1]!.multiaddrs()[0],
          timeoutMs,
          open: true,
        }),
      );
    await serve(1);
    await serve(0);
    const first = servers[1]!;
    await assert.rejects(servers[0]!.generate({ prompt: "The ", maxTokens: 2 }), /Only shard 0 takes prompts/);
    const t0 = Date.now();
    await assert.rejects(first.generate({ prompt: "The ", maxTokens: 3 }), (e: ShardUnavailableError) => {
      assert.ok(e instanceof ShardUnavailableError);
      assert.equal(e.shard, 2, e.message);
      assert.match(e.message, /no answer within 1000 ms/);
      return true;
    });
    const took = Date.now() - t0;
    assert.ok(took >= timeoutMs && took < 2 * timeoutMs + 500, `took ${took} ms`);
  });

  it("answers malformed, oversized and ill-fitting requests from a raw peer with bad-request, and keeps serving", async (t) => {
    const { first, hosts, servers } = await pipeline(t, spec2, states2);
    const raw = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    t.after(() => raw.stop());
    const shape = inferenceShape(spec2, 3);
    const good = {
      kind: "infer",
      protocol: 2,
      requestId: "raw.1",
      specDigest: specDigest(spec2),
      shard: 1,
      session: { id: "raw", start: 0, end: true },
      tokens: [1, 2, 3],
      activation: { dtype: "float32", shape },
    };
    const values = new Float32Array(payloadBytes("float32", shape) / 4).fill(0.5);
    const payload = encodeTensor("float32", shape, values);
    const badRequest = async (bytes: Uint8Array, pattern: RegExp) => {
      const reply = (await rawRequest(raw, hosts[1]!, bytes)) as {
        kind: string;
        code: string;
        shard: number;
        message: string;
      };
      assert.equal(reply.kind, "error", JSON.stringify(reply));
      assert.equal(reply.code, "bad-request");
      assert.equal(reply.shard, 1);
      assert.match(reply.message, pattern);
    };
    // A well-formed request is answered with a token.
    const ok = (await rawRequest(raw, hosts[1]!, encodeMessage(good, payload))) as { kind: string; token: number };
    assert.equal(ok.kind, "token");
    assert.ok(ok.token >= 0 && ok.token < [...spec2.architecture.vocab].length);
    // Not JSON.
    const junk = new Uint8Array([5, ...Buffer.from("{oops"), 0]);
    await badRequest(junk, /not UTF-8 JSON/);
    // A header length far above the limit: refused from the length prefix alone.
    await badRequest(new Uint8Array([0xff, 0xff, 0xff, 0x7f]), /at least \d+ bytes/);
    // A payload larger than the boundary tensor of its positions, and one larger than any window's.
    await badRequest(encodeMessage(good, new Uint8Array(payload.byteLength * 2)), /takes 384 bytes, not 768/);
    await badRequest(
      encodeMessage(good, new Uint8Array(payloadBytes("float32", inferenceShape(spec2)) * 2)),
      /payload of at least|more than \d+ bytes in one message/,
    );
    // Fields outside the schema, a token outside the vocabulary, too many tokens, wrong shard/spec/shape.
    await badRequest(encodeMessage({ ...good, extra: 1 }, payload), /malformed/);
    await badRequest(encodeMessage({ ...good, tokens: [1, 9999] }, payload), /outside the vocabulary/);
    await badRequest(encodeMessage({ ...good, tokens: Array(33).fill(1) }, payload), /33 tokens, the context is 32/);
    await badRequest(encodeMessage({ ...good, shard: 2 }, payload), /addressed to shard 2/);
    await badRequest(encodeMessage({ ...good, specDigest: `0x${"ab".repeat(32)}` }, payload), /spec 0xabab/);
    await badRequest(
      encodeMessage({ ...good, activation: { dtype: "float32", shape: [1, 4, 16] } }, payload),
      /activation shape/,
    );
    // Non-finite values.
    const nan = payload.slice();
    new DataView(nan.buffer).setFloat32(8, Number.NaN, true);
    await badRequest(encodeMessage(good, nan), /NaN/);
    // A truncated request gets no answer (the stream closed early) and does not crash the server.
    assert.equal(await rawRequest(raw, hosts[1]!, encodeMessage(good, payload).subarray(0, 100)), undefined);
    assert.equal(servers[1]!.stats.rejected, 12);
    // Still serving.
    assert.equal((await first.generate({ prompt: "The ", maxTokens: 4 })).text, reference(spec2, states2, "The ", 4));
  });
});

describe("serve weights: the latest finalized checkpoint, checked against the chain", () => {
  const spec = tinySpec([1, 1]);
  const digest = specDigest(spec);
  const modelId = 2n;
  let dir: string;
  const hosts: ShardHost[] = [];
  const stores: HeliaStore[] = [];
  const files: string[] = [];
  let f: Awaited<ReturnType<typeof sdkFixture>>;

  const clientOf = (i: number) => {
    const account = privateKeyToAccount(privateKeyOf(i) as Hex);
    const client = createWalletClient({ account, chain: undefined, transport: custom(connection.provider) }).extend(
      publicActions,
    );
    return { client: Object.assign(client, { deployment: f.deployment }), account };
  };

  before(async () => {
    const backend = await initBackend("wasm");
    f = await sdkFixture();
    dir = await mkdtemp(join(tmpdir(), "serve-"));
    for (let i = 0; i < 2; i++) {
      hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
      // Online: serve nodes fetch the checkpoints from these stores over bitswap.
      stores.push(await HeliaStore.open(join(dir, `ipfs-${i}`), { libp2p: hosts[i]!.libp2p }));
    }
    const specCid = await stores[0]!.add(canonicalSpecBytes(spec));
    await f.registry.write.registerModel([
      {
        specDigest: digest,
        specURI: ipfsUri(specCid),
        shardWeights: spec.shards.map((_, i) => BigInt(stageLayout(spec, i).parameterCount)),
        stakingToken: f.stake.address,
        currencies: [f.usdc.address],
        unbondingDelay: 86_400,
        params: defaultParams,
      },
    ]);
    await f.registry.write.closeGenesis([modelId]);
    for (const i of [1, 2]) {
      const w = f.wallets[i]!;
      await f.stake.write.approve([f.staking.address, parseEther("1000")], { account: w.account });
      await f.staking.write.stake([modelId, 0, parseEther("1000")], { account: w.account });
      await authorizeOwnKey(w, f.ledger.address);
    }
    // One real round of the swarm: each shard checkpoints to its own store and commits on-chain.
    const results = await Promise.all(
      spec.shards.map((_, shard) => {
        const { client, account } = clientOf(shard + 1);
        return runSwarmNode({
          spec,
          specDigest: digest,
          modelId,
          shard,
          lane: 0,
          dataDir: join(dir, `node-${shard}`),
          backend,
          host: hosts[shard]!,
          peers: { next: hosts[shard + 1]?.multiaddrs()[0] },
          chain: { client: client as never, account, deployment: f.deployment },
          store: stores[shard]!,
          rounds: 1,
          peerTimeoutMs: 20_000,
        });
      }),
    );
    for (const r of results) files.push(join(r.journal.dir, r.journal.head!.checkpointFile));
  });

  after(async () => {
    for (const s of stores) await s.close();
    for (const h of hosts) await h.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const load = (shard: number, extra: Partial<Parameters<typeof loadServeWeights>[0]> = {}) =>
    loadServeWeights({
      client: clientOf(1).client as never,
      modelId,
      shard,
      spec,
      specDigest: digest,
      store: stores[shard],
      ...extra,
    });

  it("serves a committed file or, with --unverified, any file of the shard; refuses others", async () => {
    // Pending commits: nothing finalized to serve yet.
    await assert.rejects(load(0), NoFinalizedCheckpointError);
    const committed = await load(0, { file: files[0] });
    assert.equal(committed.source, "file");
    assert.equal(committed.checkpoint?.status, "pending");
    assert.equal(committed.checkpoint?.round, 1n);
    // Weights that were never committed (genesis here): refused unless --unverified.
    const layout = stageLayout(spec, 0);
    const { trainers } = await runBaseline(spec, { rounds: 0 });
    const genesis = await trainers[0]!.state();
    for (const t of trainers) t.dispose();
    const meta = { modelId: modelId.toString(), shard: 0, lane: 0, round: 0, specDigest: digest, backend: "wasm" };
    const other = join(dir, "genesis.safetensors");
    await writeFile(other, encodeCheckpoint(layout, genesis, meta).bytes);
    await assert.rejects(load(0, { file: other }), (e: CheckpointRootMismatchError) => {
      assert.equal(e.name, "CheckpointRootMismatchError");
      assert.match(e.message, /--unverified/);
      return true;
    });
    const unverified = await load(0, { file: other, unverified: true });
    assert.equal(unverified.checkpoint, undefined);
    // Another shard's checkpoint does not load as this one.
    await assert.rejects(load(1, { file: files[0], unverified: true }), CheckpointMismatchError);
  });

  it("loads the latest finalized checkpoint from the store, checks its root, and serves it through the pipeline", async (t) => {
    await connection.networkHelpers.time.increase(defaultParams.challengeWindow + 1);
    const { client } = clientOf(3);
    const revealed = await client.getContractEvents({
      address: f.deployment.contracts.ledger,
      abi: contributionLedgerAbi,
      eventName: "CheckpointRevealed",
      fromBlock: 0n,
    });
    for (const log of revealed.filter((l) => l.args.checkpoint!.modelId === modelId))
      await finalize(client as never, { deployment: f.deployment, checkpoint: log.args.checkpoint! });
    const loaded = await Promise.all([load(0), load(1)]);
    const states = [];
    for (const [shard, w] of loaded.entries()) {
      assert.equal(w.source, "chain");
      assert.equal(w.checkpoint?.status, "finalized");
      const fromFile = await load(shard, { file: files[shard], unverified: true });
      assert.equal(w.root, fromFile.root);
      for (const name of Object.keys(fromFile.state.params))
        assert.equal(bits(w.state.params[name]!), bits(fromFile.state.params[name]!));
      states.push(w.state);
    }
    // A store that hands back other bytes (a corrupt or lying peer) is caught by the root check.
    const liar: ContentStore = {
      kind: "helia",
      add: (b) => stores[0]!.add(b),
      get: async () => {
        const { trainers } = await runBaseline(spec, { rounds: 0 });
        const genesis = await trainers[0]!.state();
        for (const tr of trainers) tr.dispose();
        // Genesis is round 0 (step 0): a well-formed file, just not the committed one.
        const meta = { modelId: modelId.toString(), shard: 0, lane: 0, round: 0, specDigest: digest, backend: "wasm" };
        return encodeCheckpoint(stageLayout(spec, 0), genesis, meta).bytes;
      },
      close: async () => {},
    };
    await assert.rejects(load(0, { store: liar }), CheckpointRootMismatchError);
    const { first } = await pipeline(t, spec, states);
    const text = (await first.generate({ prompt: "Call me ", maxTokens: 12 })).text;
    assert.equal(text, reference(spec, states, "Call me ", 12));
  });

  it("shard-node serve: fetches the finalized checkpoint from a peer, serves its shard, starts the gateway on shard 0", async (t) => {
    const rpc = await rpcProxy();
    t.after(() => new Promise<void>((resolve) => rpc.server.close(() => resolve())));
    const deploymentFile = join(dir, "deployment.json");
    await writeFile(
      deploymentFile,
      JSON.stringify({ chainId: 31337, blockNumber: "0", contracts: f.deployment.contracts }),
    );
    const lines: string[] = [];
    const sink = new Writable({ write: (c, _e, cb) => (lines.push(String(c)), cb()) });
    const out = createOutput({ json: true, stdout: sink, stderr: sink });
    const common = {
      rpcUrl: rpc.url,
      chainId: "31337",
      model: modelId.toString(),
      deployment: deploymentFile,
      listen: ["/ip4/127.0.0.1/tcp/0"],
      backend: "wasm",
      json: true,
    };
    const states = (await Promise.all([load(0), load(1)])).map((w) => w.state);

    // Shard 1 by the command: its own (empty) store fetches the checkpoint from shard 1's trainer.
    const stop1 = new AbortController();
    let address = "";
    let listening!: () => void;
    const started = new Promise<void>((resolve) => (listening = resolve));
    const run1 = serve(
      { ...common, shard: "1", dataDir: join(dir, "serve-1"), ipfsPeer: hosts.map((h) => h.multiaddrs()[0]!) },
      out,
      { signal: stop1.signal, onListening: (i) => ((address = i.multiaddrs[0]!), listening()) },
    );
    // Either it listens, or it fails (and the failure is the test's error).
    await Promise.race([started, run1]);
    assert.ok(address, lines.join(""));
    const event = lines.map((l) => JSON.parse(l)).find((e) => e.event === "listening");
    assert.equal(event.shard, 1);
    assert.equal(event.source, "chain");
    assert.equal(event.round, "1");
    // Shard 0 in-process feeds it.
    const host0 = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    t.after(() => host0.stop());
    // Its tickets are signed by wallet 1's node key (authorized, staked): shard 1 checks them on-chain.
    const first = await createInferenceServer({
      host: host0,
      spec,
      shard: 0,
      state: states[0]!,
      next: address,
      issuer: createTicketIssuer({
        signer: privateKeyToAccount(privateKeyOf(1) as Hex),
        owner: f.wallets[1]!.account.address,
        chainId: 31337,
        modelId,
      }),
    });
    t.after(() => first.stop());
    assert.equal(
      (await first.generate({ prompt: "Call me ", maxTokens: 8 })).text,
      reference(spec, states, "Call me ", 8),
    );
    stop1.abort();
    const result = await run1;
    assert.equal(result.served, 8);
    assert.equal(result.root, (await load(1)).root);

    // A checkpoint file that is not on-chain is refused before anything listens.
    const { trainers } = await runBaseline(spec, { rounds: 0 });
    const genesis = await trainers[1]!.state();
    for (const tr of trainers) tr.dispose();
    const file = join(dir, "genesis-1.safetensors");
    const meta = { modelId: modelId.toString(), shard: 1, lane: 0, round: 0, specDigest: digest, backend: "wasm" };
    await writeFile(file, encodeCheckpoint(stageLayout(spec, 1), genesis, meta).bytes);
    // (The spec from a local copy: this node has no IPFS peers.)
    const specFile = join(dir, "spec.json");
    await writeFile(specFile, canonicalSpecBytes(spec));
    await assert.rejects(
      serve({ ...common, shard: "1", dataDir: join(dir, "serve-1b"), checkpoint: file, spec: specFile }, out, {
        onListening: () => assert.fail("must not listen"),
      }),
      CheckpointRootMismatchError,
    );

    // Shard 0 with the paying gateway (its key settles receipts).
    const previous = process.env.SHARD_NODE_PRIVATE_KEY;
    process.env.SHARD_NODE_PRIVATE_KEY = privateKeyOf(5);
    t.after(() => {
      if (previous === undefined) delete process.env.SHARD_NODE_PRIVATE_KEY;
      else process.env.SHARD_NODE_PRIVATE_KEY = previous;
    });
    const stop0 = new AbortController();
    let gatewayUrl: string | null = null;
    const done0 = new Promise<unknown>((resolve) => {
      serve(
        {
          ...common,
          shard: "0",
          dataDir: join(dir, "serve-0"),
          ipfsPeer: hosts.map((h) => h.multiaddrs()[0]!),
          peerNext: address,
          currency: f.usdc.address,
          price: "0.001",
          gatewayPort: "0",
        },
        out,
        { signal: stop0.signal, onListening: (i) => ((gatewayUrl = i.gatewayUrl), stop0.abort()) },
      ).then(resolve, resolve);
    });
    const result0 = (await done0) as Awaited<ReturnType<typeof serve>>;
    assert.ok(gatewayUrl, `no gateway: ${String(result0)}`);
    assert.equal(result0.gatewayUrl, gatewayUrl);
    await assert.rejects(
      serve({ ...common, shard: "0", dataDir: join(dir, "serve-0"), peerNext: address }, out),
      (e: Error) => e.name === "UsageError" && /--currency and --price/.test(e.message),
    );
  });
});

/** A JSON-RPC endpoint over HTTP in front of the in-process chain, for commands that take an --rpc-url. */
async function rpcProxy(): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const call = async (m: { id: unknown; method: string; params?: unknown[] }) => {
        try {
          const result = await connection.provider.request({ method: m.method, params: m.params ?? [] });
          return { jsonrpc: "2.0", id: m.id, result };
        } catch (e) {
          const err = e as { code?: number; message: string; data?: unknown };
          return {
            jsonrpc: "2.0",
            id: m.id,
            error: { code: err.code ?? -32603, message: err.message, data: err.data },
          };
        }
      };
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      const answer = Array.isArray(body) ? await Promise.all(body.map(call)) : await call(body);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(answer, (_k, v: unknown) => (typeof v === "bigint" ? `0x${v.toString(16)}` : v)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}
