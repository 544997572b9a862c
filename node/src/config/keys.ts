import { readFile } from "node:fs/promises";

import type { Address } from "viem";
import type { PrivateKeyAccount } from "viem/accounts";

import { KeyError } from "./errors.js";
import { decryptKeystore, parseKeystore } from "./keystore.js";
import { type PasswordPrompt, readPassword } from "./password.js";
import { accountOf, parsePrivateKey } from "./secret-key.js";

/**
 * The node's signing key: from `SHARD_NODE_PRIVATE_KEY`, or from an encrypted keystore file (Web3
 * Secret Storage v3, as geth, ethers and most wallets write it) whose password comes from
 * `SHARD_NODE_KEYSTORE_PASSWORD` or a hidden prompt. The key is never printed: errors do not
 * contain it, and `SecretKey` hides it from `JSON.stringify` and `util.inspect`. The parts:
 * secret-key.ts (the key itself), keystore.ts (encrypted files), password.ts (the password).
 */

export const PRIVATE_KEY_ENV = "SHARD_NODE_PRIVATE_KEY";

export { DEFAULT_SCRYPT_N, type KeystoreV3, decryptKeystore, encryptKeystore, writeKeystore } from "./keystore.js";
export {
  KEYSTORE_PASSWORD_ENV,
  type PasswordPrompt,
  type ReadPasswordOptions,
  promptHidden,
  readPassword,
} from "./password.js";
export { SecretKey, accountOf, generateKey, parsePrivateKey } from "./secret-key.js";

/* THE NODE'S ACCOUNT */

export interface LoadAccountOptions {
  /** Keystore file (the config's `keystore`), used when `SHARD_NODE_PRIVATE_KEY` is not set. */
  keystore?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  interactive?: boolean | undefined;
  prompt?: PasswordPrompt | undefined;
}

export type LoadAccountErrorType = KeyError;

/**
 * The node's signing account: `SHARD_NODE_PRIVATE_KEY` if set, else the keystore (decrypted with
 * `SHARD_NODE_KEYSTORE_PASSWORD` or a prompt). Throws `KeyError` when there is no key, it is
 * malformed, or the password is wrong or cannot be asked for.
 *
 * @example
 * const account = await loadAccount({ keystore: config.keystore })
 * const client = createWalletClient({ account, transport: http(config.rpcUrl) })
 */
export async function loadAccount(options: LoadAccountOptions = {}): Promise<PrivateKeyAccount> {
  const env = options.env ?? process.env;
  const fromEnv = env[PRIVATE_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return accountOf(parsePrivateKey(fromEnv, PRIVATE_KEY_ENV));
  if (options.keystore === undefined) throw noKey();
  const text = await readKeystoreFile(options.keystore);
  const purpose = `the keystore ${options.keystore}`;
  const password = await readPassword({ ...options, env, purpose });
  return accountOf(await decryptKeystore(text, password, purpose));
}

/**
 * The node's address without decrypting anything where possible: derived from
 * `SHARD_NODE_PRIVATE_KEY`, or read from the keystore's (unencrypted) `address` field; a keystore
 * without one is decrypted. For read-only commands such as `status`.
 */
export async function loadAddress(options: LoadAccountOptions = {}): Promise<Address> {
  const env = options.env ?? process.env;
  const fromEnv = env[PRIVATE_KEY_ENV];
  if (fromEnv !== undefined && fromEnv !== "") return accountOf(parsePrivateKey(fromEnv, PRIVATE_KEY_ENV)).address;
  if (options.keystore === undefined) throw noKey();
  const text = await readKeystoreFile(options.keystore);
  const address = parseKeystore(text, `the keystore ${options.keystore}`).address;
  return address ?? (await loadAccount(options)).address;
}

const noKey = () =>
  new KeyError("No signing key.", {
    details: `set ${PRIVATE_KEY_ENV}, or a keystore (\`keystore\` in the config, --keystore); \`shard-node init --new-key\` creates one`,
  });

async function readKeystoreFile(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new KeyError(
      code === "ENOENT" ? `The keystore ${file} does not exist.` : `Cannot read the keystore ${file}.`,
      { cause: error },
    );
  }
}
