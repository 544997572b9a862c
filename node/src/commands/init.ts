import { access, mkdir, writeFile } from "node:fs/promises";
import path from "node:path";

import type { Address } from "viem";
import { z } from "zod";

import { ConfigError } from "../config/errors.js";
import { accountOf, encryptKeystore, generateKey, readPassword, writeKeystore } from "../config/keys.js";
import { configFileFromFlags, configFlagsFrom, DEFAULT_CONFIG_FILE, parseConfigFile } from "../config/load.js";
import { chainConfigSchema, configOptionsSchema, globalOptionsSchema, nodeConfigSchema } from "../config/schema.js";
import type { Output } from "../output.js";
import { parseOptions } from "./common.js";

export const initOptionsSchema = globalOptionsSchema.extend(configOptionsSchema.shape).extend({
  /** Overwrite an existing config file. */
  force: z.boolean().default(false),
  /** Create a fresh key, encrypted in a keystore under the data folder (or at --keystore). */
  newKey: z.boolean().default(false),
});

export type InitOptions = z.input<typeof initOptionsSchema>;

export interface InitResult {
  /** The config file written. */
  file: string;
  /** What it holds. */
  config: Record<string, unknown>;
  /** With --new-key: the new key's address and its keystore (the key itself is never shown). */
  address: Address | null;
  keystore: string | null;
}

/**
 * Writes a config file from the flags, validated as a complete configuration (refuses to replace
 * an existing file without `--force`). With `--new-key`, also creates a key and stores it
 * encrypted (password from `SHARD_NODE_KEYSTORE_PASSWORD` or a prompt) in a keystore file only its
 * owner can read (0600); only the address is shown.
 *
 * @example
 * await init({ rpcUrl: "http://127.0.0.1:8545", chainId: "31337", model: "1", shard: "0", newKey: true }, out)
 */
export async function init(options: InitOptions, out: Output): Promise<InitResult> {
  const { force, newKey, ...rest } = parseOptions("init", initOptionsSchema, options);
  const cwd = process.cwd();
  const display = rest.config ?? DEFAULT_CONFIG_FILE;
  const file = path.resolve(cwd, display);
  const dir = path.dirname(file);
  if (!force && (await exists(file))) {
    throw new ConfigError(`${display} already exists.`, [], { details: "pass --force to replace it" });
  }
  // With --shard: a node's config (model and shard required); without: a chain-level one, for a
  // registrant or a holder (`model`, `spec`, `faucet`, `holdings`, `transfer`, `claim`).
  const schema = rest.shard === undefined ? chainConfigSchema : nodeConfigSchema;
  const json = configFileFromFlags(configFlagsFrom(rest), { cwd, dir, schema });

  let address: Address | null = null;
  let keystore: string | null = null;
  if (newKey) {
    const config = parseConfigFile(json, display, dir, schema);
    const key = generateKey();
    address = accountOf(key).address;
    keystore = config.keystore ?? path.join(config.dataDir, "keystore", `${address}.json`);
    json.keystore ??= path.relative(dir, keystore);
    const password = await readPassword({ purpose: "the new keystore", confirm: true });
    out.log("encrypting the new key…");
    await writeKeystore(keystore, await encryptKeystore(key, password));
  }
  parseConfigFile(json, display, dir, schema); // what is written loads
  await mkdir(dir, { recursive: true });
  await writeFile(file, `${JSON.stringify(json, null, 2)}\n`, { flag: force ? "w" : "wx" });

  out.print(`wrote ${display}`);
  if (address !== null) {
    out.print(`new key ${address}`);
    out.print(`keystore ${keystore} (mode 0600; keep the password: it cannot be recovered)`);
  }
  return { file, config: json, address, keystore };
}

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );
