import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import { after, before, describe, it } from "node:test";

import { network } from "hardhat";
import { type Browser, chromium, type Page } from "playwright-core";
import { type Address, erc20Abi, formatUnits } from "viem";
import { ContractRevertError } from "shard-protocol/sdk";

import { startApp } from "../../app/start.js";
import { privateKeyOf, type Scenario, scenario } from "./chain.js";
import { injectWallet } from "./wallet.js";

/** The little of the DOM the in-page checks use (the root tsconfig has no DOM library). */
interface El {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): El | null;
  querySelectorAll(selector: string): ArrayLike<El>;
}

const ROOT = path.resolve(import.meta.dirname, "../..");
const SHOTS = path.join(ROOT, "results/browser");

/** Debian's chromium (`apt-get install chromium`), or CHROMIUM_PATH. */
function chromiumPath(): string {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  try {
    return execFileSync("sh", ["-c", "command -v chromium || command -v chromium-browser"], {
      encoding: "utf8",
    }).trim();
  } catch {
    throw new Error("no chromium on PATH: apt-get install chromium, or set CHROMIUM_PATH");
  }
}

/**
 * The web app (app/) in headless Chromium against a Hardhat node over HTTP: the pages show what
 * the SDK reads, exactly, and a wallet injected into the page claims, transfers and fails as a
 * holder would see it.
 */
describe("the web app in a real browser", () => {
  let server: Awaited<ReturnType<typeof network.createServer>>;
  let rpcUrl: string;
  let chain: Scenario;
  let app: { url: string; close: () => Promise<void> };
  let browser: Browser;
  const consoleErrors: string[] = [];

  before(async () => {
    server = await network.createServer({ network: "default" }, "127.0.0.1", 0);
    const { port } = await server.listen();
    rpcUrl = `http://127.0.0.1:${port}`;
    chain = await scenario(network, rpcUrl);
    app = await startApp({ config: chain.config, port: 0, preview: true });
    browser = await chromium.launch({ executablePath: chromiumPath(), args: ["--no-sandbox"] });
    await mkdir(SHOTS, { recursive: true });
  });
  after(async () => {
    await browser?.close();
    await app?.close();
    await chain?.connection.close();
    await server?.close();
  });

  /** A page in a fresh context whose wallet is holder 1 (on `chainId`, or none), console errors collected. */
  async function open(route: string, options: { chainId?: number; noWallet?: boolean } = {}) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const wallet = options.noWallet
      ? undefined
      : await injectWallet(context, { privateKey: privateKeyOf(1), rpcUrl, chainId: options.chainId });
    const page = await context.newPage();
    page.on("console", (m) => void (m.type() === "error" && consoleErrors.push(`${route}: ${m.text()}`)));
    page.on("pageerror", (e) => void consoleErrors.push(`${route}: ${e.message}`));
    await page.goto(`${app.url}#${route}`);
    return { page, wallet };
  }
  const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const connect = async (page: Page) => {
    await page.getByTestId("connect").click();
    await page.getByTestId("positions").waitFor();
  };
  /** Amounts show raw units until their tokens' decimals and symbols are read: waits for those. */
  const unitsShown = (page: Page) => page.waitForFunction('!document.body.innerText.includes("(units)")');
  /** The cap table on the model page, as [holder, balance] per shard. */
  const shownCapTable = (page: Page) =>
    page
      .getByTestId("cap-shard")
      .evaluateAll((shards) =>
        (shards as unknown as El[]).map((s) =>
          Array.from(s.querySelectorAll("[data-testid=cap-row]")).map((r) => [
            r.getAttribute("data-holder"),
            r.querySelector("[data-testid=cap-balance]")!.textContent,
          ]),
        ),
      );
  const sdkCapTable = async () =>
    (await chain.holder.getCapTable({ modelId: chain.modelId, confirmations: 0 })).shards.map((s) =>
      s.holders.map((h) => [h.holder, h.balance.toString()]),
    );
  const balanceOf = (token: Address, account: Address) =>
    chain.holder.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [account] });

  it("lists the models with holders and the revenue paid in per currency", async () => {
    const { page } = await open("/", { noWallet: true });
    const row = page.getByTestId("model-row");
    await row.waitFor();
    await page.getByTestId("read-only").waitFor();
    assert.equal(await row.getAttribute("data-model"), chain.modelId.toString());
    assert.equal(await row.getByTestId("holders").textContent(), "3");
    await unitsShown(page);
    const amounts = await row.locator(".amount").allTextContents();
    assert.deepEqual(amounts, ["1.8 USDC", "3 DAI"]);
    assert.equal(await row.getByTestId("finalized-round").textContent(), "2");
    await shot(page, "models");
    await page.context().close();
  });

  it("shows the model's cap table, lineage and open dispute exactly as the SDK reads them", async () => {
    const { page } = await open(`/model/${chain.modelId}`);
    await page.getByTestId("cap-row").first().waitFor();
    assert.deepEqual(await shownCapTable(page), await sdkCapTable());
    // The lineage as getLineage reads it: rounds 1 and 2 finalized, round 3 of shard 1 pending
    // and shown as what the ledger says of it (disputed), with its open dispute.
    const lineage = (
      await Promise.all([0, 1].map((shard) => chain.holder.getLineage({ modelId: chain.modelId, shard })))
    ).flat();
    assert.equal(lineage.length, 5);
    const shownLineage = await page
      .getByTestId("lineage-row")
      .evaluateAll((rs) =>
        (rs as unknown as El[]).map((r) => [r.getAttribute("data-commit"), r.querySelector(".pill")!.textContent]),
      );
    const { commitId: disputed, challenger } = chain.disputed;
    assert.deepEqual(
      shownLineage.sort(),
      lineage.map((n) => [n.commitId, n.commitId === disputed ? "disputed" : n.status]).sort(),
    );
    const commit = await chain.holder.getCommit({ commitId: disputed });
    assert.equal(commit.status, "pending");
    assert.equal(commit.dispute?.open, true);
    const dispute = page.getByTestId("open-dispute");
    assert.equal(await dispute.count(), 1);
    assert.equal(await dispute.locator(".address").getAttribute("data-address"), challenger);
    assert.equal(await page.locator("[data-testid=loss] .recharts-line-dot").count(), 3, "one loss point per round");
    await shot(page, "model");
    await page.context().close();
  });

  it("shows the claimable revenue exactly and claims it, one transaction per currency", async () => {
    const { page, wallet: w } = await open("/account");
    const wallet = w!;
    await connect(page);
    const me = chain.holder.account.address;
    const { byCurrency } = await chain.holder.getClaimable({ holder: me, modelId: chain.modelId });
    assert.ok(byCurrency[chain.usdc]! > 0n && byCurrency[chain.dai]! > 0n);
    const rows = page.getByTestId("claim-row");
    await rows.first().waitFor();
    await unitsShown(page);
    const shown = await rows.evaluateAll((rs) =>
      (rs as unknown as El[]).map((r) => [
        r.getAttribute("data-currency"),
        r.querySelector(".amount")!.getAttribute("data-raw"),
        r.querySelector(".amount")!.textContent,
      ]),
    );
    assert.deepEqual(shown, [
      [chain.usdc, byCurrency[chain.usdc]!.toString(), `${formatUnits(byCurrency[chain.usdc]!, 6)} USDC`],
      [chain.dai, byCurrency[chain.dai]!.toString(), `${formatUnits(byCurrency[chain.dai]!, 18)} DAI`],
    ]);
    await shot(page, "account");

    const before = [await balanceOf(chain.usdc, me), await balanceOf(chain.dai, me)];
    const confirmed = (label: string) =>
      page.locator("[data-testid=write-status][data-status=confirmed]", { hasText: label }).waitFor();
    // Claim USDC alone: one transaction; the row follows the chain to 0, DAI is still due.
    await page.locator(`[data-testid=claim-row][data-currency='${chain.usdc}'] [data-testid=claim]`).click();
    await confirmed("Claim from model 1");
    assert.equal(wallet.sent.length, 1);
    assert.equal((await balanceOf(chain.usdc, me)) - before[0]!, byCurrency[chain.usdc]);
    await page.locator(`[data-testid=claim-row][data-currency='${chain.usdc}'] .amount[data-raw='0']`).waitFor();
    assert.equal(await balanceOf(chain.dai, me), before[1]);
    // Claim all: one more transaction, for DAI (a currency with nothing due sends none).
    await page.getByTestId("claim-all").click();
    await confirmed("Claim everything from model 1");
    assert.equal(wallet.sent.length, 2, "one transaction per currency");
    assert.equal((await balanceOf(chain.usdc, me)) - before[0]!, byCurrency[chain.usdc]);
    assert.equal((await balanceOf(chain.dai, me)) - before[1]!, byCurrency[chain.dai]);
    // The page follows the chain: nothing left to claim.
    await page.locator("[data-testid=claim-row] .amount[data-raw='0']").nth(1).waitFor();
    await shot(page, "account-claimed");
    await page.context().close();
  });

  it("transfers shard tokens and the cap table follows; a reverted transfer shows the decoded error", async () => {
    const { page, wallet: w } = await open("/account");
    const wallet = w!;
    await connect(page);
    const to = chain.other.account.address;
    const before = await sdkCapTable();
    await page.getByTestId("transfer-position").selectOption({ label: "Model 1 shard 0 (750 held)" });
    await page.getByTestId("transfer-to").fill(to);
    await page.getByTestId("transfer-amount").fill("50");
    await page.getByTestId("transfer-submit").click();
    await page.locator("[data-testid=write-status][data-status=confirmed]").waitFor();
    assert.equal(wallet.sent.length, 1);
    const after = await sdkCapTable();
    assert.notDeepEqual(after, before);
    assert.ok(after[0]!.some(([holder, balance]) => holder === to && balance === "50"));
    await page
      .locator("[data-testid=position][data-shard='0'] [data-testid=position-balance]")
      .getByText("700 of 1200")
      .waitFor();

    // More than the wallet holds: the SDK's simulation refuses it, nothing is sent.
    const expected = await chain.holder
      .transferShards({ modelId: chain.modelId, shard: 0, to, amount: 1_000_000n })
      .then(
        () => assert.fail("the transfer should revert"),
        (e: unknown) => e,
      );
    assert.ok(expected instanceof ContractRevertError);
    await page.getByTestId("transfer-amount").fill("1000000");
    await page.getByTestId("transfer-submit").click();
    await page.locator("[data-testid=write-status][data-status=failed]").waitFor();
    assert.equal(await page.getByTestId("write-error").textContent(), expected.shortMessage);
    assert.equal(wallet.sent.length, 1, "a refused write sends nothing");
    await shot(page, "account-transfer-failed");
    await page.context().close();

    const model = await open(`/model/${chain.modelId}`);
    await model.page.locator(`[data-testid=cap-row][data-holder='${to}']`).waitFor();
    assert.deepEqual(await shownCapTable(model.page), after);
    await model.page.context().close();
  });

  it("reports a wallet on the wrong network, disables writes, and switches it", async () => {
    const { page } = await open("/account", { chainId: 1 });
    await connect(page);
    const banner = page.getByTestId("wrong-network");
    await banner.waitFor();
    assert.match((await banner.textContent())!, /the wallet is on chain 1, this deployment is on chain 31337/);
    // A valid transfer, but the wallet is on chain 1: not allowed until it switches.
    await page.getByTestId("transfer-amount").fill("1");
    await page.getByTestId("transfer-to").fill(chain.other.account.address);
    assert.equal(await page.getByTestId("transfer-submit").isDisabled(), true);
    await shot(page, "wrong-network");
    await banner.getByRole("button", { name: "Switch to chain 31337" }).click();
    await banner.waitFor({ state: "detached" });
    assert.equal(await page.getByTestId("transfer-submit").isEnabled(), true);
    await page.context().close();
  });

  it("logs no error in the browser console", () => {
    assert.deepEqual(consoleErrors, []);
  });
});
