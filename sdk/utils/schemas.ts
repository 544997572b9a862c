import { getAddress, isAddress, type Address, type Hex } from "viem";
import { z } from "zod";

import { InvalidParameterError } from "../errors/validation.js";

/** A 20-byte address in any case; returned checksummed. */
export const zAddress = z
  .string()
  .refine((v) => isAddress(v, { strict: false }), "must be a 20-byte hex address")
  .transform((v) => getAddress(v) as Address);

/** A 32-byte hex value (digest, root, salt). */
export const zBytes32 = z
  .string()
  .regex(/^0x[0-9a-fA-F]{64}$/, "must be 32 bytes of hex (0x + 64 hex digits)")
  .transform((v) => v as Hex);

/** Hex bytes of any length (signatures, data). */
export const zHex = z
  .string()
  .regex(/^0x([0-9a-fA-F]{2})*$/, "must be hex bytes")
  .transform((v) => v as Hex);

/** An unsigned integer of at most `bits` bits, given as bigint, safe integer or decimal string. */
export const zUint = (bits: number) =>
  z
    .union([
      z.bigint(),
      z.number().int("must be an integer").refine(Number.isSafeInteger, "is beyond the safe integer range"),
      z.string().regex(/^[0-9]+$/, "must be a decimal integer"),
    ])
    .transform((v) => BigInt(v))
    .refine((v) => v >= 0n, "must not be negative")
    .refine((v) => v < 1n << BigInt(bits), `must fit in uint${bits}`);

/** Like `zUint` but returned as a JS number (for uint8..uint32 fields viem types as number). */
export const zSmallUint = (bits: 8 | 16 | 32) => zUint(bits).transform((v) => Number(v));

export const zModelId = zUint(64).refine((v) => v > 0n, "model ids start at 1");
export const zShard = zSmallUint(32);
export const zRound = zUint(64);
export const zAmount = zUint(256);
export const zPositiveAmount = zUint(256).refine((v) => v > 0n, "must be greater than zero");

/** `Role` of the staking contract, by name or number. */
export const zRole = z
  .union([z.enum(["trainer", "verifier"]), z.literal(0), z.literal(1)])
  .transform((v) => (v === "trainer" || v === 0 ? 0 : 1) as 0 | 1);

/** Parses `input` with `schema`, or throws `InvalidParameterError` naming `action`. */
export function validate<schema extends z.ZodType>(action: string, schema: schema, input: unknown): z.output<schema> {
  const result = schema.safeParse(input);
  if (!result.success) throw InvalidParameterError.fromZod(action, result.error);
  return result.data;
}
