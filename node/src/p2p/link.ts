import { multiaddr as parseMultiaddr, type Multiaddr } from "@multiformats/multiaddr";

import { FrameChannel } from "./channel.js";
import {
  type AuthorityUnavailableError,
  HandshakeError,
  type InvalidFrameError,
  InvalidLinkParameterError,
  type LinkClosedError,
  LinkTimeoutError,
  type MalformedFrameError,
  type OversizedFrameError,
  type PeerAbortedError,
  PeerGoneError,
  type UnauthorizedPeerError,
  type UnexpectedTensorError,
} from "./errors.js";
import { DEFAULT_MAX_TENSOR_BYTES, encodeFrame } from "./frames.js";
import { authenticate, helloMismatch, refusalError, refusalReason, roundsOf, signHello } from "./hello.js";
import type { ShardHost } from "./host.js";
import type { Stream } from "./libp2p.js";
import {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_TIMEOUT_MS,
  type LinkAuth,
  type LinkHello,
  PIPELINE_PROTOCOL,
  RETRY_PREFIX,
  timeoutOf,
} from "./link-protocol.js";
import { PipelineLink } from "./pipeline-link.js";

/*
 * Pipeline links between neighbouring stages: `dialLink` (stage i) and `acceptLink` (stage i + 1).
 * The layer's parts: link-protocol.ts (constants, shared types), hello.ts (the hello exchange and
 * its authentication), channel.ts (frames over a libp2p stream), pipeline-link.ts (`PipelineLink`,
 * the API of an open link), acceptor.ts (inbound streams matched to `acceptLink` calls, served by
 * each `ShardHost`).
 */

export { FrameChannel } from "./channel.js";
export { signHello } from "./hello.js";
export {
  DEFAULT_HANDSHAKE_TIMEOUT_MS,
  DEFAULT_MAX_SKEW_MS,
  DEFAULT_TIMEOUT_MS,
  type ExpectedPayload,
  type ExpectedTensor,
  HELLO_DOMAIN,
  type LinkAuth,
  type LinkHello,
  type LinkStats,
  type LinkWaitOptions,
  MAX_PARKED_DIALERS,
  MAX_PENDING_HELLOS,
  MAX_PIPELINE_STREAMS,
  NOT_EXPECTING_REASON,
  PIPELINE_PROTOCOL,
  RETRY_PREFIX,
  UNAUTHORIZED_PREFIX,
} from "./link-protocol.js";
export { PipelineLink } from "./pipeline-link.js";

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
  const hello = await signHello(host.peerId, parameters.hello, parameters.auth);
  const timeoutMs = timeoutOf(parameters.timeoutMs, DEFAULT_TIMEOUT_MS);
  return host.links.wait({
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
