import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";

const ROOT = path.resolve(import.meta.dirname, "../..");
const START = path.join(ROOT, "app/start.ts");

const deployment = {
  chainId: 31337,
  blockNumber: "7",
  contracts: {
    registry: "0x5fbdb2315678afecb367f032d93f642f64180aa3",
    token: "0xe7f1725e7734ce288f8367e1bb143e90bb3f0512",
    staking: "0x9fe46736679d2d9a65f0992f2272de9f3c7fa6e0",
    ledger: "0xcf7ed3acca5a467e9e704c703e8d87f634fb0fc9",
    settlement: "0xdc64a38ac1bcd0f6c8d2e69d6a3f0a4f0e6c6b3e",
  },
  testTokens: { usd: "0x0165878a594ca255338adfa4d48449f69242eb8f" },
};

/** `npm run app` (app/start.ts): the server it starts hands the page the deployment it was given. */
describe("npm run app", () => {
  let child: ChildProcess | undefined;
  after(() => void child?.kill());

  it("serves the deployment file and RPC URL it was started with at /shard-config.json", async () => {
    const file = path.join(await mkdtemp(path.join(tmpdir(), "app-")), "deployment.json");
    await writeFile(file, JSON.stringify(deployment));
    const args = ["--import", "tsx", START, "--deployment", file, "--rpc", "http://127.0.0.1:9", "--port", "0"];
    child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    const url = await new Promise<string>((resolve, reject) => {
      child!.stdout!.on("data", (chunk: Buffer) => {
        out += chunk.toString();
        const match = /: (http:\/\/\S+)/.exec(out);
        if (match) resolve(match[1]!);
      });
      child!.stderr!.on("data", (chunk: Buffer) => (out += chunk.toString()));
      child!.on("exit", (code) => reject(new Error(`exited ${code}: ${out}`)));
    });
    assert.match(out, /Shard app on chain 31337 \(RPC http:\/\/127\.0\.0\.1:9\)/);
    const config = await (await fetch(new URL("/shard-config.json", url))).json();
    assert.deepEqual(config, {
      rpcUrl: "http://127.0.0.1:9",
      deployment: {
        chainId: 31337,
        blockNumber: "7",
        // Checksummed by the SDK's deployment schema; fields it does not know (testTokens) dropped.
        contracts: {
          registry: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
          token: "0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
          staking: "0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
          ledger: "0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
          settlement: "0xDC64a38aC1BCd0f6c8D2E69D6A3f0A4f0e6c6b3E",
        },
      },
    });
    const page = await (await fetch(url)).text();
    assert.match(page, /<div id="root"><\/div>/);
  });

  it("exits 1 and says what to do when the deployment file is missing", () => {
    const result = spawnSync(process.execPath, ["--import", "tsx", START, "--deployment", "/nonexistent/31337.json"], {
      cwd: ROOT,
      encoding: "utf8",
    });
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      /cannot read the deployment file \/nonexistent\/31337\.json \(run `npm run deploy -- --network localhost`\)/,
    );
  });
});
