import * as tf from "@tensorflow/tfjs-core";
// tfjs-core's CommonJS build registers no gradients; the umbrella package registers them all
// into the same (deduplicated) core.
import "@tensorflow/tfjs";

/**
 * Picks the TensorFlow.js backend: CUDA (`@tensorflow/tfjs-node-gpu`) where it is installed,
 * native CPU (`@tensorflow/tfjs-node`) where that is, WebGPU through Dawn (`webgpu` with
 * `@tensorflow/tfjs-backend-webgpu`) where those are installed and a GPU adapter is found,
 * WebAssembly otherwise, pure JS last. The native and WebGPU packages are optional (the native
 * ones download libtensorflow at install; `webgpu` weighs 130 MB), so they are only ever imported
 * dynamically.
 */

export const BACKENDS = ["tensorflow-gpu", "tensorflow", "webgpu", "wasm", "cpu"] as const;
export type BackendName = (typeof BACKENDS)[number];
export type BackendChoice = BackendName | "auto";

export interface BackendInfo {
  /** What was asked for. */
  requested: BackendChoice;
  /** The backend in use, as recorded in transcripts. */
  name: BackendName;
  /** tfjs-core's own name for it (`tensorflow` for both native packages). */
  tfName: string;
  /** Package versions that determine the numerics. */
  versions: Record<string, string>;
  /** Why faster backends were skipped (auto mode). */
  skipped: string[];
}

export class BackendUnavailableError extends Error {
  override name = "BackendUnavailableError";
  constructor(
    readonly backend: BackendName,
    readonly reason: string,
  ) {
    super(`backend ${backend} is not available here: ${reason}`);
  }
}

async function load(name: BackendName): Promise<string> {
  switch (name) {
    case "tensorflow-gpu":
      await import("@tensorflow/tfjs-node-gpu" as string);
      return "tensorflow";
    case "tensorflow":
      await import("@tensorflow/tfjs-node" as string);
      return "tensorflow";
    case "webgpu": {
      // Dawn's Node binding provides navigator.gpu; tfjs's WebGPU backend registers itself on import.
      const dawn = (await import("webgpu" as string)) as { create(flags: string[]): unknown; globals: object };
      Object.assign(globalThis, dawn.globals);
      const gpu = dawn.create([]) as { requestAdapter(): Promise<{ info?: Record<string, string> } | null> };
      const adapter = await gpu.requestAdapter();
      if (!adapter) throw new Error("no WebGPU adapter (no GPU, or no Vulkan/Metal/D3D12 driver)");
      Object.defineProperty(globalThis.navigator, "gpu", { value: gpu, configurable: true });
      await import("@tensorflow/tfjs-backend-webgpu" as string);
      return "webgpu";
    }
    case "wasm":
      await import("@tensorflow/tfjs-backend-wasm");
      return "wasm";
    case "cpu":
      await import("@tensorflow/tfjs-backend-cpu");
      return "cpu";
  }
}

let active: BackendInfo | undefined;

/** Initializes a backend once per process; asking for a different one later is an error. */
export async function initBackend(requested: BackendChoice = "auto"): Promise<BackendInfo> {
  if (active) {
    if (requested !== "auto" && requested !== active.name)
      throw new Error(`backend ${active.name} is already initialized in this process; cannot switch to ${requested}`);
    return active;
  }
  const candidates: BackendName[] = requested === "auto" ? [...BACKENDS] : [requested];
  const skipped: string[] = [];
  for (const name of candidates) {
    try {
      const tfName = await load(name);
      if (!(await tf.setBackend(tfName))) throw new Error("setBackend refused it");
      await tf.ready();
      tf.env().set("DEBUG", false);
      active = { requested, name, tfName, versions: { "@tensorflow/tfjs-core": tf.version_core }, skipped };
      return active;
    } catch (err) {
      const reason = (err as Error).message.split("\n")[0]!;
      if (requested !== "auto") throw new BackendUnavailableError(name, reason);
      skipped.push(`${name}: ${reason}`);
    }
  }
  throw new Error(`no TensorFlow.js backend could start: ${skipped.join("; ")}`);
}
