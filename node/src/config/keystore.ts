import {
  createCipheriv,
  createDecipheriv,
  pbkdf2 as pbkdf2Callback,
  randomBytes,
  randomUUID,
  scrypt as scryptCallback,
  timingSafeEqual,
  type ScryptOptions,
} from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";

import { bytesToHex, getAddress, hexToBytes, isAddress, keccak256 } from "viem";
import { z } from "zod";

import { KeyError } from "./errors.js";
import { SecretKey, accountOf, capitalized } from "./secret-key.js";

/** scrypt cost of new keystores: 2^17, as ethers writes them (128 MiB, a fraction of a second). */
export const DEFAULT_SCRYPT_N = 1 << 17;

const scrypt = promisify(scryptCallback) as (
  password: Buffer,
  salt: Buffer,
  keylen: number,
  options: ScryptOptions,
) => Promise<Buffer>;
const pbkdf2 = promisify(pbkdf2Callback);

/* KEYSTORE (Web3 Secret Storage v3) */

/** A keystore file: Web3 Secret Storage v3 with scrypt (or pbkdf2) and aes-128-ctr. */
export interface KeystoreV3 {
  version: 3;
  id: string;
  /** Lower-case hex without 0x, as geth writes it. */
  address: string;
  crypto: {
    cipher: "aes-128-ctr";
    cipherparams: { iv: string };
    ciphertext: string;
    kdf: "scrypt";
    kdfparams: { dklen: number; n: number; r: number; p: number; salt: string };
    mac: string;
  };
}

const zHexBytes = (bytes?: number) =>
  z
    .string()
    .regex(/^(0x)?[0-9a-fA-F]*$/, "must be hex")
    .transform((v) => Buffer.from(v.replace(/^0x/, ""), "hex"))
    .refine((b) => bytes === undefined || b.length === bytes, `must be ${bytes} bytes`);

const zScryptParams = z
  .object({
    dklen: z.number().int().min(32).max(64),
    n: z
      .number()
      .int()
      .min(2)
      .max(1 << 20)
      .refine((n) => (n & (n - 1)) === 0, "must be a power of 2"),
    r: z.number().int().min(1).max(32),
    p: z.number().int().min(1).max(16),
    salt: zHexBytes(),
  })
  .refine((k) => Math.log2(k.n) < 16 * k.r, {
    // node:crypto (OpenSSL) and ethers both enforce it; geth's own scrypt does not.
    message: "n must be below 2^(16·r) (RFC 7914); these scrypt parameters are not supported",
    path: ["n"],
  });

const zPbkdf2Params = z.object({
  dklen: z.number().int().min(32).max(64),
  c: z.number().int().min(1).max(10_000_000),
  prf: z.literal("hmac-sha256"),
  salt: zHexBytes(),
});

const zCrypto = z.discriminatedUnion("kdf", [
  z.object({
    kdf: z.literal("scrypt"),
    kdfparams: zScryptParams,
    cipher: z.literal("aes-128-ctr"),
    cipherparams: z.object({ iv: zHexBytes(16) }),
    ciphertext: zHexBytes(32),
    mac: zHexBytes(32),
  }),
  z.object({
    kdf: z.literal("pbkdf2"),
    kdfparams: zPbkdf2Params,
    cipher: z.literal("aes-128-ctr"),
    cipherparams: z.object({ iv: zHexBytes(16) }),
    ciphertext: zHexBytes(32),
    mac: zHexBytes(32),
  }),
]);

const zKeystore = z.object({
  version: z.literal(3),
  address: z.string().optional(),
  // Web3 Secret Storage says `crypto`; ethers (and old geth) write `Crypto`.
  crypto: zCrypto,
});

/** ethers normalizes passwords to NFKC before deriving the key; so do we, to open its files. */
const passwordBytes = (password: string) => Buffer.from(password.normalize("NFKC"), "utf8");

const scryptMaxmem = (n: number, r: number) => 128 * n * r + 16 * 1024 * 1024;

const macOf = (derived: Buffer, ciphertext: Buffer) =>
  Buffer.from(hexToBytes(keccak256(Buffer.concat([derived.subarray(16, 32), ciphertext]))));

/**
 * Encrypts `key` as a Web3 Secret Storage v3 keystore (scrypt, aes-128-ctr, keccak256 MAC) that
 * geth, ethers (`Wallet.fromEncryptedJson`) and wallets can open.
 *
 * @example
 * const json = await encryptKeystore(generateKey(), password)
 */
export async function encryptKeystore(
  key: SecretKey,
  password: string,
  options: { scryptN?: number | undefined } = {},
): Promise<KeystoreV3> {
  const n = options.scryptN ?? DEFAULT_SCRYPT_N;
  const r = 8;
  const p = 1;
  const salt = randomBytes(32);
  const iv = randomBytes(16);
  const derived = await scrypt(passwordBytes(password), salt, 32, { N: n, r, p, maxmem: scryptMaxmem(n, r) });
  const cipher = createCipheriv("aes-128-ctr", derived.subarray(0, 16), iv);
  const plaintext = Buffer.from(hexToBytes(key.reveal()));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  plaintext.fill(0);
  return {
    version: 3,
    id: randomUUID(),
    address: accountOf(key).address.slice(2).toLowerCase(),
    crypto: {
      cipher: "aes-128-ctr",
      cipherparams: { iv: iv.toString("hex") },
      ciphertext: ciphertext.toString("hex"),
      kdf: "scrypt",
      kdfparams: { dklen: 32, n, r, p, salt: salt.toString("hex") },
      mac: macOf(derived, ciphertext).toString("hex"),
    },
  };
}

/**
 * Decrypts a Web3 Secret Storage v3 keystore (scrypt or pbkdf2, aes-128-ctr), as written by
 * geth, ethers (`Wallet.encrypt`) or `encryptKeystore`. A wrong password is a `KeyError`.
 *
 * @example
 * const account = accountOf(await decryptKeystore(await readFile(file, "utf8"), password))
 */
export async function decryptKeystore(
  keystore: unknown,
  password: string,
  origin = "the keystore",
): Promise<SecretKey> {
  const parsed = parseKeystore(keystore, origin);
  const { crypto } = parsed;
  const secret = passwordBytes(password);
  let derived: Buffer;
  if (crypto.kdf === "scrypt") {
    const { n, r, p, dklen, salt } = crypto.kdfparams;
    derived = await scrypt(secret, salt, dklen, { N: n, r, p, maxmem: scryptMaxmem(n, r) });
  } else {
    const { c, dklen, salt } = crypto.kdfparams;
    derived = await pbkdf2(secret, salt, c, dklen, "sha256");
  }
  const mac = macOf(derived, crypto.ciphertext);
  if (!timingSafeEqual(mac, crypto.mac)) {
    throw new KeyError(`Wrong password for ${origin}.`, {
      details: "the password does not open it (or the file is damaged)",
    });
  }
  const decipher = createDecipheriv("aes-128-ctr", derived.subarray(0, 16), crypto.cipherparams.iv);
  const plaintext = Buffer.concat([decipher.update(crypto.ciphertext), decipher.final()]);
  const key = new SecretKey(bytesToHex(plaintext));
  plaintext.fill(0);
  const address = accountOf(key, origin).address;
  if (parsed.address !== undefined && getAddress(parsed.address) !== address) {
    throw new KeyError(
      `${capitalized(origin)} is inconsistent: its key belongs to ${address}, not to ${parsed.address}.`,
    );
  }
  return key;
}

/** The keystore's fields, validated; its `address` (unencrypted) checksummed if present. */
export function parseKeystore(keystore: unknown, origin: string) {
  let json = keystore;
  if (typeof keystore === "string") {
    try {
      json = JSON.parse(keystore);
    } catch (error) {
      throw new KeyError(`${capitalized(origin)} is not valid JSON.`, { details: (error as Error).message });
    }
  }
  if (json !== null && typeof json === "object" && !("crypto" in json) && "Crypto" in json) {
    json = { ...json, crypto: (json as { Crypto: unknown }).Crypto };
  }
  const result = zKeystore.safeParse(json);
  if (!result.success) {
    throw new KeyError(`${capitalized(origin)} is not a Web3 Secret Storage v3 keystore this node can open.`, {
      details: result.error.issues.map((i) => `${i.path.join(".") || "(file)"}: ${i.message}`).join("; "),
    });
  }
  const address = result.data.address;
  const prefixed = address === undefined ? undefined : address.startsWith("0x") ? address : `0x${address}`;
  return {
    ...result.data,
    address: prefixed !== undefined && isAddress(prefixed, { strict: false }) ? getAddress(prefixed) : undefined,
  };
}

/** Writes a keystore file readable by its owner only (0600), never over an existing file. */
export async function writeKeystore(file: string, keystore: KeystoreV3): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    await writeFile(file, `${JSON.stringify(keystore, null, 2)}\n`, { flag: "wx", mode: 0o600 });
  } catch (error) {
    if ((error as { code?: string }).code === "EEXIST") {
      throw new KeyError(`A keystore already exists at ${file}; it is never overwritten.`, { cause: error });
    }
    throw new KeyError(`Cannot write the keystore ${file}.`, { cause: error });
  }
}
