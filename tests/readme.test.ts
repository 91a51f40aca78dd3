/**
 * Every README example that imports `./mod.ts` runs as written, on this runtime, in a child process.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repositoryRoot, runToEnd, typeScriptSkipReason } from "./_child_peers.ts";
import { tempDir } from "./_helpers.ts";

/** How a runnable example imports asockio (a pattern, so the npm build's import check passes over it). */
const IMPORTS_THE_LIBRARY = /from "\.\/mod\.ts"/;

/** The README's runnable examples: the `ts` blocks that import the library by its relative path. */
function runnableExamples(readme: string): Array<{ line: number; code: string }> {
  const examples: Array<{ line: number; code: string }> = [];
  const block = /^```ts\n([\s\S]*?)^```$/gm;
  for (let match; (match = block.exec(readme)) !== null;) {
    const code = match[1]!;
    if (!IMPORTS_THE_LIBRARY.test(code)) continue;
    examples.push({ line: readme.slice(0, match.index).split("\n").length, code });
  }
  return examples;
}

const root = repositoryRoot();
const skip = root === undefined
  ? "README.md is not beside this test (a packed copy)"
  : typeScriptSkipReason();
const readme = root ? readFileSync(join(root, "README.md"), "utf8") : "";

describe("README examples", () => {
  it("has runnable examples to check", { skip }, () => {
    assert.ok(runnableExamples(readme).length >= 5);
  });

  for (const { line, code } of root ? runnableExamples(readme) : []) {
    it(`runs the example at README.md:${line} to its end`, { skip, timeout: 60_000 }, async () => {
      await using dir = await tempDir("asockio-readme-");
      const file = join(dir.path, `readme_${line}.ts`);
      // The example imports "./mod.ts" as if it sat in the repository; point it there.
      writeFileSync(file, code.replaceAll('from "./', `from "${root}/`));
      // Deno runs them as the README says to: with --unstable-net, which its UDP needs.
      const { code: exit, stdout, stderr } = await runToEnd(file, [], 45_000, {
        denoFlags: ["--unstable-net"],
      });
      assert.equal(exit, 0, `README.md:${line} ended with ${exit}:\n${stdout.slice(-2000)}\n${stderr}`);
    });
  }
});
