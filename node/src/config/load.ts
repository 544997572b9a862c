import { readFile } from "node:fs/promises";
import path from "node:path";

import type { z } from "zod";

import { DEFAULTS } from "./defaults.js";
import { type ConfigIssue, type ConfigSource, ConfigError } from "./errors.js";
import { type ChainConfig, type NodeConfig, chainConfigSchema, nodeConfigSchema } from "./schema.js";

/** The config file read from the working directory when `--config` is not given. */
export const DEFAULT_CONFIG_FILE = DEFAULTS.configFile;

/** How a field is written as text (environment, flags) and turned into its JSON value. */
type FieldKind = "string" | "int" | "list" | "path";

interface FieldSpec {
  env: string;
  flag: string;
  /** The commander option name (camelCase of the flag). */
  option: string;
  kind: FieldKind;
}

/**
 * Every configurable field by dotted path, with its environment variable and flag. Precedence,
 * lowest to highest: config file, environment, flags.
 */
export const CONFIG_FIELDS = {
  rpcUrl: { env: "SHARD_NODE_RPC_URL", flag: "--rpc-url", option: "rpcUrl", kind: "string" },
  chainId: { env: "SHARD_NODE_CHAIN_ID", flag: "--chain-id", option: "chainId", kind: "int" },
  deployment: { env: "SHARD_NODE_DEPLOYMENT", flag: "--deployment", option: "deployment", kind: "path" },
  modelId: { env: "SHARD_NODE_MODEL_ID", flag: "--model", option: "model", kind: "string" },
  shard: { env: "SHARD_NODE_SHARD", flag: "--shard", option: "shard", kind: "int" },
  lane: { env: "SHARD_NODE_LANE", flag: "--lane", option: "lane", kind: "int" },
  dataDir: { env: "SHARD_NODE_DATA_DIR", flag: "--data-dir", option: "dataDir", kind: "path" },
  backend: { env: "SHARD_NODE_BACKEND", flag: "--backend", option: "backend", kind: "string" },
  listen: { env: "SHARD_NODE_LISTEN", flag: "--listen", option: "listen", kind: "list" },
  "peers.prev": { env: "SHARD_NODE_PEER_PREV", flag: "--peer-prev", option: "peerPrev", kind: "string" },
  "peers.next": { env: "SHARD_NODE_PEER_NEXT", flag: "--peer-next", option: "peerNext", kind: "string" },
  "ipfs.kuboUrl": { env: "SHARD_NODE_KUBO_URL", flag: "--kubo-url", option: "kuboUrl", kind: "string" },
  "ipfs.peers": { env: "SHARD_NODE_IPFS_PEERS", flag: "--ipfs-peer", option: "ipfsPeer", kind: "list" },
  keystore: { env: "SHARD_NODE_KEYSTORE", flag: "--keystore", option: "keystore", kind: "path" },
  rounds: { env: "SHARD_NODE_ROUNDS", flag: "--rounds", option: "rounds", kind: "int" },
  confirmations: { env: "SHARD_NODE_CONFIRMATIONS", flag: "--confirmations", option: "confirmations", kind: "int" },
} as const satisfies Record<string, FieldSpec>;

export type ConfigPath = keyof typeof CONFIG_FIELDS;

/** Values given on the command line, by config path, as typed (`listen` may repeat). */
export type ConfigFlags = Partial<Record<ConfigPath, string | readonly string[] | undefined>>;

/** The nested objects of the config: their keys are separate fields. */
const NESTED = ["peers", "ipfs"] as const;

export interface LoadConfigOptions {
  /** Config file (`--config`); it must exist. Default: `shard-node.config.json` in `cwd`, if there. */
  file?: string | undefined;
  /** Values of command-line flags (highest precedence). */
  flags?: ConfigFlags | undefined;
  /** Environment to read `SHARD_NODE_*` from (default `process.env`). */
  env?: NodeJS.ProcessEnv | undefined;
  /** Working directory for relative paths of flags and environment (default `process.cwd()`). */
  cwd?: string | undefined;
}

export type LoadConfigErrorType = ConfigError;

/** A value and where it came from; `base` is the folder its relative paths are relative to. */
interface Entry {
  value: unknown;
  source: ConfigSource;
  base: string;
}

/** The config flags among a command's options (commander names: `rpcUrl`, `model`, `peerPrev`, ...). */
export function configFlagsFrom(options: Record<string, unknown>): ConfigFlags {
  const flags: ConfigFlags = {};
  for (const [key, spec] of Object.entries(CONFIG_FIELDS) as [ConfigPath, FieldSpec][]) {
    const value = options[spec.option];
    if (typeof value === "string" || (Array.isArray(value) && value.every((v) => typeof v === "string"))) {
      flags[key] = value;
    }
  }
  return flags;
}

/**
 * Loads the node's configuration from the config file, the environment and flags (each overriding
 * the one before), validates it, and resolves relative paths (those from the file against the
 * file's folder, the others against `cwd`). Throws `ConfigError` listing every bad field with
 * its source; unknown keys in the file are errors.
 *
 * @example
 * const config = await loadConfig({ file: options.config, flags: configFlagsFrom(options) })
 * console.log(config.rpcUrl, config.modelId, config.shard)
 */
export async function loadConfig(options: LoadConfigOptions = {}): Promise<NodeConfig> {
  return loadWith(nodeConfigSchema, options);
}

/**
 * `loadConfig` for the commands that do not train a shard (`model`, `spec`, `faucet`; a holder's `holdings`, `transfer`, and `status` / `claim` without a shard): the same
 * sources and checks, but `modelId` and `shard` may be missing.
 */
export async function loadChainConfig(options: LoadConfigOptions = {}): Promise<ChainConfig> {
  return loadWith(chainConfigSchema, options);
}

async function loadWith<config extends ChainConfig>(
  schema: z.ZodType<config>,
  options: LoadConfigOptions,
): Promise<config> {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const env = options.env ?? process.env;
  const file = await readConfigFile(options.file, cwd);
  const entries = new Map<string, Entry>();
  if (file !== undefined) {
    const base = path.dirname(file.path);
    for (const [key, value] of flattenFile(file.json)) {
      set(entries, key, { value, source: { kind: "file", path: file.display }, base });
    }
  }
  for (const [key, spec] of Object.entries(CONFIG_FIELDS) as [ConfigPath, FieldSpec][]) {
    const text = env[spec.env];
    if (text === undefined || text === "") continue;
    set(entries, key, { value: fromText(spec.kind, text), source: { kind: "env", name: spec.env }, base: cwd });
  }
  for (const [key, value] of flagValues(options.flags ?? {})) {
    set(entries, key, { value, source: { kind: "flag", name: CONFIG_FIELDS[key].flag }, base: cwd });
  }
  return validateEntries(entries, file === undefined ? cwd : path.dirname(file.path), schema);
}

/** The JSON values of the given flags. */
function flagValues(flags: ConfigFlags): [ConfigPath, unknown][] {
  const values: [ConfigPath, unknown][] = [];
  for (const [key, given] of Object.entries(flags) as [ConfigPath, string | readonly string[] | undefined][]) {
    const spec = CONFIG_FIELDS[key] as FieldSpec | undefined;
    if (given === undefined || spec === undefined) continue;
    values.push([key, typeof given === "string" ? fromText(spec.kind, given) : [...given]]);
  }
  return values;
}

/**
 * The config file `init` writes from flags: validated as a complete config on its own (errors
 * name the flags), with relative paths rewritten relative to the file's folder `dir`.
 */
export function configFileFromFlags(
  flags: ConfigFlags,
  options: { cwd: string; dir: string; schema?: ConfigSchema },
): Record<string, unknown> {
  const entries = new Map<string, Entry>();
  const values = flagValues(flags);
  for (const [key, value] of values) {
    set(entries, key, { value, source: { kind: "flag", name: CONFIG_FIELDS[key].flag }, base: options.cwd });
  }
  validateEntries<ChainConfig>(entries, options.dir, (options.schema ?? nodeConfigSchema) as z.ZodType<ChainConfig>);
  const json: Record<string, unknown> = {};
  for (const [key, value] of values) {
    const spec: FieldSpec = CONFIG_FIELDS[key];
    let written = value;
    if (spec.kind === "path" && typeof value === "string") {
      written = path.relative(options.dir, path.resolve(options.cwd, value)) || ".";
    }
    const [head, inner] = splitKey(key);
    if (inner === undefined) json[head] = written;
    else ((json[head] ??= {}) as Record<string, unknown>)[inner] = written;
  }
  return json;
}

/**
 * Validates a config file's content on its own (what `init` writes): the same checks as
 * `loadConfig`, with `display` naming the file in errors.
 */
export function parseConfigFile(
  json: unknown,
  display: string,
  base: string,
  schema: ConfigSchema = nodeConfigSchema,
): ChainConfig {
  const entries = new Map<string, Entry>();
  for (const [key, value] of flattenFile(json)) {
    set(entries, key, { value, source: { kind: "file", path: display }, base });
  }
  return validateEntries<ChainConfig>(entries, base, schema as z.ZodType<ChainConfig>);
}

/** The schemas a config file is checked against: a node's (model and shard required) or the chain-level one. */
export type ConfigSchema = typeof nodeConfigSchema | typeof chainConfigSchema;

async function readConfigFile(
  given: string | undefined,
  cwd: string,
): Promise<{ path: string; display: string; json: unknown } | undefined> {
  const file = path.resolve(cwd, given ?? DEFAULT_CONFIG_FILE);
  const display = given ?? `./${DEFAULT_CONFIG_FILE}`;
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (given === undefined && code === "ENOENT") return undefined; // the default file is optional
    throw new ConfigError(
      code === "ENOENT" ? `Config file ${display} does not exist.` : `Config file ${display} cannot be read.`,
      [],
      {
        cause: error,
        details: code === "ENOENT" ? "create one with `shard-node init`, or drop --config" : (code ?? undefined),
      },
    );
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`Config file ${display} is not valid JSON.`, [], {
      cause: error,
      details: error instanceof Error ? error.message : undefined,
    });
  }
  if (json === null || typeof json !== "object" || Array.isArray(json)) {
    throw new ConfigError(`Config file ${display} must hold a JSON object.`);
  }
  return { path: file, display, json };
}

/** `[path, value]` pairs of a file's object; the nested objects' keys become `peers.prev`, ... */
function flattenFile(json: unknown): [string, unknown][] {
  if (json === null || typeof json !== "object" || Array.isArray(json)) return [["", json]];
  const pairs: [string, unknown][] = [];
  for (const [key, value] of Object.entries(json)) {
    const nested = (NESTED as readonly string[]).includes(key);
    if (nested && value !== null && typeof value === "object" && !Array.isArray(value)) {
      for (const [inner, innerValue] of Object.entries(value)) pairs.push([`${key}.${inner}`, innerValue]);
      if (Object.keys(value).length === 0) pairs.push([key, {}]);
    } else {
      pairs.push([key, value]);
    }
  }
  return pairs;
}

/** Sets `key`, replacing whatever a lower layer said about it, its parent or its children. */
function set(entries: Map<string, Entry>, key: string, entry: Entry) {
  for (const existing of [...entries.keys()]) {
    if (existing === key || existing.startsWith(`${key}.`) || key.startsWith(`${existing}.`)) entries.delete(existing);
  }
  entries.set(key, entry);
}

/** Text from the environment or a flag, as the JSON value the schema expects. */
function fromText(kind: FieldKind, text: string): unknown {
  switch (kind) {
    case "int":
      // Only clean decimals become numbers; anything else stays text and fails validation.
      return /^-?[0-9]+$/.test(text.trim()) ? Number(text.trim()) : text;
    case "list":
      return text
        .split(",")
        .map((s) => s.trim())
        .filter((s) => s !== "");
    case "string":
    case "path":
      return text;
  }
}

function validateEntries<config extends ChainConfig = NodeConfig>(
  entries: Map<string, Entry>,
  defaultBase: string,
  schema: z.ZodType<config> = nodeConfigSchema as unknown as z.ZodType<config>,
): config {
  const input: Record<string, unknown> = {};
  for (const [key, { value }] of entries) {
    if (key === "") continue;
    const [head, inner] = splitKey(key);
    if (inner === undefined) {
      input[head] = value;
    } else {
      const object = (input[head] ??= {}) as Record<string, unknown>;
      object[inner] = value;
    }
  }
  const result = schema.safeParse(input);
  if (!result.success) {
    const issues = result.error.issues.flatMap((issue) => toConfigIssues(issue, entries, input));
    throw new ConfigError(`Invalid configuration: ${issues.length} problem${issues.length === 1 ? "" : "s"}.`, issues);
  }
  const config = result.data;
  const baseOf = (key: ConfigPath) => entries.get(key)?.base ?? defaultBase;
  config.dataDir = path.resolve(baseOf("dataDir"), config.dataDir);
  if (config.deployment !== undefined) config.deployment = path.resolve(baseOf("deployment"), config.deployment);
  if (config.keystore !== undefined) config.keystore = path.resolve(baseOf("keystore"), config.keystore);
  return config;
}

const splitKey = (key: string): [string, string | undefined] => {
  const dot = key.indexOf(".");
  return dot < 0 ? [key, undefined] : [key.slice(0, dot), key.slice(dot + 1)];
};

/** A zod issue as config issues: the field's path, its source (or how to set it), a message. */
function toConfigIssues(issue: z.core.$ZodIssue, entries: Map<string, Entry>, input: Record<string, unknown>) {
  const segments = issue.path.map(String);
  if (issue.code === "unrecognized_keys") {
    const parent = segments.join(".");
    const known = knownKeys(parent);
    return issue.keys.map((key): ConfigIssue => {
      const full = parent === "" ? key : `${parent}.${key}`;
      const suggestion = closest(key, known);
      return {
        path: full,
        source: sourceOf(full, entries),
        message: `unknown key${suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`}`,
      };
    });
  }
  const full = segments.join(".");
  const missing = valueAt(input, segments) === undefined;
  if (missing) {
    const spec = CONFIG_FIELDS[full as ConfigPath] as FieldSpec | undefined;
    const hint =
      spec === undefined
        ? "set it in the config file"
        : `set "${full}" in the config file, ${spec.env} in the environment, or ${spec.flag}`;
    return [{ path: full, source: { kind: "missing", hint }, message: "is required" } satisfies ConfigIssue];
  }
  return [{ path: full, source: sourceOf(full, entries), message: issue.message } satisfies ConfigIssue];
}

/** The source of `key` or of its closest ancestor (`listen.2` comes from `listen`). */
function sourceOf(key: string, entries: Map<string, Entry>): ConfigSource {
  for (let k = key; k !== ""; k = k.includes(".") ? k.slice(0, k.lastIndexOf(".")) : "") {
    const entry = entries.get(k);
    if (entry !== undefined) return entry.source;
  }
  // An unknown nested key, or a nested object given by several fields: any field under it.
  for (const [k, entry] of entries) if (k.startsWith(`${key}.`)) return entry.source;
  return { kind: "default" };
}

function valueAt(input: unknown, segments: string[]): unknown {
  let value = input;
  for (const segment of segments) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<string, unknown>)[segment];
  }
  return value;
}

function knownKeys(parent: string): string[] {
  const shape = nodeConfigSchema.shape;
  if (parent === "") return Object.keys(shape);
  if (parent === "peers") return ["prev", "next"];
  if (parent === "ipfs") return ["kuboUrl", "peers"];
  return [];
}

/** The known key `key` most likely is a typo of (case-insensitive, edit distance ≤ 2). */
function closest(key: string, known: string[]): string | undefined {
  let best: { key: string; distance: number } | undefined;
  for (const candidate of known) {
    const distance = editDistance(key.toLowerCase(), candidate.toLowerCase());
    if (distance <= 2 && (best === undefined || distance < best.distance)) best = { key: candidate, distance };
  }
  return best?.key;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}
