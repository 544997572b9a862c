import type { ModelSpec } from "../ml/spec.js";
import { MAX_PROMPT_CHARACTERS } from "./api.js";
import { PromptError } from "./errors.js";

/**
 * The token ids of a prompt. Unlike training's `encodeText`, a character outside the vocabulary
 * is an error (`PromptError` listing them), not token 0.
 */
export function encodePrompt(spec: ModelSpec, prompt: string): number[] {
  const chars = [...prompt];
  if (chars.length === 0) throw new PromptError("The prompt is empty: give at least one character.");
  if (chars.length > MAX_PROMPT_CHARACTERS)
    throw new PromptError(`The prompt has ${chars.length} characters; at most ${MAX_PROMPT_CHARACTERS} are accepted.`);
  const index = new Map<string, number>();
  [...spec.architecture.vocab].forEach((c, i) => index.set(c, i));
  const unknown = [...new Set(chars.filter((c) => !index.has(c)))];
  if (unknown.length > 0)
    throw new PromptError(
      `The prompt has ${unknown.length} character${unknown.length === 1 ? "" : "s"} the model does not know.`,
      {
        details: `unknown: ${unknown
          .slice(0, 20)
          .map((c) => JSON.stringify(c))
          .join(", ")}${unknown.length > 20 ? ", …" : ""}`,
        unknown,
      },
    );
  return chars.map((c) => index.get(c)!);
}
