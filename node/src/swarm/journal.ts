import { access, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";

import type { Hex } from "viem";
import { z } from "zod";

import { writeFileAtomic } from "../checkpoint/atomic.js";
import { NodeError } from "../errors.js";

/**
 * The node's crash-safe record of its rounds, one JSON file per (model, shard, lane), replaced
 * atomically on every change. A round moves through phases, each written before the action it
 * enables:
 *
 *   prepared  checkpoint and transcript files are on disk; the swarm has not yet agreed
 *   decided   every shard of the lane prepared this round: it will be committed, and the next
 *             round starts from it
 *   sealing   the salt and signed seal are saved; the seal may or may not be on-chain
 *   sealed    the seal is on-chain (block and time known)
 *   revealed  the checkpoint is revealed on-chain: done
 *
 * On restart, a decided round is carried forward to `revealed` (never sealed twice: the salt and
 * signature are reused), and training resumes from the newest decided checkpoint.
 */

const zHex32 = z.string().regex(/^0x[0-9a-fA-F]{64}$/) as unknown as z.ZodType<Hex>;

export const zRoundRecord = z.object({
  round: z.number().int().positive(),
  phase: z.enum(["prepared", "decided", "sealing", "sealed", "revealed"]),
  parentRoot: zHex32,
  root: zHex32,
  /** Files relative to the journal's directory. */
  checkpointFile: z.string(),
  transcriptFile: z.string(),
  transcriptDigest: zHex32,
  sentActivations: zHex32,
  receivedActivations: zHex32,
  sentGradients: zHex32,
  receivedGradients: zHex32,
  workUnits: z.string().regex(/^\d+$/),
  lossMicros: z.string().regex(/^\d+$/),
  evalLoss: z.number().nullable(),
  checkpointURI: z.string().optional(),
  transcriptURI: z.string().optional(),
  salt: zHex32.optional(),
  seal: z
    .object({
      commit: z.object({
        modelId: z.string(),
        shard: z.number(),
        round: z.string(),
        lane: z.number(),
        owner: z.string(),
        /** Absent in a seal signed before parents and parameter versions were sealed: re-signed. */
        parentRoot: zHex32.optional(),
        sealedHash: zHex32,
        paramsVersion: z.number().int().min(0).optional(),
        deadline: z.string(),
      }),
      signature: z.string(),
    })
    .optional(),
  commitBlock: z.string().optional(),
  commitTime: z.string().optional(),
  commitId: zHex32.optional(),
  /** The revealed round's pipeline links, once both sides revealed: matched, or mismatched and appealed (or not). */
  link: z.enum(["matched", "appealed", "mismatched"]).optional(),
  /** An appealed round's dispute (its index on the commit), and whether the owner claimed its part after the verdict. */
  appeal: z.object({ dispute: z.number().int().positive(), claimed: z.boolean() }).optional(),
});

export type RoundRecord = z.infer<typeof zRoundRecord>;

export const zJournal = z.object({
  format: z.literal("shard-node/journal@1"),
  modelId: z.string(),
  shard: z.number().int().min(0),
  lane: z.number().int().min(0),
  specDigest: zHex32,
  owner: z.string(),
  /**
   * The merged round this lane went on from without training it: the round a node joined at, or
   * rounds merged without this lane while it was down (merging mode only; see `join.ts`).
   */
  base: z.object({ round: z.number().int().positive(), root: zHex32 }).optional(),
  rounds: z.array(zRoundRecord),
});

export type JournalData = z.infer<typeof zJournal>;

export class JournalError extends NodeError {
  override name = "JournalError";
}

const ORDER = ["prepared", "decided", "sealing", "sealed", "revealed"] as const;

export class Journal {
  private constructor(
    readonly dir: string,
    private data: JournalData,
  ) {}

  static directory(dataDir: string, modelId: string, shard: number, lane: number): string {
    return join(dataDir, `${modelId}-${shard}-${lane}`);
  }

  /** The lanes of (model, shard) with a journal in `dataDir`, increasing. */
  static async localLanes(dataDir: string, modelId: string, shard: number): Promise<number[]> {
    const names = await readdir(dataDir).catch(() => [] as string[]);
    const prefix = `${modelId}-${shard}-`;
    const lanes: number[] = [];
    for (const name of names) {
      if (!name.startsWith(prefix) || !/^\d+$/.test(name.slice(prefix.length))) continue;
      if (
        await access(join(dataDir, name, "journal.json")).then(
          () => true,
          () => false,
        )
      )
        lanes.push(Number(name.slice(prefix.length)));
    }
    return lanes.sort((a, b) => a - b);
  }

  /** Opens the journal in `dir`, or starts an empty one; refuses one written for another model/spec/owner. */
  static async open(dir: string, identity: Omit<JournalData, "format" | "rounds">): Promise<Journal> {
    let text: string | undefined;
    try {
      text = await readFile(join(dir, "journal.json"), "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT")
        throw new JournalError(`Cannot read the journal in ${dir}.`, { cause: err });
    }
    if (text === undefined) {
      const j = new Journal(dir, { format: "shard-node/journal@1", ...identity, rounds: [] });
      await j.save();
      return j;
    }
    let parsed: JournalData;
    try {
      parsed = zJournal.parse(JSON.parse(text));
    } catch (err) {
      throw new JournalError(`The journal in ${dir} is corrupt.`, {
        cause: err,
        details: (err as Error).message.slice(0, 500),
      });
    }
    for (const key of ["modelId", "shard", "lane", "specDigest", "owner"] as const)
      if (String(parsed[key]).toLowerCase() !== String(identity[key]).toLowerCase())
        throw new JournalError(
          `The journal in ${dir} belongs to another ${key} (${parsed[key]}, not ${identity[key]}).`,
          {
            details: "Use another data directory, or move this one away.",
          },
        );
    return new Journal(dir, parsed);
  }

  private async save(): Promise<void> {
    await writeFileAtomic(join(this.dir, "journal.json"), new TextEncoder().encode(JSON.stringify(this.data, null, 2)));
  }

  get rounds(): readonly RoundRecord[] {
    return this.data.rounds;
  }

  /** The newest round the swarm decided (0: none yet; the next round starts from genesis). */
  get head(): RoundRecord | undefined {
    return [...this.data.rounds].reverse().find((r) => r.phase !== "prepared");
  }

  /** The merged round this lane went on from without training it, if any (see `base` in the file). */
  get base(): { round: number; root: Hex } | undefined {
    return this.data.base;
  }

  /** The round the next round follows: the newest decided round or the base, whichever is later (0: genesis). */
  get headRound(): number {
    return Math.max(this.head?.round ?? 0, this.data.base?.round ?? 0);
  }

  /**
   * Goes on from the merged round `round` (root `root`) without training it: drops a prepared
   * round at or below it. Decided rounds stay (they are still committed). Never goes back.
   */
  async setBase(round: number, root: Hex): Promise<void> {
    if (round <= this.headRound)
      throw new JournalError(`Cannot go on from round ${round}: this lane is already at round ${this.headRound}.`);
    this.data.base = { round, root };
    this.data.rounds = this.data.rounds.filter((r) => r.phase !== "prepared" || r.round > round);
    await this.save();
  }

  /** A prepared round whose outcome is not known yet. */
  get pending(): RoundRecord | undefined {
    return this.data.rounds.find((r) => r.phase === "prepared");
  }

  /** Decided rounds not yet revealed on-chain, oldest first. */
  get unfinished(): RoundRecord[] {
    return this.data.rounds.filter((r) => r.phase !== "prepared" && r.phase !== "revealed");
  }

  record(round: number): RoundRecord | undefined {
    return this.data.rounds.find((r) => r.round === round);
  }

  async prepare(rec: RoundRecord): Promise<void> {
    if (rec.phase !== "prepared") throw new JournalError(`A new round record must be prepared, not ${rec.phase}.`);
    const head = this.headRound;
    if (rec.round !== head + 1)
      throw new JournalError(`Cannot prepare round ${rec.round}: the last decided round is ${head}.`);
    this.data.rounds = this.data.rounds.filter((r) => r.phase !== "prepared");
    this.data.rounds.push(rec);
    await this.save();
  }

  /**
   * Files a round decided elsewhere, skipping `prepared`: the merge commit a node makes of its
   * shard's lanes (`merge-step.ts`), one journal per merge attempt, with rounds that need not follow
   * each other.
   */
  async addDecided(rec: RoundRecord): Promise<void> {
    if (rec.phase !== "decided") throw new JournalError(`A merge record must be decided, not ${rec.phase}.`);
    if (this.record(rec.round)) throw new JournalError(`Round ${rec.round} is already journaled.`);
    this.data.rounds.push(rec);
    await this.save();
  }

  /** Drops a prepared round the swarm did not decide. */
  async discardPending(): Promise<void> {
    this.data.rounds = this.data.rounds.filter((r) => r.phase !== "prepared");
    await this.save();
  }

  /** Moves a round forward; phases never go back. */
  async advance(round: number, phase: RoundRecord["phase"], fields: Partial<RoundRecord> = {}): Promise<RoundRecord> {
    const rec = this.record(round);
    if (!rec) throw new JournalError(`No record of round ${round}.`);
    if (ORDER.indexOf(phase) < ORDER.indexOf(rec.phase))
      throw new JournalError(`Round ${round} is already ${rec.phase}; it cannot go back to ${phase}.`);
    Object.assign(rec, fields, { phase });
    await this.save();
    return rec;
  }
}
