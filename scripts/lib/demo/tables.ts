import { formatUnits } from "viem";

/** Column alignment: text left, numbers right. */
export type Align = "left" | "right";

/**
 * A plain-text table: a header row, a rule, the rows; columns padded to their widest cell.
 *
 * @example
 * renderTable(["holder", "balance"], [["trainer 0", "1,000"]], ["left", "right"])
 */
export function renderTable(headers: string[], rows: string[][], align: Align[] = []): string {
  const widths = headers.map((h, c) => Math.max(h.length, ...rows.map((r) => (r[c] ?? "").length)));
  const cell = (text: string, c: number) =>
    (align[c] ?? "left") === "right" ? text.padStart(widths[c]!) : text.padEnd(widths[c]!);
  const line = (cells: string[]) => cells.map(cell).join("  ").trimEnd();
  return [line(headers), widths.map((w) => "─".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** `1234567` → `1,234,567`. */
export function groupDigits(value: bigint): string {
  const negative = value < 0n;
  const digits = (negative ? -value : value).toString();
  return (negative ? "-" : "") + digits.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

/** A token amount in whole units with its symbol, e.g. `12.5 dUSD` (full precision, no rounding). */
export function formatAmount(value: bigint, decimals: number, symbol: string): string {
  return `${formatUnits(value, decimals)} ${symbol}`;
}

/** `numerator / denominator` as a percentage with 2 decimals (exact integer arithmetic, then rounded down). */
export function formatPercent(numerator: bigint, denominator: bigint): string {
  if (denominator === 0n) return "–";
  const hundredths = (numerator * 10_000n) / denominator;
  return `${hundredths / 100n}.${(hundredths % 100n).toString().padStart(2, "0")} %`;
}
