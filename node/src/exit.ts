import { ContractRevertError, InvalidParameterError, RpcUnavailableError, ShardBaseError } from "shard-protocol/sdk";

import { ConfigError } from "./config/errors.js";
import { NodeError, type NodeErrorParameters } from "./errors.js";

/**
 * Exit codes of `shard-node`: 0 done; 1 fatal (bad input, a contract said no: retrying the same
 * thing will not help); 2 the command line itself is wrong (an unknown flag, a missing argument,
 * a flag's value that is invalid: `--rounds abc` as much as `--price -1`); 75 (EX_TEMPFAIL) retryable (an RPC or
 * IPFS endpoint unreachable, a timeout): a supervisor may simply run it again later.
 */
export const ExitCode = { Ok: 0, Fatal: 1, Usage: 2, Retryable: 75 } as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** The command line is wrong: unknown flag, missing or malformed argument. Exit code 2. */
export class UsageError extends NodeError {
  override name = "UsageError";
  readonly issues: { path: string; message: string }[];
  constructor(
    shortMessage: string,
    issues: { path: string; message: string }[] = [],
    parameters: NodeErrorParameters = {},
  ) {
    const lines = issues.map((i) => `- ${i.path}: ${i.message}`);
    super(shortMessage, { ...parameters, details: lines.length > 0 ? lines.join("\n") : parameters.details });
    this.issues = issues;
  }
}

/** The exit code an error calls for. */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof UsageError) return ExitCode.Usage;
  // A configuration made invalid by a flag's value is a wrong command line.
  if (error instanceof ConfigError && error.issues.some((i) => i.source.kind === "flag")) return ExitCode.Usage;
  if (error instanceof NodeError) return error.retryable ? ExitCode.Retryable : ExitCode.Fatal;
  if (error instanceof ShardBaseError) {
    return error.walk((e) => e instanceof RpcUnavailableError) !== undefined ? ExitCode.Retryable : ExitCode.Fatal;
  }
  return ExitCode.Fatal;
}

/** What `--json` prints for an error: `{"error": ErrorReport}`. */
export interface ErrorReport {
  name: string;
  message: string;
  details?: string | undefined;
  exitCode: ExitCode;
  retryable: boolean;
  /** Config or usage problems, one per field. */
  issues?: unknown[] | undefined;
  /** A contract's custom error, decoded. */
  errorName?: string | undefined;
}

/** The printable facts of an error (never its stack or cause chain, which may hold secrets). */
export function errorReport(error: unknown): ErrorReport {
  const exitCode = exitCodeOf(error);
  const retryable = exitCode === ExitCode.Retryable;
  // A NodeError is a ShardBaseError too: its own fields first.
  if (error instanceof NodeError) {
    return {
      name: error.name,
      message: error.shortMessage,
      details: error.details,
      exitCode,
      retryable,
      issues: error instanceof ConfigError || error instanceof UsageError ? error.issues : undefined,
    };
  }
  if (error instanceof ShardBaseError) {
    const extra = [...(error.metaMessages ?? []), ...(error.details === undefined ? [] : [error.details])];
    return {
      name: error.name,
      message: error.shortMessage,
      details: extra.length > 0 ? extra.join("\n") : undefined,
      exitCode,
      retryable,
      issues: error instanceof InvalidParameterError ? error.issues : undefined,
      errorName: error instanceof ContractRevertError ? error.errorName : undefined,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  return { name: error instanceof Error ? error.name : "Error", message, exitCode, retryable };
}

/**
 * Prints an error: `error: <message>` and its details on stderr and, with `--json`,
 * `{"error": {...}}` on stdout. Returns the exit code.
 */
export function reportError(
  error: unknown,
  io: { json: boolean; stdout?: NodeJS.WritableStream; stderr?: NodeJS.WritableStream },
): ExitCode {
  const report = errorReport(error);
  const stderr = io.stderr ?? process.stderr;
  stderr.write(`error: ${report.message}\n`);
  if (report.details !== undefined) stderr.write(`${indent(report.details)}\n`);
  if (process.env.SHARD_NODE_DEBUG && error instanceof Error && error.stack) stderr.write(`${error.stack}\n`);
  if (io.json) (io.stdout ?? process.stdout).write(`${JSON.stringify({ error: report })}\n`);
  return report.exitCode;
}

const indent = (text: string) =>
  text
    .split("\n")
    .map((line) => `  ${line}`)
    .join("\n");

/* SHUTDOWN */

const SIGNALS = ["SIGINT", "SIGTERM"] as const;
const SIGNAL_NUMBERS: Record<(typeof SIGNALS)[number], number> = { SIGINT: 2, SIGTERM: 15 };

const callbacks = new Set<() => void | Promise<void>>();
const controller = new AbortController();
let installed = false;

/**
 * Runs `cleanup` once when the process gets SIGINT or SIGTERM, and lets the current operation
 * finish: the process does not exit on the first signal (a second one exits at once, with
 * 128 + the signal's number). Returns a function that unregisters `cleanup`. Long commands also
 * poll `shutdownSignal()` / `isShuttingDown()` between steps.
 *
 * @example
 * const stop = onShutdown(() => { stopping = true }) // train: finish the step, checkpoint, exit
 * try { while (!isShuttingDown()) await step() } finally { stop() }
 */
export function onShutdown(cleanup: () => void | Promise<void>): () => void {
  install();
  let ran = false;
  const once = () => {
    if (ran) return;
    ran = true;
    return cleanup();
  };
  callbacks.add(once);
  if (controller.signal.aborted) void Promise.resolve().then(once);
  return () => void callbacks.delete(once);
}

/** Aborted at the first SIGINT/SIGTERM (once a handler is installed by `onShutdown` or this call). */
export function shutdownSignal(): AbortSignal {
  install();
  return controller.signal;
}

/** Whether SIGINT or SIGTERM has been received. */
export const isShuttingDown = () => controller.signal.aborted;

function install() {
  if (installed) return;
  installed = true;
  for (const signal of SIGNALS) {
    process.on(signal, () => {
      if (controller.signal.aborted) {
        process.stderr.write(`${signal} again: stopping now\n`);
        process.exit(128 + SIGNAL_NUMBERS[signal]);
      }
      process.stderr.write(`${signal}: finishing the current step (send it again to stop at once)\n`);
      controller.abort(signal);
      for (const cleanup of [...callbacks]) {
        Promise.resolve()
          .then(cleanup)
          .catch((error: unknown) => process.stderr.write(`error during shutdown: ${errorReport(error).message}\n`));
      }
    });
  }
}
