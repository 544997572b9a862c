import assert from "node:assert/strict";
import { appendFile, readFile, truncate, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";

import { createWalletClient, custom, publicActions } from "viem";

import { ReceiptJournalError, type GatewayEvent } from "../../node/src/gateway/index.js";
import { defaultSpec } from "../../node/src/ml/spec.js";
import { encodePrompt } from "../../node/src/serve/index.js";
import { connection, networkHelpers } from "../helpers/fixture.js";
import { clientFor, sdkFixture } from "../sdk/helpers.js";
import {
  AMOUNT,
  addr,
  chainNow,
  claimables,
  ESCROW,
  escrowOf,
  fixture,
  gatewayOf,
  post,
  scratch,
  sign,
  type F,
} from "./gateway-fixture.js";

/**
 * No receipt lost: receipts skipped for a reason that passes are kept and retried with backoff,
 * a batch failing on RPC trouble backs off, and a torn journal keeps every complete line.
 */

/** Model 1 before anyone holds it (no genesis yet): the same escrows and gateway account. */
async function fixtureWithoutHolders(): Promise<F> {
  const f = await sdkFixture();
  const dapp = await clientFor(f, "viem", 6);
  const other = await clientFor(f, "viem", 5);
  const payee = await clientFor(f, "viem", 7);
  await dapp.depositEscrow({ currency: f.usdc.address, payee: addr(f, 7), amount: ESCROW });
  await other.depositEscrow({ currency: f.usdc.address, payee: addr(f, 7), amount: ESCROW });
  return { ...f, dapp, other, payee };
}

/** Resolves once `events` holds an event `match` accepts (polling), failing after `ms`. */
function waitFor(events: GatewayEvent[], match: (e: GatewayEvent) => boolean, ms = 20_000): Promise<GatewayEvent> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const poll = setInterval(() => {
      const found = events.find(match);
      if (found !== undefined) {
        clearInterval(poll);
        resolve(found);
      } else if (Date.now() - started > ms) {
        clearInterval(poll);
        reject(new Error(`not seen in ${ms} ms; events: ${events.map((e) => e.type).join(", ")}`));
      }
    }, 20);
  });
}

describe("gateway: no receipt lost", () => {
  it("keeps receipts served before the model has holders and settles them, on its own, once it has", async () => {
    const f = await networkHelpers.loadFixture(fixtureWithoutHolders);
    const dataDir = scratch("no-holders");
    let { gateway, events } = await gatewayOf(f, { dataDir });
    const served = [await sign(f, f.dapp), await sign(f, f.dapp), await sign(f, f.other)];
    for (const r of served) assert.equal((await post(gateway, r)).status, 200);

    // No holders yet: the contract skips all three; the gateway keeps them to retry.
    const first = await gateway.settleNow();
    assert.equal(first.transactions.length, 1);
    assert.deepEqual(first.settled, []);
    assert.deepEqual(first.skipped, []);
    assert.deepEqual(
      first.deferred.map((d) => [d.nonce, d.reason]),
      served.map((r) => [r.receipt.nonce, "NoHolders"]),
    );
    assert.deepEqual(gateway.pending(), served);
    const settledEvent = events.find((e) => e.type === "settled");
    assert.deepEqual(
      { ...settledEvent, tx: undefined, amount: undefined },
      {
        type: "settled",
        tx: undefined,
        settled: 0,
        skipped: 0,
        deferred: 3,
        amount: undefined,
      },
    );

    // A restart keeps them, and so does a journal an older gateway wrote (`skipped` NoHolders).
    await gateway.close();
    const path = join(dataDir, "receipts.jsonl");
    const older = (await readFile(path, "utf8")).replaceAll(/"t":"deferred"(.*?),"retryAt":\d+/g, '"t":"skipped"$1');
    assert.match(older, /"t":"skipped","key":"[^"]+","tx":"0x[0-9a-f]+","reason":"NoHolders"/);
    await writeFile(path, older);

    // The model gets holders; the gateway, settling on its own every 200 ms, settles them all.
    await f.ledger.write.allocateGenesis([1n, 0, [addr(f, 1), addr(f, 2)], [300n, 100n]]);
    await f.ledger.write.allocateGenesis([1n, 1, [addr(f, 3)], [100n]]);
    const before = await claimables(f);
    ({ gateway, events } = await gatewayOf(f, { dataDir, settleIntervalMs: 200, settleMarginSec: 60 }));
    try {
      assert.deepEqual(gateway.pending(), served);
      const settled = await waitFor(events, (e) => e.type === "settled" && e.settled === 3);
      assert.equal(settled.type === "settled" && settled.amount, 3n * AMOUNT);
      assert.deepEqual(gateway.pending(), []);
      assert.deepEqual(
        (await claimables(f)).map((c, i) => c - before[i]!),
        [(3n * AMOUNT * 9n) / 16n, (3n * AMOUNT * 3n) / 16n, (3n * AMOUNT) / 4n],
      );
      assert.equal(await escrowOf(f, 6), ESCROW - 2n * AMOUNT);
      assert.equal(await escrowOf(f, 5), ESCROW - AMOUNT);
    } finally {
      await gateway.close();
    }
  });

  it("backs off while its RPC refuses transactions, then settles once it is back", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    let refusing = true;
    const wallet = f.wallets[7]!;
    const client = createWalletClient({
      account: wallet.account,
      chain: wallet.chain,
      transport: custom(
        {
          async request(args: { method: string; params?: unknown }) {
            if (args.method === "eth_sendTransaction" && refusing) throw new Error("socket hang up");
            return connection.provider.request(args as never);
          },
        },
        { retryCount: 0 },
      ),
    }).extend(publicActions);
    const { gateway, events } = await gatewayOf(f, {
      chain: { client: client as never, account: wallet.account, deployment: f.deployment },
      settleIntervalMs: 100,
      settleMarginSec: 60,
    });
    try {
      const served = await sign(f, f.dapp);
      assert.equal((await post(gateway, served)).status, 200);
      await new Promise((r) => setTimeout(r, 1_600));
      const failures = events.filter((e) => e.type === "settle-failed");
      // Every 100 ms without backoff: 16 attempts. Doubling from 100 ms: at 0.1, 0.2, 0.4, 0.8, 1.6 s.
      assert.ok(failures.length >= 3 && failures.length <= 6, `${failures.length} attempts in 1.6 s`);
      for (const [i, e] of failures.entries()) {
        if (i === 0 || e.type !== "settle-failed") continue;
        const previous = failures[i - 1] as Extract<GatewayEvent, { type: "settle-failed" }>;
        assert.ok(e.retryAt - previous.retryAt >= 100, "each retry waits longer than the one before");
      }
      assert.deepEqual(gateway.pending(), [served]);
      refusing = false;
      await waitFor(events, (e) => e.type === "settled" && e.settled === 1, 10_000);
      assert.deepEqual(gateway.pending(), []);
      assert.equal(await escrowOf(f, 6), ESCROW - AMOUNT);
    } finally {
      await gateway.close();
    }
  });

  it("a torn journal keeps every acknowledged receipt and reports the cut line", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const dataDir = scratch("torn");
    const path = join(dataDir, "receipts.jsonl");
    let { gateway } = await gatewayOf(f, { dataDir });
    const acknowledged = [await sign(f, f.dapp), await sign(f, f.dapp), await sign(f, f.other)];
    for (const r of acknowledged) assert.equal((await post(gateway, r)).status, 200);
    await gateway.close();

    // A crash in the middle of writing a fourth receipt (never acknowledged: no answer was sent).
    const written = await readFile(path, "utf8");
    const fourth = written.split("\n")[0]!.replace(/"nonce":"\d+"/, '"nonce":"777"');
    const cut = fourth.slice(0, fourth.indexOf('"deadline"'));
    await appendFile(path, cut);
    let events: GatewayEvent[] = [];
    ({ gateway, events } = await gatewayOf(f, { dataDir }));
    try {
      assert.deepEqual(gateway.pending(), acknowledged);
      const torn = events.find((e) => e.type === "journal-torn");
      assert.ok(torn?.type === "journal-torn");
      assert.equal(torn.bytes, Buffer.byteLength(cut));
      assert.equal(torn.key, `${addr(f, 6).toLowerCase()}:777`);
      assert.equal(await readFile(torn.savedTo, "utf8"), cut);
      assert.equal(await readFile(path, "utf8"), written);
      // The next receipt is written on a line of its own.
      const next = await sign(f, f.dapp);
      assert.equal((await post(gateway, next)).status, 200);
      acknowledged.push(next);
    } finally {
      await gateway.close();
    }

    // A last line written whole, its newline lost: kept (nothing reported torn), the newline restored.
    const whole = await readFile(path, "utf8");
    await truncate(path, Buffer.byteLength(whole) - 1);
    ({ gateway, events } = await gatewayOf(f, { dataDir }));
    try {
      assert.deepEqual(gateway.pending(), acknowledged);
      assert.equal(
        events.find((e) => e.type === "journal-torn"),
        undefined,
      );
      assert.equal(await readFile(path, "utf8"), whole);
    } finally {
      await gateway.close();
    }

    // A line damaged in the middle: the gateway refuses to start and leaves the file as it was.
    const lines = whole.split("\n");
    lines[1] = lines[1]!.replace('"accepted"', '"acc\u0000pted"');
    const damaged = lines.join("\n");
    await writeFile(path, damaged);
    await assert.rejects(
      gatewayOf(f, { dataDir }),
      (e: unknown) =>
        e instanceof ReceiptJournalError &&
        /Line 2 of the receipt journal is corrupt/.test(e.shortMessage) &&
        /left as it is/.test(e.message),
    );
    assert.equal(await readFile(path, "utf8"), damaged);
  });
});

describe("gateway: prompts it cannot serve", () => {
  it("refuses a prompt with characters outside the vocabulary (400) before any chain read", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const spec = defaultSpec();
    let reads = 0;
    const wallet = f.wallets[7]!;
    const client = createWalletClient({
      account: wallet.account,
      chain: wallet.chain,
      transport: custom({
        async request(args: { method: string; params?: unknown }) {
          reads++;
          return connection.provider.request(args as never);
        },
      }),
    }).extend(publicActions);
    const { gateway } = await gatewayOf(f, {
      chain: { client: client as never, account: wallet.account, deployment: f.deployment },
      checkPrompt: (prompt) => void encodePrompt(spec, prompt),
    });
    try {
      const signed = await sign(f, f.dapp);
      reads = 0;
      const refused = await post(gateway, signed, { prompt: "Call me Ishmael ☃ {}" });
      assert.equal(refused.status, 400);
      assert.equal(refused.body.error, "InvalidPrompt");
      assert.match(String(refused.body.message), /3 characters the model does not know/);
      assert.equal(reads, 0);
      // The same receipt is still good for a prompt the model reads (nothing was reserved).
      assert.equal((await post(gateway, signed)).status, 200);
      assert.ok(reads > 0);
    } finally {
      await gateway.close();
    }
  });
});

describe("gateway: signatures the contract refuses", () => {
  it("refuses a receipt signed with v 0/1 or a high s (which recover the payer off-chain but not on-chain), or due too far ahead", async () => {
    const f = await networkHelpers.loadFixture(fixture);
    const { gateway } = await gatewayOf(f);
    try {
      const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
      const honest = await sign(f, f.dapp);
      const bytes = honest.signature.slice(2);
      const r = bytes.slice(0, 64);
      const s = BigInt(`0x${bytes.slice(64, 128)}`);
      const v = Number.parseInt(bytes.slice(128, 130), 16);
      const lowV = `0x${r}${bytes.slice(64, 128)}${(v - 27).toString(16).padStart(2, "0")}` as const;
      const highS = `0x${r}${(N - s).toString(16).padStart(64, "0")}${(v === 27 ? 28 : 27).toString(16)}` as const;
      for (const signature of [lowV, highS]) {
        // The attack: the settlement contract skips such a receipt as BadSignature, for good.
        const onChain = await f.payee.settleReceipts({ receipts: [{ ...honest, signature }], strict: false });
        assert.deepEqual(
          onChain.skipped.map((k) => k.reason),
          ["BadSignature"],
        );
        const refused = await post(gateway, { ...honest, signature });
        assert.equal(refused.status, 401);
        assert.equal(refused.body.error, "InvalidReceiptSignature");
        assert.match(String(refused.body.message), /not in the form the settlement contract accepts/);
      }
      // A deadline far ahead would keep a receipt the contract skips retried for that long: refused.
      const far = await sign(f, f.dapp, { deadline: (await chainNow(f)) + 31n * 86_400n });
      const tooFar = await post(gateway, far);
      assert.equal(tooFar.status, 400);
      assert.equal(tooFar.body.error, "DeadlineTooFar");
      // The canonical signature is served (and its nonce is still unused: the skips above left it so).
      assert.equal((await post(gateway, honest)).status, 200);
      assert.deepEqual((await gateway.settleNow()).settled.length, 1);
    } finally {
      await gateway.close();
    }
  });
});
