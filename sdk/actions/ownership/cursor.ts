import type { Address, Hex } from "viem";
import { z } from "zod";

import { InvalidParameterError } from "../../errors/validation.js";
import { validate, zAddress, zBytes32, zUint } from "../../utils/schemas.js";

/** Balances of every (token id, holder): holders are checksummed; zero balances are absent. */
export type Balances = Map<bigint, Map<Address, bigint>>;

/**
 * Where a cap-table sync stopped, and the balances up to there: every transfer event of the
 * shard token in blocks ≤ `blockNumber` is applied. `blockHash` is the hash of that block when
 * it was processed, so a resume can tell whether the chain reorganised under it.
 * Store it with `serializeCursor`, read it back with `parseCursor`.
 */
export interface CapTableCursor {
  chainId: number;
  /** The shard token whose events these are. */
  token: Address;
  /** The last block processed. */
  blockNumber: bigint;
  /** Hash of `blockNumber` as the chain had it when it was processed. */
  blockHash: Hex;
  balances: Balances;
}

/** The JSON form: bigints as decimal strings, balances as `{ [tokenId]: { [holder]: amount } }`. */
const CURSOR_VERSION = 1;

const zDecimal = zUint(256);

/** The schema of a serialized cursor (version 1). */
export const serializedCursorSchema = z.object({
  version: z.literal(CURSOR_VERSION),
  chainId: z.number().int().positive(),
  token: zAddress,
  blockNumber: zUint(64),
  blockHash: zBytes32,
  balances: z.record(
    z.string().regex(/^[0-9]+$/, "token ids are decimal strings"),
    z.record(
      z.string(),
      zDecimal.refine((v) => v > 0n, "zero balances are not stored"),
    ),
  ),
});

/** Checks a cursor object given to an action (its shape; not its chain or token). */
export const zCursor = z.object({
  chainId: z.number().int().positive(),
  token: zAddress,
  blockNumber: zUint(64),
  blockHash: zBytes32,
  balances: z.instanceof(Map, { message: "must be a Map of token id to Map of holder to balance" }),
});

/**
 * A cursor as a JSON string (bigints as decimal strings), to store between runs.
 *
 * @example
 * await writeFile("cap-table.json", serializeCursor(cursor))
 */
export function serializeCursor(cursor: CapTableCursor): string {
  const balances: Record<string, Record<string, string>> = {};
  for (const id of [...cursor.balances.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0))) {
    const holders: Record<string, string> = {};
    for (const [holder, balance] of cursor.balances.get(id)!) holders[holder] = balance.toString();
    balances[id.toString()] = holders;
  }
  return JSON.stringify({
    version: CURSOR_VERSION,
    chainId: cursor.chainId,
    token: cursor.token,
    blockNumber: cursor.blockNumber.toString(),
    blockHash: cursor.blockHash,
    balances,
  });
}

/**
 * A cursor from its JSON string (`serializeCursor`), validated: throws `InvalidParameterError`
 * naming the offending field if the text is not a cursor.
 *
 * @example
 * const cursor = parseCursor(await readFile("cap-table.json", "utf8"))
 * const { cursor: next } = await client.syncCapTable({ cursor })
 */
export function parseCursor(json: string): CapTableCursor {
  const action = "parseCursor";
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (error) {
    throw new InvalidParameterError(action, [{ path: "", message: `not JSON: ${(error as Error).message}` }]);
  }
  const parsed = validate(action, serializedCursorSchema, raw);
  const balances: Balances = new Map();
  for (const [id, holders] of Object.entries(parsed.balances)) {
    const map = new Map<Address, bigint>();
    for (const [holder, balance] of Object.entries(holders)) {
      map.set(validate(action, zAddress, holder), balance);
    }
    if (map.size > 0) balances.set(BigInt(id), map);
  }
  return {
    chainId: parsed.chainId,
    token: parsed.token,
    blockNumber: parsed.blockNumber,
    blockHash: parsed.blockHash,
    balances,
  };
}

/** A deep copy of `balances`, so an action never changes the cursor it was given. */
export function cloneBalances(balances: Balances): Balances {
  const copy: Balances = new Map();
  for (const [id, holders] of balances) copy.set(id, new Map(holders));
  return copy;
}
