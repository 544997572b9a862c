import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root and the `shard-node` entry point the demo spawns. */
export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const SHARD_NODE_BIN = path.join(ROOT, "node", "bin", "shard-node.js");

/** One JSON event a `shard-node … --json` process wrote on stderr. */
export type NodeEvent = Record<string, any>;

/** Raised when a child process exits with a non-zero code (or a signal) where success was expected. */
export class NodeProcessError extends Error {
  override name = "NodeProcessError";
  constructor(
    readonly label: string,
    readonly code: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly stderrTail: string,
  ) {
    super(
      `${label} exited with ${signal ? `signal ${signal}` : `code ${code}`}` +
        (stderrTail ? `\n--- last lines of its stderr ---\n${stderrTail}` : ""),
    );
  }
}

export interface NodeProcessOptions {
  /** A short name for progress lines and errors, e.g. `trainer 0`. */
  label: string;
  /** Arguments after `shard-node` (the command first). `--json` is added. */
  args: string[];
  cwd: string;
  /** Environment of the child (on top of PATH and HOME only; nothing else leaks in). */
  env: Record<string, string>;
  /** Called with every JSON event as it arrives. */
  onEvent?: ((e: NodeEvent) => void) | undefined;
}

/** At most this much of a child's stdout/stderr is kept (the tail is what explains a failure). */
const MAX_KEPT = 256 * 1024;

const keepTail = (text: string) => (text.length > MAX_KEPT ? text.slice(-MAX_KEPT) : text);

/**
 * A running `shard-node <command> --json` OS process: its JSON events (JSON lines on stderr) as
 * they come, its result (one JSON object on stdout), and its exit.
 */
export class NodeProcess {
  readonly label: string;
  readonly events: NodeEvent[] = [];
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout = "";
  stderr = "";
  private waiters: { test: (e: NodeEvent) => boolean; resolve: (e: NodeEvent) => void }[] = [];
  private closed = false;

  constructor(options: NodeProcessOptions) {
    this.label = options.label;
    this.child = spawn(process.execPath, [SHARD_NODE_BIN, ...options.args, "--json"], {
      cwd: options.cwd,
      env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? options.cwd, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let buffer = "";
    this.child.stdout!.on("data", (d: Buffer) => (this.stdout = keepTail(this.stdout + d.toString())));
    this.child.stderr!.on("data", (d: Buffer) => {
      const text = d.toString();
      this.stderr = keepTail(this.stderr + text);
      buffer += text;
      let i: number;
      while ((i = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, i);
        buffer = buffer.slice(i + 1);
        if (!line.startsWith("{")) continue;
        let e: NodeEvent;
        try {
          e = JSON.parse(line) as NodeEvent;
        } catch {
          continue; // a log line that happens to start with "{"
        }
        this.events.push(e);
        options.onEvent?.(e);
        this.waiters = this.waiters.filter((w) => (w.test(e) ? (w.resolve(e), false) : true));
      }
    });
    this.exited = new Promise((resolve) =>
      this.child.on("close", (code, signal) => {
        this.closed = true;
        resolve({ code, signal });
      }),
    );
  }

  /** True once the process has exited. */
  get done(): boolean {
    return this.closed;
  }

  /** The last `lines` lines of stderr that are not JSON events (the error report, if any). */
  tail(lines = 20): string {
    return this.stderr
      .split("\n")
      .filter((l) => l.trim() !== "" && !l.startsWith('{"event":'))
      .slice(-lines)
      .join("\n");
  }

  /** The first event (seen or to come) that passes `test`; rejects if the process exits first. */
  waitFor(test: (e: NodeEvent) => boolean): Promise<NodeEvent> {
    const seen = this.events.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      this.waiters.push({ test, resolve });
      void this.exited.then(({ code, signal }) => reject(new NodeProcessError(this.label, code, signal, this.tail())));
    });
  }

  /** Waits for a zero exit and returns the JSON result on stdout; throws `NodeProcessError` otherwise. */
  async result<T = Record<string, any>>(): Promise<T> {
    const { code, signal } = await this.exited;
    if (code !== 0) throw new NodeProcessError(this.label, code, signal, this.tail());
    const text = this.stdout.trim();
    try {
      return JSON.parse(text.slice(text.lastIndexOf("\n") + 1)) as T;
    } catch {
      throw new NodeProcessError(this.label, code, signal, `stdout is not one JSON object: ${text.slice(-500)}`);
    }
  }

  /** SIGTERM, then SIGKILL after `graceMs` if it is still running. Resolves once it has exited. */
  async stop(graceMs = 3_000): Promise<void> {
    if (this.closed) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => !this.closed && this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

/**
 * Every child process of a run, so that all of them are stopped however the run ends (success,
 * failure, Ctrl-C). `stopAll` is idempotent.
 */
export class ProcessGroup {
  private readonly processes: NodeProcess[] = [];

  /** `onStart` is told of every process started (label and pid). */
  constructor(private readonly onStart?: ((label: string, pid: number) => void) | undefined) {}

  /** Spawns `shard-node` with `options` and tracks it. */
  start(options: NodeProcessOptions): NodeProcess {
    const p = new NodeProcess(options);
    this.processes.push(p);
    if (p.child.pid !== undefined) this.onStart?.(options.label, p.child.pid);
    return p;
  }

  /** Runs a one-shot command to completion and returns its JSON result. */
  async run<T = Record<string, any>>(options: NodeProcessOptions): Promise<T> {
    return this.start(options).result<T>();
  }

  /** Processes still running. */
  get running(): NodeProcess[] {
    return this.processes.filter((p) => !p.done);
  }

  /** Stops every process still running (SIGTERM, then SIGKILL after `graceMs`). */
  async stopAll(graceMs = 3_000): Promise<void> {
    await Promise.all(this.processes.map((p) => p.stop(graceMs)));
  }

  /** Synchronous last resort (from an `exit` handler): SIGKILL whatever still runs. */
  killAllNow(): void {
    for (const p of this.processes) if (!p.done) p.child.kill("SIGKILL");
  }
}
