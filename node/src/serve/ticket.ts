import { type Address, type Hex, getAddress, isAddress } from "viem";
import { z } from "zod";

import { type NodeSigner, type PeerAuthority, signStatement, statementText, verifyStatement } from "../p2p/auth.js";
import { AuthorityUnavailableError, UnauthorizedPeerError } from "../p2p/errors.js";
import { InferenceBusyError, TicketError } from "./errors.js";

/**
 * Inference tickets: what a shard after 0 asks of every request before it computes anything.
 *
 * A gateway (shard 0) that accepted a usage receipt signs, with its node key, an EIP-191
 * (`personal_sign`) statement in the grammar of `p2p/auth.ts` under the domain
 * `inference-ticket@1`:
 *
 *     shard-protocol/inference-ticket@1
 *     chain=<chain id>
 *     model=<model id>
 *     receipt=<EIP-712 digest of the usage receipt, 0x…; zero: the operator's own, unpaid use>
 *     request=<request id: the generation's hops are <request>.0, <request>.1, …>
 *     tokens=<hops allowed: the characters the receipt pays for>
 *     expires=<unix seconds>
 *     owner=<the staked trainer that authorized the node key>
 *     nodeKey=<the signing node key>
 *
 * The ticket travels in every request header down the pipeline. A shard checks, in this order and
 * before taking a slot or computing: that there is one, that it names this chain and model, that the
 * hop's request id is `<request>.<k>` with k below `tokens`, that it has not expired (and does not
 * reach further than `MAX_TICKET_TTL_S`), the signature (once per ticket), that the chain says the
 * node key is authorized by `owner` and `owner` holds the round's minimum trainer stake (an injected
 * check: `chainAuthority(...).check`, cached), and then that hop k of this ticket was not served
 * before: each ticket buys at most `tokens` hops on each shard.
 */

/** Statement domain of a ticket. */
export const TICKET_DOMAIN = "inference-ticket@1";
/** A ticket may not reach further into the future than this, in seconds (bounds what a shard remembers). */
export const MAX_TICKET_TTL_S = 3600;
/** Default lifetime of a ticket shard 0 issues, in ms. */
export const DEFAULT_TICKET_TTL_MS = 10 * 60_000;
/** Most hops one ticket may allow. */
export const MAX_TICKET_TOKENS = 100_000;
/** Tickets a shard remembers at most (each until it expires); more are answered `busy`. */
export const DEFAULT_MAX_TICKETS = 200_000;
/** The receipt digest of a ticket that no receipt paid for (the operator's own use). */
export const UNPAID_RECEIPT: Hex = `0x${"00".repeat(32)}`;

const zAddress = z.string().refine((v) => isAddress(v, { strict: false }), "must be an address");

/** A ticket as it travels in a request header. */
export const zTicket = z.strictObject({
  chain: z.int().min(1).max(Number.MAX_SAFE_INTEGER),
  model: z.string().regex(/^[1-9][0-9]{0,19}$/, "must be a decimal model id"),
  receipt: z.string().regex(/^0x[0-9a-f]{64}$/, "must be 0x and 32 bytes of lowercase hex"),
  request: z.string().regex(/^[A-Za-z0-9-]{1,64}$/, "must be 1 to 64 characters of [A-Za-z0-9-]"),
  tokens: z.int().min(1).max(MAX_TICKET_TOKENS),
  expires: z
    .int()
    .min(0)
    .max(2 ** 40),
  owner: zAddress,
  nodeKey: zAddress,
  signature: z.string().regex(/^0x[0-9a-fA-F]{130}$/, "must be a 65-byte signature"),
});
export type Ticket = z.infer<typeof zTicket>;

/** The statement fields of a ticket, in their signed order. */
function ticketFields(t: Omit<Ticket, "signature">) {
  return {
    chain: t.chain,
    model: t.model,
    receipt: t.receipt,
    request: t.request,
    tokens: t.tokens,
    expires: t.expires,
    owner: getAddress(t.owner),
    nodeKey: getAddress(t.nodeKey),
  };
}

/** Signs a ticket with the node key (`nodeKey` is the signer's address). */
export async function signTicket(signer: NodeSigner, ticket: Omit<Ticket, "signature" | "nodeKey">): Promise<Ticket> {
  const unsigned = { ...ticket, nodeKey: getAddress(signer.address) };
  const signature = await signStatement(signer, TICKET_DOMAIN, ticketFields(unsigned));
  return { ...unsigned, owner: getAddress(ticket.owner), signature };
}

export interface TicketIssuerParameters {
  /** Shard 0's node key. */
  signer: NodeSigner;
  /** The staked trainer that authorized the node key on the ledger. */
  owner: Address;
  chainId: number;
  modelId: bigint | number;
  /** Lifetime of each ticket (default 10 minutes, at most `MAX_TICKET_TTL_S`). */
  ttlMs?: number | undefined;
  /** Clock, for tests. */
  now?: (() => number) | undefined;
}

/** Shard 0's side: signs one ticket per generation. */
export interface TicketIssuer {
  issue(parameters: { receipt?: Hex | undefined; request: string; tokens: number }): Promise<Ticket>;
}

export function createTicketIssuer(parameters: TicketIssuerParameters): TicketIssuer {
  const ttlMs = parameters.ttlMs ?? DEFAULT_TICKET_TTL_MS;
  if (!(ttlMs > 0 && ttlMs <= MAX_TICKET_TTL_S * 1000))
    throw new RangeError(`ticket ttlMs must be in (0, ${MAX_TICKET_TTL_S * 1000}], not ${ttlMs}`);
  if (!isAddress(parameters.owner, { strict: false })) throw new RangeError("the ticket owner is no address");
  const now = parameters.now ?? Date.now;
  return {
    issue: ({ receipt, request, tokens }) =>
      signTicket(parameters.signer, {
        chain: parameters.chainId,
        model: BigInt(parameters.modelId).toString(),
        receipt: (receipt ?? UNPAID_RECEIPT).toLowerCase(),
        request,
        tokens,
        expires: Math.floor((now() + ttlMs) / 1000),
        owner: parameters.owner,
      }),
  };
}

/**
 * Says whether a node key may sign tickets for `owner`: resolves, or throws
 * `UnauthorizedPeerError` (`not-authorized`, `unstaked`) / `AuthorityUnavailableError`.
 * `chainAuthority({ client, deployment, modelId }).check` is the one to use.
 */
export type TicketAuthorityCheck = PeerAuthority["check"];

export interface TicketVerifierParameters {
  chainId: number;
  modelId: bigint | number;
  /** The chain's word on a node key and its owner (see `TicketAuthorityCheck`). */
  check: TicketAuthorityCheck;
  /** Tickets remembered at most (default 200,000). */
  maxTickets?: number | undefined;
  /** Clock, for tests. */
  now?: (() => number) | undefined;
}

/** A verified hop, to be consumed once a slot is taken. */
export interface TicketGrant {
  readonly key: string;
  readonly hop: number;
}

interface Entry {
  /** The signed statement and its signature: a hop reuses the check only for exactly this ticket. */
  text: string;
  signature: string;
  expires: number;
  /** Bitmap of the hops served (grown as needed: a generation's hops come in order). */
  used: Uint8Array;
}

/** Expired tickets are forgotten every this many new tickets. */
const PRUNE_EVERY = 1024;

/**
 * A shard's side: checks tickets (see the module comment) and counts the hops each one bought.
 * `verify` does every check that can be done without taking anything (signature, chain);
 * `consume` then records the hop, refusing one served before.
 */
export class TicketVerifier {
  private readonly chainId: number;
  private readonly modelId: string;
  private readonly check: TicketAuthorityCheck;
  private readonly maxTickets: number;
  private readonly now: () => number;
  /** `nodeKey:request` → the ticket and the hops it has been used for, until it expires. */
  private readonly entries = new Map<string, Entry>();
  private inserted = 0;

  constructor(parameters: TicketVerifierParameters) {
    this.chainId = parameters.chainId;
    this.modelId = BigInt(parameters.modelId).toString();
    this.check = parameters.check;
    this.maxTickets = parameters.maxTickets ?? DEFAULT_MAX_TICKETS;
    this.now = parameters.now ?? Date.now;
  }

  /** Tickets remembered now. */
  get size(): number {
    return this.entries.size;
  }

  /**
   * Checks `raw` (the header's `ticket`) for the hop `requestId`. Throws `TicketError`
   * (`no-ticket`, `bad-ticket`, `unauthorized-ticket`, `expired-ticket`, `exhausted-ticket`),
   * `AuthorityUnavailableError` (the chain cannot be read), or `InferenceBusyError` (too many
   * tickets remembered).
   */
  async verify(raw: unknown, requestId: string): Promise<TicketGrant> {
    if (raw === undefined) throw new TicketError("no-ticket", "the request carries no ticket from a gateway");
    const parsed = zTicket.safeParse(raw);
    if (!parsed.success) throw new TicketError("bad-ticket", `malformed: ${z.prettifyError(parsed.error)}`);
    const t = parsed.data;
    if (t.chain !== this.chainId || t.model !== this.modelId)
      throw new TicketError(
        "bad-ticket",
        `for model ${t.model} on chain ${t.chain}; this shard serves model ${this.modelId} on chain ${this.chainId}`,
      );
    const prefix = `${t.request}.`;
    const hopText = requestId.startsWith(prefix) ? requestId.slice(prefix.length) : "";
    if (!/^(0|[1-9][0-9]{0,6})$/.test(hopText))
      throw new TicketError("bad-ticket", `request ${requestId} is not a hop <n> of ticket request ${t.request}`);
    const hop = Number(hopText);
    if (hop >= t.tokens)
      throw new TicketError("exhausted-ticket", `hop ${hop} is beyond the ${t.tokens} tokens the ticket allows`);
    const nowSec = Math.floor(this.now() / 1000);
    if (t.expires < nowSec) throw new TicketError("expired-ticket", `expired at ${t.expires} (now ${nowSec})`);
    if (t.expires > nowSec + MAX_TICKET_TTL_S)
      throw new TicketError("bad-ticket", `expires at ${t.expires}, more than ${MAX_TICKET_TTL_S} s ahead`);
    const key = `${t.nodeKey.toLowerCase()}:${t.request}`;
    const text = statementText(TICKET_DOMAIN, ticketFields(t));
    const same = (e: Entry | undefined) => e !== undefined && e.text === text && e.signature === t.signature;
    const known = this.entries.get(key);
    // The signature is checked once per ticket; a second, different ticket for the same request is refused.
    if (!same(known)) {
      try {
        await verifyStatement(TICKET_DOMAIN, ticketFields(t), t.signature, t.nodeKey);
      } catch (error) {
        if (error instanceof UnauthorizedPeerError)
          throw new TicketError("bad-ticket", `forged: ${error.details ?? error.shortMessage}`, error);
        throw error;
      }
      if (known) throw new TicketError("bad-ticket", `another ticket for request ${t.request} was used before`);
    }
    try {
      await this.check(getAddress(t.nodeKey), getAddress(t.owner));
    } catch (error) {
      if (error instanceof UnauthorizedPeerError)
        throw new TicketError("unauthorized-ticket", error.details ?? error.shortMessage, error);
      if (error instanceof AuthorityUnavailableError) throw error;
      throw new AuthorityUnavailableError((error as Error).message, error);
    }
    let entry = this.entries.get(key);
    if (entry && !same(entry))
      throw new TicketError("bad-ticket", `another ticket for request ${t.request} was used before`);
    if (!entry) {
      if (this.entries.size >= this.maxTickets) this.prune();
      if (this.entries.size >= this.maxTickets)
        throw new InferenceBusyError(`${this.entries.size} unexpired tickets remembered`);
      if (++this.inserted % PRUNE_EVERY === 0) this.prune();
      entry = { text, signature: t.signature, expires: t.expires, used: new Uint8Array(0) };
      this.entries.set(key, entry);
    }
    if (isUsed(entry, hop))
      throw new TicketError("exhausted-ticket", `hop ${hop} of request ${t.request} was served before`);
    return { key, hop };
  }

  /** Records the hop; throws `TicketError` (`exhausted-ticket`) if it was served since `verify`. */
  consume(grant: TicketGrant): void {
    const entry = this.entries.get(grant.key);
    if (!entry) throw new TicketError("expired-ticket", "the ticket expired while waiting");
    if (isUsed(entry, grant.hop)) throw new TicketError("exhausted-ticket", `hop ${grant.hop} was served before`);
    const byte = grant.hop >> 3;
    if (byte >= entry.used.byteLength) {
      const grown = new Uint8Array(Math.max(byte + 1, entry.used.byteLength * 2));
      grown.set(entry.used);
      entry.used = grown;
    }
    entry.used[byte]! |= 1 << (grant.hop & 7);
  }

  /** Forgets expired tickets (they are refused as expired anyway). */
  prune(): void {
    const nowSec = Math.floor(this.now() / 1000);
    for (const [key, entry] of this.entries) if (entry.expires < nowSec) this.entries.delete(key);
  }
}

const isUsed = (entry: Entry, hop: number) => ((entry.used[hop >> 3] ?? 0) & (1 << (hop & 7))) !== 0;
