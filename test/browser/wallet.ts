import type { BrowserContext } from "playwright-core";
import { createWalletClient, type Hex, http, numberToHex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { hardhat } from "viem/chains";

/**
 * An EIP-1193 wallet injected into every page of `context` as `window.ethereum`: it holds one
 * private key (in Node, never in the page), signs and sends `eth_sendTransaction` with viem, and
 * forwards every other request to the chain's RPC. `chainId` is what it tells the page it is on
 * (another chain than the node's plays a wallet on the wrong network) until the page asks it to
 * switch (`wallet_switchEthereumChain`, then a `chainChanged` event). `sent` lists the hashes.
 */
export async function injectWallet(
  context: BrowserContext,
  options: { privateKey: Hex; rpcUrl: string; chainId?: number },
) {
  const account = privateKeyToAccount(options.privateKey);
  const signer = createWalletClient({ account, chain: hardhat, transport: http(options.rpcUrl) });
  const wallet = { address: account.address, chainId: options.chainId ?? hardhat.id, sent: [] as Hex[] };
  let id = 0;

  async function forward(method: string, params: unknown) {
    const response = await fetch(options.rpcUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params: params ?? [] }),
    });
    return (await response.json()) as { result?: unknown; error?: { code: number; message: string; data?: unknown } };
  }

  async function handle(
    method: string,
    params: unknown[],
  ): Promise<{ result?: unknown; error?: unknown; events?: [string, unknown][] }> {
    switch (method) {
      case "eth_requestAccounts":
      case "eth_accounts":
        return { result: [account.address] };
      case "eth_chainId":
        return { result: numberToHex(wallet.chainId) };
      case "net_version":
        return { result: String(wallet.chainId) };
      case "wallet_switchEthereumChain": {
        const { chainId } = params[0] as { chainId: Hex };
        if (Number(chainId) !== hardhat.id) return { error: { code: 4902, message: `unknown chain ${chainId}` } };
        wallet.chainId = hardhat.id;
        return { result: null, events: [["chainChanged", chainId]] };
      }
      case "wallet_requestPermissions":
      case "wallet_getPermissions":
        return { result: [{ parentCapability: "eth_accounts" }] };
      case "eth_sendTransaction": {
        const tx = params[0] as { to: Hex; data?: Hex; value?: Hex };
        try {
          const hash = await signer.sendTransaction({
            to: tx.to,
            data: tx.data,
            value: tx.value === undefined ? undefined : BigInt(tx.value),
          });
          wallet.sent.push(hash);
          return { result: hash };
        } catch (error) {
          return { error: { code: -32603, message: error instanceof Error ? error.message : String(error) } };
        }
      }
      default:
        return forward(method, params);
    }
  }

  await context.exposeFunction("__testWallet", async (request: string) => {
    const { method, params } = JSON.parse(request) as { method: string; params?: unknown[] };
    return JSON.stringify(await handle(method, params ?? []));
  });
  await context.addInitScript(() => {
    const listeners = new Map<string, Set<(...args: unknown[]) => void>>();
    const call = (globalThis as unknown as { __testWallet: (r: string) => Promise<string> }).__testWallet;
    const provider = {
      isTestWallet: true,
      async request({ method, params }: { method: string; params?: unknown[] }) {
        const answer = JSON.parse(await call(JSON.stringify({ method, params }))) as {
          result?: unknown;
          error?: { code: number; message: string; data?: unknown };
          events?: [string, unknown][];
        };
        if (answer.error) throw Object.assign(new Error(answer.error.message), answer.error);
        for (const [event, value] of answer.events ?? []) listeners.get(event)?.forEach((l) => l(value));
        return answer.result;
      },
      on(event: string, listener: (...args: unknown[]) => void) {
        if (!listeners.has(event)) listeners.set(event, new Set());
        listeners.get(event)!.add(listener);
        return provider;
      },
      removeListener(event: string, listener: (...args: unknown[]) => void) {
        listeners.get(event)?.delete(listener);
        return provider;
      },
    };
    (globalThis as unknown as { ethereum: unknown }).ethereum = provider;
  });
  return wallet;
}
