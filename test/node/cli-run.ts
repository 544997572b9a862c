import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** Running the built `shard-node` CLI as a child process, for the CLI tests. */

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const BIN = path.join(ROOT, "node", "bin", "shard-node.js");

export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/**
 * Runs the built CLI (`node/bin/shard-node.js`, on Node 22 like this process unless `node` names
 * another binary; `bin` another copy of the bin) in `cwd` with only `env` (and PATH) in its
 * environment; stdin is not a terminal.
 */
export function cli(
  args: string[],
  options: { cwd: string; env?: Record<string, string>; node?: string | undefined; bin?: string },
): Promise<Run> {
  const started = Date.now();
  const child = spawn(options.node ?? process.execPath, [options.bin ?? BIN, ...args], {
    cwd: options.cwd,
    env: { PATH: process.env.PATH ?? "", ...options.env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdin.end();
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr, ms: Date.now() - started }));
  });
}

/** The one JSON object a `--json` run printed on stdout (and nothing else). */
export function jsonOf(run: Run): Record<string, any> {
  const lines = run.stdout.split("\n").filter((l) => l !== "");
  assert.equal(lines.length, 1, `one line of JSON on stdout, got:\n${run.stdout}\nstderr:\n${run.stderr}`);
  return JSON.parse(lines[0]!) as Record<string, any>;
}

/** Asserts exit code 0, showing the run's output otherwise. */
export const ok = (run: Run) =>
  assert.equal(run.code, 0, `exit ${run.code}\nstdout:\n${run.stdout}\nstderr:\n${run.stderr}`);
