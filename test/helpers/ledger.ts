import { getAddress, parseEther, zeroHash, type Address, type Hex } from "viem";

import {
  commitAndReveal,
  connection,
  defaultParams,
  makeCheckpoint,
  networkHelpers,
  pipelineDigests,
  type Checkpoint,
  type Fixture,
  type RoundParams,
} from "./fixture.js";

/** `CommitStatus` of the ledger. */
export const Status = { None: 0, Sealed: 1, Pending: 2, Finalized: 3, Rejected: 4 } as const;
/** `RejectReason` of the ledger. */
export const Reason = { Dispute: 0, ParentRejected: 1, RootReclaimed: 2, MergedLaneRejected: 3 } as const;
/** `Role` of the staking contract. */
export const Role = { Trainer: 0, Verifier: 1 } as const;

/** Checksummed address of wallet `index`. */
export const addr = (f: Fixture, index: number): Address => getAddress(f.wallets[index]!.account.address);

/** The wallet client of `index`, as the `account` option of a write. */
export const as = (f: Fixture, index: number) => ({ account: f.wallets[index]!.account });

/** Stakes `amount` for wallet `index` in `role` of `modelId` (not only model 1). */
export async function stakeIn(f: Fixture, modelId: bigint, index: number, role: 0 | 1, amount: bigint) {
  await f.stake.write.approve([f.staking.address, amount], as(f, index));
  await f.staking.write.stake([modelId, role, amount], as(f, index));
}

/**
 * Registers one more model from the registrant (wallets[0]) and returns its id. Defaults: the
 * fixture's config (two shards 3:1, STAKE, USDC and DAI, default parameters).
 */
export async function registerModel(
  f: Fixture,
  overrides: { shardWeights?: bigint[]; currencies?: Address[]; params?: Partial<RoundParams> } = {},
) {
  await f.registry.write.registerModel([
    {
      ...f.config,
      shardWeights: overrides.shardWeights ?? f.config.shardWeights,
      currencies: overrides.currencies ?? f.config.currencies,
      params: { ...defaultParams, ...overrides.params },
    },
  ]);
  return f.registry.read.modelCount();
}

/** Replaces the parameters of model 1 from round 1 on (only before its first commit). */
export async function setRoundOneParams(f: Fixture, params: Partial<RoundParams>) {
  await f.registry.write.scheduleParams([f.modelId, { ...defaultParams, ...params }]);
}

/**
 * Both stages of a round of model 1 (two shards, one lane) with agreeing pipeline digests,
 * sealed and revealed. The owners must already have trainer stake.
 */
export async function revealPair(
  f: Fixture,
  opts: {
    round?: bigint;
    parents?: [Hex, Hex];
    owners?: [number, number];
    lane?: number;
    /** Pipeline digest tag of shard 1; differs from shard 0's to make the link mismatch. */
    mismatch?: boolean;
  } = {},
) {
  const round = opts.round ?? 1n;
  const lane = opts.lane ?? 0;
  const [o0, o1] = opts.owners ?? [1, 2];
  const cp0 = makeCheckpoint(addr(f, o0), {
    shard: 0,
    round,
    lane,
    parentRoot: opts.parents?.[0] ?? zeroHash,
    ...pipelineDigests(0, 2),
  });
  const cp1 = makeCheckpoint(addr(f, o1), {
    shard: 1,
    round,
    lane,
    parentRoot: opts.parents?.[1] ?? zeroHash,
    ...pipelineDigests(1, 2, opts.mismatch === true ? "-forged" : ""),
  });
  const id0 = await commitAndReveal(f, o0, cp0);
  const id1 = await commitAndReveal(f, o1, cp1);
  return { cp0, cp1, id0, id1 };
}

/**
 * Stakes trainers 1..3 (`trainerStake`, default the minimum, which backs one pending commit at a
 * time: each locks `slashAmount`), verifiers 4..5 (minimum) and lets the challenger (7) bond.
 */
export async function stakeEveryone(f: Fixture, trainerStake: bigint = defaultParams.minTrainerStake) {
  for (const i of [1, 2, 3]) await stakeIn(f, f.modelId, i, Role.Trainer, trainerStake);
  for (const i of [4, 5]) await stakeIn(f, f.modelId, i, Role.Verifier, defaultParams.minVerifierStake);
  await f.stake.write.approve([f.ledger.address, parseEther("1000")], as(f, 7));
}

/** Timestamp of the latest block. */
export const now = async () => BigInt(await networkHelpers.time.latest());

/** Runs `send` with automine off, then mines every transaction it sent into one block. */
export async function inOneBlock<T>(send: () => Promise<T>): Promise<T> {
  await connection.provider.request({ method: "evm_setAutomine", params: [false] });
  try {
    const result = await send();
    await networkHelpers.mine();
    return result;
  } finally {
    await connection.provider.request({ method: "evm_setAutomine", params: [true] });
  }
}

/** Revert data of a mined, reverted transaction, from its trace. */
export async function revertDataOf(hash: Hex): Promise<Hex> {
  const trace = (await connection.provider.request({
    method: "debug_traceTransaction",
    params: [hash, { disableStorage: true, disableMemory: true, disableStack: true }],
  })) as { failed: boolean; returnValue: string };
  if (!trace.failed) throw new Error(`transaction ${hash} did not revert`);
  const data = trace.returnValue.startsWith("0x") ? trace.returnValue : `0x${trace.returnValue}`;
  return data as Hex;
}

/** A rejected promise carrying `data` as revert data, for the viem revert assertions. */
export const rejectedWith = (data: Hex) =>
  Promise.reject(Object.assign(new Error("reverted in a mined block"), { data })) as Promise<Hex>;

export type { Checkpoint };
