#!/usr/bin/env node
// The `shard-node` command. The TypeScript sources in node/src are compiled to node/dist by
// `tsc -b` (run on install by `prepare`).
//
// shard-node needs Node.js 22 or later (libp2p's HTTP stack and Helia use its APIs). Started by
// an older Node, it runs itself again on the Node 22 of its `node` dependency (an npm package that
// ships the binary), passing the arguments, standard streams, exit code and SIGTERM/SIGHUP on; a
// Ctrl-C reaches both processes from the terminal. Without that binary it says what to do.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const REQUIRED_MAJOR = 22;
const major = Number(process.versions.node.split(".")[0]);

/** The Node 22 binary of the `node` npm package, where it is installed. */
function bundledNode() {
  try {
    const require = createRequire(import.meta.url);
    const bin = join(
      dirname(require.resolve("node/package.json")),
      "bin",
      process.platform === "win32" ? "node.exe" : "node",
    );
    return existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

if (major >= REQUIRED_MAJOR) {
  await import("../dist/cli.js");
} else {
  const node = process.env.SHARD_NODE_REEXEC === "1" ? undefined : bundledNode();
  if (node === undefined) {
    process.stderr.write(
      `error: shard-node needs Node.js ${REQUIRED_MAJOR} or later; this is Node.js ${process.versions.node}.\n` +
        `Install Node.js ${REQUIRED_MAJOR} (https://nodejs.org), or reinstall shard-node with npm so that its ` +
        `"node" dependency (a Node ${REQUIRED_MAJOR} binary) is installed, then run the command again.\n`,
    );
    process.exit(1);
  }
  const child = spawn(node, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: "inherit",
    env: { ...process.env, SHARD_NODE_REEXEC: "1" },
  });
  for (const signal of ["SIGTERM", "SIGHUP"]) process.on(signal, () => child.kill(signal));
  // The terminal sends Ctrl-C to the child too; this process only waits for it to finish.
  process.on("SIGINT", () => undefined);
  child.on("error", (error) => {
    process.stderr.write(`error: could not start ${node}: ${error.message}\n`);
    process.exit(1);
  });
  child.on("exit", (code, signal) => {
    if (signal !== null) {
      process.removeAllListeners(signal);
      process.kill(process.pid, signal);
    } else {
      process.exit(code ?? 1);
    }
  });
}
