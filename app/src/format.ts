import { formatUnits } from "viem";

/** `0x70997970…79C8` */
export const shortAddress = (address: string) => `${address.slice(0, 6)}…${address.slice(-4)}`;

/** An ERC-20 amount, exact: every decimal the token has that is not a trailing zero, then the symbol. */
export const formatAmount = (amount: bigint, token: { decimals: number; symbol: string | undefined }) =>
  `${formatUnits(amount, token.decimals)} ${token.symbol ?? "?"}`;

/** A percentage with up to 4 decimals. */
export const formatPercent = (percent: number) => `${Number(percent.toFixed(4))}%`;

/** Unix seconds as a local date and time. */
export const formatTime = (seconds: bigint | number) =>
  Number(seconds) === 0 ? "—" : new Date(Number(seconds) * 1000).toLocaleString("en-GB", { timeZone: "UTC" }) + " UTC";

/** `ipfs://<cid>/…` as a link through a public gateway; other URIs unchanged. */
export const gatewayUrl = (uri: string, gateway: string) =>
  uri.startsWith("ipfs://") ? gateway + uri.slice("ipfs://".length) : uri;
