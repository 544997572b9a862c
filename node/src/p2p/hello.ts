import type { Address } from "viem";
import { z } from "zod";

import { NodeError } from "../errors.js";
import { signStatement, verifyStatement } from "./auth.js";
import { HandshakeError, InvalidLinkParameterError, UnauthorizedPeerError, type UnauthorizedReason } from "./errors.js";
import { PROTOCOL_VERSION, zHelloHeader, type HelloHeader } from "./frames.js";
import {
  DEFAULT_MAX_SKEW_MS,
  HELLO_DOMAIN,
  type LinkAuth,
  type LinkHello,
  NOT_EXPECTING_REASON,
  RETRY_PREFIX,
  UNAUTHORIZED_PREFIX,
} from "./link-protocol.js";

/* The hello exchange: what both ends say, whether they agree, and who signed it. */

export type Rounds = { match: boolean; window: number };

export function roundsOf(matchRound: boolean | undefined, roundWindow: number | undefined): Rounds {
  const window = roundWindow ?? Number.POSITIVE_INFINITY;
  if (!(window >= 0)) throw new InvalidLinkParameterError(`roundWindow must be at least 0, not ${roundWindow}`);
  return { match: matchRound ?? true, window };
}

/**
 * Why a dialer (shard i) and a listener cannot be linked, or undefined if they can. Rounds apart
 * are a refusal for now (`retry`): one of the two may catch up.
 */
export function helloMismatch(
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

export function helloHeader(hello: LinkHello): HelloHeader {
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
export function helloStatement(hello: HelloHeader, auth: NonNullable<HelloHeader["auth"]>) {
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
export async function authenticate(
  peer: HelloHeader,
  remotePeer: string,
  local: HelloHeader,
  auth: LinkAuth,
): Promise<void> {
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
export function refusalReason(error: Error): string {
  if (error instanceof UnauthorizedPeerError) return `${UNAUTHORIZED_PREFIX}${error.reason}: ${error.details ?? ""}`;
  if (error instanceof NodeError && error.retryable) return RETRY_PREFIX + (error.details ?? error.shortMessage);
  return `${UNAUTHORIZED_PREFIX}unauthenticated: ${error.message}`;
}

export function isRetryable(error: unknown): boolean {
  return error instanceof NodeError && error.retryable;
}

export const UNAUTHORIZED_REASONS = [
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
export function refusalError(reason: string): Error {
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
