/**
 * Every TypeScript example in README.md type-checks (`deno check`, under `deno test`) and runs as written on
 * this runtime, in a child process, printing on stdout exactly the lines its `// prints: …` comments state, in
 * their order (`…` stands for any text, such as a port number). An example that needs a service this machine
 * lacks (a broker, a browser) is marked with `<!-- check only: the reason -->` on the line before its block:
 * it is type-checked and not run.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { detectRuntime } from "../mod.ts";
import { noOpensslReason, testCerts } from "./_certs.ts";
import { type ChildRun, repositoryRoot, runCommand, runToEnd, typeScriptSkipReason } from "./_child_peers.ts";
import { tempDir } from "./_helpers.ts";

/** One ```ts block of the README. */
interface Example {
  /** The line of its opening fence. */
  readonly line: number;
  readonly code: string;
  /** What its `// prints:` comments say, in order: one stdout line each. */
  readonly prints: string[];
  /** Why it is type-checked only, from a `<!-- check only: … -->` line before it. */
  readonly checkOnly: string | undefined;
}

const PRINTS = /\/\/ prints: (.*)$/gm;
const CHECK_ONLY = /<!-- check only: (.+) -->\n*$/;

/** The README's TypeScript examples. */
function examplesOf(readme: string): Example[] {
  const examples: Example[] = [];
  const block = /^```ts\n([\s\S]*?)^```$/gm;
  for (let match; (match = block.exec(readme)) !== null;) {
    const code = match[1]!;
    const before = readme.slice(0, match.index);
    examples.push({
      line: before.split("\n").length,
      code,
      prints: [...code.matchAll(PRINTS)].map((m) => m[1]!.trimEnd()),
      checkOnly: CHECK_ONLY.exec(before)?.[1],
    });
  }
  return examples;
}

/**
 * The example as a file beside the repository: it imports `"./mod.ts"` (or `"./asockio/mod.ts"`, as a
 * vendored copy) as if it sat there.
 */
function materialize(code: string, root: string): string {
  return code.replaceAll('from "./asockio/', `from "${root}/`).replaceAll('from "./', `from "${root}/`);
}

/** Tells whether a stdout line is what a `// prints:` comment says; `…` stands for any text. */
function printedAs(line: string, expected: string): boolean {
  const pattern = expected.split("…").map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*");
  return new RegExp(`^${pattern}$`).test(line);
}

/** The PEM files an example that reads `*.crt` finds in its working directory (as the TLS example says). */
async function writeCerts(dir: string): Promise<void> {
  const certs = await testCerts();
  const files = {
    "ca.crt": certs.caCert,
    "server.crt": certs.serverCert,
    "server.key": certs.serverKey,
    "client.crt": certs.clientCert,
    "client.key": certs.clientKey,
  };
  for (const [name, pem] of Object.entries(files)) writeFileSync(join(dir, name), pem);
}

const root = repositoryRoot();
const skip = root === undefined
  ? "README.md is not beside this test (a packed copy)"
  : typeScriptSkipReason();
const examples = root ? examplesOf(readFileSync(join(root, "README.md"), "utf8")) : [];
const fileOf = (example: Example) => `readme_${example.line}.ts`;
const checkSkip = skip ?? (detectRuntime() === "deno" ? undefined : "type-checked under deno test");

/** One `deno check` over every example (one program is much cheaper than one per example). */
async function checkAll(): Promise<ChildRun> {
  await using dir = await tempDir("asockio-readme-check-");
  for (const example of examples) writeFileSync(dir.join(fileOf(example)), materialize(example.code, root!));
  const files = examples.map((example) => dir.join(fileOf(example)));
  return await runCommand(
    process.execPath,
    ["check", "--config", join(root!, "deno.json"), ...files],
    120_000,
  );
}
const checked = checkSkip ? undefined : checkAll();

describe("README examples", () => {
  it("has examples to check, most of them stating what they print", { skip }, () => {
    assert.ok(examples.length >= 10, `${examples.length} examples`);
    assert.ok(examples.filter((e) => e.prints.length > 0).length >= 8);
  });

  it("matches printed lines against `// prints:` comments, `…` standing for any text", () => {
    assert.ok(printedAs('listening on {"port":41234}', 'listening on {"port":…}'));
    assert.ok(printedAs("a.b (c)", "a.b (c)"));
    assert.ok(!printedAs("axb (c)", "a.b (c)"));
    assert.ok(!printedAs("ping pong", "ping"));
  });

  for (const example of examples) {
    const { line, code, prints, checkOnly } = example;

    it(`type-checks the example at README.md:${line}`, { skip: checkSkip, timeout: 150_000 }, async () => {
      const run = await checked!;
      if (run.code === 0) return;
      const output = `${run.stdout}\n${run.stderr}`;
      // An error names its place (`readme_186.ts:7:79`); one that names no example means the check itself
      // failed. (The output keeps its last 4 KiB: errors cut off at its start still fail the other examples.)
      const errorIn = (e: Example) => new RegExp(`${fileOf(e).replace(".", "\\.")}:\\d+:\\d+`).test(output);
      assert.ok(
        !errorIn(example) && examples.some(errorIn),
        `deno check failed (exit ${run.code}):\n${output}`,
      );
    });

    const needsCerts = code.includes('.crt"');
    const runSkip = skip ?? checkOnly ?? (needsCerts ? noOpensslReason : undefined);
    it(
      `runs the example at README.md:${line} and prints what it says`,
      { skip: runSkip, timeout: 60_000 },
      async () => {
        await using dir = await tempDir("asockio-readme-");
        const file = dir.join(fileOf(example));
        writeFileSync(file, materialize(code, root!));
        if (needsCerts) await writeCerts(dir.path);
        // Deno runs them as the README says to: with --unstable-net, which its UDP needs.
        const run = await runToEnd(file, [], 45_000, { denoFlags: ["--unstable-net"], cwd: dir.path });
        const context = `README.md:${line} ended with ${run.code}:\n${
          run.stdout.slice(-2000)
        }\n${run.stderr}`;
        assert.equal(run.code, 0, context);
        const lines = run.stdout === "" ? [] : run.stdout.trimEnd().split("\n");
        assert.equal(lines.length, prints.length, `expected ${JSON.stringify(prints)}; ${context}`);
        lines.forEach((printed, i) => {
          assert.ok(
            printedAs(printed, prints[i]!),
            `line ${i + 1}: ${JSON.stringify(printed)}, not ${prints[i]}`,
          );
        });
      },
    );
  }
});
