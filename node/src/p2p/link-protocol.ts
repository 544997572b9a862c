import type { Address } from "viem";

import { InvalidLinkParameterError } from "./errors.js";
import type { NodeSigner, PeerAuthority } from "./auth.js";
import type { TensorCodec } from "./codec.js";
import type { Frame, TensorType } from "./frames.js";

/*
 * The pipeline link protocol's constants and shared types, and the small helpers every part of
 * the link layer uses (link.ts: dial and accept; hello.ts: the hello exchange; channel.ts: frames
 * over a stream; pipeline-link.ts: the link's API; acceptor.ts: inbound streams).
 */

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
export const STREAM_READ_BUFFER_BYTES = 32 * 1024 * 1024;
/**
 * Before the peer's hello is accepted, what a stream may hold: its hello is at most a 4 KiB header,
 * and nothing else is read until it is authenticated (the stream is paused; past this, reset).
 */
export const PRE_HELLO_READ_BUFFER_BYTES = 64 * 1024;
export const MAX_TIMER_MS = 2 ** 31 - 1;
export const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

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

/** A frame in words, for error details: "activation round 3 step 0 micro 1 shape [4, 64] int8". */
export function describe(
  frame: Frame | ({ kind: "tensor" } & ExpectedPayload) | { kind: "end"; round: number },
): string {
  switch (frame.kind) {
    case "tensor":
      return `${frame.type} round ${frame.round} step ${frame.step} micro ${frame.micro} shape [${frame.shape.join(", ")}] ${frame.dtype}`;
    case "end":
      return `end of round ${frame.round}`;
    default:
      return `${frame.kind} frame`;
  }
}

export function timeoutOf(value: number | undefined, fallback: number): number {
  const ms = value ?? fallback;
  if (!(ms > 0) || !Number.isFinite(ms)) {
    throw new InvalidLinkParameterError(`a timeout must be a positive, finite number of ms, not ${ms}`);
  }
  return ms;
}

export function remaining(deadline: number): number {
  return Math.min(Math.max(0, deadline - Date.now()), MAX_TIMER_MS);
}
