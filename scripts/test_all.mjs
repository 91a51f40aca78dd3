#!/usr/bin/env node
/**
 * `npm test`: every check, then the whole suite on Deno, Bun, Node 20 and Node 24, then the smoke bench.
 *
 * Plain JavaScript, because the machine's Node 20 may run it, and Node 20 cannot run TypeScript.
 *
 * Steps (each printed with a header and its duration):
 * 1. checks: `deno fmt --check`, `deno lint`, `deno check` (and `--doc` on the library), `deno doc --lint` on
 *    the exports, `deno publish --dry-run` (offline: what JSR would get), and the npm build (`tsc` with Node
 *    types only).
 * 2. `deno test` on tests/*.test.ts.
 * 3. `bun test` on the same files.
 * 4. `node --test` on their compiled copies in npm/, on Node 20 and on Node 24.
 * 5. bench --quick: `deno run -A bench/run.ts --quick --no-peers --name quick-ci`, the benchmarks' smoke run
 *    (results in the gitignored bench/results/quick-ci.*), so they never rot. Each benchmark × runtime
 *    that runs counts as one passed test, each that crashes, hangs or answers wrongly as one failed;
 *    speeds are never compared with anything. Without `wrk`, B1 uses the bench's built-in load client.
 *
 * Every runner's output is streamed live and its own closing counts are parsed. The last line of output
 * is always `N passed, N failed` (plus `, N skipped` when any were), summed over every runtime; a failed
 * check, a crashed or timed-out runner, or a runtime that ran no test counts as one failure each.
 *
 * Usage: node scripts/test_all.mjs [--only deno,bun,node,node20,node24,bench] [--no-checks] [--no-bench]
 * `--only` names what runs besides the checks: the bench runs only when `--only` is absent or names it.
 * `--help` prints the usage; a bad argument prints it to stderr and exits 2 (`scripts/_cli.mjs`).
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseCli } from "./_cli.mjs";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = join(ROOT, "node_modules", ".bin");
const DENO = join(BIN, "deno");
const BUN = join(BIN, "bun");
const BUILD = join(ROOT, ".build");
const DENO_JUNIT = join(BUILD, "deno_junit.xml");
const TEST_PLAN = join(BUILD, "npm_test_plan.json");

/** Per runner (one runtime's whole suite); ASOCKIO_RUNNER_TIMEOUT_S overrides it for slow machines. */
const RUNNER_TIMEOUT_MS = Number(process.env.ASOCKIO_RUNNER_TIMEOUT_S || 360) * 1000;
/** The whole smoke bench (about 1 minute); ASOCKIO_BENCH_TIMEOUT_S overrides it. */
const BENCH_TIMEOUT_MS = Number(process.env.ASOCKIO_BENCH_TIMEOUT_S || 240) * 1000;
/** The smoke bench's command line; its results go to bench/results/quick-ci.* (gitignored). */
const BENCH_ARGS = ["run", "-A", "bench/run.ts", "--quick", "--no-peers", "--name", "quick-ci"];
const CHECK_TIMEOUT_MS = 4 * 60_000;
/** Bun's default per-test timeout (5 s) is too tight for socket tests on a busy 2-core machine. */
const BUN_TEST_TIMEOUT_MS = 30_000;
/** Runner output kept for parsing; the closing counts are at the end, so the head can go. */
const MAX_CAPTURE_CHARS = 4 * 1024 * 1024;

const RUNTIMES = ["deno", "bun", "node20", "node24"];
/** What `--only` can name: the runtimes' suites and the smoke bench. */
const STEPS = [...RUNTIMES, "bench"];

/** The command line, parsed by the same module as every other entry point (it is plain JavaScript too). */
const CLI = {
  command: "node scripts/test_all.mjs [options]   (npm test -- [options])",
  summary: "Every check, then the whole suite on Deno, Bun, Node 20 and Node 24, then the smoke bench.",
  options: {
    only: {
      type: "list",
      choices: [...STEPS, "node"],
      help: "the suites to run besides the checks, and the bench only if named",
    },
    noChecks: { type: "boolean", help: "skip fmt, lint, check, doc lint, publish dry run and the npm build" },
    noBench: { type: "boolean", help: "skip the smoke bench" },
  },
  notes: "The last line is `N passed, N failed` over every runtime. Exits with 1 on any failure, 2 on bad\n" +
    "arguments.",
};

function parseCommandLine(argv) {
  const args = parseCli(argv, CLI);
  const only = new Set(
    args.only === undefined ? STEPS : args.only.flatMap((s) => s === "node" ? ["node20", "node24"] : [s]),
  );
  if (args.noBench) only.delete("bench");
  return { only, checks: !args.noChecks };
}

const { only, checks: runChecks } = parseCommandLine(process.argv.slice(2));

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07/g;
const stripAnsi = (text) => text.replace(ANSI, "");

function formatDuration(ms) {
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

const RULE = "━".repeat(3);
function header(title) {
  console.log(`\n${RULE} ${title}`);
}

/** The child currently running, so Ctrl-C can take its whole process group down with us. */
let current;

function killGroup(child, signal) {
  try {
    process.kill(-child.pid, signal);
  } catch {
    // Already gone.
  }
}

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    if (current) killGroup(current, "SIGKILL");
    console.error(`\nInterrupted by ${signal}`);
    process.exit(130);
  });
}

/**
 * Runs one command in its own process group, streaming its output live and keeping it for parsing.
 * On timeout the whole group is killed; leftovers (servers a test leaked) are killed when it exits.
 */
function run(cmd, args, { env = {}, timeoutMs, cwd = ROOT } = {}) {
  return new Promise((resolve) => {
    const started = performance.now();
    let output = "";
    let timedOut = false;
    let child;
    try {
      child = spawn(cmd, args, {
        cwd,
        env: { ...process.env, ...env },
        stdio: ["ignore", "pipe", "pipe"],
        detached: true,
      });
    } catch (err) {
      resolve({ code: null, signal: null, timedOut, timeoutMs, output: String(err), ms: 0, spawnError: err });
      return;
    }
    current = child;
    const keep = (chunk) => {
      output += chunk;
      if (output.length > MAX_CAPTURE_CHARS) output = output.slice(-MAX_CAPTURE_CHARS / 2);
    };
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      process.stdout.write(chunk);
      keep(chunk);
    });
    child.stderr.on("data", (chunk) => {
      process.stderr.write(chunk);
      keep(chunk);
    });
    let killTimer;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`\n${RULE} Timed out after ${formatDuration(timeoutMs)}: killing ${cmd}`);
      killGroup(child, "SIGTERM");
      killTimer = setTimeout(() => killGroup(child, "SIGKILL"), 5_000);
    }, timeoutMs);
    let spawnError;
    child.on("error", (err) => {
      spawnError = err;
      keep(`\n${err.message}\n`);
      console.error(`Cannot run ${cmd}: ${err.message}`);
    });
    child.on("exit", () => killGroup(child, "SIGKILL"));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      current = undefined;
      resolve({ code, signal, timedOut, timeoutMs, output, ms: performance.now() - started, spawnError });
    });
  });
}

/** Closing counts of `deno test`: `ok | 2 passed (4 steps) | 0 failed | 1 ignored (2 steps)`. */
function parseDenoSummary(text) {
  const re =
    /^(ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed(?: \((\d+) steps?\))?(?: \| (\d+) ignored(?: \((\d+) steps?\))?)?(?: \| (\d+) filtered out)?/gm;
  let m;
  let last;
  while ((m = re.exec(text)) !== null) last = m;
  if (!last) return undefined;
  const n = (i) => Number(last[i] ?? 0);
  return { tests: n(2), steps: n(3), failedTests: n(4), failedSteps: n(5), ignored: n(6) + n(7) };
}

const XML_ENTITIES = { "&lt;": "<", "&gt;": ">", "&quot;": '"', "&apos;": "'", "&amp;": "&" };
const unescapeXml = (s) => s.replace(/&(?:lt|gt|quot|apos|amp);/g, (e) => XML_ENTITIES[e]);

/**
 * Leaf counts from Deno's JUnit report. Deno maps `describe` to a test and `it` to a step and counts
 * both; Node and Bun count only the leaves, so the leaves are what makes the runtimes comparable.
 * A container counts as failed only for its own error, not for its failed steps.
 */
function parseDenoJunit(xml) {
  const cases = [];
  const re = /<testcase\s+name="([^"]*)"[^>]*?(?:\/>|>([\s\S]*?)<\/testcase>)/g;
  let m;
  while ((m = re.exec(xml)) !== null) {
    const body = m[2] ?? "";
    const failure = /<failure\s+message="([^"]*)"/.exec(body);
    cases.push({
      name: unescapeXml(m[1]),
      failed: failure !== null,
      failureMessage: failure ? unescapeXml(failure[1]) : "",
      skipped: /<skipped\s*\/?>/.test(body),
    });
  }
  const names = cases.map((c) => c.name);
  const isContainer = (name) => names.some((other) => other.startsWith(name + " > "));
  const counts = { passed: 0, failed: 0, skipped: 0 };
  for (const c of cases) {
    if (isContainer(c.name)) {
      if (c.failed && !/^\d+ test steps? failed/.test(c.failureMessage)) counts.failed++;
    } else if (c.failed) counts.failed++;
    else if (c.skipped) counts.skipped++;
    else counts.passed++;
  }
  return counts;
}

/** Closing counts of `bun test`: ` 5 pass`, ` 2 skip`, ` 1 todo`, ` 1 fail`, ` 1 error`. */
function parseBun(text) {
  const last = (word) => {
    const re = new RegExp(`^\\s*(\\d+) ${word}s?$`, "gm");
    let m;
    let value;
    while ((m = re.exec(text)) !== null) value = Number(m[1]);
    return value;
  };
  const pass = last("pass");
  const fail = last("fail");
  if (pass === undefined && fail === undefined) return undefined;
  return {
    passed: pass ?? 0,
    // A file that fails to load is reported as both 1 fail and 1 error.
    failed: Math.max(fail ?? 0, last("error") ?? 0),
    skipped: (last("skip") ?? 0) + (last("todo") ?? 0),
  };
}

/** Closing counts of `node --test`: `ℹ pass 5` (spec reporter) or `# pass 5` (tap). */
function parseNode(text) {
  const values = {};
  const re = /^[#ℹ] (tests|pass|fail|cancelled|skipped|todo) (\d+)$/gm;
  let m;
  while ((m = re.exec(text)) !== null) values[m[1]] = Number(m[2]);
  if (values.pass === undefined) return undefined;
  return {
    passed: values.pass,
    failed: (values.fail ?? 0) + (values.cancelled ?? 0),
    skipped: (values.skipped ?? 0) + (values.todo ?? 0),
  };
}

/** Closing counts of `bench/run.ts`: its last `BENCH-SUMMARY {"passed":N,"failed":N,"skipped":N}` line. */
function parseBench(text) {
  const re = /^BENCH-SUMMARY (\{.*\})\s*$/gm;
  let m;
  let last;
  while ((m = re.exec(text)) !== null) last = m;
  if (!last) return undefined;
  try {
    const { passed, failed, skipped } = JSON.parse(last[1]);
    const counts = { passed, failed, skipped };
    return Object.values(counts).every(Number.isInteger) ? counts : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Turns a runner's exit and parsed counts into one result. Anything the counts do not explain (no
 * closing counts, a non-zero exit with no failed test, a timeout, no test at all) is one failure.
 */
function settle(name, result, counts, notes = []) {
  const r = { name, passed: 0, failed: 0, skipped: 0, notes: [...notes], ms: result?.ms ?? 0 };
  if (!result) {
    r.failed++;
    return r;
  }
  if (counts) Object.assign(r, { passed: counts.passed, failed: counts.failed, skipped: counts.skipped });
  if (result.spawnError) {
    r.failed++;
    r.notes.push(`cannot start: ${result.spawnError.message}`);
  } else if (result.timedOut) {
    r.failed++;
    r.notes.push(`timed out after ${formatDuration(result.timeoutMs)}`);
  } else if (!counts) {
    r.failed++;
    r.notes.push(`no closing counts (exit ${result.code ?? result.signal})`);
  } else if (result.code !== 0 && r.failed === 0) {
    r.failed++;
    r.notes.push(`exit code ${result.code ?? result.signal} with no failed test`);
  }
  if (counts && r.passed + r.failed + r.skipped === 0) {
    r.failed++;
    r.notes.push("ran no test");
  }
  return r;
}

function testFiles() {
  const dir = join(ROOT, "tests");
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".test.ts") && statSync(join(dir, f)).isFile())
    .sort()
    .map((f) => `tests/${f}`);
}

const started = performance.now();
const checkResults = [];
const runtimeResults = [];

async function check(title, cmd, args) {
  header(`check: ${title}`);
  const result = await run(cmd, args, { timeoutMs: CHECK_TIMEOUT_MS });
  const ok = result.code === 0 && !result.timedOut && !result.spawnError;
  console.log(`${RULE} ${ok ? "✔" : "✘"} ${title} (${formatDuration(result.ms)})`);
  checkResults.push({ title, ok });
  return ok;
}

/** Where `deno check --doc` type-checks the JSDoc examples too. */
const DOC_CHECKED = ["mod.ts", "core/", "processors/", "cluster/", "web/"];

/** `deno check` targets: mod.ts and every folder holding TypeScript. */
function denoCheckTargets() {
  const targets = existsSync(join(ROOT, "mod.ts")) ? ["mod.ts"] : [];
  for (
    const dir of [
      "core",
      "transports",
      "processors",
      "cluster",
      "web",
      "tests",
      "bench",
      "scripts",
      "examples",
    ]
  ) {
    const abs = join(ROOT, dir);
    if (!existsSync(abs)) continue;
    const hasTs = readdirSync(abs, { recursive: true }).some((f) => String(f).endsWith(".ts"));
    if (hasTs) targets.push(`${dir}/`);
  }
  return targets;
}

/** The files deno.json exports, for `deno doc --lint`. */
function exportedFiles() {
  try {
    const exports = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8")).exports ?? {};
    const list = typeof exports === "string" ? [exports] : Object.values(exports);
    return list.filter((f) => typeof f === "string" && existsSync(join(ROOT, f)));
  } catch {
    return [];
  }
}

let buildOk;
async function buildNpm() {
  if (buildOk !== undefined) return buildOk;
  buildOk = await check("npm build (tsc, Node types only)", DENO, [
    "run",
    "-A",
    "scripts/build_npm.ts",
    "--no-test",
  ]);
  return buildOk;
}

const files = testFiles();
const runtimeList = RUNTIMES.filter((r) => only.has(r)).join(", ") || "none";
console.log(
  `asockio test_all: ${files.length} test files; runtimes: ${runtimeList}; smoke bench: ${
    only.has("bench") ? "yes" : "no"
  }`,
);

if (runChecks) {
  await check("deno fmt --check", DENO, ["fmt", "--check"]);
  await check("deno lint", DENO, ["lint"]);
  const targets = denoCheckTargets();
  if (targets.length > 0) await check(`deno check ${targets.join(" ")}`, DENO, ["check", ...targets]);
  // Every JSDoc example in the library type-checks, as users will paste them.
  const documented = DOC_CHECKED.filter((dir) => existsSync(join(ROOT, dir)));
  await check(`deno check --doc ${documented.join(" ")}`, DENO, ["check", "--doc", ...documented]);
  const exported = exportedFiles();
  if (exported.length > 0) {
    // deno doc --lint on the exports, then every symbol documented and every function and class with an @example.
    await check(`API reference (deno doc --lint ${exported.join(" ")})`, DENO, [
      "run",
      "-A",
      "scripts/api_docs.ts",
      "--check",
    ]);
  }
  // What JSR would get (offline, nothing is published): only the library, with no warning.
  await check("deno publish --dry-run", DENO, ["publish", "--dry-run", "--allow-dirty", "--quiet"]);
  await buildNpm();
}

// connectWebSocket as one self-contained module: the Chromium test loads this same file on every runtime.
if (RUNTIMES.some((r) => only.has(r))) {
  await check("WebSocket client bundle (bun build)", DENO, [
    "run",
    "-A",
    "scripts/build_websocket_client.ts",
  ]);
}

/** With no file arguments deno and bun would discover tests on their own (npm/esm/tests included). */
function noTestFiles(name) {
  runtimeResults.push(settle(name, undefined, undefined, ["no tests/*.test.ts to run"]));
}

if (only.has("deno") && files.length === 0) noTestFiles("deno");
else if (only.has("deno")) {
  header(`deno test (${files.length} files)`);
  mkdirSync(BUILD, { recursive: true });
  rmSync(DENO_JUNIT, { force: true });
  // --unstable-net: Deno.listenDatagram (UDP) exists only under it; a test checks the error without it.
  const result = await run(DENO, ["test", "-A", "--unstable-net", `--junit-path=${DENO_JUNIT}`, ...files], {
    env: { ASOCKIO_EXPECT_RUNTIME: "deno" },
    timeoutMs: RUNNER_TIMEOUT_MS,
  });
  const summary = parseDenoSummary(stripAnsi(result.output));
  let counts;
  const notes = [];
  if (summary) {
    notes.push(`deno's own count: ${summary.tests} tests + ${summary.steps} steps`);
    counts = existsSync(DENO_JUNIT) ? parseDenoJunit(readFileSync(DENO_JUNIT, "utf8")) : undefined;
    if (!counts) {
      // No report: fall back to deno's counts, which include describe blocks.
      counts = {
        passed: summary.tests + summary.steps,
        failed: summary.failedTests + summary.failedSteps,
        skipped: summary.ignored,
      };
    } else if (counts.failed === 0 && summary.failedTests + summary.failedSteps > 0) {
      counts.failed = summary.failedTests + summary.failedSteps;
    }
  }
  runtimeResults.push(settle("deno", result, counts, notes));
  header(`deno done (${formatDuration(result.ms)})`);
}

if (only.has("bun") && files.length === 0) noTestFiles("bun");
else if (only.has("bun")) {
  header(`bun test (${files.length} files)`);
  // Paths with ./ so bun takes them as files, not as name filters (`tests/` would also match npm/esm/tests).
  const result = await run(BUN, [
    "test",
    "--timeout",
    String(BUN_TEST_TIMEOUT_MS),
    ...files.map((f) => `./${f}`),
  ], {
    env: { ASOCKIO_EXPECT_RUNTIME: "bun" },
    timeoutMs: RUNNER_TIMEOUT_MS,
  });
  runtimeResults.push(settle("bun", result, parseBun(stripAnsi(result.output))));
  header(`bun done (${formatDuration(result.ms)})`);
}

const nodeRuntimes = RUNTIMES.filter((r) => r.startsWith("node") && only.has(r));
if (nodeRuntimes.length > 0) {
  const built = await buildNpm();
  let plan;
  if (built) {
    try {
      plan = JSON.parse(readFileSync(TEST_PLAN, "utf8"));
    } catch (err) {
      console.error(`Cannot read ${TEST_PLAN}: ${err.message}`);
    }
  }
  // The plan labels Nodes by their real major version; the machine's Node goes in the node20 slot.
  const planned = plan ? [...plan.nodes] : [];
  const pick = (wanted) => {
    const i = planned.findIndex((n) => n.label === wanted);
    if (i >= 0) return planned.splice(i, 1)[0];
    return wanted === "node20" ? planned.shift() : planned.pop();
  };
  const slots = ["node20", "node24"].map((slot) => ({ slot, node: pick(slot) }));
  for (const { slot, node } of slots) {
    if (!only.has(slot)) continue;
    if (plan && plan.files.length === 0) {
      noTestFiles(slot);
      continue;
    }
    if (!plan || !node) {
      runtimeResults.push(
        settle(slot, undefined, undefined, [built ? `no ${slot} binary found` : "npm build failed"]),
      );
      continue;
    }
    const name = node.label === slot ? slot : `${slot} (${node.label})`;
    header(`${name} ${node.version}: node --test (${plan.files.length} compiled files)`);
    const result = await run(node.path, [...plan.args, ...plan.files], {
      env: { ASOCKIO_EXPECT_RUNTIME: "node" },
      timeoutMs: RUNNER_TIMEOUT_MS,
    });
    runtimeResults.push(settle(name, result, parseNode(stripAnsi(result.output)), [node.version]));
    header(`${name} done (${formatDuration(result.ms)})`);
  }
}

if (only.has("bench")) {
  header("bench --quick (smoke run of bench/run.ts; speeds are reported, never judged)");
  const result = await run(DENO, BENCH_ARGS, { timeoutMs: BENCH_TIMEOUT_MS });
  runtimeResults.push(
    settle("bench --quick", result, parseBench(stripAnsi(result.output)), ["1 test per benchmark × runtime"]),
  );
  header(`bench done (${formatDuration(result.ms)})`);
}

header("summary");
const failedChecks = checkResults.filter((c) => !c.ok);
if (checkResults.length > 0) {
  const list = failedChecks.map((c) => c.title).join("; ");
  console.log(
    failedChecks.length === 0
      ? `checks: ${checkResults.length} passed`
      : `checks: ${
        checkResults.length - failedChecks.length
      } passed, ${failedChecks.length} failed (${list})`,
  );
}
const total = { passed: 0, failed: failedChecks.length, skipped: 0 };
for (const r of runtimeResults) {
  total.passed += r.passed;
  total.failed += r.failed;
  total.skipped += r.skipped;
  const skipped = r.skipped > 0 ? `, ${r.skipped} skipped` : "";
  const notes = r.notes.length > 0 ? ` [${r.notes.join("; ")}]` : "";
  console.log(
    `${r.name}: ${r.passed} passed, ${r.failed} failed${skipped} in ${formatDuration(r.ms)}${notes}`,
  );
}
if (failedChecks.length > 0) console.log(`(each failed check counts as 1 failed)`);
console.log(`total time ${formatDuration(performance.now() - started)}`);
const skippedTotal = total.skipped > 0 ? `, ${total.skipped} skipped` : "";
console.log(`${total.passed} passed, ${total.failed} failed${skippedTotal}`);
process.exitCode = total.failed > 0 ? 1 : 0;
