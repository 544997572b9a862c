import { KeyError } from "./errors.js";

/** The environment variable a keystore's password may come from. */
export const KEYSTORE_PASSWORD_ENV = "SHARD_NODE_KEYSTORE_PASSWORD";

/* PASSWORDS */

/** Asks for a secret without echoing it (on stderr, so stdout stays clean). */
export type PasswordPrompt = (question: string) => Promise<string>;

export interface ReadPasswordOptions {
  env?: NodeJS.ProcessEnv | undefined;
  /** Whether a person can be asked (default: stdin is a terminal). */
  interactive?: boolean | undefined;
  prompt?: PasswordPrompt | undefined;
  /** What the password is for, in the question and errors: `the keystore ./k.json`. */
  purpose: string;
  /** Ask twice and compare (new keystores); also refuses an empty password. */
  confirm?: boolean | undefined;
}

/** The keystore password: `SHARD_NODE_KEYSTORE_PASSWORD`, else a hidden prompt on a terminal. */
export async function readPassword(options: ReadPasswordOptions): Promise<string> {
  const env = options.env ?? process.env;
  const fromEnv = env[KEYSTORE_PASSWORD_ENV];
  const check = (password: string) => {
    if (options.confirm && password === "") {
      throw new KeyError("The keystore password must not be empty.");
    }
    return password;
  };
  if (fromEnv !== undefined) return check(fromEnv);
  const interactive = options.interactive ?? process.stdin.isTTY === true;
  if (!interactive) {
    throw new KeyError(`No password for ${options.purpose}.`, {
      details: `set ${KEYSTORE_PASSWORD_ENV}, or run in a terminal to be asked for it`,
    });
  }
  const prompt = options.prompt ?? promptHidden;
  const password = check(await prompt(`Password for ${options.purpose}: `));
  if (options.confirm && (await prompt("Repeat the password: ")) !== password) {
    throw new KeyError("The passwords do not match.");
  }
  return password;
}

/** Reads a line from the terminal without echoing it. Ctrl-C cancels. */
export function promptHidden(question: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) return Promise.reject(new KeyError("Cannot ask for a password: stdin is not a terminal."));
  process.stderr.write(question);
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding("utf8");
  return new Promise((resolve, reject) => {
    let value = "";
    const finish = (error?: KeyError) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      if (error === undefined) resolve(value);
      else reject(error);
    };
    const onData = (chunk: string) => {
      for (const ch of chunk) {
        if (ch === "\r" || ch === "\n" || ch === "\u0004") return finish();
        if (ch === "\u0003") return finish(new KeyError("Password entry cancelled."));
        if (ch === "\u007f" || ch === "\b") value = [...value].slice(0, -1).join("");
        else value += ch;
      }
    };
    stdin.on("data", onData);
  });
}
