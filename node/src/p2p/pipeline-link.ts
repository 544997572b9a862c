import { decodeTensor } from "./codec.js";
import {
  InvalidFrameError,
  LinkClosedError,
  MalformedFrameError,
  PeerAbortedError,
  PeerGoneError,
  UnexpectedTensorError,
} from "./errors.js";
import type { FrameChannel } from "./channel.js";
import {
  encodeFrame,
  encodePayloadFrame,
  encodeTensorFrame,
  type Frame,
  type HelloHeader,
  type TensorMessage,
  type TensorPayloadMessage,
} from "./frames.js";
import {
  DEFAULT_TIMEOUT_MS,
  type ExpectedPayload,
  type ExpectedTensor,
  LITTLE_ENDIAN,
  type LinkStats,
  type LinkWaitOptions,
  describe,
  timeoutOf,
} from "./link-protocol.js";

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
