import { NodeError } from "../errors.js";
import { LinkClosedError, LinkTimeoutError, PeerAbortedError, PeerGoneError } from "./errors.js";
import { FrameDecoder } from "./frame-decoder.js";
import { MAX_HEADER_BYTES, MAX_REASON_LENGTH, encodeFrame, type Frame } from "./frames.js";
import type { Stream } from "./libp2p.js";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  type LinkStats,
  PRE_HELLO_READ_BUFFER_BYTES,
  STREAM_READ_BUFFER_BYTES,
  remaining,
} from "./link-protocol.js";

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
