/** Reading and writing safetensors files on disk, bounded on read and atomic on write. */
import { open } from "node:fs/promises";

import { CheckpointFileError, writeFileAtomic } from "./atomic.js";
import {
  decodeSafetensors,
  DEFAULT_SAFETENSORS_LIMITS,
  type DecodedSafetensors,
  encodeSafetensors,
  SafetensorsError,
  type SafetensorsLimits,
  type Tensors,
} from "./safetensors.js";

/**
 * Reads and decodes a safetensors file. The size is checked against `limits.maxBytes` before the
 * file is read.
 *
 * @throws CheckpointFileError when the file cannot be read (`code` says why, e.g. `ENOENT`).
 * @throws SafetensorsError when it is too large or not a valid safetensors file.
 *
 * @example
 * const { tensors, metadata } = await readSafetensorsFile("round-3.safetensors", { maxBytes: 64 * 1024 ** 2 });
 */
export async function readSafetensorsFile(
  filePath: string,
  limits: SafetensorsLimits = {},
): Promise<DecodedSafetensors> {
  const maxBytes = limits.maxBytes ?? DEFAULT_SAFETENSORS_LIMITS.maxBytes;
  let bytes: Uint8Array;
  try {
    const file = await open(filePath, "r");
    try {
      const { size } = await file.stat();
      if (size > maxBytes) {
        throw new SafetensorsError(`${filePath} is ${size} bytes, more than the limit of ${maxBytes}.`);
      }
      bytes = await file.readFile();
    } finally {
      await file.close();
    }
  } catch (error) {
    if (error instanceof SafetensorsError) throw error;
    throw new CheckpointFileError("read", filePath, error);
  }
  return decodeSafetensors(bytes, limits);
}

/**
 * Encodes tensors and writes them to `filePath` atomically (see `writeFileAtomic`).
 *
 * @throws SafetensorsError when the tensors are inconsistent (shape vs data, dtype vs array).
 * @throws CheckpointFileError when the file cannot be written.
 */
export async function writeSafetensorsFile(
  filePath: string,
  tensors: Tensors,
  metadata?: Record<string, string>,
): Promise<void> {
  await writeFileAtomic(filePath, encodeSafetensors(tensors, metadata));
}
