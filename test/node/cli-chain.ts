import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";

import { network } from "hardhat";
import { defineDeployment } from "shard-protocol/sdk";

import { deployProtocol } from "../../scripts/lib/protocol.js";
import { ROOT } from "./cli-run.js";

/**
 * The chain of the CLI tests: Hardhat's in-process chain behind a JSON-RPC server (what a
 * `shard-node` child process talks to), with the protocol deployed, and folders holding its
 * deployment file as `npm run deploy` writes it.
 */

export interface CliChain {
  /** The server's URL, for `--rpc-url` and configs. */
  rpcUrl: string;
  /** This process's own connection to the server (viem clients, network helpers). */
  connection: Awaited<ReturnType<typeof network.create>>;
  protocol: Awaited<ReturnType<typeof deployProtocol>>;
  /** The deployment, for the SDK's actions in the tests. */
  deployment: ReturnType<typeof defineDeployment>;
  /** Closes the connection, then the server. */
  close(): Promise<void>;
}

/** Starts the server and deploys the protocol on it (the CLI must be built: `npm run build`). */
export async function startCliChain(): Promise<CliChain> {
  assert.ok(existsSync(path.join(ROOT, "node/dist/cli.js")), "build the CLI first: npm run build");
  const server = await network.createServer("default", "127.0.0.1", 0);
  const { port } = await server.listen();
  const rpcUrl = `http://127.0.0.1:${port}`;
  const connection = await network.create({ network: "localhost", override: { url: rpcUrl } });
  const protocol = await deployProtocol(connection.viem);
  return {
    rpcUrl,
    connection,
    protocol,
    deployment: defineDeployment({ chainId: 31337, contracts: protocol.addresses }),
    close: async () => {
      await connection.close();
      await server.close();
    },
  };
}

/**
 * A fresh folder (named after `prefix`) with `deployments/31337.json` for `chain`'s protocol, and
 * `extra` fields in that file (`testTokens`, as `npm run deploy` writes them on 31337).
 */
export async function deploymentFolder(
  prefix: string,
  chain: CliChain,
  extra: Record<string, unknown> = {},
): Promise<string> {
  const cwd = await mkdtemp(path.join(tmpdir(), prefix));
  await mkdir(path.join(cwd, "deployments"));
  await writeFile(
    path.join(cwd, "deployments", "31337.json"),
    JSON.stringify({ chainId: 31337, blockNumber: "0", contracts: chain.protocol.addresses, ...extra }),
  );
  return cwd;
}
