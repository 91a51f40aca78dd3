/**
 * Every command-line entry point (`bench/run.ts`, the scripts in `scripts/`, and `scripts/test_all.mjs`,
 * which is `npm test`) answers `--help` with its usage and exit code 0, and an unknown flag with the usage
 * on stderr and exit code 2; the long runs' progress lines tell the time left and stay off a pipe. Each
 * runs in a child process: the TypeScript ones with this runtime, `test_all.mjs` with Node, as `npm test`
 * runs it.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { detectRuntime } from "../mod.ts";
import { type ChildRun, repositoryRoot, runToEnd, typeScriptSkipReason } from "./_child_peers.ts";
import { tempDir, TEST_TIMEOUT } from "./_helpers.ts";

/** A child that only parses its arguments ends in well under a second; this bounds a stuck one. */
const CHILD_TIMEOUT_MS = 30_000;
/** Children at once: enough to overlap runtime start-up, few enough for a shared 2-core machine. */
const PARALLEL_CHILDREN = 4;

const root = repositoryRoot();
const notInClone = root === undefined ? "scripts/ is not beside this test (a packed copy)" : undefined;
/** `npm test` runs test_all.mjs with the machine's Node; under Deno and Bun that is `node` on PATH. */
const node = detectRuntime() === "node" ? process.execPath : "node";

/** The entry points, and what runs them. */
const ENTRY_POINTS: { file: string; executable?: string; skip: string | undefined }[] = [
  ...[
    "bench/run.ts",
    ...["churn", "flood", "fuzz", "reconnect_latency", "soak", "stream"].map((s) => `scripts/${s}.ts`),
  ]
    .map((file) => ({ file, skip: notInClone ?? typeScriptSkipReason() })),
  { file: "scripts/test_all.mjs", executable: node, skip: notInClone },
  // The build's own scripts run with `deno run` (npm run build, npm run docs): checked under Deno.
  ...["scripts/build_npm.ts", "scripts/api_docs.ts", "bench/instructions.ts"].map((file) => ({
    file,
    skip: notInClone ?? (detectRuntime() === "deno" ? undefined : "a Deno script: checked under deno test"),
  })),
];

/** Values the parser refuses, one per kind of entry point. */
const BAD_VALUES: { file: string; args: string[]; executable?: string; reason: RegExp }[] = [
  {
    file: "scripts/fuzz.ts",
    args: ["--cases", "12x"],
    reason: /^Cannot parse --cases: "12x" is no number$/m,
  },
  // A negative value as its own argument once made parseArgs call the flag "ambiguous".
  {
    file: "scripts/fuzz.ts",
    args: ["--cases", "-5"],
    reason: /^Cannot parse --cases: it must be a positive integer, not "-5"$/m,
  },
  // A fraction was once rounded: 1.5 messages ran 2.
  {
    file: "scripts/soak.ts",
    args: ["--messages", "1.5"],
    reason: /^Cannot parse --messages: it must be a positive integer, not "1.5"$/m,
  },
  {
    file: "scripts/churn.ts",
    args: ["--connections=0"],
    reason: /^Cannot parse --connections: it must be a positive integer, not "0"$/m,
  },
  // A seed may be 0, never negative.
  {
    file: "scripts/fuzz.ts",
    args: ["--seed=-1"],
    reason: /^Cannot parse --seed: it must be 0 or a positive integer, not "-1"$/m,
  },
  {
    file: "scripts/stream.ts",
    args: ["--bytes", "64MiB,lots"],
    reason: /^Cannot parse --bytes: lots is not a byte count$/m,
  },
  {
    file: "bench/run.ts",
    args: ["--runtime", "deno,python"],
    reason: /^Cannot parse --runtime: "python" is not one of deno,bun,node,all$/m,
  },
  {
    file: "scripts/test_all.mjs",
    args: ["--only=deno,bogus"],
    executable: node,
    reason: /^Cannot parse --only: "bogus" is not one of/m,
  },
];

let running = 0;
const waiting: (() => void)[] = [];

/** Runs `file` from the repository root with `args`, at most PARALLEL_CHILDREN at once. */
async function runEntryPoint(file: string, args: string[], executable?: string): Promise<ChildRun> {
  while (running >= PARALLEL_CHILDREN) await new Promise<void>((resolve) => waiting.push(resolve));
  running++;
  try {
    return await runToEnd(join(root!, file), args, CHILD_TIMEOUT_MS, { executable });
  } finally {
    running--;
    waiting.shift()?.();
  }
}

function describeRun(run: ChildRun): string {
  return `exit ${run.code}\n--- stdout:\n${run.stdout.slice(-2000)}\n--- stderr:\n${run.stderr}`;
}

describe("command-line entry points", () => {
  for (const { file, executable, skip } of ENTRY_POINTS) {
    // Started together, so the children overlap; each test awaits its own.
    const help = skip ? undefined : runEntryPoint(file, ["--help"], executable);
    const unknown = skip ? undefined : runEntryPoint(file, ["--no-such-flag"], executable);

    it(`${file} --help prints the usage to stdout and exits 0`, { ...TEST_TIMEOUT, skip }, async () => {
      const run = await help!;
      assert.equal(run.code, 0, describeRun(run));
      assert.match(run.stdout, /^Usage: /, describeRun(run));
      assert.match(run.stdout, /^ {2}--help +print this and exit$/m, describeRun(run));
      assert.equal(run.stderr, "", describeRun(run));
    });

    it(
      `${file} --no-such-flag prints the reason and the usage to stderr and exits 2`,
      { ...TEST_TIMEOUT, skip },
      async () => {
        const run = await unknown!;
        assert.equal(run.code, 2, describeRun(run));
        assert.match(
          run.stderr,
          /^Cannot parse the arguments: Unknown option '--no-such-flag'$/m,
          describeRun(run),
        );
        assert.match(run.stderr, /^Usage: /m, describeRun(run));
        assert.equal(run.stdout, "", describeRun(run));
      },
    );
  }

  for (const c of BAD_VALUES) {
    const skip = notInClone ?? (c.file.endsWith(".ts") ? typeScriptSkipReason() : undefined);
    it(
      `${c.file} ${c.args.join(" ")} exits 2 naming the flag and the value`,
      { ...TEST_TIMEOUT, skip },
      async () => {
        const run = await runEntryPoint(c.file, c.args, c.executable);
        assert.equal(run.code, 2, describeRun(run));
        assert.match(run.stderr, c.reason, describeRun(run));
        assert.match(run.stderr, /^Usage: /m, describeRun(run));
      },
    );
  }

  it(
    "a short fuzz run takes its kebab-case flags and prints no progress line into a pipe",
    { ...TEST_TIMEOUT, skip: notInClone ?? typeScriptSkipReason() },
    async () => {
      const run = await runEntryPoint("scripts/fuzz.ts", [
        "--cases=400",
        "--seed",
        "7",
        "--concurrency",
        "2",
        "--timeout-ms",
        "10k",
        "--max-rss-mib",
        "256",
      ]);
      assert.equal(run.code, 0, describeRun(run));
      assert.match(run.stdout, /^asockio fuzz on \w+ [\d.]+: seed 7, 400 cases$/m, describeRun(run));
      assert.match(run.stdout, /^seed: +7$/m, describeRun(run));
      assert.match(run.stdout, /^fuzz: OK$/m, describeRun(run));
      assert.doesNotMatch(run.stdout, /elapsed/, describeRun(run));
    },
  );

  it(
    "progress lines tell the elapsed time, the time left and the share done, and only to a terminal",
    { ...TEST_TIMEOUT, skip: notInClone ?? typeScriptSkipReason() },
    async () => {
      await using dir = await tempDir("asockio-cli-");
      const file = join(dir.path, "progress.ts");
      // A clock that reads 62 s after the start, 25% done: 186 s to go at that pace.
      writeFileSync(
        file,
        `import { Progress } from ${JSON.stringify(join(root!, "scripts", "_progress.ts"))};\n` +
          `let t = 0;\n` +
          `const shown = new Progress(1000, { enabled: true, now: () => t });\n` +
          `t = 62_000;\n` +
          `shown.step(0, "nothing yet");\n` +
          `shown.step(250, "a quarter");\n` +
          `shown.note("a detail");\n` +
          `new Progress(1000).step(500, "into a pipe");\n`,
      );
      const run = await runToEnd(file, [], CHILD_TIMEOUT_MS);
      assert.equal(run.code, 0, describeRun(run));
      assert.deepEqual(run.stdout.trimEnd().split("\n"), [
        "[1m02s elapsed, estimating, 0%] nothing yet",
        "[1m02s elapsed, ~3m06s left, 25%] a quarter",
        "[1m02s] a detail",
      ]);
    },
  );
});
