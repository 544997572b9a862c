import { inspect } from "node:util";

import type { Hex } from "viem";
import { generatePrivateKey, privateKeyToAccount, type PrivateKeyAccount } from "viem/accounts";

import { KeyError } from "./errors.js";

/** `origin` at the start of a sentence: `the keystore x` → `The keystore x`. */
export const capitalized = (origin: string) => origin.charAt(0).toUpperCase() + origin.slice(1);

/** A private key that does not show itself: `JSON.stringify` and `util.inspect` print `[redacted]`. */
export class SecretKey {
  readonly #hex: Hex;

  constructor(hex: Hex) {
    this.#hex = hex;
  }

  /** The key itself, for `privateKeyToAccount` and nothing else. */
  reveal(): Hex {
    return this.#hex;
  }

  toJSON() {
    return "[redacted]";
  }

  toString() {
    return "SecretKey [redacted]";
  }

  [inspect.custom]() {
    return "SecretKey [redacted]";
  }
}

/**
 * A private key from text (`0x` + 64 hex digits). The error says what is wrong without repeating
 * the input (`origin` names where it came from).
 */
export function parsePrivateKey(text: string, origin: string): SecretKey {
  const trimmed = text.trim();
  if (!/^0x[0-9a-fA-F]{64}$/.test(trimmed)) {
    throw new KeyError(`${capitalized(origin)} is not a private key.`, {
      details: `expected 0x followed by 64 hex digits (got ${trimmed.length} characters, not shown)`,
    });
  }
  const key = new SecretKey(trimmed.toLowerCase() as Hex);
  accountOf(key, origin); // rejects 0 and values past the curve order
  return key;
}

/** The viem account of a key; a key outside the curve's range is a `KeyError` (without the key). */
export function accountOf(key: SecretKey, origin = "the private key"): PrivateKeyAccount {
  try {
    return privateKeyToAccount(key.reveal());
  } catch {
    // The library's message may quote the key: do not keep it as the cause.
    throw new KeyError(`${capitalized(origin)} is not a valid secp256k1 private key.`, {
      details: "it must be between 1 and the curve order",
    });
  }
}

/** A fresh random private key. */
export function generateKey(): SecretKey {
  return new SecretKey(generatePrivateKey());
}
