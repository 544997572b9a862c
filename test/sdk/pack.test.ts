import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile, stat, mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { network } from "hardhat";
import { getAddress } from "viem";

import { exampleChain } from "./example-chain.js";
import { privateKeyOf } from "./helpers.js";

/**
 * The SDK as a dApp gets it: `npm pack` of sdk/ installed into an empty project next to viem
 * (from the npm registry, or npm's cache), the README's example (sdk/examples/dapp.ts, importing
 * the package instead of the sources) type-checked there with tsc and run against a real JSON-RPC
 * server. A dApp's install holds no TensorFlow, libp2p or Hardhat.
 */

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const exec = promisify(execFile);
/** At most this many packages in the dApp's install (viem's own and the SDK's). */
const MAX_PACKAGES = 30;
/** At most this much added by the SDK over viem's own install: the SDK and zod. */
const MAX_SDK_BYTES = 30 * 1024 * 1024;

async function bytesOf(dir: string): Promise<number> {
  let total = 0;
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    total += entry.isDirectory() ? await bytesOf(p) : (await stat(p)).size;
  }
  return total;
}

describe("the SDK packed and installed into an empty project", () => {
  let server: Awaited<ReturnType<typeof network.createServer>>;
  let rpcUrl: string;
  before(async () => {
    server = await network.createServer({ network: "default" }, "127.0.0.1", 0);
    const { port } = await server.listen();
    rpcUrl = `http://127.0.0.1:${port}`;
  });
  after(async () => server.close());

  it("installs with viem alone, and the README example type-checks and runs from it", async () => {
    const work = await mkdtemp(path.join(tmpdir(), "sdk-pack-"));
    const packed = await exec("npm", ["pack", "--silent", "--pack-destination", work], { cwd: path.join(ROOT, "sdk") });
    const tarball = path.join(work, packed.stdout.trim().split("\n").pop()!);
    const project = path.join(work, "dapp");
    await mkdir(project);
    await writeFile(
      path.join(project, "package.json"),
      JSON.stringify({ name: "dapp", private: true, type: "module" }),
    );
    const versions = JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")).devDependencies;
    const npmInstall = (...specs: string[]) =>
      exec("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...specs], { cwd: project });
    await npmInstall(tarball, `viem@${versions.viem}`);

    const listed = (await exec("npm", ["ls", "--all", "--parseable"], { cwd: project })).stdout.trim().split("\n");
    const packages = listed.length - 1; // the first line is the project itself
    assert.ok(packages <= MAX_PACKAGES, `${packages} packages:\n${listed.join("\n")}`);
    for (const heavy of ["@tensorflow", "libp2p", "helia", "hardhat", "ethers"]) {
      assert.ok(!listed.some((p) => p.includes(`node_modules/${heavy}`)), `${heavy} installed`);
    }
    const modules = path.join(project, "node_modules");
    const sdkBytes = (await bytesOf(path.join(modules, "shard-protocol"))) + (await bytesOf(path.join(modules, "zod")));
    assert.ok(sdkBytes < MAX_SDK_BYTES, `the SDK and zod take ${(sdkBytes / 2 ** 20).toFixed(1)} MiB`);

    // The example as a dApp writes it: from the package, type-checked strictly, then compiled and run.
    const example = (await readFile(path.join(ROOT, "sdk/examples/dapp.ts"), "utf8"))
      .replace('from "../index.js"', 'from "shard-protocol/sdk"')
      .replace('from "../node.js"', 'from "shard-protocol/sdk/node"');
    assert.match(example, /from "shard-protocol\/sdk\/node"/);
    await writeFile(path.join(project, "dapp.ts"), example);
    await writeFile(
      path.join(project, "run.ts"),
      [
        'import { main } from "./dapp.js";',
        "const e = process.env as Record<string, string>;",
        "const result = await main({ rpcUrl: e.RPC_URL!, privateKey: e.PRIVATE_KEY as `0x${string}`,",
        "  gatewayPrivateKey: e.GATEWAY_PRIVATE_KEY as `0x${string}`, modelId: 1n, currency: e.CURRENCY as `0x${string}`,",
        "  deploymentsDir: e.DEPLOYMENTS_DIR });",
        'console.log(JSON.stringify(result, (_, v) => (typeof v === "bigint" ? String(v) : v)));',
      ].join("\n"),
    );
    await writeFile(
      path.join(project, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          module: "node16",
          moduleResolution: "node16",
          target: "es2022",
          lib: ["es2023"],
          strict: true,
          skipLibCheck: true, // as `tsc --init` writes it (viem's own declarations need the DOM lib otherwise)
          outDir: "out",
        },
        include: ["*.ts"],
      }),
    );
    await npmInstall(`@types/node@${versions["@types/node"]}`);
    const tsc = path.join(ROOT, "node_modules/typescript/bin/tsc");
    await exec(process.execPath, [tsc, "-p", project]).catch((e: { stdout?: string }) =>
      assert.fail(`the example does not type-check against the packed SDK:\n${e.stdout}`),
    );

    const chain = await exampleChain(network, rpcUrl);
    try {
      const { stdout } = await exec(process.execPath, [path.join(project, "out/run.js")], {
        cwd: project,
        env: {
          PATH: process.env.PATH,
          RPC_URL: rpcUrl,
          PRIVATE_KEY: privateKeyOf(1),
          GATEWAY_PRIVATE_KEY: privateKeyOf(2),
          CURRENCY: chain.usdc,
          DEPLOYMENTS_DIR: chain.deploymentsDir,
        },
      });
      const result = JSON.parse(stdout.trim().split("\n").pop()!);
      assert.equal(result.percentage, 62.5);
      assert.equal(result.settled, "200000");
      assert.equal(result.claimed[getAddress(chain.usdc)], "750000");
    } finally {
      await chain.connection.close();
    }
  });
});
