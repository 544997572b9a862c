import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it, type TestContext } from "node:test";

import { getAddress, hashTypedData, publicActions, type Address, type Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";

import { startGateway, type Gateway } from "../../node/src/gateway/index.js";
import { initBackend } from "../../node/src/ml/backend.js";
import { runBaseline } from "../../node/src/ml/baseline.js";
import { boundaryCodec } from "../../node/src/ml/pipeline.js";
import { type ModelSpec, specDigest } from "../../node/src/ml/spec.js";
import type { StageState } from "../../node/src/ml/stage.js";
import { chainAuthority } from "../../node/src/p2p/auth.js";
import { encodeTensor, payloadBytes } from "../../node/src/p2p/codec.js";
import { createHost, type ShardHost } from "../../node/src/p2p/host.js";
import {
  INFER_PROTOCOL,
  InferenceRemoteError,
  type InferenceServer,
  type Ticket,
  type TicketIssuer,
  TicketVerifier,
  createInferenceServer,
  createTicketIssuer,
  encodeMessage,
  inferenceShape,
  signTicket,
} from "../../node/src/serve/index.js";
import { readMessage, writeMessage } from "../../node/src/serve/wire.js";
import { settlementDomain, usageReceiptTypes, type SignedUsageReceipt } from "../../sdk/index.js";
import { authorizeKey, networkHelpers, stakeAs } from "../helpers/fixture.js";
import { clientFor, privateKeyOf, sdkFixture } from "../sdk/helpers.js";
import { tinySpec } from "./helpers.js";

/**
 * Paid-only inference over real libp2p (TCP on 127.0.0.1) and the in-process Hardhat chain.
 * Model 1 of the fixture: wallet 1 is a staked trainer that authorized its own key, and runs
 * shard 0 (its node key signs the tickets); wallet 4 has a key nobody authorized; wallet 7 runs
 * the gateway (the receipts' payee); wallet 6 is a dApp with escrow with it. Shards after 0 check
 * tickets against the chain with `chainAuthority`. The outsider holds shard 0's public checkpoint.
 */

type Stream = Awaited<ReturnType<ShardHost["libp2p"]["dialProtocol"]>>;

const PRICE = 1_000n;
const account = (i: number) => privateKeyToAccount(privateKeyOf(i) as Hex);

async function chainFixture() {
  const f = await sdkFixture();
  await stakeAs(f, 1, 0);
  await authorizeKey(f, 1, 1);
  // Wallet 2 authorized its key but has no stake.
  await authorizeKey(f, 2, 2);
  const dapp = await clientFor(f, "viem", 6);
  await dapp.depositEscrow({ currency: f.usdc.address, payee: f.wallets[7]!.account.address, amount: 10n ** 9n });
  return { ...f, dapp };
}
type F = Awaited<ReturnType<typeof chainFixture>>;

async function genesis(spec: ModelSpec): Promise<StageState[]> {
  const { trainers } = await runBaseline(spec, { rounds: 0 });
  const states = await Promise.all(trainers.map((t) => t.state()));
  for (const t of trainers) t.dispose();
  return states;
}

const verifierOf = (f: F) => {
  const authority = chainAuthority({ client: f.publicClient as never, deployment: f.deployment, modelId: f.modelId });
  return new TicketVerifier({
    chainId: f.deployment.chainId,
    modelId: f.modelId,
    check: (key, owner, options) => authority.check(key, owner, options),
  });
};

const issuerOf = (f: F, signer: number, overrides: { owner?: Address; now?: () => number } = {}) =>
  createTicketIssuer({
    signer: account(signer),
    owner: overrides.owner ?? account(signer).address,
    chainId: f.deployment.chainId,
    modelId: f.modelId,
    now: overrides.now,
  });

/** An issuer that also keeps every ticket it signs (what an intermediate shard sees). */
function recording(issuer: TicketIssuer): TicketIssuer & { tickets: Ticket[] } {
  const tickets: Ticket[] = [];
  return {
    tickets,
    issue: async (p) => {
      const t = await issuer.issue(p);
      tickets.push(t);
      return t;
    },
  };
}

interface Pipeline {
  hosts: ShardHost[];
  servers: InferenceServer[];
  first: InferenceServer;
  issuer: ReturnType<typeof recording>;
}

/** Shard 0 (wallet 1's key signs its tickets) and shards after it, checking tickets on the chain. */
async function pipeline(
  t: TestContext,
  f: F,
  spec: ModelSpec,
  states: StageState[],
  options: Partial<Parameters<typeof createInferenceServer>[0]> = {},
): Promise<Pipeline> {
  const n = spec.shards.length;
  const hosts: ShardHost[] = [];
  const servers: InferenceServer[] = [];
  for (let i = 0; i < n; i++) hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
  t.after(async () => {
    for (const s of servers) await s?.stop();
    for (const h of hosts) await h.stop();
  });
  const issuer = recording(issuerOf(f, 1));
  for (let i = n - 1; i >= 0; i--)
    servers[i] = await createInferenceServer({
      host: hosts[i]!,
      spec,
      shard: i,
      state: states[i]!,
      next: i < n - 1 ? hosts[i + 1]!.multiaddrs()[0] : undefined,
      timeoutMs: 5000,
      ...(i === 0 ? { issuer } : { verifier: verifierOf(f) }),
      ...options,
    });
  return { hosts, servers, first: servers[0]!, issuer };
}

/** A request header for `shard` of `spec` with a zero boundary tensor, and that payload. */
function request(spec: ModelSpec, shard: number, requestId: string, ticket?: unknown) {
  const shape = inferenceShape(spec, 3);
  const codec = boundaryCodec(spec);
  const payload = encodeTensor(codec, shape, new Float32Array(payloadBytes("float32", shape) / 4).fill(0.25));
  const header = {
    kind: "infer",
    protocol: 2,
    requestId,
    specDigest: specDigest(spec),
    shard,
    session: { id: requestId, start: 0, end: true },
    tokens: [1, 2, 3],
    activation: { dtype: codec, shape },
    ...(ticket !== undefined ? { ticket } : {}),
  };
  return encodeMessage(header, payload);
}

type Reply = { kind: "token"; token: number } | { kind: "error"; code: string; shard: number; message: string };

/** Sends one request from `from` to `to` and reads the reply. */
async function ask(from: ShardHost, to: ShardHost, bytes: Uint8Array): Promise<Reply> {
  const stream: Stream = await from.libp2p.dialProtocol(to.libp2p.getMultiaddrs()[0]!, INFER_PROTOCOL);
  const reply = readMessage(stream, { maxHeaderBytes: 1024, maxPayloadBytes: 0 }, 10_000);
  reply.catch(() => {});
  await writeMessage(stream, bytes, 10_000);
  return (await reply).header as Reply;
}

/** Opens a request stream and sends only the first `bytes` of a request frame: it then waits. */
async function idle(from: ShardHost, to: ShardHost, frame: Uint8Array, bytes = 200): Promise<Stream> {
  const stream: Stream = await from.libp2p.dialProtocol(to.libp2p.getMultiaddrs()[0]!, INFER_PROTOCOL);
  try {
    stream.send(frame.subarray(0, bytes));
  } catch {
    // Already reset by the shard (over a bound): the caller sees its status.
  }
  return stream;
}

const json = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? String(v) : v));

describe("paid-only inference: tickets from a gateway of the model, slots for authenticated requests", () => {
  const spec2 = tinySpec([1, 1]);
  const spec3 = tinySpec([1, 1, 1]);
  let states2: StageState[];
  let states3: StageState[];
  let f: F;
  let dir: string;
  let runs = 0;

  before(async () => {
    await initBackend("wasm");
    states2 = await genesis(spec2);
    states3 = await genesis(spec3);
    dir = await mkdtemp(join(tmpdir(), "tickets-"));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  /** The gateway (wallet 7 settles) in front of `first`, passing the receipt digest on. */
  async function gatewayOf(
    t: TestContext,
    first: InferenceServer,
    generate: Parameters<typeof startGateway>[0]["generate"] = (r) => first.generate(r),
  ): Promise<Gateway> {
    const wallet = f.wallets[7]!;
    const gateway = await startGateway({
      modelId: f.modelId,
      currency: f.usdc.address,
      pricePerUnit: PRICE,
      maxTokensPerRequest: 64,
      chain: { client: wallet.extend(publicActions) as never, account: wallet.account, deployment: f.deployment },
      dataDir: join(dir, `gateway-${runs++}`),
      listen: { host: "127.0.0.1", port: 0 },
      batchSize: 100,
      settleIntervalMs: 3_600_000,
      generate,
      maxConcurrent: first.capacity,
    });
    t.after(() => gateway.close());
    return gateway;
  }

  const signReceipt = async (maxTokens: number): Promise<SignedUsageReceipt> =>
    f.dapp.signUsageReceipt({
      receipt: {
        modelId: f.modelId,
        currency: f.usdc.address,
        payee: getAddress(f.wallets[7]!.account.address),
        units: BigInt(maxTokens),
        pricePerUnit: PRICE,
        deadline: (await f.publicClient.getBlock()).timestamp + 86_400n,
      },
    });

  const post = async (gateway: Gateway, signed: SignedUsageReceipt, prompt = "Call me Ishmael.") => {
    const response = await fetch(`${gateway.url}/v1/generate`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: json({ prompt, maxTokens: Number(signed.receipt.units), ...signed }),
    });
    return {
      status: response.status,
      headers: response.headers,
      body: (await response.json()) as Record<string, unknown>,
    };
  };

  const digestOf = (signed: SignedUsageReceipt) =>
    hashTypedData({
      domain: settlementDomain(f.deployment.chainId, f.deployment.contracts.settlement),
      types: usageReceiptTypes,
      primaryType: "UsageReceipt",
      message: signed.receipt,
    });

  it("a paid request goes through the gateway with a ticket bound to its receipt; shard 1 computes each hop once", async (t) => {
    f = await networkHelpers.loadFixture(chainFixture);
    const { first, servers, issuer } = await pipeline(t, f, spec3, states3);
    const gateway = await gatewayOf(t, first);
    const signed = await signReceipt(12);
    const { status, body } = await post(gateway, signed);
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.tokens, 12);
    assert.equal(issuer.tickets.length, 1);
    const [ticket] = issuer.tickets;
    assert.equal(ticket!.receipt, digestOf(signed));
    assert.equal(ticket!.tokens, 12);
    assert.equal(ticket!.owner, getAddress(f.wallets[1]!.account.address));
    for (const s of servers.slice(1)) {
      assert.equal(s.stats.computed, 12);
      assert.equal(s.stats.served, 12);
      assert.equal(s.stats.unauthorized, 0);
    }
  });

  it("refuses an outsider with shard 0's checkpoint: no ticket, a forged one, an unauthorized or unstaked key, an expired one; nothing computed", async (t) => {
    f = await networkHelpers.loadFixture(chainFixture);
    const { hosts, servers } = await pipeline(t, f, spec3, states3);
    const next = hosts[1]!.multiaddrs()[0]!;
    // One host for every attempt (libp2p limits new connections from one address per second).
    const host = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    t.after(() => host.stop());
    /** The outsider runs shard 0 itself (the checkpoint is public) and sends to shard 1. */
    const outsider = async (issuer?: TicketIssuer) => {
      const server = await createInferenceServer({
        host,
        spec: spec3,
        shard: 0,
        state: states3[0]!,
        next,
        timeoutMs: 5000,
        issuer,
      });
      t.after(() => server.stop());
      return server;
    };
    const refused = async (server: InferenceServer, code: string, pattern: RegExp) => {
      const before = servers.map((s) => s.stats.computed);
      const unauthorized = servers[1]!.stats.unauthorized;
      await assert.rejects(
        server.generate({ prompt: "Call me Ishmael.", maxTokens: 30 }),
        (e: InferenceRemoteError) => {
          assert.ok(e instanceof InferenceRemoteError, String(e));
          assert.equal(e.shard, 1);
          assert.equal(e.code, code);
          assert.match(e.details ?? "", pattern);
          return true;
        },
      );
      assert.deepEqual(
        servers.slice(1).map((s) => s.stats.computed),
        before.slice(1),
        "no shard after 0 computed anything",
      );
      assert.equal(servers[1]!.stats.unauthorized, unauthorized + 1);
    };

    await refused(await outsider(), "no-ticket", /no ticket/);
    // Signed by a key nobody authorized, naming the staked trainer as owner.
    await refused(
      await outsider(issuerOf(f, 4, { owner: account(1).address })),
      "unauthorized-ticket",
      /not authorized/,
    );
    // Its own key, not authorized by anyone.
    await refused(await outsider(issuerOf(f, 4)), "unauthorized-ticket", /not authorized/);
    // Authorized, but the owner has no stake in the model.
    await refused(await outsider(issuerOf(f, 2)), "unauthorized-ticket", /active trainer stake/);
    // The real node key's ticket, expired (issued 11 minutes ago with the default 10 minute lifetime).
    await refused(
      await outsider(issuerOf(f, 1, { now: () => Date.now() - 11 * 60_000 })),
      "expired-ticket",
      /expired at/,
    );
    // A ticket whose signature is not by the node key it names (wallet 4 signs, wallet 1 is named).
    const forged = await signTicket(account(4), {
      chain: f.deployment.chainId,
      model: f.modelId.toString(),
      receipt: `0x${"11".repeat(32)}`,
      request: "forged",
      tokens: 30,
      expires: Math.floor(Date.now() / 1000) + 600,
      owner: account(1).address,
    });
    const raw = host;
    const reply = await ask(raw, hosts[1]!, request(spec3, 1, "forged.0", { ...forged, nodeKey: account(1).address }));
    assert.equal(reply.kind, "error");
    assert.equal((reply as { code: string }).code, "bad-ticket");
    assert.match((reply as { message: string }).message, /forged/);
    // A ticket of another model or chain.
    const other = await signTicket(account(1), { ...forged, model: "2", owner: account(1).address });
    const wrong = await ask(raw, hosts[1]!, request(spec3, 1, "forged.0", other));
    assert.equal((wrong as { code: string }).code, "bad-ticket");
    assert.match((wrong as { message: string }).message, /model 2/);
    assert.equal(servers[1]!.stats.computed, 0);
    assert.equal(servers[2]!.stats.computed, 0);
  });

  it("a real ticket buys its tokens once: replayed by an outsider, or beyond its tokens, it is refused before compute", async (t) => {
    f = await networkHelpers.loadFixture(chainFixture);
    const { first, hosts, servers, issuer } = await pipeline(t, f, spec2, states2);
    const gateway = await gatewayOf(t, first);
    assert.equal((await post(gateway, await signReceipt(5))).status, 200);
    const ticket = issuer.tickets[0]!;
    assert.equal(servers[1]!.stats.computed, 5);
    const raw = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    t.after(() => raw.stop());
    // Every hop the ticket paid for was served: replaying any is refused, and so is one beyond.
    for (const hop of [0, 4, 5, 29]) {
      const reply = await ask(raw, hosts[1]!, request(spec2, 1, `${ticket.request}.${hop}`, ticket));
      assert.equal(reply.kind, "error");
      assert.equal((reply as { code: string }).code, "exhausted-ticket", JSON.stringify(reply));
    }
    assert.equal(servers[1]!.stats.computed, 5);
    assert.equal(servers[1]!.stats.unauthorized, 4);
    // A ticket used by the outsider first: its tokens are served once, to whoever comes first.
    const fresh = await issuer.issue({ request: "stolen", tokens: 2 });
    for (const hop of [0, 1])
      assert.equal((await ask(raw, hosts[1]!, request(spec2, 1, `stolen.${hop}`, fresh))).kind, "token");
    const third = await ask(raw, hosts[1]!, request(spec2, 1, "stolen.2", fresh));
    assert.equal((third as { code: string }).code, "exhausted-ticket");
    const again = await ask(raw, hosts[1]!, request(spec2, 1, "stolen.1", fresh));
    assert.equal((again as { code: string }).code, "exhausted-ticket");
    assert.match((again as { message: string }).message, /served before/);
    assert.equal(servers[1]!.stats.computed, 7);
  });

  it("idle streams holding partial frames take no slot: a paid request through the gateway succeeds meanwhile", async (t) => {
    f = await networkHelpers.loadFixture(chainFixture);
    // The read timeout is long, so the idle streams are all still held while the paid request runs.
    const { first, hosts, servers } = await pipeline(t, f, spec2, states2, { readTimeoutMs: 60_000 });
    const gateway = await gatewayOf(t, first);
    const attackers = [
      await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }),
      await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }),
    ];
    t.after(async () => {
      for (const a of attackers) await a.stop();
    });
    const frame = request(spec2, 1, "idle.0");
    // 16 idle streams, 8 from each of two peers: twice the shard's slots.
    const streams: Stream[] = [];
    for (const a of attackers) for (let i = 0; i < 8; i++) streams.push(await idle(a, hosts[1]!, frame));
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const { status, body } = await post(gateway, await signReceipt(10));
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(body.tokens, 10);
    assert.ok(Date.now() - t0 < 10_000, `took ${Date.now() - t0} ms`);
    assert.equal(servers[1]!.stats.served, 10);
    // The idle streams are still open (held until the read timeout), and none computed anything.
    assert.equal(streams.filter((s) => s.status === "open").length, 16);
    assert.equal(servers[1]!.stats.computed, 10);
    // A ninth idle stream from one peer is over its pending bound: reset at once.
    const ninth = await idle(attackers[0]!, hosts[1]!, frame);
    await new Promise<void>((resolve) => {
      if (ninth.status !== "open") return resolve();
      ninth.addEventListener("close", () => resolve());
    });
    assert.notEqual(ninth.status, "open");
    for (const s of streams) s.abort(new Error("done"));
  });

  it("idle streams are dropped after the read timeout without an answer", async (t) => {
    f = await networkHelpers.loadFixture(chainFixture);
    const { hosts, servers } = await pipeline(t, f, spec2, states2, { readTimeoutMs: 500 });
    const raw = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    t.after(() => raw.stop());
    const stream = await idle(raw, hosts[1]!, request(spec2, 1, "idle.0"));
    const t0 = Date.now();
    await new Promise<void>((resolve) => stream.addEventListener("close", () => resolve()));
    assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
    assert.equal(servers[1]!.stats.rejected, 1);
    assert.equal(servers[1]!.stats.computed, 0);
  });

  it("a flood of ticketed requests from one peer takes at most its share of the slots; the gateway's shard 0 still gets through", async (t) => {
    f = await networkHelpers.loadFixture(chainFixture);
    const hosts: ShardHost[] = [];
    for (let i = 0; i < 3; i++) hosts.push(await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] }));
    const servers: InferenceServer[] = [];
    t.after(async () => {
      for (const s of servers) await s.stop();
      for (const h of hosts) await h.stop();
    });
    // Shard 2 answers at once, except the flood's hops, which it holds for a second.
    let held = 0;
    await hosts[2]!.libp2p.handle(INFER_PROTOCOL, async (stream) => {
      const { header } = await readMessage(stream, { maxHeaderBytes: 8192, maxPayloadBytes: 1 << 20 }, 5000);
      const { requestId } = header as { requestId: string };
      if (requestId.startsWith("flood.")) {
        held++;
        await new Promise((r) => setTimeout(r, 1000));
      }
      await writeMessage(stream, encodeMessage({ kind: "token", requestId, token: 1 }), 5000);
    });
    const shard1 = await createInferenceServer({
      host: hosts[1]!,
      spec: spec3,
      shard: 1,
      state: states3[1]!,
      next: hosts[2]!.multiaddrs()[0],
      verifier: verifierOf(f),
      timeoutMs: 5000,
    });
    servers.push(shard1);
    const first = await createInferenceServer({
      host: hosts[0]!,
      spec: spec3,
      shard: 0,
      state: states3[0]!,
      next: hosts[1]!.multiaddrs()[0],
      issuer: issuerOf(f, 1),
      timeoutMs: 5000,
    });
    servers.push(first);
    // The flooder holds a valid ticket (a second gateway of the model, or a stolen ticket) for 8
    // hops, and sends them all at once (as many streams as one peer may have pending).
    const flooder = await createHost({ listen: ["/ip4/127.0.0.1/tcp/0"] });
    t.after(() => flooder.stop());
    const ticket = await issuerOf(f, 1).issue({ request: "flood", tokens: 8 });
    const flood = Promise.all(
      Array.from({ length: 8 }, (_, hop) => ask(flooder, hosts[1]!, request(spec3, 1, `flood.${hop}`, ticket))),
    );
    await new Promise((r) => setTimeout(r, 300));
    // Meanwhile the gateway's shard 0 generates, with all the slots it may hold.
    const results = await Promise.all(
      Array.from({ length: 4 }, () => first.generate({ prompt: "Call me Ishmael.", maxTokens: 5 })),
    );
    for (const r of results) assert.equal(r.tokens, 5);
    const replies = await flood;
    const tokens = replies.filter((r) => r.kind === "token").length;
    const busy = replies.filter((r) => r.kind === "error" && r.code === "busy");
    assert.equal(tokens, 4, JSON.stringify(replies));
    assert.equal(busy.length, 4);
    assert.match((busy[0] as { message: string }).message, /of this peer in flight, at most 4/);
    assert.equal(held, 4);
    // A busy hop was not spent: it can be asked again once a slot is free.
    const retried = replies.findIndex((r) => r.kind === "error");
    assert.equal((await ask(flooder, hosts[1]!, request(spec3, 1, `flood.${retried}`, ticket))).kind, "token");
  });

  it("the gateway admits no more requests than the pipeline carries: 503 with Retry-After, the admitted ones succeed", async (t) => {
    f = await networkHelpers.loadFixture(chainFixture);
    const { first, servers } = await pipeline(t, f, spec2, states2);
    // Generation waits until the requests over capacity have been answered, so that all overlap.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const safety = setTimeout(release, 10_000);
    t.after(() => clearTimeout(safety));
    const gateway = await gatewayOf(t, first, async (r) => {
      await gate;
      return first.generate(r);
    });
    assert.equal(first.capacity, 4);
    // Seven requests at once: three more than shard 0's capacity.
    const receipts = [];
    for (let i = 0; i < 7; i++) receipts.push(await signReceipt(16));
    let refused = 0;
    const answers = await Promise.all(
      receipts.map(async (r) => {
        const a = await post(gateway, r);
        if (a.status === 503 && ++refused === 3) release();
        return a;
      }),
    );
    const ok = answers.filter((a) => a.status === 200);
    const full = answers.filter((a) => a.status === 503);
    assert.equal(ok.length, 4, JSON.stringify(answers.map((a) => [a.status, a.body])));
    assert.equal(full.length, 3);
    for (const a of ok) assert.equal(a.body.tokens, 16);
    for (const a of full) {
      assert.equal(a.body.error, "GatewayBusy");
      assert.equal(a.body.retryable, true);
      assert.match(a.headers.get("retry-after") ?? "", /^[1-9][0-9]*$/);
    }
    // No busy answer from a shard: the gateway never sent more than they take.
    assert.equal(servers[1]!.stats.rejected, 0);
    assert.equal(servers[1]!.stats.served, 16 * 4);
    // Refused requests were not charged: their receipts are served when sent again.
    for (const a of full) assert.equal((await post(gateway, receipts[answers.indexOf(a)]!)).status, 200);
  });
});

describe("TicketVerifier (an injected chain check, a test clock)", () => {
  const key = account(1);
  const base = {
    chain: 31337,
    model: "1",
    receipt: `0x${"22".repeat(32)}`,
    request: "r1",
    tokens: 3,
    owner: key.address,
  };
  let now = 1_700_000_000_000;
  const checked: string[] = [];
  const verifier = (maxTickets?: number) =>
    new TicketVerifier({
      chainId: 31337,
      modelId: 1n,
      maxTickets,
      now: () => now,
      check: async (nodeKey, owner) => void checked.push(`${nodeKey}:${owner}`),
    });

  it("checks the signature and the chain, then counts hops per ticket; expired tickets are forgotten", async () => {
    const v = verifier();
    const ticket = await signTicket(key, { ...base, expires: Math.floor(now / 1000) + 60 });
    v.consume(await v.verify(ticket, "r1.0"));
    v.consume(await v.verify(ticket, "r1.2"));
    assert.deepEqual(checked.slice(-2), [`${key.address}:${key.address}`, `${key.address}:${key.address}`]);
    await assert.rejects(v.verify(ticket, "r1.2"), { name: "TicketError", code: "exhausted-ticket" });
    await assert.rejects(v.verify(ticket, "r1.3"), { name: "TicketError", code: "exhausted-ticket" });
    await assert.rejects(v.verify(ticket, "r2.0"), { name: "TicketError", code: "bad-ticket" });
    await assert.rejects(v.verify(ticket, "r1.01"), { name: "TicketError", code: "bad-ticket" });
    await assert.rejects(v.verify({ ...ticket, tokens: 4 }, "r1.3"), { name: "TicketError", code: "bad-ticket" });
    // A second, validly signed ticket for the same request does not reset its count.
    const second = await signTicket(key, { ...base, expires: Math.floor(now / 1000) + 120 });
    await assert.rejects(v.verify(second, "r1.1"), /another ticket for request r1/);
    // Far in the future: refused; past its expiry: refused, and forgotten by prune.
    const far = await signTicket(key, { ...base, request: "r9", expires: Math.floor(now / 1000) + 3601 });
    await assert.rejects(v.verify(far, "r9.0"), /more than 3600 s ahead/);
    assert.equal(v.size, 1);
    now += 61_000;
    await assert.rejects(v.verify(ticket, "r1.1"), { name: "TicketError", code: "expired-ticket" });
    v.prune();
    assert.equal(v.size, 0);
  });

  it("remembers at most maxTickets unexpired tickets: more are busy, not dropped (no replay window)", async () => {
    const v = verifier(2);
    const expires = Math.floor(now / 1000) + 60;
    for (const request of ["a", "b"])
      v.consume(await v.verify(await signTicket(key, { ...base, request, expires }), `${request}.0`));
    await assert.rejects(v.verify(await signTicket(key, { ...base, request: "c", expires }), "c.0"), {
      name: "InferenceBusyError",
    });
    // A chain check that throws anything else is "unavailable", not a refusal of the ticket.
    const down = new TicketVerifier({
      chainId: 31337,
      modelId: 1n,
      now: () => now,
      check: async () => {
        throw new Error("ECONNREFUSED");
      },
    });
    await assert.rejects(down.verify(await signTicket(key, { ...base, expires }), "r1.0"), {
      name: "AuthorityUnavailableError",
    });
  });
});
