import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";

import { CID } from "multiformats/cid";
import * as raw from "multiformats/codecs/raw";
import { sha256 } from "multiformats/hashes/sha2";

import { NodeError } from "../../node/src/errors.js";
import {
  ContentNotFoundError,
  ContentStoreError,
  ContentTooLargeError,
  HeliaStore,
  InvalidCidError,
  IpfsUnavailableError,
  ipfsUri,
  KuboStore,
  openContentStore,
  parseIpfsUri,
} from "../../node/src/ipfs/index.js";
import { readBounded } from "../../node/src/ipfs/store.js";

const MiB = 1024 * 1024;

async function withTempDir(fn: (dir: string) => Promise<void>) {
  const dir = await mkdtemp(path.join(tmpdir(), "shard-ipfs-"));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function withStore(fn: (store: HeliaStore, dir: string) => Promise<void>) {
  await withTempDir(async (dir) => {
    const store = await HeliaStore.open(path.join(dir, "ipfs"));
    try {
      await fn(store, dir);
    } finally {
      await store.close();
    }
  });
}

function bytesOf(length: number, seed = 1): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed;
  for (let i = 0; i < length; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A local HTTP server answering every request with `handler`; closed after `fn`. */
async function withServer(handler: Parameters<typeof createServer>[1], fn: (url: string) => Promise<void>) {
  const server: Server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** A localhost URL on which nothing listens (a port that was just free). */
async function closedPortUrl(): Promise<string> {
  let url = "";
  await withServer(
    (_, res) => res.end(),
    async (u) => {
      url = u;
    },
  );
  return url;
}

describe("ipfs URIs", () => {
  const cid = "bafkreiadsbmmn4waznesyuz3bjgrj33xzqhxrk6mz3ksq7meugrachh3qe";

  it("round-trip a CID", () => {
    assert.equal(ipfsUri(cid), `ipfs://${cid}`);
    assert.equal(parseIpfsUri(`ipfs://${cid}`), cid);
  });

  it("reject what is not a bare ipfs://<cid>", () => {
    for (const bad of [
      cid,
      `https://${cid}`,
      `ipfs://${cid}/file`,
      `ipfs://${cid}?x=1`,
      "ipfs://",
      "ipfs://not-a-cid",
    ]) {
      assert.throws(() => parseIpfsUri(bad), InvalidCidError, bad);
    }
    assert.throws(() => ipfsUri("nope"), InvalidCidError);
  });
});

describe("HeliaStore", () => {
  it("adds bytes as a CIDv1 and gets them back; the same bytes give the same CID", async () => {
    await withStore(async (store) => {
      assert.equal(store.kind, "helia");
      const bytes = new Uint8Array([1, 2, 3]);
      const cid = await store.add(bytes);
      // A single-chunk file is one raw block: its CID is the sha2-256 of the bytes.
      assert.equal(cid, CID.createV1(raw.code, await sha256.digest(bytes)).toString());
      assert.equal(await store.add(bytes), cid, "adding again (already pinned) gives the same CID");
      assert.deepEqual(await store.get(cid, { maxBytes: 3 }), bytes);
      const empty = await store.add(new Uint8Array());
      assert.deepEqual(await store.get(empty, { maxBytes: 0 }), new Uint8Array());
    });
  });

  it("stores content larger than one chunk as a UnixFS file and reads it back in order", async () => {
    await withStore(async (store) => {
      const bytes = bytesOf(MiB + 12_345);
      const cid = await store.add(bytes);
      assert.equal(CID.parse(cid).code, 0x70, "a multi-chunk file is a dag-pb root");
      assert.deepEqual(await store.get(cid, { maxBytes: bytes.length }), bytes);
    });
  });

  it("keeps content across close and reopen of the same directory", async () => {
    await withTempDir(async (dir) => {
      const bytes = bytesOf(1000, 7);
      const first = await HeliaStore.open(path.join(dir, "ipfs"));
      const cid = await first.add(bytes);
      await first.close();
      await first.close(); // closing twice is harmless
      await assert.rejects(first.get(cid, { maxBytes: 1000 }), ContentStoreError);

      const second = await HeliaStore.open(path.join(dir, "ipfs"));
      try {
        assert.deepEqual(await second.get(cid, { maxBytes: 1000 }), bytes);
      } finally {
        await second.close();
      }
      assert.deepEqual((await readdir(path.join(dir, "ipfs"))).sort(), ["blocks", "datastore"]);
    });
  });

  it("fails to open with ContentStoreError where the directory cannot be created", async () => {
    await withTempDir(async (dir) => {
      await writeFile(path.join(dir, "file"), "not a directory");
      await assert.rejects(HeliaStore.open(path.join(dir, "file", "ipfs")), ContentStoreError);
    });
  });

  it("refuses content beyond maxBytes, single block or multi-block", async () => {
    await withStore(async (store) => {
      const small = await store.add(bytesOf(100));
      await assert.rejects(store.get(small, { maxBytes: 99 }), (error: unknown) => {
        assert.ok(error instanceof ContentTooLargeError);
        assert.equal(error.cid, small);
        assert.equal(error.maxBytes, 99);
        assert.equal(error.retryable, false);
        return true;
      });
      const large = await store.add(bytesOf(MiB + 1));
      await assert.rejects(store.get(large, { maxBytes: MiB }), ContentTooLargeError);
      await assert.rejects(store.get(small, { maxBytes: -1 }), ContentStoreError);
    });
  });

  it("fails at once with ContentNotFoundError for a CID it does not hold", { timeout: 5_000 }, async () => {
    await withStore(async (store) => {
      const absent = CID.createV1(raw.code, await sha256.digest(new Uint8Array([9, 9, 9]))).toString();
      await assert.rejects(store.get(absent, { maxBytes: 100 }), (error: unknown) => {
        assert.ok(error instanceof ContentNotFoundError);
        assert.ok(error instanceof NodeError);
        assert.equal(error.cid, absent);
        assert.equal(error.retryable, false);
        return true;
      });
      // A CIDv0 and a dag-cbor CID are parsed, then equally absent.
      await assert.rejects(
        store.get("QmPZ9gcCEpqKTo6aq61g2nXGUhM4iCL3ewB6LDXZCtioEB", { maxBytes: 100 }),
        ContentNotFoundError,
      );
      await assert.rejects(
        store.get("bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy", { maxBytes: 100 }),
        ContentNotFoundError,
      );
    });
  });

  it("rejects a string that is not a CID with InvalidCidError", async () => {
    await withStore(async (store) => {
      for (const bad of ["", "hello", "bafkrei!!!", `ipfs://${await store.add(new Uint8Array([1]))}`]) {
        await assert.rejects(store.get(bad, { maxBytes: 10 }), InvalidCidError, bad);
      }
    });
  });

  it("throws the caller's abort reason when the signal aborts", async () => {
    await withStore(async (store) => {
      const cid = await store.add(new Uint8Array([1]));
      const reason = new Error("shutting down");
      await assert.rejects(store.get(cid, { maxBytes: 10, signal: AbortSignal.abort(reason) }), (error: unknown) => {
        assert.equal(error, reason);
        return true;
      });
    });
  });
});

describe("readBounded", () => {
  it("stops as soon as a stream passes the limit, whatever the content declared", async () => {
    let pulled = 0;
    async function* chunks() {
      for (let i = 0; i < 100; i++) {
        pulled++;
        yield new Uint8Array(10);
      }
    }
    await assert.rejects(readBounded("cid", chunks(), 25), ContentTooLargeError);
    assert.equal(pulled, 3);
    assert.equal((await readBounded("cid", chunks(), 1000)).length, 1000);
  });
});

describe("KuboStore", () => {
  it("reports a daemon that is not listening as IpfsUnavailableError, retryable", { timeout: 5_000 }, async () => {
    const url = await closedPortUrl();
    await assert.rejects(openContentStore({ dataDir: "/nonexistent", kuboUrl: url }), (error: unknown) => {
      assert.ok(error instanceof IpfsUnavailableError);
      assert.equal(error.retryable, true);
      assert.equal(error.url, url);
      assert.match(error.details ?? "", /ECONNREFUSED/);
      return true;
    });
  });

  it("reports a URL that is not a Kubo RPC API (HTTP 404) as IpfsUnavailableError", { timeout: 5_000 }, async () => {
    await withServer(
      (_, res) => res.writeHead(404).end(),
      async (url) => {
        await assert.rejects(KuboStore.connect(url), (error: unknown) => {
          assert.ok(error instanceof IpfsUnavailableError);
          assert.match(error.details ?? "", /HTTP 404/);
          return true;
        });
      },
    );
  });

  it("gives up on a daemon that does not answer after the request timeout", { timeout: 5_000 }, async () => {
    await withServer(
      () => {}, // never responds
      async (url) => {
        await assert.rejects(KuboStore.connect(url, { connectTimeoutMs: 200 }), (error: unknown) => {
          assert.ok(error instanceof IpfsUnavailableError);
          assert.match(error.details ?? "", /no answer within 200 ms/);
          return true;
        });
      },
    );
  });
});

describe("openContentStore", () => {
  it("opens the embedded store in <dataDir>/ipfs when no Kubo URL is given", async () => {
    await withTempDir(async (dataDir) => {
      const store = await openContentStore({ dataDir });
      try {
        assert.equal(store.kind, "helia");
        assert.ok(store instanceof HeliaStore);
        assert.equal(store.directory, path.join(dataDir, "ipfs"));
        const cid = await store.add(new Uint8Array([4, 2]));
        assert.deepEqual(await store.get(cid, { maxBytes: 2 }), new Uint8Array([4, 2]));
      } finally {
        await store.close();
      }
    });
  });
});
