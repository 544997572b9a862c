import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";

import { BIN } from "../node/cli-run.js";

/**
 * A long-running `shard-node <command> --json` child process (on this process's Node 22): its JSON
 * events (stderr lines that are JSON objects) as they come, its stdout, and its exit.
 */
export class CliProcess {
  readonly events: Record<string, any>[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly child: ChildProcess;
  stdout = "";
  stderr = "";
  private waiters: { test: (e: Record<string, any>) => boolean; resolve: (e: Record<string, any>) => void }[] = [];

  constructor(
    readonly name: string,
    args: string[],
    cwd: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [BIN, ...args, "--json"], {
      cwd,
      env: { PATH: process.env.PATH ?? "", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buffer = "";
    this.child.stdout!.on("data", (d: Buffer) => (this.stdout += d.toString()));
    this.child.stderr!.on("data", (d: Buffer) => {
      this.stderr += d.toString();
      buffer += d.toString();
      let i: number;
      while ((i = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (!line.startsWith("{")) continue;
        let e: Record<string, any>;
        try {
          e = JSON.parse(line) as Record<string, any>;
        } catch {
          continue;
        }
        this.events.push(e);
        this.waiters = this.waiters.filter((w) => (w.test(e) ? (w.resolve(e), false) : true));
      }
    });
    this.exited = new Promise((resolve) => this.child.on("close", (code, signal) => resolve({ code, signal })));
  }

  /** The first event that passes `test` (seen already, or to come); rejects if the process exits first. */
  waitFor(test: (e: Record<string, any>) => boolean, what = "the event"): Promise<Record<string, any>> {
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.waiters.push({ test, resolve });
      void this.exited.then(({ code, signal }) =>
        reject(new Error(`${this.name} exited (${code ?? signal}) before ${what}\n${this.stderr.slice(-3000)}`)),
      );
    });
  }

  /** Asserts a clean exit and returns the one JSON object printed on stdout. */
  async ok(): Promise<Record<string, any>> {
    const { code, signal } = await this.exited;
    assert.equal(code, 0, `${this.name}: exit ${code ?? signal}\n${this.stderr.slice(-4000)}`);
    return JSON.parse(this.stdout.trim()) as Record<string, any>;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
  }
}
