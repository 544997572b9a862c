import { mkdir, readFile } from "node:fs/promises";
import path from "node:path";

import type { Address, Hex } from "viem";
import { z } from "zod";
import type { Checkpoint } from "shard-protocol/sdk";

import { writeFileAtomic } from "../checkpoint/atomic.js";
import { NodeError } from "../errors.js";
import type { Verdict } from "./check.js";
import type { RevealedCommit } from "./examine.js";

/**
 * What a verifier remembers between passes and across restarts, in one JSON file written
 * atomically after every action: the reveals it has scanned (and up to which block), its sampling
 * decisions, its verdicts, every action it took (`attest:<id>`, `challenge:<id>:<n>`,
 * `vote:<id>:<n>`, …), so it never acts twice on the same thing, and the rounds whose content it
 * could not fetch yet: when it tries them again (`retries`) and which commits it reported as not
 * fetched near their deadline (`unfetched`). Neither is a verdict: a round is checked as soon as
 * its content arrives.
 */

export class VerifierStateError extends NodeError {
  override name = "VerifierStateError";
}

const zCheckpointJson = z.object({
  modelId: z.string(),
  shard: z.number(),
  round: z.string(),
  lane: z.number(),
  owner: z.string(),
  parentRoot: z.string(),
  root: z.string(),
  transcriptDigest: z.string(),
  sentActivations: z.string(),
  receivedActivations: z.string(),
  sentGradients: z.string(),
  receivedGradients: z.string(),
  workUnits: z.string(),
  lossMicros: z.string(),
  checkpointURI: z.string(),
  transcriptURI: z.string(),
});

const zRetry = z.object({
  /** Failed tries so far. */
  attempts: z.number().int().min(1),
  /** Wall-clock ms of the first failed try. */
  firstAt: z.number(),
  /** Wall-clock ms from which the round is tried again. */
  nextAt: z.number(),
  /** Why the last try failed. */
  detail: z.string(),
});
/** Backoff of one round (`<lane>:<round>`) whose content did not arrive. */
export type FetchRetry = z.infer<typeof zRetry>;

const zUnfetched = z.object({
  /** `withheld` / `transcript-withheld`: its own content; `parent-unfetched`: the parent checkpoint. */
  reason: z.enum(["withheld", "transcript-withheld", "parent-unfetched"]),
  detail: z.string(),
  attempts: z.number().int(),
  /** Which deadline it was reported against, and that deadline (chain time, s). */
  kind: z.enum(["challenge", "dispute"]),
  deadline: z.number(),
  /** Chain time (s) of the report. */
  at: z.number(),
});
/** A commit whose content was still not fetched when its deadline came near. */
export type Unfetched = z.infer<typeof zUnfetched>;

const zState = z.object({
  format: z.literal("shard-protocol/verifier-state@1"),
  modelId: z.string(),
  verifier: z.string(),
  /** Last block whose reveals were scanned (absent: none yet). */
  scannedTo: z.string().optional(),
  reveals: z.record(
    z.string(),
    z.object({ checkpoint: zCheckpointJson, revealBlock: z.string(), revealBlockHash: z.string() }),
  ),
  sampled: z.record(z.string(), z.boolean()),
  verdicts: z.record(
    z.string(),
    z.custom<Verdict>((v) => typeof v === "object" && v !== null),
  ),
  /** Commits known to be finalized or rejected: never read again. */
  terminal: z.record(z.string(), z.enum(["finalized", "rejected"])),
  done: z.record(z.string(), z.string()),
  /** Rounds (`<lane>:<round>`) with content not fetched yet; absent in files of older versions. */
  retries: z.record(z.string(), zRetry).default({}),
  /** Commits reported as not fetched near (or after) their deadline; absent in older files. */
  unfetched: z.record(z.string(), zUnfetched).default({}),
});
type StateJson = z.infer<typeof zState>;

function checkpointToJson(cp: Checkpoint): StateJson["reveals"][string]["checkpoint"] {
  return {
    ...cp,
    modelId: String(cp.modelId),
    round: String(cp.round),
    workUnits: String(cp.workUnits),
    lossMicros: String(cp.lossMicros),
  };
}

function checkpointFromJson(j: StateJson["reveals"][string]["checkpoint"]): Checkpoint {
  return {
    ...j,
    modelId: BigInt(j.modelId),
    round: BigInt(j.round),
    workUnits: BigInt(j.workUnits),
    lossMicros: BigInt(j.lossMicros),
    owner: j.owner as Address,
    parentRoot: j.parentRoot as Hex,
    root: j.root as Hex,
    transcriptDigest: j.transcriptDigest as Hex,
    sentActivations: j.sentActivations as Hex,
    receivedActivations: j.receivedActivations as Hex,
    sentGradients: j.sentGradients as Hex,
    receivedGradients: j.receivedGradients as Hex,
  };
}

/** The verifier's memory for one model and one verifier address. */
export class VerifierState {
  readonly reveals = new Map<Hex, RevealedCommit>();
  private readonly rootIndex = new Map<Hex, Hex>();

  private constructor(
    readonly file: string,
    readonly findingsDir: string,
    private json: StateJson,
  ) {
    for (const [id, r] of Object.entries(json.reveals)) this.indexReveal(id as Hex, r);
  }

  /** `<dataDir>/verify/<modelId>-<verifier>/`: the state file and the findings. */
  static directory(dataDir: string, modelId: bigint, verifier: Address): string {
    return path.join(dataDir, "verify", `${modelId}-${verifier.toLowerCase()}`);
  }

  /** Opens (or starts) the state of `verifier` on `modelId`. @throws VerifierStateError on a corrupt file. */
  static async open(dataDir: string, modelId: bigint, verifier: Address): Promise<VerifierState> {
    const dir = VerifierState.directory(dataDir, modelId, verifier);
    const findingsDir = path.join(dir, "findings");
    await mkdir(findingsDir, { recursive: true, mode: 0o700 });
    const file = path.join(dir, "state.json");
    let text: string | undefined;
    try {
      text = await readFile(file, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    if (text === undefined)
      return new VerifierState(file, findingsDir, {
        format: "shard-protocol/verifier-state@1",
        modelId: String(modelId),
        verifier: verifier.toLowerCase(),
        reveals: {},
        sampled: {},
        verdicts: {},
        terminal: {},
        done: {},
        retries: {},
        unfetched: {},
      });
    let json: StateJson;
    try {
      json = zState.parse(JSON.parse(text));
    } catch (err) {
      throw new VerifierStateError(`The verifier state ${file} is not readable.`, {
        cause: err,
        details: `${(err as Error).message.slice(0, 300)}; move it away to start over (actions already on-chain are not repeated: the ledger refuses them)`,
      });
    }
    if (json.modelId !== String(modelId) || json.verifier !== verifier.toLowerCase())
      throw new VerifierStateError(`The verifier state ${file} belongs to another model or verifier.`);
    return new VerifierState(file, findingsDir, json);
  }

  private indexReveal(id: Hex, r: StateJson["reveals"][string]): void {
    const commit: RevealedCommit = {
      commitId: id,
      checkpoint: checkpointFromJson(r.checkpoint),
      revealBlock: BigInt(r.revealBlock),
      revealBlockHash: r.revealBlockHash as Hex,
    };
    this.reveals.set(id, commit);
    this.rootIndex.set(commit.checkpoint.root, id);
  }

  get scannedTo(): bigint | undefined {
    return this.json.scannedTo === undefined ? undefined : BigInt(this.json.scannedTo);
  }
  set scannedTo(block: bigint) {
    this.json.scannedTo = String(block);
  }

  addReveal(c: RevealedCommit): void {
    const r = {
      checkpoint: checkpointToJson(c.checkpoint),
      revealBlock: String(c.revealBlock),
      revealBlockHash: c.revealBlockHash,
    };
    this.json.reveals[c.commitId] = r;
    this.indexReveal(c.commitId, r);
  }

  byRoot(root: Hex): RevealedCommit | undefined {
    const id = this.rootIndex.get(root);
    return id === undefined ? undefined : this.reveals.get(id);
  }

  sampled(id: Hex): boolean | undefined {
    return this.json.sampled[id];
  }
  setSampled(id: Hex, sampled: boolean): void {
    this.json.sampled[id] = sampled;
  }

  verdict(id: Hex): Verdict | undefined {
    return this.json.verdicts[id];
  }
  setVerdict(v: Verdict): void {
    this.json.verdicts[v.commitId] = v;
  }

  terminal(id: Hex): "finalized" | "rejected" | undefined {
    return this.json.terminal[id];
  }
  setTerminal(id: Hex, status: "finalized" | "rejected"): void {
    this.json.terminal[id] = status;
  }

  /** Whether the action `key` was taken (its transaction hash, or `refused:<error>`). */
  did(key: string): string | undefined {
    return this.json.done[key];
  }
  record(key: string, what: string): void {
    this.json.done[key] = what;
  }

  /** The keys of every action taken (see `did`). */
  doneKeys(): string[] {
    return Object.keys(this.json.done);
  }

  /** The backoff of round `key` (`<lane>:<round>`), if its content is not all fetched yet. */
  retry(key: string): FetchRetry | undefined {
    return this.json.retries[key];
  }
  setRetry(key: string, r: FetchRetry): void {
    this.json.retries[key] = r;
  }
  /** The rounds with a backoff. */
  retryKeys(): string[] {
    return Object.keys(this.json.retries);
  }
  clearRetry(key: string): void {
    delete this.json.retries[key];
  }

  /** The not-fetched report of a commit (no verdict: cleared once its content is checked). */
  unfetched(id: Hex): Unfetched | undefined {
    return this.json.unfetched[id];
  }
  setUnfetched(id: Hex, u: Unfetched): void {
    this.json.unfetched[id] = u;
  }
  clearUnfetched(id: Hex): void {
    delete this.json.unfetched[id];
  }

  /** Writes the state atomically. */
  async save(): Promise<void> {
    await writeFileAtomic(this.file, new TextEncoder().encode(JSON.stringify(this.json)));
  }
}
