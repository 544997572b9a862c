import { QueryClient, QueryClientProvider } from "@tanstack/react-query";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { createConfig, http, injected, WagmiProvider } from "wagmi";

import { App } from "./App.js";
import { EnvProvider, loadEnv } from "./env.js";
import "./styles.css";

const root = createRoot(document.getElementById("root")!);

loadEnv().then(
  (env) => {
    const wagmi = createConfig({
      chains: [env.chain],
      connectors: [injected()],
      transports: { [env.chain.id]: http(env.rpcUrl) },
      pollingInterval: 1_000,
    });
    const queries = new QueryClient({ defaultOptions: { queries: { retry: 1, refetchOnWindowFocus: false } } });
    root.render(
      <StrictMode>
        <WagmiProvider config={wagmi}>
          <QueryClientProvider client={queries}>
            <EnvProvider value={env}>
              <App />
            </EnvProvider>
          </QueryClientProvider>
        </WagmiProvider>
      </StrictMode>,
    );
  },
  (error: unknown) => {
    root.render(<p className="error">Cannot load the app's configuration: {String(error)}</p>);
  },
);
