import assert from "node:assert/strict";
import { appendFile, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { createWalletClient, custom, getAddress, publicActions, type Address, type Hex, zeroHash } from "viem";

import {
  GatewayClosedError,
  GatewayOptionsError,
  ReceiptJournalError,
  startGateway,
  type Gateway,
  type GatewayEvent,
  type GatewayOptions,
  type Generate,
} from "../../node/src/gateway/index.js";
import {
  GatewayMismatchError,
  GatewayRefusedError,
  requestInference,
  settleReceipts,
  signUsageReceipt,
  type SignedUsageReceipt,
} from "../../sdk/index.js";
import { connection, networkHelpers, tokenId } from "../helpers/fixture.js";
import { clientFor, sdkFixture, type SdkClient, type SdkFixture } from "../sdk/helpers.js";

import {
  AMOUNT,
  addr,
  chainNow,
  claimables,
  DAY,
  echo,
  ESCROW,
  escrowOf,
  fixture,
  gatewayOf,
  json,
  journalLines,
  MAX_TOKENS,
  post,
  PRICE,
  scratch,
  ShardUnavailableError,
  sign,
} from "./gateway-fixture.js";

describe("inference gateway", () => {
  it("serves a paid request and settles it: holders gain exactly price × units by weight, pro rata", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const { gateway, events } = await gatewayOf(f);
    try {
      const quote = await (await fetch(`${gateway.url}/v1/quote`)).json();
      assert.deepEqual(quote, {
        chainId: f.deployment.chainId,
        settlement: f.deployment.contracts.settlement,
        modelId: "1",
        currency: getAddress(f.usdc.address),
        payee: addr(f, 7),
        pricePerUnit: String(PRICE),
        maxTokensPerRequest: 64,
        unit: "generated character",
      });

      const before = await claimables(f);
      const result = await f.dapp.requestInference({
        gatewayUrl: gateway.url,
        prompt: "Call me Ishmael.",
        maxTokens: MAX_TOKENS,
        modelId: 1n,
        maxPricePerUnit: PRICE,
      });
      assert.equal(
        result.text,
        (await echo({ prompt: "Call me Ishmael.", maxTokens: MAX_TOKENS, receiptDigest: zeroHash })).text,
      );
      assert.equal(result.tokens, MAX_TOKENS);
      assert.deepEqual(result.charged, { units: BigInt(MAX_TOKENS), amount: AMOUNT });
      assert.equal(result.receipt.payer, addr(f, 6));
      assert.ok(result.receipt.nonce >= 0n && result.receipt.nonce < 1n << 256n);
      // Served, not yet settled: pending at the gateway, nothing drawn on-chain yet.
      assert.deepEqual(gateway.pending(), [{ receipt: result.receipt, signature: result.signature }]);
      assert.equal(await escrowOf(f, 6), ESCROW);
      assert.ok(events.some((e) => e.type === "served" && e.amount === AMOUNT));

      const settlement = await gateway.settleNow();
      assert.equal(settlement.transactions.length, 1);
      assert.deepEqual(settlement.settled, [
        { payer: addr(f, 6), nonce: result.receipt.nonce, amount: AMOUNT, tx: settlement.transactions[0] },
      ]);
      assert.deepEqual(settlement.skipped, []);
      assert.deepEqual(gateway.pending(), []);
      assert.equal(await escrowOf(f, 6), ESCROW - AMOUNT);
      // 32,000 splits 3:1 across the shards (24,000 | 8,000), then 300:100 within shard 0.
      const gained = (await claimables(f)).map((c, i) => c - before[i]!);
      assert.deepEqual(gained, [18_000n, 6_000n, 8_000n]);
      assert.equal(
        (await f.settlement.read.nonceUsed([addr(f, 6), result.receipt.payee, result.receipt.nonce])) as boolean,
        true,
      );
      // Nothing left to settle: a second run sends nothing.
      assert.deepEqual((await gateway.settleNow()).transactions, []);
    } finally {
      await gateway.close();
    }
  });

  it("refuses a receipt it holds or that settled, also after a restart from its journal; settles it once", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const dataDir = scratch("restart");
    let { gateway } = await gatewayOf(f, { dataDir });
    const signed = await sign(f, f.dapp);
    assert.equal((await post(gateway, signed)).status, 200);
    const again = await post(gateway, signed);
    assert.equal(again.status, 409);
    assert.equal(again.body.error, "NonceAlreadyUsed");

    // Restart: the receipt is still pending and still refused.
    await gateway.close();
    const events: GatewayEvent[] = [];
    ({ gateway } = await gatewayOf(f, { dataDir, events }));
    assert.deepEqual(events[0], { type: "recovered", pending: 1, settledOnChain: 0 });
    assert.deepEqual(gateway.pending(), [signed]);
    assert.equal((await post(gateway, signed)).body.error, "NonceAlreadyUsed");
    const first = await gateway.settleNow();
    assert.equal(first.settled.length, 1);
    assert.equal((await post(gateway, signed)).body.error, "NonceAlreadyUsed");
    await gateway.close();

    // Restart after settlement: still refused, nothing pending, nothing sent again.
    ({ gateway } = await gatewayOf(f, { dataDir }));
    assert.deepEqual(gateway.pending(), []);
    assert.equal((await post(gateway, signed)).status, 409);
    assert.deepEqual(await gateway.settleNow(), {
      transactions: [],
      settled: [],
      skipped: [],
      deferred: [],
      failed: [],
    });

    // A crash after a settlement was mined but before the journal said so: the next start finds
    // the nonce used on-chain and marks the receipt settled instead of sending it again.
    const second = await sign(f, f.dapp);
    assert.equal((await post(gateway, second)).status, 200);
    await settleReceipts(f.payee, { deployment: f.deployment, receipts: [second] });
    await gateway.close();
    // A line cut short by the crash is set aside on open, and reported.
    await appendFile(join(dataDir, "receipts.jsonl"), '{"t":"settled","key":"0x');
    const recovered: GatewayEvent[] = [];
    ({ gateway } = await gatewayOf(f, { dataDir, events: recovered }));
    try {
      const torn = recovered[0] as Extract<GatewayEvent, { type: "journal-torn" }>;
      assert.equal(torn.type, "journal-torn");
      assert.equal(torn.bytes, 24);
      assert.equal(await readFile(torn.savedTo, "utf8"), '{"t":"settled","key":"0x');
      assert.deepEqual(recovered[1], { type: "recovered", pending: 0, settledOnChain: 1 });
      assert.deepEqual(gateway.pending(), []);
      assert.deepEqual((await gateway.settleNow()).transactions, []);
      // Charged once each: the two receipts, nothing more.
      assert.equal(await escrowOf(f, 6), ESCROW - 2n * AMOUNT);
      const lines = await journalLines(dataDir);
      assert.deepEqual(
        lines.map((l) => l.t),
        ["accepted", "settled", "accepted", "settled"],
      );
      assert.equal(lines[3]!.tx, null);
    } finally {
      await gateway.close();
    }
  });

  it("charges nothing when generation fails (the generator's error name reaches the dApp)", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    let failing = true;
    const { gateway } = await gatewayOf(f, {
      generate: async (req) => {
        if (failing) throw new ShardUnavailableError("shard 1 did not answer within 5 s");
        return echo(req);
      },
    });
    try {
      const before = await claimables(f);
      const error = await f.dapp
        .requestInference({ gatewayUrl: gateway.url, prompt: "Call me Ishmael.", maxTokens: MAX_TOKENS, nonce: 42n })
        .then(
          () => assert.fail("should have failed"),
          (e: unknown) => e,
        );
      assert.ok(error instanceof GatewayRefusedError);
      assert.equal(error.errorName, "ShardUnavailableError");
      assert.equal(error.status, 502);
      assert.match(error.shortMessage, /shard 1 did not answer/);
      assert.deepEqual(gateway.pending(), []);
      const settlement = await gateway.settleNow();
      assert.deepEqual(settlement.transactions, []);
      assert.equal(await escrowOf(f, 6), ESCROW);
      assert.deepEqual(await claimables(f), before);
      // The receipt was not kept: the same nonce is served once the pipeline is back.
      failing = false;
      const served = await f.dapp.requestInference({
        gatewayUrl: gateway.url,
        prompt: "Call me Ishmael.",
        maxTokens: MAX_TOKENS,
        nonce: 42n,
      });
      assert.equal(served.receipt.nonce, 42n);
      assert.equal(gateway.pending().length, 1);
    } finally {
      await gateway.close();
    }

    // A dApp that hangs up before the answer is not charged either.
    const events: GatewayEvent[] = [];
    const slow = await gatewayOf(f, {
      events,
      generate: async (req) => {
        await new Promise((r) => setTimeout(r, 300));
        return echo(req);
      },
    });
    try {
      const signed = await sign(f, f.dapp);
      await assert.rejects(
        fetch(`${slow.gateway.url}/v1/generate`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: json({ prompt: "hi", maxTokens: MAX_TOKENS, ...signed }),
          signal: AbortSignal.timeout(100),
        }),
        { name: "TimeoutError" },
      );
      // The generation finishes after the hang-up; its receipt is dropped.
      await new Promise((r) => setTimeout(r, 500));
      assert.ok(events.some((e) => e.type === "refused" && e.error === "ClientGone"));
      assert.deepEqual(slow.gateway.pending(), []);
    } finally {
      await slow.gateway.close();
    }
  });

  it("refuses bad receipts and requests, each with its specific error, and keeps none", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const { gateway } = await gatewayOf(f);
    try {
      const now = await chainNow(f);
      const cases: [string, number, () => Promise<{ status: number; body: Record<string, unknown> }>][] = [
        [
          "InvalidReceiptSignature",
          401,
          async () => {
            // Signed by wallet 5 but naming wallet 6 as the payer.
            const forged = await sign(f, f.other);
            return post(gateway, { ...forged, receipt: { ...forged.receipt, payer: addr(f, 6) } });
          },
        ],
        ["WrongModel", 400, async () => post(gateway, await sign(f, f.dapp, { modelId: 2n }))],
        ["WrongCurrency", 400, async () => post(gateway, await sign(f, f.dapp, { currency: f.dai.address }))],
        // A receipt for another payee: this gateway could not settle it.
        ["WrongPayee", 400, async () => post(gateway, await sign(f, f.dapp, { payee: addr(f, 5) }))],
        ["PriceTooLow", 402, async () => post(gateway, await sign(f, f.dapp, { pricePerUnit: PRICE - 1n }))],
        ["ReceiptExpired", 400, async () => post(gateway, await sign(f, f.dapp, { deadline: now - 1n }))],
        // Valid now, but too close to its deadline to be settled in time.
        ["ReceiptExpired", 400, async () => post(gateway, await sign(f, f.dapp, { deadline: now + 60n }))],
        [
          "InsufficientEscrow",
          402,
          async () => post(gateway, await sign(f, f.dapp, { units: 64n, pricePerUnit: 2_000n })),
        ],
        ["UnitsMismatch", 400, async () => post(gateway, await sign(f, f.dapp), { maxTokens: MAX_TOKENS - 1 })],
        ["MaxTokensExceeded", 400, async () => post(gateway, await sign(f, f.dapp, { units: 65n }))],
        [
          "NonceAlreadyUsed",
          409,
          async () => {
            // Used on-chain by a receipt the gateway's account settled outside the gateway.
            const elsewhere = await sign(f, f.dapp, { nonce: 7n, units: 1n });
            await settleReceipts(f.payee, { deployment: f.deployment, receipts: [elsewhere] });
            return post(gateway, await sign(f, f.dapp, { nonce: 7n }));
          },
        ],
        ["InvalidRequest", 400, async () => post(gateway, await sign(f, f.dapp), { prompt: 42 })],
        ["InvalidRequest", 400, async () => post(gateway, await sign(f, f.dapp), { signature: "0xzz" })],
        [
          "BodyTooLarge",
          413,
          async () => post(gateway, await sign(f, f.dapp), { prompt: "x".repeat(16_384 * 4 + 20_000) }),
        ],
        [
          "MethodNotAllowed",
          405,
          async () => {
            const r = await fetch(`${gateway.url}/v1/generate`);
            return { status: r.status, body: (await r.json()) as Record<string, unknown> };
          },
        ],
        [
          "NotFound",
          404,
          async () => {
            const r = await fetch(`${gateway.url}/v1/nothing`);
            return { status: r.status, body: (await r.json()) as Record<string, unknown> };
          },
        ],
      ];
      for (const [error, status, attempt] of cases) {
        const { status: got, body } = await attempt();
        assert.equal(body.error, error, `${error}: ${JSON.stringify(body)}`);
        assert.equal(got, status, error);
        assert.equal(typeof body.message, "string");
      }
      assert.deepEqual(gateway.pending(), []);

      // The escrow check counts what pending receipts already draw: 100,000 covers three
      // receipts of 32,000, not four.
      for (let i = 0; i < 3; i++) assert.equal((await post(gateway, await sign(f, f.dapp))).status, 200);
      const fourth = await post(gateway, await sign(f, f.dapp));
      assert.equal(fourth.body.error, "InsufficientEscrow");
      assert.equal(gateway.pending().length, 3);

      // Concurrent requests see each other: wallet 5's escrow covers three; five at once → three served.
      const slow = await gatewayOf(f, {
        generate: async (req) => {
          await new Promise((r) => setTimeout(r, 200));
          return echo(req);
        },
        // All five admitted at once (the admission bound is tested in serve-tickets.test.ts).
        maxConcurrent: 5,
      });
      try {
        const receipts = await Promise.all([0, 1, 2, 3, 4].map(() => sign(f, f.other)));
        const answers = await Promise.all(receipts.map((r) => post(slow.gateway, r)));
        assert.deepEqual(answers.map((a) => a.status).sort(), [200, 200, 200, 402, 402]);
      } finally {
        await slow.gateway.close();
      }
    } finally {
      await gateway.close();
    }
  });

  it("the dApp refuses a gateway that quotes for another chain, contract, model or a higher price", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const { gateway } = await gatewayOf(f);
    try {
      const base = { gatewayUrl: gateway.url, prompt: "hi", maxTokens: 8 };
      const otherDeployment = {
        ...f.deployment,
        contracts: { ...f.deployment.contracts, settlement: addr(f, 9) },
      };
      const attempts: [string, Promise<unknown>][] = [
        ["settlement", requestInference(f.dapp, { ...base, deployment: otherDeployment })],
        ["modelId", f.dapp.requestInference({ ...base, modelId: 2n })],
        ["pricePerUnit", f.dapp.requestInference({ ...base, maxPricePerUnit: PRICE - 1n })],
        ["maxTokensPerRequest", f.dapp.requestInference({ ...base, maxTokens: 65 })],
      ];
      for (const [field, attempt] of attempts) {
        await assert.rejects(attempt, (e: unknown) => e instanceof GatewayMismatchError && e.field === field, field);
      }
      assert.deepEqual(gateway.pending(), []);
    } finally {
      await gateway.close();
    }
    // A gateway whose deployment is for another chain quotes that chain: refused before signing.
    const wallet = f.wallets[7]!;
    const foreign = await gatewayOf(f, {
      chain: {
        client: wallet.extend(publicActions) as never,
        account: wallet.account,
        deployment: { ...f.deployment, chainId: 999 },
      },
    });
    try {
      await assert.rejects(
        f.dapp.requestInference({ gatewayUrl: foreign.gateway.url, prompt: "hi", maxTokens: 8 }),
        (e: unknown) => e instanceof GatewayMismatchError && e.field === "chainId",
      );
    } finally {
      await foreign.gateway.close();
    }
  });

  it("a batch in which receipts turned bad settles the rest, drops the hopeless, keeps the payable-later", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const dataDir = scratch("batch");
    let { gateway } = await gatewayOf(f, { dataDir });
    const deadline = (await chainNow(f)) + 3n * DAY;
    const good = await sign(f, f.dapp, { deadline });
    const drained = await sign(f, f.other, { deadline });
    const reused = await sign(f, f.dapp, { deadline });
    for (const r of [good, drained, reused]) assert.equal((await post(gateway, r)).status, 200);

    // Wallet 5 withdraws its whole escrow (request, wait out the delay, withdraw) ...
    await f.other.requestEscrowWithdrawal({ currency: f.usdc.address, payee: addr(f, 7), amount: ESCROW });
    await networkHelpers.time.increase(DAY + 1n);
    await f.other.withdrawEscrow({ currency: f.usdc.address, payee: addr(f, 7) });
    // ... and wallet 6 spends the nonce of its third receipt on another receipt, settled outside
    // the gateway (by its account: only the payee settles).
    const elsewhere = await sign(f, f.dapp, { nonce: reused.receipt.nonce, units: 16n, deadline });
    await settleReceipts(f.payee, { deployment: f.deployment, receipts: [elsewhere] });

    const before = await claimables(f);
    const result = await gateway.settleNow();
    assert.equal(result.transactions.length, 1);
    const tx = result.transactions[0]!;
    assert.deepEqual(result.settled, [{ payer: addr(f, 6), nonce: good.receipt.nonce, amount: AMOUNT, tx }]);
    // A used nonce can never settle: skipped for good. An escrow that ran short can be refilled:
    // that receipt is kept and sent again (with backoff) until its deadline.
    assert.deepEqual(result.skipped, [{ payer: addr(f, 6), nonce: reused.receipt.nonce, reason: "NonceUsed", tx }]);
    assert.equal(result.deferred.length, 1);
    const { retryAt, ...deferred } = result.deferred[0]!;
    assert.deepEqual(deferred, { payer: addr(f, 5), nonce: drained.receipt.nonce, reason: "InsufficientEscrow", tx });
    assert.ok(retryAt > Date.now());
    assert.deepEqual(result.failed, []);
    assert.deepEqual(gateway.pending(), [drained]);
    assert.deepEqual(
      (await claimables(f)).map((c, i) => c - before[i]!),
      [18_000n, 6_000n, 8_000n],
    );
    // The skipped one is never retried, not even after a restart; the deferred one survives it.
    await gateway.close();
    ({ gateway } = await gatewayOf(f, { dataDir }));
    try {
      assert.deepEqual(gateway.pending(), [drained]);
      const lines = await journalLines(dataDir);
      assert.deepEqual(
        lines.filter((l) => l.t === "skipped" || l.t === "deferred").map((l) => [l.t, l.reason, l.tx]),
        [
          ["deferred", "InsufficientEscrow", tx],
          ["skipped", "NonceUsed", tx],
        ],
      );
      // Wallet 5 refills its escrow: the kept receipt settles, and only it.
      await f.other.depositEscrow({ currency: f.usdc.address, payee: addr(f, 7), amount: AMOUNT });
      const refilled = await gateway.settleNow();
      assert.deepEqual(
        refilled.settled.map((r) => r.nonce),
        [drained.receipt.nonce],
      );
      assert.deepEqual(gateway.pending(), []);
    } finally {
      await gateway.close();
    }
  });

  it("retries a batch whose transaction failed whole, and never resends one mined with its answer lost", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    // The gateway's RPC: transactions go through, are refused, or are sent with the answer lost.
    let mode: "ok" | "refuse" | "lose" = "ok";
    const wallet = f.wallets[7]!;
    const client = createWalletClient({
      account: wallet.account,
      chain: wallet.chain,
      transport: custom(
        {
          async request(args: { method: string; params?: unknown }) {
            if (args.method === "eth_sendTransaction" && mode !== "ok") {
              if (mode === "lose") await connection.provider.request(args as never);
              throw new Error("socket hang up");
            }
            return connection.provider.request(args as never);
          },
        },
        { retryCount: 0 },
      ),
    }).extend(publicActions);
    const { gateway, events } = await gatewayOf(f, {
      chain: { client: client as never, account: wallet.account, deployment: f.deployment },
    });
    try {
      const first = [await sign(f, f.dapp), await sign(f, f.dapp)];
      for (const r of first) assert.equal((await post(gateway, r)).status, 200);
      mode = "refuse";
      const refused = await gateway.settleNow();
      assert.deepEqual(refused.transactions, []);
      assert.equal(refused.failed.length, 1);
      assert.equal(refused.failed[0]!.receipts, 2);
      assert.ok(events.some((e) => e.type === "settle-failed"));
      assert.deepEqual(gateway.pending(), first);
      assert.equal(await escrowOf(f, 6), ESCROW);
      mode = "ok";
      const retried = await gateway.settleNow();
      assert.equal(retried.transactions.length, 1);
      assert.deepEqual(
        retried.settled.map((s) => s.nonce),
        first.map((r) => r.receipt.nonce),
      );

      const lost = await sign(f, f.dapp);
      assert.equal((await post(gateway, lost)).status, 200);
      mode = "lose";
      assert.equal((await gateway.settleNow()).failed.length, 1);
      assert.equal(
        (await f.settlement.read.nonceUsed([addr(f, 6), lost.receipt.payee, lost.receipt.nonce])) as boolean,
        true,
      );
      mode = "ok";
      const found = await gateway.settleNow();
      assert.deepEqual(found.transactions, []);
      assert.deepEqual(found.settled, [{ payer: addr(f, 6), nonce: lost.receipt.nonce, amount: AMOUNT, tx: null }]);
      assert.deepEqual(gateway.pending(), []);
      // Three receipts, each drawn once.
      assert.equal(await escrowOf(f, 6), ESCROW - 3n * AMOUNT);
    } finally {
      await gateway.close();
    }
  });

  it("refuses to start with bad options or a corrupt journal, and to settle once closed", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    await assert.rejects(gatewayOf(f, { batchSize: 0 }), GatewayOptionsError);
    await assert.rejects(gatewayOf(f, { pricePerUnit: 0n }), GatewayOptionsError);
    const corrupt = scratch("corrupt");
    await mkdir(corrupt, { recursive: true });
    await writeFile(join(corrupt, "receipts.jsonl"), '{"t":"accepted"}\n{"t":"settled"}\n');
    await assert.rejects(gatewayOf(f, { dataDir: corrupt }), ReceiptJournalError);
    const { gateway } = await gatewayOf(f);
    await gateway.close();
    await assert.rejects(gateway.settleNow(), GatewayClosedError);
  });

  it("settles on its own when batchSize receipts are pending, and on the interval", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const settled = (events: GatewayEvent[], count: number) =>
      new Promise<void>((resolve, reject) => {
        const started = Date.now();
        const poll = setInterval(() => {
          if (events.filter((e) => e.type === "settled").length >= count) {
            clearInterval(poll);
            resolve();
          } else if (Date.now() - started > 20_000) {
            clearInterval(poll);
            reject(
              new Error(`no settlement: ${JSON.stringify(events, (_, v) => (typeof v === "bigint" ? String(v) : v))}`),
            );
          }
        }, 25);
      });

    const batched = await gatewayOf(f, { batchSize: 2 });
    try {
      await post(batched.gateway, await sign(f, f.dapp));
      assert.equal(batched.gateway.pending().length, 1);
      await post(batched.gateway, await sign(f, f.dapp));
      await settled(batched.events, 1);
      assert.deepEqual(batched.gateway.pending(), []);
      const event = batched.events.find((e) => e.type === "settled");
      assert.deepEqual(
        { ...event, tx: undefined },
        { type: "settled", tx: undefined, settled: 2, skipped: 0, deferred: 0, amount: 2n * AMOUNT },
      );
    } finally {
      await batched.gateway.close();
    }

    const timed = await gatewayOf(f, { settleIntervalMs: 200, settleMarginSec: 60 });
    try {
      await post(timed.gateway, await sign(f, f.dapp));
      await settled(timed.events, 1);
      assert.deepEqual(timed.gateway.pending(), []);
      assert.equal(await escrowOf(f, 6), ESCROW - 3n * AMOUNT);
    } finally {
      await timed.gateway.close();
    }
  });
});
