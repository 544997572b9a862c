import { NodeError, type NodeErrorParameters } from "../errors.js";

/** Where a configuration value came from. */
export type ConfigSource =
  | { kind: "file"; path: string }
  | { kind: "env"; name: string }
  | { kind: "flag"; name: string }
  | { kind: "default" }
  | { kind: "missing"; hint: string };

/** One bad field of the configuration: its dotted path, where it came from and what is wrong. */
export interface ConfigIssue {
  path: string;
  source: ConfigSource;
  message: string;
}

/** `file ./shard-node.config.json`, `env SHARD_NODE_CHAIN_ID`, `flag --chain-id`, ... */
export function describeSource(source: ConfigSource): string {
  switch (source.kind) {
    case "file":
      return `file ${source.path}`;
    case "env":
      return `env ${source.name}`;
    case "flag":
      return `flag ${source.name}`;
    case "default":
      return "default";
    case "missing":
      return `not set: ${source.hint}`;
  }
}

/**
 * The node's configuration is invalid. `issues` lists every bad field (not just the first) with
 * its path and source, so one run shows everything to fix.
 */
export class ConfigError extends NodeError {
  override name = "ConfigError";
  readonly issues: ConfigIssue[];

  constructor(shortMessage: string, issues: ConfigIssue[] = [], parameters: NodeErrorParameters = {}) {
    const lines = issues.map((i) => `- ${i.path || "(config)"} (${describeSource(i.source)}): ${i.message}`);
    super(shortMessage, {
      ...parameters,
      details: [...lines, ...(parameters.details === undefined ? [] : [parameters.details])].join("\n") || undefined,
    });
    this.issues = issues;
  }
}

/**
 * The signing key could not be loaded: malformed, missing, a keystore that does not decrypt, or no
 * way to ask for its password. Messages never contain the key or the password.
 */
export class KeyError extends NodeError {
  override name = "KeyError";
}
