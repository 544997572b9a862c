import { useEffect, useState } from "react";

import { Header } from "./components/Header.js";
import { AccountPage } from "./pages/Account.js";
import { ModelPage } from "./pages/Model.js";
import { ModelsPage } from "./pages/Models.js";

/** `#/`, `#/model/<id>`, `#/account`. */
function parse(hash: string): { name: "models" | "model" | "account"; modelId?: bigint } {
  const parts = hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "model" && /^\d+$/.test(parts[1] ?? "")) return { name: "model", modelId: BigInt(parts[1]!) };
  if (parts[0] === "account") return { name: "account" };
  return { name: "models" };
}

export function App() {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const onChange = () => setHash(window.location.hash);
    window.addEventListener("hashchange", onChange);
    return () => window.removeEventListener("hashchange", onChange);
  }, []);
  const route = parse(hash);
  return (
    <>
      <Header route={route.name} />
      <main>
        {route.name === "model" && <ModelPage modelId={route.modelId!} />}
        {route.name === "account" && <AccountPage />}
        {route.name === "models" && <ModelsPage />}
      </main>
    </>
  );
}
