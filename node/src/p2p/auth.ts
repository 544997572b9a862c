import { type Address, type Hex, getAddress, isAddress, recoverMessageAddress } from "viem";
import {
  type AnyClient,
  type Deployment,
  getModel,
  getRoundParams,
  getStake,
  isNodeAuthorized,
} from "shard-protocol/sdk";

import { AuthorityUnavailableError, UnauthorizedPeerError } from "./errors.js";

/**
 * Who may talk to a node: statements signed by a node key, and the chain's word on that key.
 *
 * A statement is a short text, signed with EIP-191 (`personal_sign`) by the node key (the
 * secp256k1 key a trainer authorizes on the ledger to sign its commits):
 *
 *     shard-protocol/<domain>
 *     key=value
 *     …
 *
 * `chainAuthority` then says whether that key may act for a staked trainer of the model: the
 * ledger's `isAuthorized(owner, nodeKey)`, and the owner's active trainer stake at least the
 * round's `minTrainerStake`. Pipeline links use both (see link.ts: a hello is a statement bound
 * to the sender's libp2p peer id); inference tickets can reuse them with another domain.
 */

/** Something that signs with the node key: a viem `LocalAccount` (`privateKeyToAccount`). */
export interface NodeSigner {
  readonly address: Address;
  signMessage(args: { message: string }): Promise<Hex>;
}

/** The fields of a statement, in the order they are written. */
export type StatementFields = Readonly<Record<string, string | number | bigint>>;

/** First line of every statement, before `/<domain>`. */
export const STATEMENT_PREFIX = "shard-protocol";

const KEY = /^[a-z][A-Za-z0-9]{0,31}$/;
const DOMAIN = /^[a-z0-9][a-z0-9./@-]{0,63}$/;
const VALUE = /^[\x21-\x7e]{0,256}$/; // printable ASCII, no spaces or newlines

/**
 * The exact text signed for `fields` under `domain`. Throws `TypeError` for a domain, key or value
 * outside the grammar (so that no two field sets share a text).
 *
 * @example
 * statementText("pipeline-hello@1", { peer: "12D3Koo…", model: 1n, round: 3 })
 * // "shard-protocol/pipeline-hello@1\npeer=12D3Koo…\nmodel=1\nround=3"
 */
export function statementText(domain: string, fields: StatementFields): string {
  if (!DOMAIN.test(domain)) throw new TypeError(`invalid statement domain ${JSON.stringify(domain)}`);
  const lines = [`${STATEMENT_PREFIX}/${domain}`];
  for (const [key, raw] of Object.entries(fields)) {
    const value = String(raw);
    if (!KEY.test(key)) throw new TypeError(`invalid statement key ${JSON.stringify(key)}`);
    if (!VALUE.test(value)) throw new TypeError(`invalid value for statement key ${key}`);
    lines.push(`${key}=${value}`);
  }
  return lines.join("\n");
}

/** Signs `fields` under `domain` with the node key. */
export async function signStatement(signer: NodeSigner, domain: string, fields: StatementFields): Promise<Hex> {
  return signer.signMessage({ message: statementText(domain, fields) });
}

/**
 * Checks that `signature` over `fields` under `domain` was made by `nodeKey`; throws
 * `UnauthorizedPeerError` (`malformed` or `signature`) otherwise.
 */
export async function verifyStatement(
  domain: string,
  fields: StatementFields,
  signature: string,
  nodeKey: string,
): Promise<void> {
  if (!/^0x[0-9a-fA-F]{130}$/.test(signature)) throw new UnauthorizedPeerError("malformed", "not a 65-byte signature");
  if (!isAddress(nodeKey, { strict: false }))
    throw new UnauthorizedPeerError("malformed", "the node key is no address");
  let message: string;
  try {
    message = statementText(domain, fields);
  } catch (error) {
    throw new UnauthorizedPeerError("malformed", (error as Error).message);
  }
  let signer: Address;
  try {
    signer = await recoverMessageAddress({ message, signature: signature as Hex });
  } catch (error) {
    throw new UnauthorizedPeerError("signature", "the signature does not recover", error);
  }
  if (signer !== getAddress(nodeKey))
    throw new UnauthorizedPeerError("signature", `signed by ${signer}, not by the node key ${getAddress(nodeKey)}`);
}

/** Says whether a node key may act for a staked trainer of a model. */
export interface PeerAuthority {
  /**
   * Resolves if `owner` authorized `nodeKey` on the ledger and holds at least the round's
   * `minTrainerStake` of active trainer stake in the model (`round` default: the next round to be
   * committed). Throws `UnauthorizedPeerError` (`not-authorized`, `unstaked`) if not, or
   * `AuthorityUnavailableError` (retryable) if the chain cannot be read.
   */
  check(nodeKey: Address, owner: Address, options?: { round?: bigint | number | undefined }): Promise<void>;
}

export type ChainAuthorityParameters = {
  client: AnyClient;
  deployment: Deployment;
  modelId: bigint | number;
  /** How long an answer (yes or no) is reused. Default 30 s. */
  ttlMs?: number | undefined;
  /** Answers kept at most (oldest dropped first). Default 1024. */
  maxEntries?: number | undefined;
  /** Clock, for tests. */
  now?: (() => number) | undefined;
};

export type ChainAuthority = PeerAuthority & {
  /** Forgets every cached answer (after an on-chain change the caller made itself). */
  clear(): void;
};

/** Default time an authority answer is reused. */
export const DEFAULT_AUTHORITY_TTL_MS = 30_000;

/**
 * A `PeerAuthority` that reads the chain: the ledger's `isAuthorized(owner, nodeKey)`, the
 * staking contract's active trainer stake of `owner` (`getStake`), and the registry's
 * `paramsAt(modelId, round).minTrainerStake`. Answers, refusals included, are cached for
 * `ttlMs` (so that a peer retrying in a loop costs no RPC), and concurrent checks of the same
 * thing share one read. A failed read is not cached.
 *
 * @example
 * const authority = chainAuthority({ client, deployment, modelId: 1n })
 * await authority.check(nodeKey, owner, { round: 3n }) // throws UnauthorizedPeerError if not
 */
export function chainAuthority(parameters: ChainAuthorityParameters): ChainAuthority {
  const { client, deployment } = parameters;
  const modelId = BigInt(parameters.modelId);
  const ttlMs = parameters.ttlMs ?? DEFAULT_AUTHORITY_TTL_MS;
  const maxEntries = parameters.maxEntries ?? 1024;
  const now = parameters.now ?? Date.now;
  const cache = new Map<string, { expires: number; value: Promise<unknown> }>();

  function cached<T>(key: string, read: () => Promise<T>): Promise<T> {
    const hit = cache.get(key);
    if (hit && hit.expires > now()) return hit.value as Promise<T>;
    cache.delete(key);
    const value = read();
    cache.set(key, { expires: now() + ttlMs, value });
    while (cache.size > maxEntries) cache.delete(cache.keys().next().value!);
    value.catch(() => {
      if (cache.get(key)?.value === value) cache.delete(key);
    });
    return value;
  }

  const read = async <T>(what: string, f: () => Promise<T>): Promise<T> => {
    try {
      return await f();
    } catch (error) {
      throw new AuthorityUnavailableError(`reading ${what} failed: ${(error as Error).message.split("\n")[0]}`, error);
    }
  };

  const nextRound = () =>
    cached("round", () =>
      read("the model", async () => {
        const info = await getModel(client, { deployment, modelId });
        return info.latestRound + 1n;
      }),
    );

  const minStake = (round: bigint) =>
    cached(`params:${round}`, () =>
      read(`the parameters of round ${round}`, async () => {
        const params = await getRoundParams(client, { deployment, modelId, round });
        return params.minTrainerStake;
      }),
    );

  const authorized = (owner: Address, nodeKey: Address) =>
    cached(`auth:${owner}:${nodeKey}`, () =>
      read("the ledger's authorization", () => isNodeAuthorized(client, { deployment, owner, nodeKey })),
    );

  const stake = (owner: Address) =>
    cached(`stake:${owner}`, () =>
      read("the owner's stake", async () => (await getStake(client, { deployment, modelId, account: owner })).trainer),
    );

  return {
    async check(nodeKey, owner, options = {}) {
      if (!isAddress(nodeKey, { strict: false }) || !isAddress(owner, { strict: false }))
        throw new UnauthorizedPeerError("malformed", "the node key or owner is no address");
      const key = getAddress(nodeKey);
      const who = getAddress(owner);
      if (!(await authorized(who, key)))
        throw new UnauthorizedPeerError("not-authorized", `${who} has not authorized the node key ${key}`);
      const round = options.round === undefined ? await nextRound() : BigInt(options.round);
      const [position, min] = await Promise.all([stake(who), minStake(round)]);
      // A zero minimum still needs some stake: a trainer with nothing at risk is not one.
      if (position.active < min || position.active === 0n)
        throw new UnauthorizedPeerError(
          "unstaked",
          `${who} has ${position.active} active trainer stake in model ${modelId}; round ${round} needs ${min > 0n ? min : 1n}`,
        );
    },
    clear() {
      cache.clear();
    },
  };
}
