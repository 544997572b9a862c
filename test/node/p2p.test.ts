import assert from "node:assert/strict";
import { once } from "node:events";
import { mkdtemp, stat, writeFile } from "node:fs/promises";
import net from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it, type TestContext } from "node:test";

import { encode as lengthPrefixed } from "it-length-prefixed";

import { decodeTensor, encodeTensor, payloadBytes } from "../../node/src/p2p/codec.js";
import {
  HandshakeError,
  InvalidFrameError,
  LinkClosedError,
  LinkTimeoutError,
  ListenAddressError,
  MalformedFrameError,
  OversizedFrameError,
  PeerAbortedError,
  PeerGoneError,
  PeerKeyError,
  UnexpectedTensorError,
} from "../../node/src/p2p/errors.js";
import { FrameDecoder } from "../../node/src/p2p/frame-decoder.js";
import {
  encodeFrame,
  encodePayloadFrame,
  encodeTensorFrame,
  type Frame,
  type FrameHeader,
} from "../../node/src/p2p/frames.js";
import { createHost, loadOrCreatePeerKey, type ShardHost } from "../../node/src/p2p/host.js";
import {
  NOT_EXPECTING_REASON,
  PIPELINE_PROTOCOL,
  acceptLink,
  dialLink,
  type LinkHello,
} from "../../node/src/p2p/link.js";

const SPEC = `0x${"ab".repeat(32)}` as const;
const OTHER_SPEC = `0x${"cd".repeat(32)}` as const;
const hello = (shard: number, overrides: Partial<LinkHello> = {}): LinkHello => ({
  modelId: 7n,
  specDigest: SPEC,
  shard,
  lane: 0,
  round: 3,
  ...overrides,
});

const helloFrame = (shard: number) =>
  ({ kind: "hello", protocol: 1, modelId: "7", specDigest: SPEC, shard, lane: 0, round: 3 }) as const;

type Stream = Awaited<ReturnType<ShardHost["libp2p"]["dialProtocol"]>>;

/**
 * Hosts on loopback, stopped when the test ends: one after the other, since two libp2p nodes that
 * close the same connection at once each wait out libp2p's 500 ms close timeout.
 */
async function hosts(t: TestContext, count: number, handshakeTimeoutMs?: number): Promise<ShardHost[]> {
  const started = await Promise.all(
    Array.from({ length: count }, () => createHost({ listen: ["/ip4/127.0.0.1/tcp/0"], handshakeTimeoutMs })),
  );
  t.after(async () => {
    for (const host of started) await host.stop();
  });
  return started;
}

/** Stage 0 on `a` linked to stage 1 on `b`. */
async function linked(t: TestContext, options: { maxTensorBytes?: number } = {}) {
  const [a, b] = await hosts(t, 2);
  const [dialer, listener] = await Promise.all([
    dialLink(a!, { multiaddr: b!.multiaddrs()[0]!, hello: hello(0) }),
    acceptLink(b!, { hello: hello(1), timeoutMs: 5_000, ...options }),
  ]);
  return { a: a!, b: b!, dialer, listener };
}

/** Random finite float32 values, including signed zeros and subnormals, whose bits must survive the trip. */
function randomTensor(length: number, seed: number): Float32Array {
  const bits = new Uint32Array(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bits[i] = (x & 0x7f800000) === 0x7f800000 ? x & 0xbfffffff : x; // keep the exponent off all-ones
  }
  bits[0] = 0x80000000; // -0
  if (length > 1) bits[1] = 0x00000001; // smallest subnormal
  return new Float32Array(bits.buffer);
}

const bytesOf = (t: Float32Array) => Buffer.from(t.buffer, t.byteOffset, t.byteLength);
const utf8 = (s: string) => new TextEncoder().encode(s);
/** A length-prefixed chunk as `it-length-prefixed` writes it: an encoder independent of frames.ts. */
const lp = (bytes: Uint8Array) => lengthPrefixed.single(bytes).subarray();
const rawHeader = (header: object) => lp(utf8(JSON.stringify(header)));

/**
 * A misbehaving stage 0: a raw stream on the pipeline protocol that completes the hello exchange
 * with `b`'s `acceptLink`, then writes whatever the test wants.
 */
async function rawDialer(t: TestContext, options: { maxTensorBytes?: number } = {}) {
  const [a, b] = await hosts(t, 2);
  const accepting = acceptLink(b!, { hello: hello(1), timeoutMs: 5_000, ...options });
  const stream = await a!.libp2p.dialProtocol(b!.libp2p.getMultiaddrs()[0]!, PIPELINE_PROTOCOL);
  const received = frames(stream);
  stream.send(encodeFrame(helloFrame(0)));
  const listener = await accepting;
  assert.equal((await received.next()).kind, "hello");
  return { stream, listener, received };
}

/** Frames arriving on a raw stream, decoded with the module's decoder. */
function frames(stream: Stream) {
  const decoder = new FrameDecoder();
  let notify: (() => void) | undefined;
  stream.addEventListener("message", (event) => {
    for (const chunk of event.data instanceof Uint8Array ? [event.data] : event.data) decoder.push(chunk);
    notify?.();
  });
  return {
    async next(): Promise<Frame> {
      for (;;) {
        const frame = decoder.shift();
        if (frame) return frame;
        await new Promise<void>((resolve) => (notify = resolve));
      }
    },
  };
}

const tensor = (
  micro: number,
  shape: number[],
  data: Float32Array,
  type: "activation" | "gradient" = "activation",
) => ({
  type,
  round: 3,
  step: 0,
  micro,
  shape,
  data,
});

describe("frames", () => {
  it("decode what they encode, whatever the chunking, in the length-prefixed layout of it-length-prefixed", () => {
    const data = randomTensor(6, 42);
    const headers: FrameHeader[] = [
      { kind: "abort", reason: "out of memory" },
      { kind: "end", round: 9 },
    ];
    const wire = [encodeTensorFrame(tensor(2, [2, 3], data)), ...headers.map((h) => encodeFrame(h))];
    // The same bytes written independently: header, then a length-prefixed payload.
    const tensorHeader = {
      kind: "tensor",
      type: "activation",
      round: 3,
      step: 0,
      micro: 2,
      shape: [2, 3],
      dtype: "float32",
      bytes: 24,
    };
    assert.deepEqual(
      Buffer.from(wire[0]!),
      Buffer.concat([rawHeader(tensorHeader), lp(new Uint8Array(bytesOf(data)))]),
    );

    const all = Buffer.concat(wire);
    for (const chunkSize of [1, 7, all.length]) {
      const decoder = new FrameDecoder();
      for (let i = 0; i < all.length; i += chunkSize) decoder.push(all.subarray(i, i + chunkSize));
      const tensorFrame = decoder.shift();
      assert.equal(tensorFrame?.kind, "tensor");
      assert.deepEqual(Buffer.from((tensorFrame as { payload: Uint8Array }).payload), bytesOf(data));
      assert.deepEqual([decoder.shift(), decoder.shift(), decoder.shift()], [...headers, undefined]);
    }
  });

  it("reject a header longer than 4 KiB from its length prefix alone", () => {
    const decoder = new FrameDecoder();
    assert.throws(() => decoder.push(lp(new Uint8Array(4097)).subarray(0, 2)), OversizedFrameError);
    assert.throws(() => encodeFrame({ kind: "abort", reason: "x".repeat(257) }), InvalidFrameError);
  });

  it("reject a payload above maxTensorBytes before any of it arrives", () => {
    const decoder = new FrameDecoder({ maxTensorBytes: 1024 });
    const header = {
      kind: "tensor",
      type: "gradient",
      round: 0,
      step: 0,
      micro: 0,
      shape: [512],
      dtype: "float32",
      bytes: 2048,
    };
    assert.throws(
      () => decoder.push(rawHeader(header)),
      (e) => e instanceof OversizedFrameError && e.part === "payload",
    );
  });

  it("reject a payload that does not match its header, and non-finite values", () => {
    const header = {
      kind: "tensor",
      type: "gradient",
      round: 0,
      step: 0,
      micro: 0,
      shape: [2],
      dtype: "float32",
      bytes: 8,
    };
    const cases: [string, Uint8Array][] = [
      ["bytes ≠ product(shape) × 4", rawHeader({ ...header, bytes: 12 })],
      ["five dims", rawHeader({ ...header, shape: [1, 1, 1, 1, 2] })],
      ["payload length ≠ bytes", Buffer.concat([rawHeader(header), lp(new Uint8Array(4))])],
      ["payload on an end frame", Buffer.concat([rawHeader({ kind: "end", round: 1 }), lp(new Uint8Array(1))])],
      ["unknown field", rawHeader({ kind: "end", round: 1, extra: true })],
      ["NaN", Buffer.concat([rawHeader(header), lp(new Uint8Array(new Float32Array([1, NaN]).buffer))])],
      ["Infinity", Buffer.concat([rawHeader(header), lp(new Uint8Array(new Float32Array([-Infinity, 1]).buffer))])],
    ];
    for (const [name, bytes] of cases) {
      assert.throws(() => new FrameDecoder().push(bytes), MalformedFrameError, name);
    }
    assert.throws(() => encodeTensorFrame(tensor(0, [2], new Float32Array([1, NaN]))), InvalidFrameError);
    assert.throws(() => encodeTensorFrame(tensor(0, [3], new Float32Array(2))), InvalidFrameError);
  });

  it("carry int8 tensors: dtype int8, bytes = a scale per row plus a byte per value", () => {
    const data = new Float32Array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5]);
    const frame = encodeTensorFrame({ ...tensor(1, [2, 3], data), dtype: "int8" });
    const payload = encodeTensor("int8", [2, 3], data);
    const header = { kind: "tensor", type: "activation", round: 3, step: 0, micro: 1, shape: [2, 3] };
    assert.deepEqual(
      Buffer.from(frame),
      Buffer.concat([rawHeader({ ...header, dtype: "int8", bytes: 14 }), lp(payload)]),
    );
    assert.deepEqual(
      encodePayloadFrame({ type: "activation", round: 3, step: 0, micro: 1, shape: [2, 3], dtype: "int8", payload }),
      frame,
    );
    const decoder = new FrameDecoder();
    decoder.push(frame);
    const decoded = decoder.shift();
    assert.ok(decoded?.kind === "tensor" && decoded.dtype === "int8");
    assert.deepEqual(decoded.payload, payload);
  });

  it("reject an int8 frame whose size or payload is not a valid encoding", () => {
    const header = {
      kind: "tensor",
      type: "gradient",
      round: 0,
      step: 0,
      micro: 0,
      shape: [2, 2],
      dtype: "int8",
      bytes: 12,
    };
    const scaled = (scale: number, q: [number, number]) =>
      new Uint8Array([
        ...new Uint8Array(new Float32Array([scale]).buffer),
        ...new Uint8Array(Int8Array.from(q).buffer),
      ]);
    const ok = scaled(1, [1, 2]);
    const frame = (payload: Uint8Array) => Buffer.concat([rawHeader(header), lp(payload)]);
    const cases: [string, Uint8Array, RegExp][] = [
      ["float32 bytes", rawHeader({ ...header, bytes: 16 }), /payloadBytes/],
      ["payload length ≠ bytes", Buffer.concat([rawHeader(header), lp(new Uint8Array(16))]), /at most 12/],
      ["NaN scale", frame(new Uint8Array([...ok, ...scaled(NaN, [1, 1])])), /scale of row 1 is NaN/],
      ["negative scale", frame(new Uint8Array([...scaled(-0.5, [1, 1]), ...ok])), /scale of row 0 is -0.5/],
      ["Infinity scale", frame(new Uint8Array([...scaled(Infinity, [1, 1]), ...ok])), /Infinity/],
      ["-128", frame(new Uint8Array([...ok, ...scaled(1, [-128, 0])])), /index 2 is -128/],
      ["unknown dtype", rawHeader({ ...header, dtype: "bf16", bytes: 8 }), /dtype/],
    ];
    for (const [name, bytes, details] of cases) {
      assert.throws(
        () => new FrameDecoder().push(bytes),
        (e) => e instanceof MalformedFrameError && details.test(e.details ?? ""),
        name,
      );
    }
    // A node never sends what it would reject.
    const message = { type: "gradient", round: 0, step: 0, micro: 0, shape: [2, 2], dtype: "int8" } as const;
    assert.doesNotThrow(() => encodePayloadFrame({ ...message, payload: new Uint8Array([...ok, ...ok]) }));
    for (const payload of [
      ok,
      new Uint8Array([...ok, ...scaled(-1, [0, 0])]),
      new Uint8Array([...ok, ...scaled(1, [-128, 0])]),
    ]) {
      assert.throws(() => encodePayloadFrame({ ...message, payload }), InvalidFrameError);
    }
    assert.throws(
      () => encodeTensorFrame({ ...tensor(0, [2], new Float32Array([1, NaN])), dtype: "int8" }),
      InvalidFrameError,
    );
    // The size limit is on the encoded payload: 12 bytes of int8 fit where 16 of float32 do not.
    assert.doesNotThrow(() => encodeTensorFrame({ ...tensor(0, [2, 2], new Float32Array(4)), dtype: "int8" }, 12));
    assert.throws(() => encodeTensorFrame(tensor(0, [2, 2], new Float32Array(4)), 12), InvalidFrameError);
  });
});

describe("pipeline link handshake", () => {
  it("links adjacent stages that agree, each seeing the other's hello and peer id", async (t) => {
    const { a, b, dialer, listener } = await linked(t);
    assert.equal(dialer.remotePeer, b.peerId);
    assert.equal(listener.remotePeer, a.peerId);
    assert.equal(dialer.remote.shard, 1);
    assert.equal(listener.remote.shard, 0);
    assert.equal(listener.remote.modelId, "7");
    assert.deepEqual(dialer.stats, {
      bytesSent: dialer.stats.bytesSent,
      bytesReceived: listener.stats.bytesSent,
      framesSent: 1,
      framesReceived: 1,
    });
    assert.ok(dialer.stats.bytesSent > 100);
  });

  it("refuses a dialer with another spec digest or a non-adjacent shard, and keeps waiting for the right one", async (t) => {
    const [a, b] = await hosts(t, 2);
    const target = b!.multiaddrs()[0]!;
    const refused: HandshakeError[] = [];
    const accepting = acceptLink(b!, { hello: hello(2), timeoutMs: 5_000, onRefused: (e) => refused.push(e) });

    await assert.rejects(dialLink(a!, { multiaddr: target, hello: hello(1, { specDigest: OTHER_SPEC }) }), (e) => {
      assert.ok(e instanceof HandshakeError);
      assert.match(e.details ?? "", /spec/);
      assert.equal(e.retryable, false);
      return true;
    });
    await assert.rejects(dialLink(a!, { multiaddr: target, hello: hello(0) }), (e) => {
      assert.ok(e instanceof HandshakeError);
      assert.match(e.details ?? "", /shard 0 feeds shard 1, not shard 2/);
      return true;
    });
    assert.equal(refused.length, 2);

    const dialer = await dialLink(a!, { multiaddr: target, hello: hello(1) });
    const listener = await accepting;
    assert.equal(listener.remote.shard, 1);
    assert.equal(dialer.remote.shard, 2);
  });

  it("checks the listener's reply at the dialer too: a wrong hello is a HandshakeError, junk a MalformedFrameError", async (t) => {
    const [a, b] = await hosts(t, 2);
    let reply: Uint8Array = encodeFrame({ ...helloFrame(0), shard: 5 });
    // A stand-in for b's pipeline handler: it answers a dialer's hello with `reply`, then notes
    // what the dialer says back.
    const toldBack: Promise<Frame>[] = [];
    await b!.libp2p.handle(
      PIPELINE_PROTOCOL,
      (stream) => {
        const incoming = frames(stream);
        toldBack.push(
          incoming.next().then(() => {
            stream.send(reply);
            return incoming.next();
          }),
        );
      },
      { force: true },
    );
    await assert.rejects(dialLink(a!, { multiaddr: b!.multiaddrs()[0]!, hello: hello(0) }), (e) => {
      assert.ok(e instanceof HandshakeError);
      assert.match(e.details ?? "", /shard 0 feeds shard 1, not shard 5/);
      return true;
    });
    assert.equal((await toldBack[0]!).kind, "abort");
    // Junk must outrun its accidental length prefix ("H" = 72 bytes of header): a shorter reply
    // reads as an incomplete frame, and only times out.
    reply = utf8("HTTP/1.1 400 Bad Request\r\n\r\n".repeat(4));
    await assert.rejects(dialLink(a!, { multiaddr: b!.multiaddrs()[0]!, hello: hello(0) }), MalformedFrameError);
  });

  it("holds a dialer that arrives before acceptLink; turns it away, retryably, if none comes", async (t) => {
    const [a, b] = await hosts(t, 2);
    const early = dialLink(a!, { multiaddr: b!.multiaddrs()[0]!, hello: hello(0) });
    await new Promise((r) => setTimeout(r, 200));
    const listener = await acceptLink(b!, { hello: hello(1), timeoutMs: 5_000 });
    assert.equal((await early).remote.shard, 1);
    assert.equal(listener.remote.shard, 0);

    const [c] = await hosts(t, 1, 200); // expects nobody, holds a dialer for 200 ms
    await assert.rejects(dialLink(a!, { multiaddr: c!.multiaddrs()[0]!, hello: hello(0) }), (e) => {
      assert.ok(e instanceof HandshakeError);
      assert.equal(e.details, NOT_EXPECTING_REASON);
      assert.equal(e.retryable, true);
      return true;
    });
  });
});

describe("pipeline link dial", () => {
  it("reports a next stage that is not listening as PeerGoneError, retryable", async (t) => {
    const [a, gone] = await hosts(t, 2);
    const address = gone!.multiaddrs()[0]!;
    await gone!.stop();
    await assert.rejects(
      dialLink(a!, { multiaddr: address, hello: hello(0) }),
      (e) => e instanceof PeerGoneError && e.retryable,
    );
  });
});

describe("host listen", () => {
  it("names a busy listen address and what to do, instead of libp2p's internal text", async (t) => {
    const busy = net.createServer().listen(0, "127.0.0.1");
    await once(busy, "listening");
    t.after(() => busy.close());
    const address = `/ip4/127.0.0.1/tcp/${(busy.address() as net.AddressInfo).port}`;
    await assert.rejects(
      createHost({ listen: [address] }),
      (e) =>
        e instanceof ListenAddressError &&
        e.code === "EADDRINUSE" &&
        e.shortMessage === `Cannot listen on ${address}: the port is already in use by another process.` &&
        /--listen/.test(e.details ?? ""),
    );
  });
});

describe("pipeline link tensors", () => {
  it("carry activations forward and gradients back, bitwise and in order, counting bytes", async (t) => {
    const { dialer, listener } = await linked(t);
    const activations = [
      randomTensor(4 * 8 * 16, 1),
      randomTensor(256 * 1024, 2), // 1 MiB
      randomTensor(4 * 8 * 16, 3),
    ];
    const shapes = [
      [4, 8, 16],
      [256, 1024],
      [4, 8, 16],
    ];
    const sent = Promise.all(activations.map((data, micro) => dialer.sendTensor(tensor(micro, shapes[micro]!, data))));
    for (const [micro, data] of activations.entries()) {
      const received = await listener.receiveTensor({
        type: "activation",
        round: 3,
        step: 0,
        micro,
        shape: shapes[micro]!,
      });
      assert.deepEqual(bytesOf(received), bytesOf(data));
    }
    await sent;

    const gradient = randomTensor(4 * 8 * 16, 4);
    await listener.sendTensor(tensor(2, [4, 8, 16], gradient, "gradient"));
    const back = await dialer.receiveTensor({ type: "gradient", round: 3, step: 0, micro: 2, shape: [4, 8, 16] });
    assert.deepEqual(bytesOf(back), bytesOf(gradient));

    const payload = activations.reduce((n, a) => n + a.byteLength, 0);
    assert.ok(
      dialer.stats.bytesSent > payload && dialer.stats.bytesSent < payload + 1_000,
      `${dialer.stats.bytesSent}`,
    );
    assert.equal(listener.stats.bytesReceived, dialer.stats.bytesSent);
    assert.equal(dialer.stats.bytesReceived, listener.stats.bytesSent);
    assert.deepEqual([dialer.stats.framesSent, listener.stats.framesReceived], [4, 4]);
  });

  it("make a sender wait while the receiver does not read (bounded buffering)", async (t) => {
    const { dialer, listener } = await linked(t, { maxTensorBytes: 1 << 20 });
    const data = randomTensor(256 * 1024, 5); // 1 MiB per frame
    const total = 48;
    let sent = 0;
    const sending = (async () => {
      for (let micro = 0; micro < total; micro++) {
        await dialer.sendTensor(tensor(micro, [256 * 1024], data), { timeoutMs: 10_000 });
        sent++;
      }
    })();
    await new Promise((r) => setTimeout(r, 500));
    assert.ok(sent < total / 2, `the sender got ${sent} MiB ahead of a receiver that reads nothing`);
    for (let micro = 0; micro < total; micro++) {
      await listener.receiveTensor({ type: "activation", round: 3, step: 0, micro, shape: [256 * 1024] });
    }
    await sending;
    assert.equal(sent, total);
  });

  it("reject a frame for another step or shape with UnexpectedTensorError, and tell the sender", async (t) => {
    const { dialer, listener } = await linked(t);
    await dialer.sendTensor({ ...tensor(0, [2, 2], new Float32Array(4)), step: 1 });
    await assert.rejects(
      listener.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [2, 2] }),
      (e) => e instanceof UnexpectedTensorError && /step 1/.test(e.details ?? ""),
    );
    await assert.rejects(
      dialer.receiveTensor({ type: "gradient", round: 3, step: 0, micro: 0, shape: [2, 2] }),
      PeerAbortedError,
    );

    const other = await linked(t);
    await other.dialer.sendTensor(tensor(0, [4], new Float32Array(4)));
    await assert.rejects(
      other.listener.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [2, 2] }),
      UnexpectedTensorError,
    );
  });

  it("reject garbage bytes on the protocol with MalformedFrameError", async (t) => {
    const junk: Record<string, Uint8Array> = {
      "random bytes": Uint8Array.from({ length: 64 }, (_, i) => (i * 97 + 13) & 0xff),
      "not JSON": lp(utf8("{ kind: tensor")),
      "not UTF-8": lp(new Uint8Array([0xff, 0xfe, 0x7b])),
      "wrong schema": rawHeader({ kind: "tensor", type: "weights", round: 3 }),
    };
    for (const [name, bytes] of Object.entries(junk)) {
      const { stream, listener } = await rawDialer(t);
      stream.send(bytes);
      await assert.rejects(
        listener.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [2] }, { timeoutMs: 2_000 }),
        MalformedFrameError,
        name,
      );
    }
  });

  it("reject an oversized declared payload with OversizedFrameError, without waiting for it", async (t) => {
    const { stream, listener, received } = await rawDialer(t, { maxTensorBytes: 1 << 20 });
    const header = {
      kind: "tensor",
      type: "activation",
      round: 3,
      step: 0,
      micro: 0,
      shape: [1024, 1024],
      dtype: "float32",
      bytes: 4 << 20,
    };
    stream.send(rawHeader(header)); // the 4 MiB payload never comes
    const started = Date.now();
    await assert.rejects(
      listener.receiveTensor(
        { type: "activation", round: 3, step: 0, micro: 0, shape: [1024, 1024] },
        { timeoutMs: 5_000 },
      ),
      (e) => e instanceof OversizedFrameError && e.part === "payload" && e.size === 4 << 20 && e.limit === 1 << 20,
    );
    assert.ok(Date.now() - started < 1_000);
    const told = await received.next();
    assert.equal(told.kind, "abort");
  });

  it("reject a NaN payload with MalformedFrameError", async (t) => {
    const { stream, listener } = await rawDialer(t);
    const header: FrameHeader = {
      kind: "tensor",
      type: "activation",
      round: 3,
      step: 0,
      micro: 0,
      shape: [2],
      dtype: "float32",
      bytes: 8,
    };
    stream.send(encodeFrame(header, new Uint8Array(new Float32Array([0.5, NaN]).buffer)));
    await assert.rejects(
      listener.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [2] }),
      MalformedFrameError,
    );
    await assert.rejects(
      listener.sendTensor(tensor(0, [2], new Float32Array([Infinity, 0]), "gradient")),
      InvalidFrameError,
    );
  });
});

describe("pipeline link int8 tensors", () => {
  it("carry int8 tensors both ways, as encoded, in about a quarter of the bytes, under a limit on encoded bytes", async (t) => {
    // 2 MiB of float32, 513 KiB of int8: above the listener's 1 MiB limit as float32, within it as int8.
    const { dialer, listener } = await linked(t, { maxTensorBytes: 1 << 20 });
    const shape = [256, 2048];
    const activation = randomTensor(256 * 2048, 6).map((x) => x % 1e6); // finite, varied magnitudes
    const encoded = encodeTensor("int8", shape, activation);
    const before = dialer.stats.bytesSent;
    await Promise.all([
      dialer.sendTensor({ ...tensor(0, shape, activation), dtype: "int8" }),
      dialer.sendPayload({ type: "activation", round: 3, step: 0, micro: 1, shape, dtype: "int8", payload: encoded }),
      (async () => {
        const expected = { type: "activation", round: 3, step: 0, shape, dtype: "int8" } as const;
        const values = await listener.receiveTensor({ ...expected, micro: 0 });
        assert.deepEqual(bytesOf(values), bytesOf(decodeTensor("int8", shape, encoded)));
        assert.deepEqual(await listener.receivePayload({ ...expected, micro: 1 }), encoded);
      })(),
    ]);
    const sent = dialer.stats.bytesSent - before;
    assert.equal(encoded.byteLength, payloadBytes("int8", shape));
    assert.ok(sent > 2 * encoded.byteLength && sent < 2 * encoded.byteLength + 1_000, `${sent}`);
    assert.equal(listener.stats.bytesReceived, dialer.stats.bytesSent);

    const gradient = encodeTensor("int8", [4, 8], randomTensor(32, 7));
    await listener.sendPayload({
      type: "gradient",
      round: 3,
      step: 0,
      micro: 1,
      shape: [4, 8],
      dtype: "int8",
      payload: gradient,
    });
    const back = await dialer.receivePayload({
      type: "gradient",
      round: 3,
      step: 0,
      micro: 1,
      shape: [4, 8],
      dtype: "int8",
    });
    assert.deepEqual(back, gradient);

    // float32 by the payload path is the same frame as by sendTensor.
    const plain = randomTensor(8, 8);
    await dialer.sendPayload({
      ...tensor(2, [8], plain),
      dtype: "float32",
      payload: encodeTensor("float32", [8], plain),
    });
    assert.deepEqual(
      bytesOf(await listener.receiveTensor({ type: "activation", round: 3, step: 0, micro: 2, shape: [8] })),
      bytesOf(plain),
    );
  });

  it("refuse a frame of another dtype than expected with UnexpectedTensorError, and tell the sender", async (t) => {
    const { dialer, listener } = await linked(t);
    await dialer.sendTensor({ ...tensor(0, [2, 2], new Float32Array([1, 2, 3, 4])), dtype: "int8" });
    await assert.rejects(
      listener.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [2, 2] }),
      (e) => e instanceof UnexpectedTensorError && /expected .* float32, received .* int8$/.test(e.details ?? ""),
    );
    await assert.rejects(
      dialer.receivePayload({ type: "gradient", round: 3, step: 0, micro: 0, shape: [2, 2], dtype: "int8" }),
      PeerAbortedError,
    );

    const other = await linked(t);
    await other.dialer.sendTensor(tensor(0, [2, 2], new Float32Array(4)));
    await assert.rejects(
      other.listener.receivePayload({ type: "activation", round: 3, step: 0, micro: 0, shape: [2, 2], dtype: "int8" }),
      UnexpectedTensorError,
    );
  });

  it("refuse an int8 frame with the wrong byte count or a bad scale with MalformedFrameError", async (t) => {
    const expected = { type: "activation", round: 3, step: 0, micro: 0, shape: [2, 2], dtype: "int8" } as const;
    const header = { kind: "tensor", type: "activation", round: 3, step: 0, micro: 0, shape: [2, 2], dtype: "int8" };
    const badScale = new Uint8Array(12);
    new DataView(badScale.buffer).setFloat32(6, NaN, true); // row 1's scale
    const cases: [string, Uint8Array, RegExp][] = [
      ["float32 byte count", rawHeader({ ...header, bytes: 16 }), /payloadBytes/],
      ["short payload", Buffer.concat([rawHeader({ ...header, bytes: 12 }), lp(new Uint8Array(11))]), /declares 12/],
      ["NaN scale", Buffer.concat([rawHeader({ ...header, bytes: 12 }), lp(badScale)]), /scale of row 1 is NaN/],
    ];
    for (const [name, bytes, details] of cases) {
      const { stream, listener, received } = await rawDialer(t);
      stream.send(bytes);
      await assert.rejects(
        listener.receivePayload(expected, { timeoutMs: 2_000 }),
        (e) => e instanceof MalformedFrameError && details.test(e.details ?? ""),
        name,
      );
      assert.equal((await received.next()).kind, "abort", name);
    }
  });
});

describe("pipeline link failures", () => {
  it("surface a peer that stops its host mid-wait as PeerGoneError, promptly", async (t) => {
    const { a, listener } = await linked(t);
    const started = Date.now();
    setTimeout(() => void a.stop(), 100);
    await assert.rejects(
      listener.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [2] }, { timeoutMs: 10_000 }),
      (e) => e instanceof PeerGoneError && e.retryable,
    );
    assert.ok(Date.now() - started < 2_000, `${Date.now() - started} ms`);
  });

  it("surface the peer's abort as PeerAbortedError with its reason, and end the link", async (t) => {
    const { dialer, listener } = await linked(t);
    await dialer.sendTensor(tensor(0, [2], new Float32Array([1, 2])));
    await dialer.abort("stage 0 ran out of memory");
    // What was sent before the abort is still delivered.
    await listener.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [2] });
    const expected = { type: "activation", round: 3, step: 0, micro: 1, shape: [2] } as const;
    await assert.rejects(
      listener.receiveTensor(expected),
      (e) => e instanceof PeerAbortedError && e.reason === "stage 0 ran out of memory",
    );
    await assert.rejects(listener.receiveTensor(expected), PeerAbortedError);
    await assert.rejects(dialer.sendTensor(tensor(1, [2], new Float32Array(2))), LinkClosedError);
  });

  it("time out a receive with LinkTimeoutError, leaving the link usable", async (t) => {
    const { dialer, listener } = await linked(t);
    const expected = { type: "activation", round: 3, step: 0, micro: 0, shape: [2] } as const;
    const started = Date.now();
    await assert.rejects(
      listener.receiveTensor(expected, { timeoutMs: 150 }),
      (e) => e instanceof LinkTimeoutError && e.retryable,
    );
    assert.ok(Date.now() - started >= 140);
    await dialer.sendTensor(tensor(0, [2], new Float32Array([3, 4])));
    assert.deepEqual([...(await listener.receiveTensor(expected))], [3, 4]);
  });

  it("close: the peer's next receive is PeerGoneError, and this end refuses further use", async (t) => {
    const { dialer, listener } = await linked(t);
    await dialer.sendEnd(3);
    await dialer.close();
    await listener.receiveEnd(3);
    await assert.rejects(
      listener.receiveTensor({ type: "activation", round: 4, step: 0, micro: 0, shape: [2] }),
      PeerGoneError,
    );
    await assert.rejects(
      dialer.receiveTensor({ type: "gradient", round: 3, step: 0, micro: 0, shape: [2] }),
      LinkClosedError,
    );
  });
});

describe("peer key", () => {
  it("is created once with mode 0600 and gives the same peer id on every start", async (t) => {
    const dir = await mkdtemp(path.join(tmpdir(), "shard-p2p-"));
    const file = path.join(dir, "keys", "peer.key");
    const key = await loadOrCreatePeerKey(file);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.deepEqual(await loadOrCreatePeerKey(file), key);
    const [one, two] = await Promise.all([
      createHost({ listen: ["/ip4/127.0.0.1/tcp/0"], privateKey: key }),
      createHost({ listen: ["/ip4/127.0.0.1/tcp/0"], privateKey: await loadOrCreatePeerKey(file) }),
    ]);
    t.after(async () => {
      await one.stop();
      await two.stop();
    });
    assert.equal(one.peerId, two.peerId);
    assert.ok(one.multiaddrs()[0]!.endsWith(`/p2p/${one.peerId}`));

    await writeFile(path.join(dir, "bad.key"), "not a key");
    await assert.rejects(loadOrCreatePeerKey(path.join(dir, "bad.key")), PeerKeyError);
  });
});
