import { type ReactNode, useState } from "react";
import type { Address as Addr, Hex } from "viem";

import { formatAmount, shortAddress } from "../format.js";
import { useTokens, type WriteState } from "../hooks.js";

/** A shortened address (full one in the tooltip) with a copy button. */
export function Address({ address }: { address: Addr | Hex }) {
  const [copied, setCopied] = useState(false);
  const copy = () =>
    navigator.clipboard?.writeText(address).then(
      () => setCopied(true),
      () => setCopied(false),
    );
  return (
    <span className="address" title={address} data-address={address}>
      <code>{shortAddress(address)}</code>
      <button type="button" className="copy" onClick={copy} aria-label={`copy ${address}`}>
        {copied ? "copied" : "copy"}
      </button>
    </span>
  );
}

/** An ERC-20 amount in the token's units and symbol; the raw amount stays in `data-raw`. */
export function Amount({ amount, token }: { amount: bigint; token: Addr }) {
  const meta = useTokens([token]).get(token);
  return (
    <span className="amount" data-raw={amount.toString()} data-token={token}>
      {meta ? formatAmount(amount, meta) : `${amount} (units)`}
    </span>
  );
}

/** A currency's symbol, with its address in the tooltip. */
export function Symbol({ token }: { token: Addr }) {
  const meta = useTokens([token]).get(token);
  return <span title={token}>{meta?.symbol ?? shortAddress(token)}</span>;
}

export function Pill({ status }: { status: string }) {
  return <span className={`pill pill-${status}`}>{status}</span>;
}

export function Card({ title, children, testId }: { title: string; children: ReactNode; testId?: string }) {
  return (
    <section className="card" data-testid={testId}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}

/** Pending, confirmed (with hashes) or failed (with the SDK's decoded sentence). */
export function WriteStatus({ state }: { state: WriteState }) {
  if (state.status === "idle") return null;
  if (state.status === "pending")
    return (
      <p className="write write-pending" data-testid="write-status" data-status="pending">
        {state.label}: waiting for the wallet and the chain…
      </p>
    );
  if (state.status === "confirmed")
    return (
      <p className="write write-confirmed" data-testid="write-status" data-status="confirmed">
        {state.label}: confirmed
        {state.hashes.length > 0 ? ` (${state.hashes.length} transaction${state.hashes.length === 1 ? "" : "s"}: ` : ""}
        {state.hashes.map((h) => shortAddress(h)).join(", ")}
        {state.hashes.length > 0 ? ")" : " (nothing to send)"}
      </p>
    );
  return (
    <p className="write write-failed" data-testid="write-status" data-status="failed">
      {state.label} failed: <span data-testid="write-error">{state.message}</span>
    </p>
  );
}

export function Loading({ what, error }: { what: string; error?: unknown }) {
  if (error)
    return (
      <p className="error">
        Cannot read {what}: {error instanceof Error ? error.message : String(error)}
      </p>
    );
  return <p className="muted">Reading {what}…</p>;
}
