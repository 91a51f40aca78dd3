/**
 * The npm package as a user gets it: `npm pack` of the built `npm/`, installed from the tarball into a
 * fresh project with no registry (`npm install --offline`, `bun add`), then used by name: an ESM import on
 * Node 20 and Node 24, a `require` on Node 24, Bun, and a TypeScript consumer type-checked by `tsc`
 * against the emitted declarations.
 *
 * It runs once, under Deno, and drives the other runtimes itself, on the package the checks of
 * `npm test` (or `npm run build`) built.
 */
import { after, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "../mod.ts";
import { missingTool, type TempDir, tempDir } from "./_helpers.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PACKAGE_DIR = join(ROOT, "npm");
const BIN = join(ROOT, "node_modules", ".bin");
/** Each child process (pack, install, a consumer run, tsc) is killed after this. */
const CHILD_TIMEOUT_MS = 90_000;
const TEST_TIMEOUT_MS = 180_000;

/** The Node binaries `scripts/build_npm.ts` found, by label (`node20`, `node24`). */
function plannedNodes(): Map<string, string> {
  try {
    const plan = JSON.parse(readFileSync(join(ROOT, ".build", "npm_test_plan.json"), "utf8"));
    return new Map((plan.nodes as { label: string; path: string }[]).map((n) => [n.label, n.path]));
  } catch {
    return new Map();
  }
}

const skip = detectRuntime() !== "deno"
  ? "runs once, under Deno, which drives Node, Bun and tsc itself"
  : !existsSync(join(PACKAGE_DIR, "package.json"))
  ? "npm/ is not built (npm run build --no-test builds it)"
  : missingTool("npm", "--version", "npm comes with Node");
const nodes = plannedNodes();
const noNode = (label: string) => nodes.has(label) ? undefined : `no ${label} in .build/npm_test_plan.json`;

/** Runs `cmd` to its end; rejects with its output when it fails or outlives {@linkcode CHILD_TIMEOUT_MS}. */
function exec(cmd: string, args: string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd, timeout: CHILD_TIMEOUT_MS, maxBuffer: 16 * 1024 * 1024 },
      (err, out, errOut) => {
        if (err) reject(new Error(`${cmd} ${args.join(" ")} failed: ${err.message}\n${out}\n${errOut}`));
        else resolve(out);
      },
    );
  });
}

/**
 * What the consumer programs do with the package: load every export, then send one message from an
 * outgoing client to a server core over loopback TCP and print the echo.
 */
const CONSUMER_BODY = `
async function main() {
  const server = new IoCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }] });
  const [address] = await server.listen();
  server.addClient({ keyword: "consumer" });
  const echoing = (async () => {
    for await (const events of server) {
      for (const id of events.clientsHaveDataToRead) server.sendMessagesToClient(id, server.getMessagesFromClient(id));
    }
  })();
  const client = new IoCore();
  const upstream = client.addClient({ keyword: "consumer", connect: { ...address, transport: "tcp" } });
  client.sendMessageToClient(upstream, "ping");
  let echo = "";
  for await (const message of client.messages(upstream)) {
    echo = new TextDecoder().decode(message);
    break;
  }
  await client.close();
  await server.close();
  await echoing;
  const decoder = new FrameDecoder();
  decoder.push(encodeFrame(new TextEncoder().encode("frame")));
  console.log(JSON.stringify({
    echo,
    runtime: detectRuntime(),
    transport: typeof nativeTransport().listen,
    http: typeof HttpResponder,
    frame: new TextDecoder().decode(decoder.next()),
  }));
}
main().catch((err) => { console.error(err); process.exit(1); });
`;
const ESM_CONSUMER = `import process from "node:process";
import { detectRuntime, IoCore } from "asockio";
import { nativeTransport } from "asockio/transports";
import { encodeFrame, FrameDecoder } from "asockio/codec";
import { HttpResponder } from "asockio/http";
${CONSUMER_BODY}`;
const CJS_CONSUMER = `const process = require("node:process");
const { detectRuntime, IoCore } = require("asockio");
const { nativeTransport } = require("asockio/transports");
const { encodeFrame, FrameDecoder } = require("asockio/codec");
const { HttpResponder } = require("asockio/http");
${CONSUMER_BODY}`;
/** A TypeScript consumer: the `@ts-expect-error` line fails if the types were `any`. */
const TS_CONSUMER = `import { IoCore, type IoCoreOptions, type ClientId, SendBufferFullError } from "asockio";
import { encodeFrame, FrameDecoder, type FrameDecoderOptions } from "asockio/codec";
import { HttpResponder } from "asockio/http";
import { nativeTransport, type Transport } from "asockio/transports";

const options: IoCoreOptions = { listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }] };
const core: IoCore = new IoCore(options);
const id: ClientId = core.addClient({ keyword: "typed" });
const frame: Uint8Array = encodeFrame(new TextEncoder().encode("typed"));
const decoderOptions: FrameDecoderOptions = {};
const decoder = new FrameDecoder(decoderOptions);
decoder.push(frame);
const message: Uint8Array | undefined = decoder.next();
const transport: Transport = nativeTransport();
export const used = [id, message, transport, HttpResponder, SendBufferFullError] as const;
// @ts-expect-error a port is a number
export const wrong: IoCoreOptions = { listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: "80" }] };
`;

interface EchoReport {
  echo: string;
  runtime: string;
  transport: string;
  http: string;
  frame: string;
}

function assertEchoed(stdout: string, runtime: string): void {
  const line = stdout.trim().split("\n").at(-1) ?? "";
  const report = JSON.parse(line) as EchoReport;
  assert.deepEqual(report, {
    echo: "ping",
    runtime,
    transport: "function",
    http: "function",
    frame: "frame",
  });
}

/** The packed tarball, and a project that installed it with npm, made once for every test. */
interface Installed {
  dir: TempDir;
  tarball: string;
  files: string[];
  project: string;
}

let installing: Promise<Installed> | undefined;
function installed(): Promise<Installed> {
  return installing ??= (async () => {
    const dir = await tempDir("asockio-consumer-");
    const [packed] = JSON.parse(
      await exec("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", dir.path], PACKAGE_DIR),
    ) as { filename: string; files: { path: string }[] }[];
    const tarball = join(dir.path, packed!.filename);
    const project = join(dir.path, "npm-project");
    await mkdir(project);
    await writeFile(
      join(project, "package.json"),
      '{ "name": "consumer", "private": true, "type": "module" }\n',
    );
    await exec(
      "npm",
      ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball],
      project,
    );
    await writeFile(join(project, "consumer.mjs"), ESM_CONSUMER);
    await writeFile(join(project, "consumer.cjs"), CJS_CONSUMER);
    return { dir, tarball, files: packed!.files.map((f) => f.path), project };
  })();
}

after(async () => {
  if (installing) await (await installing).dir.cleanup();
});

describe("the packed npm package, installed from its tarball", () => {
  it("holds the library's code, declarations, maps and sources, the docs, and no tests", {
    skip,
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { files, project } = await installed();
    for (const file of ["esm/mod.js", "esm/mod.d.ts", "esm/mod.d.ts.map", "src/mod.ts", "CHANGELOG.md"]) {
      assert.ok(files.includes(file), `${file} is packed`);
    }
    assert.deepEqual(files.filter((f) => f.startsWith("esm/tests/")), []);
    const manifest = JSON.parse(readFileSync(join(project, "node_modules/asockio/package.json"), "utf8"));
    const denoJson = JSON.parse(readFileSync(join(ROOT, "deno.json"), "utf8"));
    assert.equal(manifest.version, denoJson.version);
    // mod.js fills the transport slot when it loads: a bundler must not skip it.
    assert.deepEqual(manifest.sideEffects, ["./esm/mod.js"]);
    const declarations = readFileSync(join(project, "node_modules/asockio/esm/core/io_core.d.ts"), "utf8");
    assert.match(declarations, /from "asockio"/);
    assert.doesNotMatch(declarations, /@asockio\/core/);
  });

  const nodeRuns = [
    { label: "node20", consumers: ["consumer.mjs"], does: "imports it by name" },
    {
      label: "node24",
      consumers: ["consumer.mjs", "consumer.cjs"],
      does: "imports it and require()s it by name",
    },
  ];
  for (const { label, consumers, does } of nodeRuns) {
    it(`${does} on ${label}, each time echoing a message over TCP`, {
      skip: skip ?? noNode(label),
      timeout: TEST_TIMEOUT_MS,
    }, async () => {
      const { project } = await installed();
      for (const consumer of consumers) {
        assertEchoed(await exec(nodes.get(label)!, [consumer], project), "node");
      }
    });
  }

  it("installs with bun add from the tarball, and Bun imports it and echoes a message over TCP", {
    skip: skip ?? missingTool(join(BIN, "bun"), "--version", "npm ci installs it"),
    timeout: TEST_TIMEOUT_MS,
  }, async () => {
    const { dir, tarball } = await installed();
    const project = join(dir.path, "bun-project");
    await mkdir(project);
    await writeFile(
      join(project, "package.json"),
      '{ "name": "consumer", "private": true, "type": "module" }\n',
    );
    await exec(join(BIN, "bun"), ["add", "--no-progress", tarball], project);
    await writeFile(join(project, "consumer.mjs"), ESM_CONSUMER);
    assertEchoed(await exec(join(BIN, "bun"), ["consumer.mjs"], project), "bun");
  });

  /**
   * Two consumers: a Node one (nodenext, with @types/node) and a bundler one without Node's types. The
   * declarations use `AsyncDisposable`, which @types/node declares and the bundler consumer's lib names.
   */
  const consumers = {
    nodenext: {
      module: "nodenext",
      lib: ["ES2023"],
      types: ["node"],
      typeRoots: [join(ROOT, "node_modules/@types")],
    },
    bundler: { module: "preserve", lib: ["ES2023", "ESNext.Disposable", "DOM"], types: [] },
  } as const;
  for (const [resolution, settings] of Object.entries(consumers)) {
    it(`type-checks a TypeScript consumer with tsc against the emitted types (${resolution} resolution)`, {
      skip: skip ?? missingTool(join(BIN, "tsc"), "--version", "npm ci installs it"),
      timeout: TEST_TIMEOUT_MS,
    }, async () => {
      const { project } = await installed();
      const config = join(project, `tsconfig.${resolution}.json`);
      await writeFile(join(project, "consumer.ts"), TS_CONSUMER);
      await writeFile(
        config,
        JSON.stringify({
          compilerOptions: {
            ...settings,
            strict: true,
            target: "ES2022",
            moduleResolution: resolution,
            noEmit: true,
            skipLibCheck: false,
          },
          files: ["consumer.ts"],
        }),
      );
      await exec(join(BIN, "tsc"), ["-p", config, "--pretty", "false"], project);
    });
  }
});
