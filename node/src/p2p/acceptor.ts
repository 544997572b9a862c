import { FrameChannel } from "./channel.js";
import { HandshakeError, LinkClosedError, LinkTimeoutError } from "./errors.js";
import { encodeFrame, type Frame, type HelloHeader } from "./frames.js";
import { type Rounds, authenticate, helloMismatch, isRetryable, refusalReason } from "./hello.js";
import type { Libp2pNode, Stream } from "./libp2p.js";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  type LinkAuth,
  MAX_PARKED_DIALERS,
  MAX_PENDING_HELLOS,
  MAX_PIPELINE_STREAMS,
  NOT_EXPECTING_REASON,
  PIPELINE_PROTOCOL,
  RETRY_PREFIX,
  describe,
  remaining,
  timeoutOf,
} from "./link-protocol.js";
import { PipelineLink } from "./pipeline-link.js";
/** An `acceptLink` call waiting for its dialer. */
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

/** A dialer whose hello was read, waiting for a matching `acceptLink`. */
type Parked = { channel: FrameChannel; hello: HelloHeader; remotePeer: string; timer: NodeJS.Timeout };

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
): Promise<LinkAcceptor> {
  const acceptor = new LinkAcceptor(libp2p, timeoutOf(options.handshakeTimeoutMs, DEFAULT_HANDSHAKE_TIMEOUT_MS));
  await libp2p.handle(
    PIPELINE_PROTOCOL,
    (stream, connection) => acceptor.inbound(stream, connection.remotePeer.toString()),
    { maxInboundStreams: MAX_PIPELINE_STREAMS, maxOutboundStreams: MAX_PIPELINE_STREAMS },
  );
  return acceptor;
}

/**
 * Matches inbound dialers to `acceptLink` calls, in either order. Bounded: `MAX_PENDING_HELLOS`
 * streams waiting for a hello, `MAX_PARKED_DIALERS` dialers waiting for an `acceptLink`, each for
 * at most the handshake timeout; a dialer is admitted (its tensors read) only once matched and,
 * where the waiter asks for it, authenticated.
 */
export class LinkAcceptor {
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
    for (const waiter of this.waiters) waiter.reject(new LinkClosedError("the host stopped"));
    this.waiters.clear();
    for (const parked of [...this.parked]) {
      this.unpark(parked);
      parked.channel.destroy(new LinkClosedError("the host stopped"));
    }
  }
}
