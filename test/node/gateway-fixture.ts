import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";

import { getAddress, publicActions, type Address, type Hex } from "viem";

import {
  startGateway,
  type Gateway,
  type GatewayEvent,
  type GatewayOptions,
  type Generate,
} from "../../node/src/gateway/index.js";
import type { SignedUsageReceipt } from "../../sdk/index.js";
import { tokenId } from "../helpers/fixture.js";
import { clientFor, sdkFixture, type SdkClient, type SdkFixture } from "../sdk/helpers.js";

/**
 * The paying gateway on a real (in-process) chain: model 1 has two shards weighted 3:1; shard 0
 * is held 300:100 by wallets 1 and 2, shard 1 by wallet 3, so revenue R pays them 9R/16, 3R/16
 * and R/4. Wallets 5 and 6 are dApps with escrow with the gateway; wallet 7 runs the gateway and
 * sends settlements: it is the payee every receipt names (and the only account that can settle them).
 * `generate` is a deterministic stand-in (the pipeline is tested elsewhere).
 */

export const PRICE = 1_000n;
export const MAX_TOKENS = 32;
export const AMOUNT = BigInt(MAX_TOKENS) * PRICE; // 32,000: divisible by 16, so no rounding dust
export const ESCROW = 100_000n;
export const DAY = 86_400n;

export const addr = (f: SdkFixture, i: number) => getAddress(f.wallets[i]!.account.address) as Address;

/** Deterministic text from the prompt: the prompt reversed, repeated, cut to maxTokens. */
export const echo: Generate = async ({ prompt, maxTokens }) => {
  const base = [...prompt].reverse().join("") || ".";
  const text = base.repeat(Math.ceil(maxTokens / base.length)).slice(0, maxTokens);
  return { text, tokens: text.length };
};

export class ShardUnavailableError extends Error {
  override name = "ShardUnavailableError";
}

export async function fixture() {
  const f = await sdkFixture();
  await f.ledger.write.allocateGenesis([1n, 0, [addr(f, 1), addr(f, 2)], [300n, 100n]]);
  await f.ledger.write.allocateGenesis([1n, 1, [addr(f, 3)], [100n]]);
  const dapp = await clientFor(f, "viem", 6);
  const other = await clientFor(f, "viem", 5);
  // The gateway's account, also used directly: a settlement it sent outside the gateway.
  const payee = await clientFor(f, "viem", 7);
  await dapp.depositEscrow({ currency: f.usdc.address, payee: addr(f, 7), amount: ESCROW });
  await other.depositEscrow({ currency: f.usdc.address, payee: addr(f, 7), amount: ESCROW });
  return { ...f, dapp, other, payee };
}
export type F = Awaited<ReturnType<typeof fixture>>;

let dir: string;
let runs = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "gateway-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The test file's scratch folder (made before its tests, removed after them). */
export const scratch = (name: string) => join(dir, name);

/** A gateway for model 1 in USDC on the fixture's chain, settling only when asked unless overridden. */
export async function gatewayOf(f: F, overrides: Partial<GatewayOptions> & { events?: GatewayEvent[] } = {}) {
  const wallet = f.wallets[7]!;
  const events = overrides.events ?? [];
  const gateway = await startGateway({
    modelId: 1n,
    currency: f.usdc.address,
    pricePerUnit: PRICE,
    maxTokensPerRequest: 64,
    chain: { client: wallet.extend(publicActions) as never, account: wallet.account, deployment: f.deployment },
    dataDir: join(dir, `run-${runs++}`),
    listen: { host: "127.0.0.1", port: 0 },
    batchSize: 100,
    settleIntervalMs: 3_600_000,
    generate: echo,
    onEvent: (e) => events.push(e),
    ...overrides,
  });
  return { gateway, events };
}

export async function chainNow(f: F) {
  return (await f.publicClient.getBlock()).timestamp;
}

/** A receipt of `payer` for the gateway's terms, signed; override any field. */
export async function sign(
  f: F,
  payer: SdkClient,
  overrides: Partial<Parameters<SdkClient["signUsageReceipt"]>[0]["receipt"]> = {},
): Promise<SignedUsageReceipt> {
  return payer.signUsageReceipt({
    receipt: {
      modelId: 1n,
      currency: f.usdc.address,
      payee: addr(f, 7),
      units: BigInt(MAX_TOKENS),
      pricePerUnit: PRICE,
      deadline: (await chainNow(f)) + DAY,
      ...overrides,
    },
  });
}

export const json = (value: unknown) => JSON.stringify(value, (_, v) => (typeof v === "bigint" ? String(v) : v));

/** POSTs a generate request with `signed` (maxTokens = its units unless given). */
export async function post(gateway: Gateway, signed: SignedUsageReceipt, extra: Record<string, unknown> = {}) {
  const response = await fetch(`${gateway.url}/v1/generate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: json({ prompt: "Call me Ishmael.", maxTokens: Number(signed.receipt.units), ...signed, ...extra }),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

export async function claimables(f: F) {
  return Promise.all(
    [
      [tokenId(1n, 0), 1],
      [tokenId(1n, 0), 2],
      [tokenId(1n, 1), 3],
    ].map(([id, holder]) => f.token.read.claimable([id as bigint, f.usdc.address, addr(f, holder as number)])),
  );
}

export const escrowOf = async (f: F, payer: number) =>
  (await f.dapp.getEscrow({ payer: addr(f, payer), payee: addr(f, 7), currency: f.usdc.address })).balance;

export const journalLines = async (path: string) =>
  (await readFile(join(path, "receipts.jsonl"), "utf8"))
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { t: string; reason?: string; tx?: Hex | null });
