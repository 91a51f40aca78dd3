/**
 * Builds the npm package into `npm/` with `tsc` (dnt's job; dnt lives on JSR, which is out of reach),
 * lints it with publint and @arethetypeswrong/cli (any problem fails the build), then runs the compiled
 * test suite on the machine's Node 20 and on Node 24 from `node_modules`.
 *
 * - Sources: every export of `deno.json`, `core/`, `transports/`, `processors/` and `tests/`.
 * - Output: ES2022 modules and `.d.ts` files in `npm/esm/`, relative `.ts` specifiers rewritten to
 *   `.js`, `using` declarations downleveled (Node 20 cannot parse them), only Node types.
 * - Declaration maps point into `npm/src/`, a copy of the library sources, so "go to definition" lands
 *   in the TypeScript a user can read.
 * - JSDoc examples import `asockio`, the name npm users installed, not the JSR name `@asockio/core`.
 * - `asockio/websocket/bundle`: `connectWebSocket` as one self-contained ES module (`bun build`), for pages.
 * - `npm/package.json` mirrors the `deno.json` exports, takes `repository`, `homepage` and `bugs` from the
 *   root `package.json`, has no dependencies and ships no tests.
 *
 * Usage: see {@linkcode CLI} (`--help`).
 *
 * The machine's Node is the first `node` on PATH outside `node_modules`; `ASOCKIO_MACHINE_NODE=/path/to/node`
 * picks another.
 *
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, realpathSync, statSync } from "node:fs";
import { access, copyFile, mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { constants } from "node:fs";
import { delimiter, dirname, join, relative, sep } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { parseCli } from "./_cli.mjs";
import { buildWebSocketClient } from "./build_websocket_client.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT = join(ROOT, "npm");
const ESM = join(OUT, "esm");
const BUILD = join(ROOT, ".build");
const BIN = join(ROOT, "node_modules", ".bin");
/** Folders compiled into the package (when present), besides the `deno.json` exports. */
const PACKAGE_DIRS = ["core", "transports", "processors", "cluster", "web"];
const TEST_DIR = "tests";
const TEST_TIMEOUT_MS = 6 * 60_000;
/** Per-test bound for `node --test`, so one hung test cannot eat the whole run. */
const NODE_TEST_TIMEOUT_MS = 60_000;

/** One Node binary the compiled tests run on, as recorded in the test plan. */
interface NodeRuntime {
  /** `node20`, `node24`, ... from the binary's own version. */
  label: string;
  /** Absolute path of the binary. */
  path: string;
  /** `process.version` of the binary, e.g. `v20.20.2`. */
  version: string;
}

/** What `scripts/test_all.mjs` reads to run the compiled tests. */
interface TestPlan {
  /** The Node binaries to run, machine Node first. */
  nodes: NodeRuntime[];
  /** Compiled test files, absolute, in the order of their sources. */
  files: string[];
  /** Arguments to put before the files: `node <args> <files>`. */
  args: string[];
}

/** The command line, for {@linkcode parseCli}: `--help` prints its usage. */
const CLI = {
  command: "deno run -A scripts/build_npm.ts [options]",
  summary: "Builds the npm package into npm/, checks it with publint and attw, then runs the compiled\n" +
    "tests on Node 20 and Node 24.",
  options: {
    noTest: {
      type: "boolean",
      help: "build and check only (the test plan is still written to .build/npm_test_plan.json)",
    },
    allowMissing: {
      type: "boolean",
      help: "skip a deno.json export whose file does not exist yet, instead of failing",
    },
  },
} as const;

/** The JSR package name, which JSDoc examples import; npm users installed {@linkcode NPM_NAME}. */
const JSR_NAME = "@asockio/core";
const NPM_NAME = "asockio";
/**
 * Files that do something when they load, for `sideEffects`. `mod.ts` fills `core/engine/transport_slot.ts`:
 * with `sideEffects: false` a bundler may take `IoCore` straight from `core/io_core.js`, skip `mod.js`,
 * and leave the slot empty. Every other module only declares.
 */
const SIDE_EFFECT_SOURCES = ["mod.ts"];
/** Root `package.json` fields the npm package copies as they are. */
const COPIED_FIELDS = ["description", "license", "repository", "homepage", "bugs"];
/** Where the library sources are copied for the declaration maps, inside `npm/`. */
const SOURCE_COPY = "src";
/** Documents shipped beside the code. */
const DOCUMENTS = ["README.md", "LICENSE", "SECURITY.md", "CHANGELOG.md"];

class BuildError extends Error {}

const toPosix = (path: string): string => path.split(sep).join("/");

async function isFile(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Every `.ts` file under `dir` (relative to the root), sorted, skipping declaration files. */
async function tsFilesUnder(dir: string): Promise<string[]> {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return [];
  const entries = await readdir(abs, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && e.name.endsWith(".ts") && !e.name.endsWith(".d.ts"))
    .map((e) => toPosix(relative(ROOT, join(e.parentPath, e.name))))
    .sort();
}

async function readJson(path: string): Promise<Record<string, unknown>> {
  return JSON.parse(await readFile(path, "utf8"));
}

/** `./transports/mod.ts` -> `./esm/transports/mod` (no extension). */
function esmStem(sourceSpecifier: string): string {
  return "./esm/" + sourceSpecifier.replace(/^\.\//, "").replace(/\.ts$/, "");
}

/** `text` without ANSI colour codes. */
function stripAnsi(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/\x1b\[[0-9;]*m/g, "");
}

function run(cmd: string, args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  const result = spawnSync(cmd, args, {
    cwd: options.cwd ?? ROOT,
    env: { ...process.env, ...options.env },
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.error) throw new BuildError(`Cannot run ${cmd}: ${result.error.message}`);
  return result;
}

/**
 * The Node binaries to test on: the first `node` on PATH outside any `node_modules` (the machine's,
 * Node 20 here; `npm run` puts `node_modules/.bin` first on PATH) and `node_modules/.bin/node`.
 */
function findNodes(): NodeRuntime[] {
  const bundled = join(BIN, "node");
  const bundledReal = existsSync(bundled) ? realpathSync(bundled) : "";
  const candidates: string[] = [];
  if (process.env.ASOCKIO_MACHINE_NODE) candidates.push(process.env.ASOCKIO_MACHINE_NODE);
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir === "" || dir.split(/[\\/]/).includes("node_modules")) continue;
    candidates.push(join(dir, "node"));
  }
  candidates.push("/usr/local/bin/node", "/usr/bin/node");
  let machine: string | undefined;
  for (const candidate of candidates) {
    try {
      const stat = statSync(candidate);
      if (!stat.isFile() || (stat.mode & 0o111) === 0) continue;
      if (realpathSync(candidate) === bundledReal) continue;
      machine = candidate;
      break;
    } catch {
      // Not there: try the next one.
    }
  }
  const nodes: NodeRuntime[] = [];
  for (const path of [machine, existsSync(bundled) ? bundled : undefined]) {
    if (path === undefined) continue;
    const version = run(path, ["--version"]).stdout.trim();
    const major = /^v(\d+)\./.exec(version)?.[1];
    if (!major) throw new BuildError(`Cannot read the version of ${path}: got ${JSON.stringify(version)}`);
    nodes.push({ label: `node${major}`, path, version });
  }
  if (!machine) throw new BuildError("Cannot find the machine's node on PATH (outside node_modules)");
  if (!existsSync(bundled)) throw new BuildError(`Cannot find ${bundled}: run npm ci`);
  return nodes;
}

/** A relative `.ts` specifier after `from` or `import(`, outside comment lines (doc examples keep theirs). */
const TS_SPECIFIER =
  /^(?!\s*(?:\*|\/\/))(.*?(?:from|import)\s*\(?\s*)(["'])(\.\.?\/[^"'\n]*?)\.([mc]?)ts\2/gm;

/** Rewrites relative `.ts` specifiers left in `.d.ts` files, for consumers on older TypeScript. */
function rewriteDeclarationSpecifiers(text: string): string {
  return text.replace(
    TS_SPECIFIER,
    (_m, lead: string, quote: string, stem: string, kind: string) =>
      `${lead}${quote}${stem}.${kind}js${quote}`,
  );
}

async function walkFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries.filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

/** JSDoc examples name the JSR package; npm users import {@linkcode NPM_NAME} (subpaths included). */
function renameInExamples(text: string): string {
  return text.replaceAll(`"${JSR_NAME}`, `"${NPM_NAME}`);
}

/**
 * Points a declaration map at a copy of its source under `npm/src/` (tsc points it at the repository,
 * outside the package), and makes that copy, its examples renamed like the declarations'.
 */
async function pointMapAtSourceCopy(mapFile: string, text: string): Promise<void> {
  if (relative(ESM, mapFile).startsWith(TEST_DIR + sep)) return;
  const map = JSON.parse(text) as { sources: string[]; sourceRoot?: string };
  map.sources = await Promise.all(map.sources.map(async (source) => {
    const fromRoot = relative(ROOT, join(dirname(mapFile), map.sourceRoot ?? "", source));
    const copy = join(OUT, SOURCE_COPY, fromRoot);
    await mkdir(dirname(copy), { recursive: true });
    await writeFile(copy, renameInExamples(await readFile(join(ROOT, fromRoot), "utf8")));
    return toPosix(relative(dirname(mapFile), copy));
  }));
  delete map.sourceRoot;
  await writeFile(mapFile, JSON.stringify(map));
}

async function build(allowMissing: boolean): Promise<TestPlan> {
  const denoJson = await readJson(join(ROOT, "deno.json"));
  const rootPackage = await readJson(join(ROOT, "package.json"));
  const version = denoJson.version;
  if (typeof version !== "string") throw new BuildError("Cannot build: deno.json has no version");
  if (rootPackage.version !== version) {
    throw new BuildError(
      `Cannot build: package.json version ${rootPackage.version} differs from deno.json ${version}`,
    );
  }
  const denoExports = denoJson.exports;
  if (typeof denoExports !== "object" || denoExports === null) {
    throw new BuildError("Cannot build: deno.json has no exports map");
  }

  // Every export must exist: a package whose entry is missing must not be published by accident.
  const exportEntries: [string, string][] = [];
  for (const [subpath, target] of Object.entries(denoExports as Record<string, unknown>)) {
    if (typeof target !== "string" || !target.endsWith(".ts")) {
      throw new BuildError(
        `Cannot map export ${subpath}: expected a .ts file, got ${JSON.stringify(target)}`,
      );
    }
    if (!(await isFile(join(ROOT, target)))) {
      const message = `Cannot build export ${JSON.stringify(subpath)}: ${target} does not exist`;
      if (!allowMissing) throw new BuildError(`${message} (pass --allow-missing to skip it)`);
      console.warn(`warning: ${message}; skipped`);
      continue;
    }
    exportEntries.push([subpath, target]);
  }
  if (exportEntries.length === 0) throw new BuildError("Cannot build: no deno.json export exists");

  const packageSources = new Set(exportEntries.map(([, target]) => toPosix(target.replace(/^\.\//, ""))));
  for (const dir of PACKAGE_DIRS) {
    for (const file of await tsFilesUnder(dir)) if (!file.endsWith(".test.ts")) packageSources.add(file);
  }
  const testSources = await tsFilesUnder(TEST_DIR);
  const testEntries = testSources.filter((f) => /^tests\/[^/]+\.test\.ts$/.test(f));

  // tsc resolves `types: ["node"]` from node_modules/@types above the config, and emits helpers
  // inline (no tslib), so the package keeps zero dependencies.
  const denoCompilerOptions = (denoJson.compilerOptions ?? {}) as Record<string, unknown>;
  const tsconfig = {
    compilerOptions: {
      ...denoCompilerOptions,
      target: "ES2022",
      // ES2023 is what Node 20 implements: newer built-ins (Promise.withResolvers, Set methods) fail here.
      lib: ["ES2023", "ESNext.Disposable"],
      module: "NodeNext",
      moduleResolution: "NodeNext",
      types: ["node"],
      rootDir: "..",
      outDir: "../npm/esm",
      declaration: true,
      declarationMap: true,
      rewriteRelativeImportExtensions: true,
      isolatedModules: true,
      skipLibCheck: true,
      noEmitOnError: true,
      forceConsistentCasingInFileNames: true,
      newLine: "lf",
    },
    files: [...[...packageSources].sort(), ...testSources].map((f) => "../" + f),
  };
  await mkdir(BUILD, { recursive: true });
  const tsconfigPath = join(BUILD, "tsconfig.npm.json");
  await writeFile(tsconfigPath, JSON.stringify(tsconfig, null, 2) + "\n");

  await rm(OUT, { recursive: true, force: true });
  await mkdir(ESM, { recursive: true });
  console.log(`tsc: ${packageSources.size} package files, ${testSources.length} test files -> npm/esm/`);
  const tsc = spawnSync(join(BIN, "tsc"), ["-p", tsconfigPath, "--pretty", "false"], {
    cwd: ROOT,
    stdio: "inherit",
  });
  if (tsc.error) throw new BuildError(`Cannot run tsc: ${tsc.error.message}`);
  if (tsc.status !== 0) throw new BuildError(`Cannot build: tsc failed with exit code ${tsc.status}`);

  for (const file of await walkFiles(ESM)) {
    const text = await readFile(file, "utf8");
    if (file.endsWith(".d.ts")) {
      const rewritten = renameInExamples(rewriteDeclarationSpecifiers(text));
      if (rewritten !== text) await writeFile(file, rewritten);
    } else if (file.endsWith(".d.ts.map")) {
      await pointMapAtSourceCopy(file, text);
    } else if (file.endsWith(".js")) {
      if (text.includes(JSR_NAME)) await writeFile(file, renameInExamples(text));
      const left = new RegExp(TS_SPECIFIER.source, "m").exec(text);
      if (left) {
        throw new BuildError(`Cannot ship ${relative(ROOT, file)}: it still imports ${left[3]}.${left[4]}ts`);
      }
      // Node 20 cannot parse `using`; tsc must have downleveled every one at ES2022.
      if (/^\s*(?:await\s+)?using\s+[\w$]+\s*=/m.test(text)) {
        throw new BuildError(`Cannot ship ${relative(ROOT, file)}: a using declaration was not downleveled`);
      }
    }
  }

  // Test fixtures (anything but TypeScript) travel with the compiled tests.
  if (existsSync(join(ROOT, TEST_DIR))) {
    for (const file of await walkFiles(join(ROOT, TEST_DIR))) {
      if (file.endsWith(".ts")) continue;
      const target = join(ESM, relative(ROOT, file));
      await mkdir(dirname(target), { recursive: true });
      await copyFile(file, target);
    }
  }

  const exportsMap: Record<string, unknown> = {};
  for (const [subpath, target] of exportEntries) {
    const stem = esmStem(target);
    for (const ext of [".js", ".d.ts"]) {
      if (!(await isFile(join(OUT, stem + ext)))) {
        throw new BuildError(`Cannot map export ${subpath}: tsc did not emit ${stem}${ext}`);
      }
    }
    // `default` lets `require()` load the ES module where the runtime can (Node 20.19+, 22.12+).
    exportsMap[subpath] = { types: `${stem}.d.ts`, import: `${stem}.js`, default: `${stem}.js` };
  }
  // connectWebSocket as one file a page loads with <script type="module">; its types are the module's.
  const bundleStem = esmStem("./web/websocket_client.bundle.ts");
  buildWebSocketClient(join(OUT, bundleStem + ".js"));
  await writeFile(join(OUT, bundleStem + ".d.ts"), 'export * from "./websocket_client.js";\n');
  exportsMap["./websocket/bundle"] = { types: `${bundleStem}.d.ts`, default: `${bundleStem}.js` };
  exportsMap["./package.json"] = "./package.json";

  const shipped = (await readdir(ESM, { withFileTypes: true }))
    .filter((e) => e.name !== TEST_DIR && e.name !== "scripts") // scripts/: build tools the tests import
    .map((e) => `esm/${e.name}${e.isDirectory() ? "/" : ""}`)
    .sort();
  const main = exportsMap["."] as { types: string; import: string } | undefined;
  const copied: Record<string, unknown> = {};
  for (const field of COPIED_FIELDS) {
    if (rootPackage[field] === undefined) throw new BuildError(`Cannot build: package.json has no ${field}`);
    copied[field] = rootPackage[field];
  }
  const npmPackage: Record<string, unknown> = {
    name: NPM_NAME,
    version,
    ...copied,
    type: "module",
    ...(main ? { main: main.import, types: main.types } : {}),
    exports: exportsMap,
    sideEffects: SIDE_EFFECT_SOURCES.map((source) => esmStem("./" + source) + ".js"),
    files: [...shipped, `${SOURCE_COPY}/`, ...DOCUMENTS],
    engines: { node: ">=20" },
    // asockio/cluster takes a connection the application opened with nats.js; nothing else needs it.
    peerDependencies: { nats: "^2.29.0" },
    peerDependenciesMeta: { nats: { optional: true } },
    keywords: ["socket", "tcp", "unix-socket", "framing", "deno", "bun", "node"],
  };
  await writeFile(join(OUT, "package.json"), JSON.stringify(npmPackage, null, 2) + "\n");
  for (const name of DOCUMENTS) {
    if (!(await isFile(join(ROOT, name)))) throw new BuildError(`Cannot build: ${name} is missing`);
    await copyFile(join(ROOT, name), join(OUT, name));
  }

  checkPackedFiles(exportsMap);
  lintPackage();

  const nodes = findNodes();
  const plan: TestPlan = {
    nodes,
    files: testEntries.map((f) => join(ESM, f.replace(/\.ts$/, ".js"))),
    args: ["--test", "--test-reporter=spec", `--test-timeout=${NODE_TEST_TIMEOUT_MS}`],
  };
  await writeFile(join(BUILD, "npm_test_plan.json"), JSON.stringify(plan, null, 2) + "\n");
  return plan;
}

/** Asks npm what it would publish: every export target, no compiled test. */
function checkPackedFiles(exportsMap: Record<string, unknown>): void {
  const packed = run("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: OUT });
  if (packed.status !== 0) {
    throw new BuildError(`Cannot check the package: npm pack failed\n${packed.stderr}`);
  }
  const report = JSON.parse(packed.stdout) as { files: { path: string }[]; size: number }[];
  const files = new Set(report[0].files.map((f) => f.path));
  const tests = [...files].filter((f) => f.startsWith(`esm/${TEST_DIR}/`));
  if (tests.length > 0) throw new BuildError(`Cannot ship compiled tests: ${tests.join(", ")}`);
  const wanted = ["package.json", ...DOCUMENTS];
  for (const value of Object.values(exportsMap)) {
    if (typeof value === "object" && value !== null) {
      for (const path of Object.values(value)) wanted.push(String(path).replace(/^\.\//, ""));
    }
  }
  const missing = wanted.filter((f) => !files.has(f));
  if (missing.length > 0) throw new BuildError(`Cannot ship the package without ${missing.join(", ")}`);
  const maps = [...files].filter((f) => f.endsWith(".d.ts.map"));
  if (maps.length === 0) throw new BuildError("Cannot ship the package without its declaration maps");
  console.log(`npm pack: ${files.size} files, ${report[0].size} bytes, no tests`);
}

/**
 * publint (every message, suggestions included, is a problem) and attw. attw's `esm-only` profile skips
 * the `node10` and `node16-cjs` resolutions: the package is ES modules only, and TypeScript before 5.8
 * types `require()` of an ES module as an error although Node 20.19+ and 24 load it.
 */
function lintPackage(): void {
  // No colours: they would hide "All good!" from the check (picocolors colours whenever CI is set).
  const plain = { NO_COLOR: "1", FORCE_COLOR: "0" };
  const publint = run(join(BIN, "publint"), ["run", "--strict"], { cwd: OUT, env: plain });
  if (publint.status !== 0 || !/^All good!$/m.test(stripAnsi(publint.stdout))) {
    throw new BuildError(`Cannot ship the package: publint reports\n${publint.stdout}${publint.stderr}`);
  }
  const attw = run(join(BIN, "attw"), [
    "--pack",
    ".",
    "--profile",
    "esm-only",
    "--no-definitely-typed",
    "--no-color",
    "--no-emoji",
    "--format",
    "table-flipped",
  ], { cwd: OUT });
  if (attw.status !== 0) {
    throw new BuildError(`Cannot ship the package: attw reports\n${attw.stdout}${attw.stderr}`);
  }
  console.log("publint: all good; attw (esm-only profile): no problem");
}

/** Runs `cmd` with inherited output, killed after `timeoutMs`; resolves to its exit status. */
function runLive(
  cmd: string,
  args: string[],
  env: Record<string, string>,
  timeoutMs: number,
): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, env: { ...process.env, ...env }, stdio: "inherit" });
    let killTimer: ReturnType<typeof setTimeout> | undefined;
    const timer = setTimeout(() => {
      console.error(`Timed out after ${timeoutMs / 1000}s: ${cmd} ${args.join(" ")}`);
      // SIGTERM first: node --test then stops the per-file processes it started.
      child.kill("SIGTERM");
      killTimer = setTimeout(() => child.kill("SIGKILL"), 5_000);
    }, timeoutMs);
    child.on("error", (err) => {
      clearTimeout(timer);
      console.error(`Cannot run ${cmd}: ${err.message}`);
      resolve(1);
    });
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      resolve(code ?? (signal ? 1 : 0));
    });
  });
}

/** Imports every export through the package name, as a user would, then runs the compiled tests. */
async function testOnNodes(plan: TestPlan, exportsMap: Record<string, unknown>): Promise<boolean> {
  if (plan.files.length === 0) {
    console.error("Cannot test the npm build: there is no tests/*.test.ts");
    return false;
  }
  const specifiers = Object.keys(exportsMap)
    .filter((s) => s !== "./package.json")
    .map((s) => "asockio" + s.slice(1));
  // A module evaluated inside npm/ may import the package by its own name (self-reference).
  const smoke = `for (const s of ${JSON.stringify(specifiers)}) await import(s); ` +
    `console.log("imported " + ${JSON.stringify(specifiers.join(", "))} + " on " + process.version);`;
  let ok = true;
  for (const node of plan.nodes) {
    console.log(`\n== ${node.label} (${node.version}): ${node.path}`);
    const imported = spawnSync(node.path, ["--input-type=module", "-e", smoke], {
      cwd: OUT,
      stdio: "inherit",
    });
    if (imported.status !== 0) {
      console.error(`Cannot import the package on ${node.label}`);
      ok = false;
      continue;
    }
    const status = await runLive(
      node.path,
      [...plan.args, ...plan.files],
      { ASOCKIO_EXPECT_RUNTIME: "node" },
      TEST_TIMEOUT_MS,
    );
    if (status !== 0) {
      console.error(`Tests failed on ${node.label} (exit code ${status})`);
      ok = false;
    }
  }
  return ok;
}

async function main(): Promise<number> {
  const options = parseCli(process.argv.slice(2), CLI);
  const started = performance.now();
  try {
    const plan = await build(options.allowMissing);
    console.log(`built npm/ in ${((performance.now() - started) / 1000).toFixed(1)}s`);
    if (options.noTest) return 0;
    const npmPackage = await readJson(join(OUT, "package.json"));
    const ok = await testOnNodes(plan, npmPackage.exports as Record<string, unknown>);
    return ok ? 0 : 1;
  } catch (err) {
    if (!(err instanceof BuildError)) throw err;
    console.error(err.message);
    return 1;
  }
}

process.exit(await main());
