import { NodeError } from "../errors.js";

/**
 * The two pipeline stages disagree about what they are training (model, spec digest, lane, round),
 * their shards are not adjacent, or the listener expected no link. The stream is closed.
 * `retryable` is true only where the listener was not (yet) expecting a link.
 */
export class HandshakeError extends NodeError {
  override name = "HandshakeError";
  constructor(shortMessage: string, parameters: { details?: string; cause?: unknown; retryable?: boolean } = {}) {
    super(shortMessage, parameters);
  }
}

/** The peer sent bytes that are not a valid frame (bad length prefix, JSON, schema or payload). */
export class MalformedFrameError extends NodeError {
  override name = "MalformedFrameError";
  constructor(details: string, cause?: unknown) {
    super("The peer sent a malformed frame.", { details, cause });
  }
}

/** A frame's header or payload is larger than the link accepts; it was rejected before being read. */
export class OversizedFrameError extends NodeError {
  override name = "OversizedFrameError";
  readonly part: "header" | "payload";
  readonly size: number;
  readonly limit: number;
  constructor(part: "header" | "payload", size: number, limit: number) {
    super(`The peer declared a ${part} of ${size} bytes, above the limit of ${limit}.`);
    this.part = part;
    this.size = size;
    this.limit = limit;
  }
}

/** The next frame is well formed but not the one expected (kind, type, round, step, micro, shape, dtype). */
export class UnexpectedTensorError extends NodeError {
  override name = "UnexpectedTensorError";
  constructor(expected: string, received: string) {
    super("The peer sent another frame than the one expected.", {
      details: `expected ${expected}, received ${received}`,
    });
  }
}

/** The peer gave up the round and said why (an `abort` frame). */
export class PeerAbortedError extends NodeError {
  override name = "PeerAbortedError";
  readonly reason: string;
  constructor(reason: string) {
    super("The peer aborted the round.", { details: reason, retryable: true });
    this.reason = reason;
  }
}

/** The peer cannot be reached, or its stream or connection closed while a frame was awaited or sent. */
export class PeerGoneError extends NodeError {
  override name = "PeerGoneError";
  constructor(details: string, cause?: unknown) {
    super("The peer is gone.", { details, cause, retryable: true });
  }
}

/** Nothing arrived (or the peer did not take our data) within the time allowed. */
export class LinkTimeoutError extends NodeError {
  override name = "LinkTimeoutError";
  readonly timeoutMs: number;
  constructor(what: string, timeoutMs: number) {
    super(`Timed out after ${timeoutMs} ms ${what}.`, { retryable: true });
    this.timeoutMs = timeoutMs;
  }
}

/** The link was closed or aborted at this end and can no longer be used. */
export class LinkClosedError extends NodeError {
  override name = "LinkClosedError";
  constructor(details: string) {
    super("The pipeline link is closed.", { details });
  }
}

/**
 * This node was asked to send something it would reject itself: a tensor whose values do not fill
 * its shape, hold NaN or ±Infinity, or exceed the size limit; or a header outside the schema.
 */
export class InvalidFrameError extends NodeError {
  override name = "InvalidFrameError";
  constructor(details: string) {
    super("Refusing to send an invalid frame.", { details });
  }
}

/** An argument to `dialLink`, `acceptLink` or a link method is not valid (a hello, a multiaddr, a timeout). */
export class InvalidLinkParameterError extends NodeError {
  override name = "InvalidLinkParameterError";
  constructor(details: string, cause?: unknown) {
    super("Invalid pipeline link parameter.", { details, cause });
  }
}

/** The persisted libp2p identity key cannot be read or is not an Ed25519 key. */
export class PeerKeyError extends NodeError {
  override name = "PeerKeyError";
  constructor(path: string, details: string, cause?: unknown) {
    super(`The peer key at ${path} cannot be used.`, { details, cause });
  }
}

/**
 * Why a peer was not authenticated: its statement is malformed or badly signed, bound to another
 * libp2p peer id, too old or from the future, not the pinned peer, signed by a node key its owner
 * has not authorized, or its owner's trainer stake is below the round's minimum.
 */
export type UnauthorizedReason =
  "malformed" | "signature" | "peer-id" | "stale" | "pinned" | "not-authorized" | "unstaked" | "unauthenticated";

/**
 * A peer could not prove that it may take part: see `reason`. Not retryable from the peer's side
 * (the same statement will be refused again), except where the chain may change (`unstaked`,
 * `not-authorized`) — and then only by the owner acting on-chain.
 */
export class UnauthorizedPeerError extends NodeError {
  override name = "UnauthorizedPeerError";
  readonly reason: UnauthorizedReason;
  constructor(reason: UnauthorizedReason, details: string, cause?: unknown) {
    super("The peer is not an authorized, staked trainer of this model.", { details, cause });
    this.reason = reason;
  }
}

/** The chain could not be read to authenticate a peer (RPC down): retry later. */
export class AuthorityUnavailableError extends NodeError {
  override name = "AuthorityUnavailableError";
  constructor(details: string, cause?: unknown) {
    super("Cannot read the chain to authenticate the peer.", { details, cause, retryable: true });
  }
}

/**
 * The node could not listen on a configured address: the port is taken by another process, the
 * address is not this machine's, or the port needs privileges. Names the address and what to do.
 */
export class ListenAddressError extends NodeError {
  override name = "ListenAddressError";
  readonly address: string;
  readonly code: string | undefined;
  constructor(address: string, code: string | undefined, cause?: unknown) {
    const why =
      code === "EADDRINUSE"
        ? "the port is already in use by another process"
        : code === "EADDRNOTAVAIL"
          ? "the address is not one of this machine's"
          : code === "EACCES"
            ? "permission denied (ports below 1024 need privileges)"
            : "the address could not be listened on";
    super(`Cannot listen on ${address}: ${why}.`, {
      details:
        "choose another address with --listen (or `listen` in the config; port 0 picks a free one), or stop the process that holds it",
      cause,
    });
    this.address = address;
    this.code = code;
  }
}

/**
 * The `ListenAddressError` inside libp2p's `UnsupportedListenAddressesError` (whose text lists
 * each failed address with the socket's error), or undefined where `error` is something else.
 */
export function listenAddressError(error: unknown): ListenAddressError | undefined {
  const e = error as { name?: unknown; message?: unknown } | undefined;
  if (e?.name !== "UnsupportedListenAddressesError" || typeof e.message !== "string") return undefined;
  const failed = /^\s*(\/\S+): Error: listen (E[A-Z]+)/m.exec(e.message);
  if (failed === null) return new ListenAddressError("a configured address", undefined, error);
  return new ListenAddressError(failed[1]!, failed[2], error);
}
