import type { IncomingMessage, ServerResponse } from "node:http";

import { refuse } from "./errors.js";

/** Reads the request body as JSON, refusing more than `limit` bytes (`BodyTooLarge`). */
export async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge(limit);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw refuse("InvalidRequest", "The body is not JSON.", { cause });
  }
}

const tooLarge = (limit: number) => refuse("BodyTooLarge", `The body is over ${limit} bytes.`);

/** Sends `body` as JSON (bigints as decimal strings). */
export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body, (_, v) => (typeof v === "bigint" ? String(v) : v));
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(text),
    "cache-control": "no-store",
  });
  res.end(text);
}
