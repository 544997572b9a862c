import assert from "node:assert/strict";
import { mkdtemp, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { inspect } from "node:util";

import { Wallet } from "ethers";

import { KeyError } from "../../node/src/config/errors.js";
import {
  accountOf,
  decryptKeystore,
  encryptKeystore,
  generateKey,
  loadAccount,
  loadAddress,
  parsePrivateKey,
  readPassword,
  writeKeystore,
} from "../../node/src/config/keys.js";

/** The test vectors of the Web3 Secret Storage definition (password "testpassword"). */
const SPEC_KEY = "0x7a28b5ba57c53603b0b07b56bba752f7784bf506fa95edc395f5cf6c7514fe9d";
const SPEC_VECTORS = {
  pbkdf2: {
    crypto: {
      cipher: "aes-128-ctr",
      cipherparams: { iv: "6087dab2f9fdbbfaddc31a909735c1e6" },
      ciphertext: "5318b4d5bcd28de64ee5559e671353e16f075ecae9f99c7a79a38af5f869aa46",
      kdf: "pbkdf2",
      kdfparams: {
        c: 262144,
        dklen: 32,
        prf: "hmac-sha256",
        salt: "ae3cd4e7013836a3df6bd7241b12db061dbe2c6785853cce422d148a624ce0bd",
      },
      mac: "517ead924a9d0dc3124507e3393d175ce3ff7c1e96529c6c555ce9e51205e9b2",
    },
    id: "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    version: 3,
  },
  scrypt: {
    crypto: {
      cipher: "aes-128-ctr",
      cipherparams: { iv: "83dbcc02d8ccb40e466191a123791e0e" },
      ciphertext: "d172bf743a674da9cdad04534d56926ef8358534d458fffccd4e6ad2fbde479c",
      kdf: "scrypt",
      kdfparams: {
        dklen: 32,
        n: 262144,
        p: 8,
        r: 1,
        salt: "ab0c7876052600dd703518d6fc3fe8984592145b591fc8fb5c6d43190334ba19",
      },
      mac: "2103ac29920d71da29f15d75b4a16dbe95cfd7ff8faea1056c33131d846e3097",
    },
    id: "3198bc9c-6672-5ab3-d995-4942343ae5b6",
    version: 3,
  },
};

/** The KeyError `fn` throws or rejects with. */
async function keyError(fn: () => unknown): Promise<KeyError> {
  try {
    await fn();
  } catch (error) {
    assert.ok(error instanceof KeyError, `expected KeyError, got ${String(error)}`);
    return error;
  }
  assert.fail("expected a KeyError");
}

const everything = (error: KeyError) => `${error.message}\n${error.stack}\n${inspect(error, { depth: 10 })}`;

describe("keystores", () => {
  it("open the Web3 Secret Storage pbkdf2 test vector; refuse scrypt parameters beyond RFC 7914 clearly", async () => {
    assert.equal((await decryptKeystore(SPEC_VECTORS.pbkdf2, "testpassword")).reveal(), SPEC_KEY);
    const wrong = await keyError(() => decryptKeystore(SPEC_VECTORS.pbkdf2, "testpassword2"));
    assert.equal(wrong.shortMessage, "Wrong password for the keystore.");
    // The spec's scrypt vector has n = 2^18 with r = 1, which RFC 7914 (and so OpenSSL and ethers) forbids.
    const error = await keyError(() => decryptKeystore(SPEC_VECTORS.scrypt, "testpassword"));
    assert.equal(error.shortMessage, "The keystore is not a Web3 Secret Storage v3 keystore this node can open.");
    assert.match(error.details ?? "", /crypto\.kdfparams\.n: n must be below 2\^\(16·r\) \(RFC 7914\)/);
  });

  it("written by ethers (Wallet.encrypt) open with ours", async () => {
    const wallet = Wallet.createRandom();
    const json = await wallet.encrypt("correct horse");
    const key = await decryptKeystore(json, "correct horse");
    assert.equal(key.reveal(), wallet.privateKey);
    const error = await keyError(() => decryptKeystore(json, "wrong horse"));
    assert.equal(error.shortMessage, "Wrong password for the keystore.");
  });

  it("written by ours open with ethers (Wallet.fromEncryptedJson)", async () => {
    const key = generateKey();
    const keystore = await encryptKeystore(key, "pässwörd"); // ethers normalizes to NFKC: so do we
    assert.equal(keystore.crypto.kdfparams.n, 1 << 17);
    const wallet = await Wallet.fromEncryptedJson(JSON.stringify(keystore), "pässwörd");
    assert.equal(wallet.privateKey, key.reveal());
    assert.equal(wallet.address, accountOf(key).address);
    assert.equal(`0x${keystore.address}`, wallet.address.toLowerCase());
  });

  it("are written 0600, never over an existing file; a tampered address is refused", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "shard-node-keys-"));
    const file = path.join(dir, "keystore", "k.json");
    const keystore = await encryptKeystore(generateKey(), "pw", { scryptN: 1 << 10 });
    await writeKeystore(file, keystore);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const exists = await keyError(() => writeKeystore(file, keystore));
    assert.match(exists.shortMessage, /already exists .* never overwritten/);

    const forged = { ...keystore, address: "00000000000000000000000000000000000000aa" };
    const error = await keyError(() => decryptKeystore(forged, "pw"));
    assert.match(error.shortMessage, /inconsistent: its key belongs to 0x[0-9a-fA-F]{40}, not to 0x0{38}[aA]{2}/);

    const bad = await keyError(() => decryptKeystore({ version: 3, crypto: { kdf: "argon2" } }, "pw"));
    assert.match(bad.shortMessage, /not a Web3 Secret Storage v3 keystore/);
  });
});

describe("the signing key", () => {
  it("comes from SHARD_NODE_PRIVATE_KEY before any keystore", async () => {
    const key = generateKey();
    const account = await loadAccount({
      keystore: "/nonexistent.json",
      env: { SHARD_NODE_PRIVATE_KEY: key.reveal() },
    });
    assert.equal(account.address, accountOf(key).address);
  });

  it("malformed or out of range: the error never contains the input", async () => {
    const secret = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f36231";
    for (const input of [secret, `${secret}zz`, secret.slice(2) + "0", `0x${"0".repeat(64)}`, `0x${"f".repeat(64)}`]) {
      const error = await keyError(() => loadAccount({ env: { SHARD_NODE_PRIVATE_KEY: input } }));
      assert.match(error.shortMessage, /^SHARD_NODE_PRIVATE_KEY is not a (valid secp256k1 )?private key\.$/);
      const text = everything(error);
      assert.ok(!text.includes(input.replace(/^0x/, "")), "the input must not appear in the error");
      assert.ok(!text.includes(input.replace(/^0x/, "").slice(0, 16)), "nor a part of it");
      assert.equal(error.cause, undefined);
    }
  });

  it("is hidden from JSON.stringify and util.inspect", async () => {
    const key = parsePrivateKey(SPEC_KEY, "test");
    const hex = SPEC_KEY.slice(2);
    for (const text of [JSON.stringify({ key }), inspect({ key }, { depth: 10, showHidden: true }), `${key}`]) {
      assert.ok(!text.includes(hex), text);
      assert.match(text, /redacted/);
    }
    const account = await loadAccount({ env: { SHARD_NODE_PRIVATE_KEY: SPEC_KEY } });
    assert.ok(!JSON.stringify(account).includes(hex));
    assert.ok(!inspect(account, { depth: 10, showHidden: true }).includes(hex));
  });

  it("from a keystore needs a password: environment, prompt on a terminal, or a clear error", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "shard-node-keys-"));
    const file = path.join(dir, "k.json");
    const key = generateKey();
    await writeFile(file, JSON.stringify(await encryptKeystore(key, "s3cret", { scryptN: 1 << 10 })));
    const address = accountOf(key).address;

    const fromEnv = await loadAccount({ keystore: file, env: { SHARD_NODE_KEYSTORE_PASSWORD: "s3cret" } });
    assert.equal(fromEnv.address, address);

    const questions: string[] = [];
    const prompted = await loadAccount({
      keystore: file,
      env: {},
      interactive: true,
      prompt: async (question) => (questions.push(question), "s3cret"),
    });
    assert.equal(prompted.address, address);
    assert.deepEqual(questions, [`Password for the keystore ${file}: `]);

    const noTty = await keyError(() => loadAccount({ keystore: file, env: {}, interactive: false }));
    assert.equal(noTty.shortMessage, `No password for the keystore ${file}.`);
    assert.match(noTty.details ?? "", /set SHARD_NODE_KEYSTORE_PASSWORD, or run in a terminal/);

    // status reads the address from the keystore without the password.
    assert.equal(await loadAddress({ keystore: file, env: {}, interactive: false }), address);

    const none = await keyError(() => loadAccount({ env: {} }));
    assert.equal(none.shortMessage, "No signing key.");
    const missing = await keyError(() => loadAccount({ keystore: path.join(dir, "nope.json"), env: {} }));
    assert.equal(missing.shortMessage, `The keystore ${path.join(dir, "nope.json")} does not exist.`);
  });

  it("new passwords are asked twice and must match", async () => {
    const answers = ["one", "two"];
    const error = await keyError(() =>
      readPassword({
        purpose: "the new keystore",
        confirm: true,
        env: {},
        interactive: true,
        prompt: async () => answers.shift()!,
      }),
    );
    assert.equal(error.shortMessage, "The passwords do not match.");
    const empty = await keyError(() =>
      readPassword({ purpose: "the new keystore", confirm: true, env: { SHARD_NODE_KEYSTORE_PASSWORD: "" } }),
    );
    assert.equal(empty.shortMessage, "The keystore password must not be empty.");
  });
});
