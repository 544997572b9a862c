/**
 * Crash-safe file writes: after `writeFileAtomic` returns, the target holds the new bytes, and if
 * the process or the machine dies at any point before, it holds the old bytes (or does not exist).
 * Readers never see a partial file.
 */
import { randomBytes } from "node:crypto";
import { open, rename, unlink } from "node:fs/promises";
import path from "node:path";

import { NodeError } from "../errors.js";

/** Error codes that say the file system is busy rather than that the request is wrong. */
const TRANSIENT_CODES = new Set(["EAGAIN", "EBUSY", "EMFILE", "ENFILE", "EINTR"]);

/** Reading or writing a checkpoint file failed in the file system. `code` is Node's (`ENOENT`, ...). */
export class CheckpointFileError extends NodeError {
  override name = "CheckpointFileError";
  readonly path: string;
  readonly code: string | undefined;

  constructor(action: "read" | "write", filePath: string, cause: unknown) {
    const code = (cause as NodeJS.ErrnoException | undefined)?.code;
    super(`Could not ${action} ${filePath}.`, {
      cause,
      details: cause instanceof Error ? cause.message : String(cause),
      retryable: code !== undefined && TRANSIENT_CODES.has(code),
    });
    this.path = filePath;
    this.code = code;
  }
}

/**
 * Writes `bytes` to `filePath` atomically: into a temporary file in the same directory, fsync'd,
 * then renamed over the target, then the directory fsync'd so the rename itself is durable.
 *
 * @throws CheckpointFileError when the directory does not exist or cannot be written; the temporary
 *   file is removed.
 *
 * @example
 * await writeFileAtomic("/data/checkpoints/round-3.safetensors", encodeSafetensors(tensors));
 */
export async function writeFileAtomic(filePath: string, bytes: Uint8Array): Promise<void> {
  const dir = path.dirname(filePath);
  const temp = path.join(dir, `.${path.basename(filePath)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    const file = await open(temp, "wx", 0o644);
    try {
      await file.writeFile(bytes);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, filePath);
  } catch (cause) {
    await unlink(temp).catch(() => {});
    throw new CheckpointFileError("write", filePath, cause);
  }
  // Windows cannot open a directory for fsync; there the rename is as durable as it gets.
  if (process.platform === "win32") return;
  try {
    const directory = await open(dir, "r");
    try {
      await directory.sync();
    } finally {
      await directory.close();
    }
  } catch (cause) {
    throw new CheckpointFileError("write", filePath, cause);
  }
}
