import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";

import { getAddress, publicActions, type Address } from "viem";

import { startGateway } from "../../node/src/gateway/index.js";
import {
  GatewayMismatchError,
  GatewayRefusedError,
  GatewayResponseError,
  GatewayUnavailableError,
  getInferenceQuote,
} from "../../sdk/index.js";
import { networkHelpers } from "../helpers/fixture.js";
import { clientFor, PATHS, sdkFixture, type SdkFixture } from "./helpers.js";

const addr = (f: SdkFixture, i: number) => getAddress(f.wallets[i]!.account.address) as Address;

/** requestInference through viem and through the ethers adapter, against a real gateway on a real chain. */
async function fixture() {
  const f = await sdkFixture();
  await f.ledger.write.allocateGenesis([1n, 0, [addr(f, 1)], [100n]]);
  await f.ledger.write.allocateGenesis([1n, 1, [addr(f, 2)], [100n]]);
  return f;
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "inference-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

for (const path of PATHS) {
  describe(`requestInference (${path})`, () => {
    it("pays for a generation with a signed receipt that the gateway then settles", async () => {
      const f = await networkHelpers.loadFixture(fixture);
      const wallet = f.wallets[7]!;
      const gateway = await startGateway({
        modelId: 1n,
        currency: f.usdc.address,
        pricePerUnit: 250n,
        maxTokensPerRequest: 16,
        chain: { client: wallet.extend(publicActions) as never, account: wallet.account, deployment: f.deployment },
        dataDir: join(dir, path),
        listen: { host: "127.0.0.1", port: 0 },
        batchSize: 10,
        settleIntervalMs: 3_600_000,
        generate: async ({ prompt, maxTokens }) => ({
          text: prompt.toUpperCase().slice(0, maxTokens),
          tokens: Math.min(prompt.length, maxTokens),
        }),
      });
      try {
        const dapp = await clientFor(f, path, 6);
        const quote = await getInferenceQuote({ gatewayUrl: gateway.url });
        assert.equal(quote.pricePerUnit, 250n);
        assert.equal(quote.unit, "generated character");
        // The gateway settles as its account: the dApp's escrow is with that payee.
        assert.equal(quote.payee, addr(f, 7));
        await dapp.depositEscrow({ currency: quote.currency, payee: quote.payee, amount: 5_000n });

        // A gateway settling as another payee than expected is refused before anything is signed.
        await assert.rejects(
          dapp.requestInference({ gatewayUrl: gateway.url, prompt: "x", maxTokens: 8, payee: addr(f, 8) }),
          (e: unknown) => e instanceof GatewayMismatchError && e.field === "payee",
        );

        const result = await dapp.requestInference({
          gatewayUrl: gateway.url,
          prompt: "whale",
          maxTokens: 8,
          payee: addr(f, 7),
        });
        assert.equal(result.text, "WHALE");
        assert.equal(result.tokens, 5);
        // The receipt pays for the maxTokens asked, whatever was generated.
        assert.deepEqual(result.charged, { units: 8n, amount: 2_000n });
        assert.equal(result.receipt.payer, addr(f, 6));
        assert.equal(result.receipt.payee, addr(f, 7));

        // 5,000 of escrow less the 2,000 this receipt draws does not cover 16 × 250: refused,
        // with the gateway's error name, and nothing kept.
        await assert.rejects(
          dapp.requestInference({ gatewayUrl: gateway.url, prompt: "x", maxTokens: 16 }),
          (e: unknown) => e instanceof GatewayRefusedError && e.errorName === "InsufficientEscrow" && e.status === 402,
        );
        assert.equal(gateway.pending().length, 1);
        const settled = await gateway.settleNow();
        assert.deepEqual(
          settled.settled.map((s) => [s.nonce, s.amount]),
          [[result.receipt.nonce, 2_000n]],
        );
        assert.equal(
          (await dapp.getEscrow({ payer: addr(f, 6), payee: quote.payee, currency: f.usdc.address })).balance,
          3_000n,
        );
      } finally {
        await gateway.close();
      }
      // A closed gateway is unreachable.
      await assert.rejects(getInferenceQuote({ gatewayUrl: gateway.url, timeoutMs: 2_000 }), GatewayUnavailableError);
    });
  });
}

describe("getInferenceQuote", () => {
  it("refuses a quote without a valid payee address", async () => {
    const quote = {
      chainId: 31337,
      settlement: "0x" + "11".repeat(20),
      modelId: "1",
      currency: "0x" + "22".repeat(20),
      pricePerUnit: "250",
      maxTokensPerRequest: 16,
      unit: "generated character",
    };
    let answer: unknown = quote;
    const server = createServer((_, res) => {
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(answer));
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const gatewayUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      for (const payee of [undefined, "0x1234", "gateway"]) {
        answer = { ...quote, payee };
        await assert.rejects(
          getInferenceQuote({ gatewayUrl }),
          (e: unknown) => e instanceof GatewayResponseError && /malformed quote/.test(e.message),
        );
      }
      answer = { ...quote, payee: "0x" + "ab".repeat(20) };
      assert.equal((await getInferenceQuote({ gatewayUrl })).payee, getAddress("0x" + "ab".repeat(20)));
    } finally {
      server.close();
    }
  });
});
