import { multiaddr as parseMultiaddr, type Multiaddr } from "@multiformats/multiaddr";
import type { Address } from "viem";
import { z } from "zod";

import { NodeError } from "../errors.js";
import { type NodeSigner, type PeerAuthority, signStatement, verifyStatement } from "./auth.js";
import { decodeTensor, type TensorCodec } from "./codec.js";
import {
  AuthorityUnavailableError,
  HandshakeError,
  InvalidFrameError,
  InvalidLinkParameterError,
  LinkClosedError,
  LinkTimeoutError,
  MalformedFrameError,
  OversizedFrameError,
  PeerAbortedError,
  PeerGoneError,
  UnauthorizedPeerError,
  UnexpectedTensorError,
  type UnauthorizedReason,
} from "./errors.js";
import {
  DEFAULT_MAX_TENSOR_BYTES,
  FrameDecoder,
  MAX_HEADER_BYTES,
  MAX_REASON_LENGTH,
  PROTOCOL_VERSION,
  encodeFrame,
  encodePayloadFrame,
  encodeTensorFrame,
  zHelloHeader,
  type Frame,
  type HelloHeader,
  type TensorMessage,
  type TensorPayloadMessage,
  type TensorType,
} from "./frames.js";
import type { Libp2pNode, ShardHost } from "./host.js";

/** The libp2p protocol id of a pipeline link. */
export const PIPELINE_PROTOCOL = "/shard-protocol/pipeline/1.0.0";
/** How long a dialer has to complete the hello exchange, by default. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 10_000;
/** How long `sendTensor`, `receiveTensor` and `acceptLink` wait, by default. */
export const DEFAULT_TIMEOUT_MS = 60_000;
/** The reason a listener gives a dialer it was not expecting; the dialer's `HandshakeError` is retryable. */
export const NOT_EXPECTING_REASON = "not expecting a pipeline link";
/** An `abort` reason that starts with this is a refusal for now (a round apart, chain unreadable): retry later. */
export const RETRY_PREFIX = "retry: ";
/** An `abort` reason that starts with this refuses an unauthenticated peer: `unauthorized <reason>: <details>`. */
export const UNAUTHORIZED_PREFIX = "unauthorized ";
/** The statement domain of a signed hello (see auth.ts). */
export const HELLO_DOMAIN = "pipeline-hello@1";
/** How far a signed hello's time may be from the receiver's clock, by default. */
export const DEFAULT_MAX_SKEW_MS = 5 * 60_000;
/** Pipeline streams one connection may have open at once, each way (libp2p refuses more). */
export const MAX_PIPELINE_STREAMS = 4;
/** Inbound streams of a host still waiting for their hello, all connections together; more are reset. */
export const MAX_PENDING_HELLOS = 32;
/** Dialers held (hello read, no `acceptLink` yet) at once per host; more are refused, retryably. */
export const MAX_PARKED_DIALERS = 8;

/** While paused, a Yamux stream can still receive up to its window (16 MiB); keep that from aborting the stream. */
const STREAM_READ_BUFFER_BYTES = 32 * 1024 * 1024;
/**
 * Before the peer's hello is accepted, what a stream may hold: its hello is at most a 4 KiB header,
 * and nothing else is read until it is authenticated (the stream is paused; past this, reset).
 */
const PRE_HELLO_READ_BUFFER_BYTES = 64 * 1024;
const MAX_TIMER_MS = 2 ** 31 - 1;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

type Stream = Awaited<ReturnType<Libp2pNode["dialProtocol"]>>;

/** What a stage says about itself when a link opens: both ends must be training the same thing. */
export type LinkHello = {
  /** The model's on-chain id. */
  modelId: bigint | string;
  /** keccak256 of the canonical model spec. */
  specDigest: `0x${string}`;
  /** This stage's shard; the dialer is shard i, the listener shard i + 1. */
  shard: number;
  /** The pipeline lane (data-parallel replica) both stages belong to. */
  lane: number;
  round: number;
};

export type LinkStats = { bytesSent: number; bytesReceived: number; framesSent: number; framesReceived: number };

/**
 * How a link end proves who it is and checks the other: its hello is signed by `signer` (the node
 * key) over the hello's facts and this host's own peer id, and the peer's hello must be signed by
 * a node key that `authority` accepts for the owner it names (an authorized node key of a staked
 * trainer of the model), bound to the connection's remote peer id (Noise-authenticated), recent,
 * and, where `peer` is set, from that very peer. Without `auth`, links are not authenticated
 * (tests, benchmarks); a swarm node always sets it.
 */
export type LinkAuth = {
  /** This node's key: signs its hellos. */
  signer: NodeSigner;
  /** The trainer whose stake backs this node (that authorized `signer` on the ledger). */
  owner: Address;
  /** Says whether the peer's node key and owner may train this model (`chainAuthority`). */
  authority: PeerAuthority;
  /**
   * The peer id the other end must have (the operator pinned it: `/p2p/<peerId>` in the configured
   * address). A dialer's multiaddr pins it already (libp2p checks it); for a listener, the
   * previous stage's.
   */
  peer?: string | undefined;
  /** How far the peer's signing time may be from this clock. Default 5 minutes. */
  maxSkewMs?: number | undefined;
};

/**
 * The tensor `receiveTensor` expects next; its shape and dtype are known from the model spec.
 * `dtype` is how its values travel (default `float32`); a frame of another dtype is refused.
 */
export type ExpectedTensor = {
  type: TensorType;
  round: number;
  step: number;
  micro: number;
  shape: readonly number[];
  dtype?: TensorCodec | undefined;
};

/** The tensor `receivePayload` expects next, `dtype` included. */
export type ExpectedPayload = ExpectedTensor & { dtype: TensorCodec };

export type LinkWaitOptions = { timeoutMs?: number | undefined };

export type DialLinkParameters = {
  /** The next stage's address, ideally ending in `/p2p/<peerId>` so that its identity is checked. */
  multiaddr: string;
  /** This stage's hello (shard i). */
  hello: LinkHello;
  /** Bound on the whole dial and hello exchange. Default `DEFAULT_HANDSHAKE_TIMEOUT_MS`. */
  timeoutMs?: number | undefined;
  /** Largest tensor payload accepted from the peer. Default `DEFAULT_MAX_TENSOR_BYTES` (64 MiB). */
  maxTensorBytes?: number | undefined;
  /**
   * Bytes of received frames held before the stream is paused (default: one largest frame).
   * A pipeline schedule in which a stage sends several tensors before reading what its neighbour
   * sent back needs room for all of them here, or both ends wait on each other.
   */
  bufferBytes?: number | undefined;
  /** Whether the listener must be at the same round. Default true; false leaves reconciling rounds to the caller (`link.remote.round`). */
  matchRound?: boolean | undefined;
  /**
   * With `matchRound: false`, how many rounds apart the ends may be (default: any). Further apart
   * is a retryable refusal (`retry:`), not a link.
   */
  roundWindow?: number | undefined;
  /** Authenticate both ends (see `LinkAuth`). */
  auth?: LinkAuth | undefined;
};
export type DialLinkReturnType = PipelineLink;
export type DialLinkErrorType =
  | HandshakeError
  | InvalidFrameError
  | InvalidLinkParameterError
  | LinkTimeoutError
  | MalformedFrameError
  | OversizedFrameError
  | PeerGoneError
  | UnauthorizedPeerError
  | AuthorityUnavailableError;

export type AcceptLinkParameters = {
  /** This stage's hello (shard i + 1). */
  hello: LinkHello;
  /** How long to wait for the previous stage to dial. Default `DEFAULT_TIMEOUT_MS`. */
  timeoutMs?: number | undefined;
  /** Largest tensor payload accepted from the peer. Default `DEFAULT_MAX_TENSOR_BYTES` (64 MiB). */
  maxTensorBytes?: number | undefined;
  /**
   * Bytes of received frames held before the stream is paused (default: one largest frame).
   * A pipeline schedule in which a stage sends several tensors before reading what its neighbour
   * sent back needs room for all of them here, or both ends wait on each other.
   */
  bufferBytes?: number | undefined;
  /** Whether the dialer must be at the same round. Default true; false leaves reconciling rounds to the caller (`link.remote.round`). */
  matchRound?: boolean | undefined;
  /**
   * With `matchRound: false`, how many rounds apart the ends may be (default: any). A dialer further
   * apart is refused retryably (`retry:`) and waiting goes on.
   */
  roundWindow?: number | undefined;
  /**
   * Accept only an authenticated dialer (see `LinkAuth`); `auth.peer` pins the previous stage's
   * peer id. Others are refused (`UnauthorizedPeerError` as the cause of the `HandshakeError` given
   * to `onRefused`) before any of their tensors is read.
   */
  auth?: LinkAuth | undefined;
  /**
   * Told about each dialer turned away while waiting (wrong model, spec, lane, round or shard; or
   * not authenticated: then `error.cause` is the `UnauthorizedPeerError`).
   */
  onRefused?: ((error: HandshakeError) => void) | undefined;
};
export type AcceptLinkReturnType = PipelineLink;
export type AcceptLinkErrorType = InvalidLinkParameterError | LinkTimeoutError | LinkClosedError;

export type ReceiveTensorErrorType =
  | MalformedFrameError
  | OversizedFrameError
  | UnexpectedTensorError
  | PeerAbortedError
  | PeerGoneError
  | LinkTimeoutError
  | LinkClosedError;
export type SendTensorErrorType = InvalidFrameError | PeerGoneError | LinkTimeoutError | LinkClosedError;

/**
 * Stage i opens a link to stage i + 1: dials `multiaddr`, sends its hello and checks the reply
 * (same model, spec digest, lane and round; the listener's shard is `hello.shard + 1`). A listener
 * that disagrees, or expects no link, answers with `abort`: `HandshakeError` (retryable when the
 * listener was not expecting a link yet), as when the reply disagrees here.
 *
 * @example
 * const link = await dialLink(host, { multiaddr: next, hello: { modelId: 1n, specDigest, shard: 0, lane: 0, round: 3 } })
 * await link.sendTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [4, 64, 128], data })
 */
export async function dialLink(host: ShardHost, parameters: DialLinkParameters): Promise<DialLinkReturnType> {
  const auth = parameters.auth;
  const hello = await signHello(host.peerId, parameters.hello, auth);
  const rounds = roundsOf(parameters.matchRound, parameters.roundWindow);
  const timeoutMs = timeoutOf(parameters.timeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS);
  const deadline = Date.now() + timeoutMs;
  let address: Multiaddr;
  try {
    address = parseMultiaddr(parameters.multiaddr);
  } catch (error) {
    throw new InvalidLinkParameterError(`not a multiaddr: ${JSON.stringify(parameters.multiaddr)}`, error);
  }

  let stream: Stream;
  let remotePeer: string;
  try {
    const signal = AbortSignal.timeout(timeoutMs);
    const connection = await host.libp2p.dial(address, { signal });
    remotePeer = connection.remotePeer.toString();
    stream = await connection.newStream(PIPELINE_PROTOCOL, { signal });
  } catch (error) {
    const name = (error as Error).name;
    if (name === "TimeoutError" || name === "AbortError") throw new LinkTimeoutError(`dialing ${address}`, timeoutMs);
    if (name === "UnsupportedProtocolError") {
      throw new HandshakeError(`The peer at ${address} does not serve pipeline links.`, { cause: error });
    }
    throw new PeerGoneError(`dialing ${address} failed`, error);
  }

  // Nothing but the listener's hello is read until it is accepted.
  const channel = new FrameChannel(stream, 0, { preHello: true });
  try {
    await channel.send(encodeFrame(hello), deadline, timeoutMs, "sending hello");
    const reply = await channel.next(deadline, timeoutMs, "waiting for the listener's hello");
    if (reply.kind === "abort") throw refusalError(reply.reason);
    if (reply.kind !== "hello")
      throw new HandshakeError(`The next stage answered with a ${reply.kind} frame, not hello.`);
    const mismatch = helloMismatch(hello, reply, rounds);
    if (mismatch !== undefined) {
      await channel.refuse(mismatch.retry ? RETRY_PREFIX + mismatch.reason : mismatch.reason);
      throw new HandshakeError("The next stage is not the one this stage feeds.", {
        details: mismatch.reason,
        retryable: mismatch.retry,
      });
    }
    if (auth) {
      try {
        await authenticate(reply, remotePeer, hello, auth);
      } catch (error) {
        await channel.refuse(refusalReason(error as Error));
        throw error;
      }
    }
    channel.admit(parameters.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES, parameters.bufferBytes);
    return new PipelineLink(channel, hello, reply, stream.id, remotePeer);
  } catch (error) {
    channel.destroy(error as Error);
    throw error;
  }
}

/**
 * Stage i + 1 waits for stage i to dial it. Resolves with the first dialer whose hello agrees with
 * `hello` (same model, spec digest, lane and round; its shard is `hello.shard - 1`), after sending
 * it this stage's hello. Dialers that disagree are answered with `abort` and closed (and reported
 * to `onRefused`); waiting goes on until `timeoutMs`. A dialer that arrives before `acceptLink` is
 * called waits for it, up to its handshake timeout.
 *
 * @example
 * const link = await acceptLink(host, { hello: { modelId: 1n, specDigest, shard: 1, lane: 0, round: 3 }, timeoutMs: 120_000 })
 * const x = await link.receiveTensor({ type: "activation", round: 3, step: 0, micro: 0, shape: [4, 64, 128] })
 */
export async function acceptLink(host: ShardHost, parameters: AcceptLinkParameters): Promise<AcceptLinkReturnType> {
  const acceptor = acceptorOf(host.libp2p);
  const hello = await signHello(host.peerId, parameters.hello, parameters.auth);
  const timeoutMs = timeoutOf(parameters.timeoutMs, DEFAULT_TIMEOUT_MS);
  return acceptor.wait({
    hello,
    timeoutMs,
    maxTensorBytes: parameters.maxTensorBytes ?? DEFAULT_MAX_TENSOR_BYTES,
    bufferBytes: parameters.bufferBytes,
    rounds: roundsOf(parameters.matchRound, parameters.roundWindow),
    auth: parameters.auth,
    onRefused: parameters.onRefused,
  });
}

/**
 * Registers the pipeline protocol on a libp2p node (called by `createHost`): inbound streams wait
 * for a matching `acceptLink`, and are turned away at `stop`. At most `MAX_PIPELINE_STREAMS`
 * pipeline streams per connection each way, `MAX_PENDING_HELLOS` inbound streams waiting for
 * their hello and `MAX_PARKED_DIALERS` dialers waiting for an `acceptLink`, each for at most the
 * handshake timeout; before its hello is accepted a stream holds at most a hello.
 */
export async function servePipelineLinks(
  libp2p: Libp2pNode,
  options: { handshakeTimeoutMs?: number | undefined } = {},
): Promise<{ stop(): void }> {
  const acceptor = new LinkAcceptor(libp2p, timeoutOf(options.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS));
  acceptors.set(libp2p, acceptor);
  await libp2p.handle(
    PIPELINE_PROTOCOL,
    (stream, connection) => acceptor.inbound(stream, connection.remotePeer.toString()),
    { maxInboundStreams: MAX_PIPELINE_STREAMS, maxOutboundStreams: MAX_PIPELINE_STREAMS },
  );
  return acceptor;
}

/**
 * One end of a pipeline link: frames go out and come in, in order, over one libp2p stream.
 * Stage i sends activations and receives gradients; stage i + 1 the reverse.
 *
 * A frame that is malformed, oversized, or not the one expected, and an `abort` from the peer,
 * end the link (the peer is told why); so does a send timeout. A receive timeout does not: nothing
 * was consumed, and the same tensor can be awaited again.
 */
export class PipelineLink {
  /** This end's hello, as sent. */
  readonly local: HelloHeader;
  /** The peer's hello, as received. */
  readonly remote: HelloHeader;
  /** The peer id at the other end. */
  readonly remotePeer: string;
  readonly id: string;
  private readonly channel: FrameChannel;

  /** @internal Use `dialLink` or `acceptLink`. */
  constructor(channel: FrameChannel, local: HelloHeader, remote: HelloHeader, id: string, remotePeer: string) {
    this.channel = channel;
    this.local = local;
    this.remote = remote;
    this.id = id;
    this.remotePeer = remotePeer;
  }

  /** Bytes and frames through this end (hello frames included; bytes are frame bytes, length prefixes included). */
  get stats(): LinkStats {
    return { ...this.channel.stats };
  }

  /**
   * Sends one tensor, its values encoded as `message.dtype` (default `float32`; see codec.ts),
   * resolving once the stream has taken all of it (backpressure: a peer that does not read makes
   * this wait, then time out). `data` is copied, so it may be reused afterwards. The size limit
   * (`maxTensorBytes`) is on the encoded payload.
   */
  async sendTensor(message: TensorMessage, options: LinkWaitOptions = {}): Promise<void> {
    const timeoutMs = timeoutOf(options.timeoutMs, DEFAULT_TIMEOUT_MS);
    const frame = encodeTensorFrame(message, this.channel.maxTensorBytes);
    const what = `sending ${describe({ kind: "tensor", ...message, dtype: message.dtype ?? "float32" })}`;
    await this.channel.send(frame, Date.now() + timeoutMs, timeoutMs, what);
  }

  /**
   * Sends one tensor whose payload is already encoded as `message.dtype` (`encodeTensor`), like
   * `sendTensor`. The payload is checked as the receiver will check it (length
   * `payloadBytes(dtype, shape)`, a valid encoding: `InvalidFrameError` otherwise) and copied, so it
   * may be reused afterwards.
   */
  async sendPayload(message: TensorPayloadMessage, options: LinkWaitOptions = {}): Promise<void> {
    const timeoutMs = timeoutOf(options.timeoutMs, DEFAULT_TIMEOUT_MS);
    const frame = encodePayloadFrame(message, this.channel.maxTensorBytes);
    const what = `sending ${describe({ kind: "tensor", ...message })}`;
    await this.channel.send(frame, Date.now() + timeoutMs, timeoutMs, what);
  }

  /**
   * Reads the next frame, which must be exactly the tensor expected (type, round, step, micro,
   * shape and dtype, `float32` by default), and returns its values, decoded.
   */
  async receiveTensor(expected: ExpectedTensor, options: LinkWaitOptions = {}): Promise<Float32Array> {
    const dtype = expected.dtype ?? "float32";
    const payload = await this.receivePayload({ ...expected, dtype }, options);
    // The decoder has checked the payload; a float32 one is a fresh buffer at offset 0, used as is.
    if (dtype === "float32" && LITTLE_ENDIAN && payload.byteOffset % 4 === 0) {
      return new Float32Array(payload.buffer, payload.byteOffset, payload.byteLength / 4);
    }
    return decodeTensor(dtype, expected.shape, payload);
  }

  /**
   * Reads the next frame, which must be exactly the tensor expected (type, round, step, micro, shape
   * and dtype: `UnexpectedTensorError` otherwise, and the link ends), and returns its payload, still
   * encoded (`decodeTensor` decodes it). The payload has been checked to be a valid encoding of
   * that shape (`MalformedFrameError` otherwise), and belongs to the caller.
   */
  async receivePayload(expected: ExpectedPayload, options: LinkWaitOptions = {}): Promise<Uint8Array> {
    const wanted = describe({ kind: "tensor", ...expected });
    const frame = await this.nextFrame(wanted, options);
    if (
      frame.kind !== "tensor" ||
      frame.type !== expected.type ||
      frame.round !== expected.round ||
      frame.step !== expected.step ||
      frame.micro !== expected.micro ||
      frame.shape.length !== expected.shape.length ||
      frame.shape.some((d, i) => d !== expected.shape[i]) ||
      frame.dtype !== expected.dtype
    ) {
      throw await this.channel.violation(new UnexpectedTensorError(wanted, describe(frame)));
    }
    return frame.payload;
  }

  /** Sends the optional end-of-round marker. */
  async sendEnd(round: number, options: LinkWaitOptions = {}): Promise<void> {
    const timeoutMs = timeoutOf(options.timeoutMs, DEFAULT_TIMEOUT_MS);
    await this.channel.send(encodeFrame({ kind: "end", round }), Date.now() + timeoutMs, timeoutMs, "sending end");
  }

  /** Reads the next frame, which must be the end-of-round marker for `round`. */
  async receiveEnd(round: number, options: LinkWaitOptions = {}): Promise<void> {
    const wanted = describe({ kind: "end", round });
    const frame = await this.nextFrame(wanted, options);
    if (frame.kind !== "end" || frame.round !== round) {
      throw await this.channel.violation(new UnexpectedTensorError(wanted, describe(frame)));
    }
  }

  /**
   * Gives up the round: tells the peer why (its next receive throws `PeerAbortedError`) and closes
   * the link. `reason` is cut to 256 characters.
   */
  async abort(reason: string): Promise<void> {
    await this.channel.refuse(reason, new LinkClosedError(`aborted here: ${reason}`));
  }

  /** Closes the link after what was sent is flushed; the peer's next receive throws `PeerGoneError`. */
  async close(): Promise<void> {
    await this.channel.close();
  }

  private async nextFrame(wanted: string, options: LinkWaitOptions): Promise<Frame> {
    const timeoutMs = timeoutOf(options.timeoutMs, DEFAULT_TIMEOUT_MS);
    const frame = await this.channel.next(Date.now() + timeoutMs, timeoutMs, `waiting for ${wanted}`);
    if (frame.kind === "abort") throw this.channel.peerAborted(frame.reason);
    return frame;
  }
}

/**
 * @internal A libp2p stream seen as a sequence of frames. Incoming bytes are decoded as they arrive; frames
 * wait in the decoder until read, and the stream is paused (Yamux stops granting send window, so
 * the peer's `sendTensor` waits) while more than one full frame is held. A terminal failure (the
 * peer gone, a bad frame, a local close) is thrown to readers once the frames before it are read.
 *
 * A channel opened with `preHello` takes no tensor and holds at most one frame (the peer's hello)
 * plus `PRE_HELLO_READ_BUFFER_BYTES` in the stream (more resets it), until `admit` lifts that.
 */
export class FrameChannel {
  readonly stats: LinkStats = { bytesSent: 0, bytesReceived: 0, framesSent: 0, framesReceived: 0 };
  private readonly decoder: FrameDecoder;
  private failure: Error | undefined;
  private readonly wakers = new Set<() => void>();
  private sending: Promise<unknown> = Promise.resolve();
  /** Until `admit`: no tensor, and at most one frame held. */
  private preHello: boolean;

  constructor(
    readonly stream: Stream,
    maxTensorBytes: number | undefined,
    options: { preHello?: boolean | undefined } = {},
  ) {
    this.preHello = options.preHello === true;
    this.decoder = new FrameDecoder({ maxTensorBytes: this.preHello ? 0 : maxTensorBytes });
    stream.maxReadBufferLength = this.preHello
      ? PRE_HELLO_READ_BUFFER_BYTES
      : Math.max(stream.maxReadBufferLength, STREAM_READ_BUFFER_BYTES);
    stream.addEventListener("message", (event) => this.onData(event.data));
    stream.addEventListener("remoteCloseWrite", () => this.fail(new PeerGoneError("the peer closed the link")));
    stream.addEventListener("close", (event) => {
      const details = event.error ? `the link's stream closed: ${event.error.message}` : "the link's stream closed";
      this.fail(new PeerGoneError(details, event.error));
    });
    if (stream.status !== "open") this.fail(new PeerGoneError(`the link's stream is ${stream.status}`));
  }

  /** The peer's hello is accepted: its tensors (up to `maxTensorBytes`) may come, buffered up to `bufferBytes`. */
  admit(maxTensorBytes: number, bufferBytes: number | undefined): void {
    this.preHello = false;
    this.decoder.maxTensorBytes = maxTensorBytes;
    this.stream.maxReadBufferLength = Math.max(this.stream.maxReadBufferLength, STREAM_READ_BUFFER_BYTES);
    if (bufferBytes !== undefined) this.bufferBytes = bufferBytes;
    this.resumeIfDrained();
  }

  get maxTensorBytes(): number {
    return this.decoder.maxTensorBytes;
  }

  set maxTensorBytes(value: number) {
    this.decoder.maxTensorBytes = value;
  }

  private buffer: number | undefined;

  /** Bytes held before the stream is paused: at least one full frame. */
  get bufferBytes(): number {
    return Math.max(this.buffer ?? 0, this.decoder.maxTensorBytes + 2 * MAX_HEADER_BYTES);
  }

  set bufferBytes(value: number) {
    this.buffer = value;
    // While paused, up to a Yamux window (16 MiB) more can still arrive.
    this.stream.maxReadBufferLength = Math.max(
      this.stream.maxReadBufferLength,
      this.bufferBytes + STREAM_READ_BUFFER_BYTES,
    );
  }

  /** Held beyond `bufferBytes`, the stream is paused. */
  private get highWaterBytes(): number {
    return this.bufferBytes;
  }

  /** Whether to stop reading: past the high-water mark, or, before the hello is accepted, once a frame is in. */
  private get full(): boolean {
    return this.preHello ? this.decoder.frameCount > 0 : this.decoder.pendingBytes > this.highWaterBytes;
  }

  /** The next frame, or the terminal failure once the frames before it are read, or a `LinkTimeoutError`. */
  async next(deadline: number, timeoutMs: number, what: string): Promise<Frame> {
    for (;;) {
      const frame = this.decoder.shift();
      if (frame !== undefined) {
        this.stats.framesReceived++;
        this.resumeIfDrained();
        return frame;
      }
      if (this.failure !== undefined) throw this.failure;
      await this.wake(deadline, timeoutMs, what);
    }
  }

  /**
   * Hands one frame to the stream and waits until the stream's write buffer is empty again, so
   * that at most one frame is buffered per link. Sends are queued, never interleaved.
   */
  send(frame: Uint8Array, deadline: number, timeoutMs: number, what: string): Promise<void> {
    const sent = this.sending.then(() => this.sendNow(frame, deadline, timeoutMs, what));
    this.sending = sent.catch(() => {});
    return sent;
  }

  private async sendNow(frame: Uint8Array, deadline: number, timeoutMs: number, what: string): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    const stream = this.stream;
    if (stream.writeStatus !== "writable") throw new PeerGoneError(`the link's stream is ${stream.status}`);
    try {
      stream.send(frame);
    } catch (error) {
      throw new PeerGoneError("the stream did not take the frame", error);
    }
    this.stats.bytesSent += frame.byteLength;
    this.stats.framesSent++;
    if (stream.writeBufferLength === 0) return;
    await new Promise<void>((resolve, reject) => {
      const done = (error?: Error) => {
        clearTimeout(timer);
        stream.removeEventListener("idle", onIdle);
        stream.removeEventListener("close", onClose);
        if (error) reject(error);
        else resolve();
      };
      const onIdle = () =>
        done(stream.status === "open" ? undefined : new PeerGoneError(`the link's stream is ${stream.status}`));
      const onClose = () => done(new PeerGoneError("the link's stream closed before the frame was sent"));
      const timer = setTimeout(() => {
        const error = new LinkTimeoutError(what, timeoutMs);
        // The unsent rest of the frame would corrupt the next one: the link is over.
        this.destroy(error);
        done(error);
      }, remaining(deadline));
      stream.addEventListener("idle", onIdle);
      stream.addEventListener("close", onClose);
    });
  }

  /** Sends `abort` (best effort), closes the stream, and fails the channel with `failure`. */
  async refuse(reason: string, failure?: Error): Promise<void> {
    const frame = encodeFrame({ kind: "abort", reason: reason.slice(0, MAX_REASON_LENGTH) });
    this.fail(failure ?? new LinkClosedError(`refused: ${reason}`));
    try {
      if (this.stream.writeStatus === "writable") {
        this.stream.send(frame);
        this.stats.bytesSent += frame.byteLength;
        this.stats.framesSent++;
      }
      await this.stream.close({ signal: AbortSignal.timeout(DEFAULT_HANDSHAKE_TIMEOUT_MS) });
    } catch (error) {
      this.stream.abort(error as Error);
    }
  }

  /** The peer broke the protocol: tell it why, end the link, and return the error to throw. */
  async violation(error: NodeError): Promise<NodeError> {
    await this.refuse(error.details ?? error.shortMessage, error);
    return error;
  }

  /** Flushes, closes the writable end, and fails local reads with `LinkClosedError`. */
  async close(): Promise<void> {
    await this.sending;
    this.fail(new LinkClosedError("closed here"));
    try {
      await this.stream.close({ signal: AbortSignal.timeout(DEFAULT_HANDSHAKE_TIMEOUT_MS) });
    } catch (error) {
      this.stream.abort(error as Error);
    }
  }

  /**
   * The peer sent `abort`: from now on every read and send throws `PeerAbortedError` (rather than
   * the `PeerGoneError` of the close that follows it), and this end closes too.
   */
  peerAborted(reason: string): PeerAbortedError {
    const error = new PeerAbortedError(reason);
    if (!(this.failure instanceof LinkClosedError)) this.failure = error;
    this.wakeAll();
    this.stream.close({ signal: AbortSignal.timeout(DEFAULT_HANDSHAKE_TIMEOUT_MS) }).catch((e) => this.stream.abort(e));
    return error;
  }

  /** Ends the link at once (stream reset), failing it with `error`. */
  destroy(error: Error): void {
    this.fail(error);
    this.stream.abort(error);
  }

  private onData(data: Uint8Array | Iterable<Uint8Array>) {
    const chunks = data instanceof Uint8Array ? [data] : [...data];
    for (const chunk of chunks) this.stats.bytesReceived += chunk.byteLength;
    if (this.failure !== undefined) {
      // Nobody will read it. A peer not yet accepted gets no more window either: reset.
      if (this.preHello) this.stream.abort(this.failure);
      return;
    }
    try {
      for (const chunk of chunks) this.decoder.push(chunk);
    } catch (error) {
      void this.violation(error as NodeError);
    }
    if (this.full && this.stream.readStatus === "readable") this.stream.pause();
    this.wakeAll();
  }

  private resumeIfDrained() {
    if (this.preHello) return; // until `admit`
    if (this.stream.readStatus === "paused" && !this.full) this.stream.resume();
  }

  /** Called once when the channel fails (the stream closed, a bad frame, a local close). */
  onFailure: (() => void) | undefined;

  private fail(error: Error) {
    if (this.failure !== undefined) return;
    this.failure = error;
    this.wakeAll();
    const onFailure = this.onFailure;
    this.onFailure = undefined;
    onFailure?.();
  }

  private wake(deadline: number, timeoutMs: number, what: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.wakers.delete(wake);
        reject(new LinkTimeoutError(what, timeoutMs));
      }, remaining(deadline));
      this.wakers.add(wake);
    });
  }

  private wakeAll() {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const wake of wakers) wake();
  }
}

type Rounds = { match: boolean; window: number };

type Waiter = {
  hello: HelloHeader;
  maxTensorBytes: number;
  bufferBytes: number | undefined;
  rounds: Rounds;
  auth: LinkAuth | undefined;
  onRefused: ((error: HandshakeError) => void) | undefined;
  resolve(link: PipelineLink): void;
  reject(error: Error): void;
  settled: boolean;
};

type Parked = { channel: FrameChannel; hello: HelloHeader; remotePeer: string; timer: NodeJS.Timeout };

const acceptors = new WeakMap<Libp2pNode, LinkAcceptor>();

function acceptorOf(libp2p: Libp2pNode): LinkAcceptor {
  const acceptor = acceptors.get(libp2p);
  if (acceptor === undefined) throw new LinkClosedError("this host does not serve pipeline links (use createHost)");
  return acceptor;
}

/**
 * Matches inbound dialers to `acceptLink` calls, in either order. Bounded: `MAX_PENDING_HELLOS`
 * streams waiting for a hello, `MAX_PARKED_DIALERS` dialers waiting for an `acceptLink`, each for
 * at most the handshake timeout; a dialer is admitted (its tensors read) only once matched and,
 * where the waiter asks for it, authenticated.
 */
class LinkAcceptor {
  private readonly waiters = new Set<Waiter>();
  private readonly parked = new Set<Parked>();
  private pendingHellos = 0;
  private stopped = false;

  constructor(
    private readonly libp2p: Libp2pNode,
    private readonly handshakeTimeoutMs: number,
  ) {}

  wait(w: Omit<Waiter, "resolve" | "reject" | "settled"> & { timeoutMs: number }): Promise<PipelineLink> {
    if (this.stopped) return Promise.reject(new LinkClosedError("the host is stopped"));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => {
          this.waiters.delete(waiter);
          waiter.settled = true;
          reject(new LinkTimeoutError(`waiting for shard ${w.hello.shard - 1} to dial`, w.timeoutMs));
        },
        remaining(Date.now() + w.timeoutMs),
      );
      const waiter: Waiter = {
        hello: w.hello,
        maxTensorBytes: w.maxTensorBytes,
        bufferBytes: w.bufferBytes,
        rounds: w.rounds,
        auth: w.auth,
        onRefused: w.onRefused,
        settled: false,
        resolve: (link) => {
          clearTimeout(timer);
          waiter.settled = true;
          resolve(link);
        },
        reject: (error) => {
          clearTimeout(timer);
          waiter.settled = true;
          reject(error);
        },
      };
      this.waiters.add(waiter);
      for (const parked of [...this.parked]) {
        if (waiter.settled) break;
        this.unpark(parked);
        void this.match(parked.channel, parked.hello, parked.remotePeer);
      }
    });
  }

  /** A dialer opened a stream: read its hello, then match it (or park it until `acceptLink`). */
  async inbound(stream: Stream, remotePeer: string): Promise<void> {
    if (this.stopped || this.pendingHellos >= MAX_PENDING_HELLOS) {
      stream.abort(new LinkClosedError("too many pipeline streams waiting for their hello"));
      return;
    }
    this.pendingHellos++;
    const channel = new FrameChannel(stream, 0, { preHello: true });
    let hello: Frame;
    try {
      const timeoutMs = this.handshakeTimeoutMs;
      hello = await channel.next(Date.now() + timeoutMs, timeoutMs, "waiting for the dialer's hello");
    } catch (error) {
      channel.destroy(error as Error);
      return;
    } finally {
      this.pendingHellos--;
    }
    if (hello.kind !== "hello") return channel.refuse(`expected hello, received ${describe(hello)}`);
    if (this.stopped) return channel.refuse(NOT_EXPECTING_REASON);
    if (this.waiters.size > 0) return this.match(channel, hello, remotePeer);
    if (this.parked.size >= MAX_PARKED_DIALERS) return channel.refuse(NOT_EXPECTING_REASON);
    const parked: Parked = {
      channel,
      hello,
      remotePeer,
      timer: setTimeout(() => {
        this.unpark(parked);
        void channel.refuse(NOT_EXPECTING_REASON);
      }, this.handshakeTimeoutMs),
    };
    this.parked.add(parked);
    channel.onFailure = () => this.unpark(parked);
  }

  private unpark(parked: Parked) {
    clearTimeout(parked.timer);
    parked.channel.onFailure = undefined;
    this.parked.delete(parked);
  }

  private async match(channel: FrameChannel, dialer: HelloHeader, remotePeer: string): Promise<void> {
    let refusal: { reason: string; retry: boolean; cause?: Error } | undefined;
    for (const waiter of [...this.waiters]) {
      const mismatch = helloMismatch(dialer, waiter.hello, waiter.rounds);
      if (mismatch !== undefined) {
        refusal ??= mismatch;
        continue;
      }
      if (waiter.auth) {
        try {
          await authenticate(dialer, remotePeer, waiter.hello, waiter.auth);
        } catch (error) {
          refusal = { reason: refusalReason(error as Error), retry: isRetryable(error), cause: error as Error };
          break;
        }
        if (!this.waiters.has(waiter)) {
          // Taken (or given up) while this dialer was checked.
          refusal = { reason: NOT_EXPECTING_REASON, retry: true };
          break;
        }
      }
      this.waiters.delete(waiter);
      channel.admit(waiter.maxTensorBytes, waiter.bufferBytes);
      try {
        const timeoutMs = this.handshakeTimeoutMs;
        await channel.send(encodeFrame(waiter.hello), Date.now() + timeoutMs, timeoutMs, "sending hello");
      } catch (error) {
        channel.destroy(error as Error);
        if (!waiter.settled) this.waiters.add(waiter); // that dialer is gone; wait for another
        return;
      }
      const link = new PipelineLink(channel, waiter.hello, dialer, channel.stream.id, remotePeer);
      if (waiter.settled) void link.close();
      else waiter.resolve(link);
      return;
    }
    refusal ??= { reason: NOT_EXPECTING_REASON, retry: true };
    const reason =
      refusal.retry && refusal.reason !== NOT_EXPECTING_REASON ? RETRY_PREFIX + refusal.reason : refusal.reason;
    const error = new HandshakeError("Refused a dialer that is not the previous stage.", {
      details: `${remotePeer}: ${refusal.reason}`,
      retryable: refusal.retry,
      cause: refusal.cause,
    });
    for (const waiter of this.waiters) waiter.onRefused?.(error);
    await channel.refuse(reason);
  }

  stop() {
    this.stopped = true;
    acceptors.delete(this.libp2p);
    for (const waiter of this.waiters) waiter.reject(new LinkClosedError("the host stopped"));
    this.waiters.clear();
    for (const parked of [...this.parked]) {
      this.unpark(parked);
      parked.channel.destroy(new LinkClosedError("the host stopped"));
    }
  }
}

/**
 * The peer id an address pins (its last `/p2p/<peerId>`), or undefined if it names none. Throws
 * `InvalidLinkParameterError` for text that is not a multiaddr.
 *
 * @example
 * pinnedPeerId("/ip4/10.0.0.2/tcp/4101/p2p/12D3KooW…") // "12D3KooW…"
 */
export function pinnedPeerId(address: string | undefined): string | undefined {
  if (address === undefined) return undefined;
  let components;
  try {
    components = parseMultiaddr(address).getComponents();
  } catch (error) {
    throw new InvalidLinkParameterError(`not a multiaddr: ${JSON.stringify(address)}`, error);
  }
  return components.findLast((c) => c.name === "p2p")?.value;
}

function roundsOf(matchRound: boolean | undefined, roundWindow: number | undefined): Rounds {
  const window = roundWindow ?? Number.POSITIVE_INFINITY;
  if (!(window >= 0)) throw new InvalidLinkParameterError(`roundWindow must be at least 0, not ${roundWindow}`);
  return { match: matchRound ?? true, window };
}

/**
 * Why a dialer (shard i) and a listener cannot be linked, or undefined if they can. Rounds apart
 * are a refusal for now (`retry`): one of the two may catch up.
 */
function helloMismatch(
  dialer: HelloHeader,
  listener: HelloHeader,
  rounds: Rounds,
): { reason: string; retry: boolean } | undefined {
  const no = (reason: string) => ({ reason, retry: false });
  if (dialer.modelId !== listener.modelId) return no(`model ${dialer.modelId} ≠ model ${listener.modelId}`);
  if (dialer.specDigest !== listener.specDigest) return no(`spec ${dialer.specDigest} ≠ spec ${listener.specDigest}`);
  if (dialer.lane !== listener.lane) return no(`lane ${dialer.lane} ≠ lane ${listener.lane}`);
  if (listener.shard !== dialer.shard + 1) {
    return no(`shard ${dialer.shard} feeds shard ${dialer.shard + 1}, not shard ${listener.shard}`);
  }
  const gap = Math.abs(dialer.round - listener.round);
  if (rounds.match ? gap !== 0 : gap > rounds.window) {
    return {
      reason: `round ${dialer.round} (shard ${dialer.shard}) ≠ round ${listener.round} (shard ${listener.shard})`,
      retry: true,
    };
  }
  return undefined;
}

function helloHeader(hello: LinkHello): HelloHeader {
  const parsed = zHelloHeader.safeParse({
    kind: "hello",
    protocol: PROTOCOL_VERSION,
    ...hello,
    modelId: typeof hello.modelId === "bigint" ? hello.modelId.toString() : hello.modelId,
  });
  if (!parsed.success) throw new InvalidLinkParameterError(`invalid hello: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

/** The statement a hello's signature covers: its facts and the sender's own peer id. */
function helloStatement(hello: HelloHeader, auth: NonNullable<HelloHeader["auth"]>) {
  return {
    peer: auth.peer,
    model: hello.modelId,
    spec: hello.specDigest,
    lane: hello.lane,
    shard: hello.shard,
    round: hello.round,
    owner: auth.owner.toLowerCase(),
    time: auth.time,
  };
}

/**
 * The hello frame's header for `hello`, signed with `auth.signer` and bound to `peerId` (the
 * sender's own) when `auth` is given. `dialLink` and `acceptLink` sign their own; exported for
 * tests and tools that speak the protocol themselves.
 */
export async function signHello(
  peerId: string,
  hello: LinkHello,
  auth: Pick<LinkAuth, "signer" | "owner"> | undefined,
): Promise<HelloHeader> {
  const header = helloHeader(hello);
  if (!auth) return header;
  const unsigned = {
    peer: peerId,
    nodeKey: auth.signer.address,
    owner: auth.owner,
    time: Date.now(),
    signature: "0x",
  };
  const signature = await signStatement(auth.signer, HELLO_DOMAIN, helloStatement(header, unsigned));
  return helloHeader({ ...hello, auth: { ...unsigned, signature } } as LinkHello);
}

/**
 * Checks the peer's hello under `auth`, cheapest first: the pinned peer id, the signature's binding
 * to the connection's remote peer, its time, the signature itself, then the chain (cached). Throws
 * `UnauthorizedPeerError` (or `AuthorityUnavailableError`, retryable).
 */
async function authenticate(peer: HelloHeader, remotePeer: string, local: HelloHeader, auth: LinkAuth): Promise<void> {
  if (auth.peer !== undefined && remotePeer !== auth.peer)
    throw new UnauthorizedPeerError("pinned", `peer ${remotePeer} is not the pinned peer ${auth.peer}`);
  const a = peer.auth;
  if (a === undefined) throw new UnauthorizedPeerError("unauthenticated", `peer ${remotePeer} sent an unsigned hello`);
  if (a.peer !== remotePeer)
    throw new UnauthorizedPeerError(
      "peer-id",
      `the hello was signed for peer ${a.peer} but came from peer ${remotePeer} (a replayed hello)`,
    );
  const skew = Math.abs(Date.now() - a.time);
  const maxSkewMs = auth.maxSkewMs ?? DEFAULT_MAX_SKEW_MS;
  if (skew > maxSkewMs)
    throw new UnauthorizedPeerError("stale", `the hello was signed ${Math.round(skew / 1000)} s away from this clock`);
  await verifyStatement(HELLO_DOMAIN, helloStatement(peer, a), a.signature, a.nodeKey);
  await auth.authority.check(a.nodeKey as Address, a.owner as Address, { round: BigInt(local.round) });
}

/** The `abort` reason that tells a peer why it was not authenticated (retryable where the chain was unreadable). */
function refusalReason(error: Error): string {
  if (error instanceof UnauthorizedPeerError) return `${UNAUTHORIZED_PREFIX}${error.reason}: ${error.details ?? ""}`;
  if (error instanceof NodeError && error.retryable) return RETRY_PREFIX + (error.details ?? error.shortMessage);
  return `${UNAUTHORIZED_PREFIX}unauthenticated: ${error.message}`;
}

function isRetryable(error: unknown): boolean {
  return error instanceof NodeError && error.retryable;
}

const UNAUTHORIZED_REASONS = [
  "malformed",
  "signature",
  "peer-id",
  "stale",
  "pinned",
  "not-authorized",
  "unstaked",
  "unauthenticated",
] as const satisfies readonly UnauthorizedReason[];

/** The error a dialer throws for a listener's `abort` in reply to its hello. */
function refusalError(reason: string): Error {
  if (reason.startsWith(UNAUTHORIZED_PREFIX)) {
    const rest = reason.slice(UNAUTHORIZED_PREFIX.length);
    const colon = rest.indexOf(":");
    const named = colon < 0 ? "" : rest.slice(0, colon);
    const code = (UNAUTHORIZED_REASONS as readonly string[]).includes(named)
      ? (named as UnauthorizedReason)
      : "unauthenticated";
    return new UnauthorizedPeerError(code, `the next stage refused this node: ${rest.slice(colon + 1).trim()}`);
  }
  return new HandshakeError("The next stage refused the link.", {
    details: reason,
    retryable: reason === NOT_EXPECTING_REASON || reason.startsWith(RETRY_PREFIX),
  });
}

/** A frame in words, for error details: "activation round 3 step 0 micro 1 shape [4, 64] int8". */
function describe(frame: Frame | ({ kind: "tensor" } & ExpectedPayload) | { kind: "end"; round: number }): string {
  switch (frame.kind) {
    case "tensor":
      return `${frame.type} round ${frame.round} step ${frame.step} micro ${frame.micro} shape [${frame.shape.join(", ")}] ${frame.dtype}`;
    case "end":
      return `end of round ${frame.round}`;
    default:
      return `${frame.kind} frame`;
  }
}

function timeoutOf(value: number | undefined, fallback: number): number {
  const ms = value ?? fallback;
  if (!(ms > 0) || !Number.isFinite(ms)) {
    throw new InvalidLinkParameterError(`a timeout must be a positive, finite number of ms, not ${ms}`);
  }
  return ms;
}

function remaining(deadline: number): number {
  return Math.min(Math.max(0, deadline - Date.now()), MAX_TIMER_MS);
}
