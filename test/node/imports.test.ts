import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Every `.ts` file under `dir` (relative to the repository), `dist` and `node_modules` left out. */
function sources(dir: string): string[] {
  return readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === "dist" || entry.name === "node_modules" ? [] : sources(rel);
    return entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts") ? [rel] : [];
  });
}

/** The files `file` imports or re-exports by a relative path (type-only imports included, as a cycle of types is one too). */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(root, file), "utf8");
  const specifiers = [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"/gms)].map((m) => m[1]!);
  return specifiers.map((s) => path.join(path.dirname(file), s.replace(/\.js$/, ".ts")));
}

/** The cycles of an import graph, each as the files around it (depth-first search, one per back edge). */
function cycles(graph: Map<string, string[]>): string[][] {
  const state = new Map<string, "open" | "done">();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    stack.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") found.push([...stack.slice(stack.indexOf(next)), next]);
      else if (state.get(next) === undefined) visit(next);
    }
    stack.pop();
    state.set(file, "done");
  };
  for (const file of graph.keys()) if (state.get(file) === undefined) visit(file);
  return found;
}

describe("module imports", () => {
  it("finds a cycle when there is one, and reads type-only imports and re-exports", () => {
    const graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", ["a.ts"]],
    ]);
    assert.deepEqual(cycles(graph), [["a.ts", "b.ts", "c.ts", "a.ts"]]);
    assert.ok(importsOf("node/src/p2p/link.ts").includes("node/src/p2p/host.ts")); // import type
    assert.ok(importsOf("node/src/p2p/link.ts").includes("node/src/p2p/pipeline-link.ts")); // export ... from
  });

  for (const dir of ["node/src", "sdk"]) {
    it(`${dir} has no import cycles`, () => {
      const files = sources(dir);
      assert.ok(files.length > 20, `found only ${files.length} files under ${dir}`);
      const graph = new Map(files.map((f) => [f, importsOf(f).filter((g) => files.includes(g))]));
      assert.deepEqual(
        cycles(graph).map((c) => c.join(" → ")),
        [],
      );
    });
  }
});
