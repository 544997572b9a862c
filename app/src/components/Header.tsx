import { useConnect, useConnectors, useDisconnect, useSwitchChain } from "wagmi";

import { useEnv } from "../env.js";
import { useBlock, useWallet } from "../hooks.js";
import { Address } from "./ui.js";

/** Navigation, the chain and block the page reflects, and the wallet. */
export function Header({ route }: { route: string }) {
  const env = useEnv();
  const block = useBlock();
  const { address, chainId, wrongChain } = useWallet();
  const connectors = useConnectors();
  const connect = useConnect();
  const { mutate: disconnect } = useDisconnect();
  const { mutate: switchChain } = useSwitchChain();
  // wagmi lists its injected connector even where no wallet injected a provider: read-only then.
  const injected = "ethereum" in window && window.ethereum !== undefined ? connectors[0] : undefined;
  return (
    <header>
      <div className="bar">
        <strong className="brand">Shard protocol</strong>
        <nav>
          <a href="#/" className={route === "models" || route === "model" ? "active" : ""}>
            Models
          </a>
          <a href="#/account" className={route === "account" ? "active" : ""}>
            My account
          </a>
        </nav>
        <span className="chain" data-testid="chain">
          {env.chain.name} · chain {env.deployment.chainId} · block{" "}
          <span data-testid="block">{block === undefined ? "…" : block.toString()}</span>
        </span>
        <span className="wallet">
          {address ? (
            <>
              <Address address={address} />
              <button type="button" onClick={() => disconnect()}>
                Disconnect
              </button>
            </>
          ) : injected ? (
            <button type="button" data-testid="connect" onClick={() => connect.mutate({ connector: injected })}>
              Connect wallet
            </button>
          ) : (
            <span className="readonly" data-testid="read-only">
              read-only: no wallet in this browser
            </span>
          )}
        </span>
      </div>
      {connect.error && <p className="banner error">Cannot connect: {connect.error.message}</p>}
      {wrongChain && (
        <p className="banner error" data-testid="wrong-network">
          Wrong network: the wallet is on chain {chainId}, this deployment is on chain {env.deployment.chainId}. Writes
          are disabled until you switch.{" "}
          <button type="button" onClick={() => switchChain({ chainId: env.deployment.chainId })}>
            Switch to chain {env.deployment.chainId}
          </button>
        </p>
      )}
    </header>
  );
}
