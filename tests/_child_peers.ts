/**
 * Child peer processes of the same runtime, running small plain-JavaScript peers (so they run on every
 * runtime and Node version without TypeScript).
 *
 * @module
 */
import process from "node:process";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { detectRuntime } from "../mod.ts";
import { HangError, KiB } from "./_helpers.ts";
import { wakeOrTimeout } from "./_settle.ts";

/**
 * Arguments that make `process.execPath` run a JavaScript file, on this runtime; `denoFlags` are
 * added on Deno only (such as `--unstable-net`, which Deno's UDP needs).
 */
export function runtimeArgs(file: string, denoFlags: readonly string[] = []): string[] {
  return detectRuntime() === "deno" ? ["run", "-A", "--no-config", ...denoFlags, file] : [file];
}

/** How a child process ended, and what it printed (stdout and stderr, the last 4 KiB). */
export interface ChildRun {
  /** The exit code, or the signal's name. */
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs `file` with this runtime's own executable (or with `options.executable`, e.g. `node`) to its end,
 * killed after `timeoutMs`. Deno gets `options.denoFlags` and no other flag; `options.cwd` is the working
 * directory (this process's by default).
 */
export function runToEnd(
  file: string,
  args: string[],
  timeoutMs: number,
  options: { executable?: string; denoFlags?: readonly string[]; cwd?: string } = {},
): Promise<ChildRun> {
  const executable = options.executable ?? process.execPath;
  const fileArgs = executable === process.execPath ? runtimeArgs(file, options.denoFlags) : [file];
  return runCommand(executable, [...fileArgs, ...args], timeoutMs, options.cwd);
}

/**
 * Runs `executable` with exactly `args` to its end (in `cwd` when given), killed after `timeoutMs`.
 *
 * @example
 * ```ts
 * const { code, stderr } = await runCommand(process.execPath, ["check", "/tmp/example.ts"], 60_000);
 * ```
 */
export function runCommand(
  executable: string,
  args: string[],
  timeoutMs: number,
  cwd?: string,
): Promise<ChildRun> {
  const child = spawn(executable, args, {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    child.on("error", (err) => (stderr += String(err)));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? signal ?? -1, stdout, stderr: stderr.slice(-4000) });
    });
  });
}

/**
 * The repository root: the folder above this file (or its compiled copy in `npm/esm/tests/`) that holds
 * README.md and deno.json; `undefined` in a packed copy.
 */
export function repositoryRoot(): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, "README.md")) && existsSync(join(dir, "deno.json"))) return dir;
  }
  return undefined;
}

/**
 * Why this runtime cannot run a `.ts` file in a child process (Node before 24 strips no types), or
 * `undefined` when it can: a `skip` value for tests that do.
 */
export function typeScriptSkipReason(): string | undefined {
  const nodeMajor = Number(process.versions.node?.split(".")[0]);
  return detectRuntime() === "node" && nodeMajor < 24
    ? "Node before 24 runs no TypeScript and has no `await using`"
    : undefined;
}

/**
 * A child process of the same runtime, running a small plain-JavaScript peer (so it runs on every
 * runtime and Node version without TypeScript).
 */
export interface ChildPeer {
  /** The process. */
  readonly child: ChildProcess;
  /** Lines the child printed on stdout so far. */
  readonly lines: string[];
  /** What it printed on stderr (kept for failure messages). */
  readonly stderr: () => string;
  /** Resolves with the exit code (or the signal name) once the child is gone. */
  readonly exited: Promise<number | string>;
  /** Waits for a stdout line matching `match`; throws {@linkcode HangError} after `timeoutMs`. */
  waitForLine(match: (line: string) => boolean, timeoutMs: number): Promise<string>;
  /** Sends a signal; safe after exit. */
  kill(signal: "SIGKILL" | "SIGTERM"): void;
}

/**
 * Writes `source` to `dir/name.mjs` and runs it with this runtime's own executable.
 *
 * @example
 * ```ts
 * const child = await spawnChildPeer(dir, "half_frame", HALF_FRAME_PEER, ["127.0.0.1", String(port), "kw", "1000", "500"]);
 * await child.waitForLine((l) => l === "ready", 10_000);
 * child.kill("SIGKILL");
 * ```
 */
export async function spawnChildPeer(
  dir: string,
  name: string,
  source: string,
  args: string[],
): Promise<ChildPeer> {
  const file = join(dir, `${name}.mjs`);
  await writeFile(file, source);
  const child = spawn(process.execPath, [...runtimeArgs(file), ...args], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NO_COLOR: "1" },
  });
  const lines: string[] = [];
  let partial = "";
  let stderr = "";
  let wake: (() => void) | undefined;
  child.stdout!.setEncoding("utf8");
  child.stdout!.on("data", (chunk: string) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    lines.push(...parts);
    wake?.();
  });
  child.stderr!.setEncoding("utf8");
  child.stderr!.on("data", (chunk: string) => {
    if (stderr.length < 16 * KiB) stderr += chunk;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on("exit", (code, signal) => {
      resolve(code ?? signal ?? -1);
      wake?.();
    });
    child.on("error", (err) => {
      stderr += String(err);
      resolve(-1);
      wake?.();
    });
  });
  let gone = false;
  void exited.then(() => (gone = true));
  return {
    child,
    lines,
    stderr: () => stderr,
    exited,
    async waitForLine(match, timeoutMs) {
      const end = Date.now() + timeoutMs;
      for (let seen = 0;;) {
        for (; seen < lines.length; seen++) if (match(lines[seen])) return lines[seen];
        if (gone) throw new Error(`Child ${name} exited before the expected line; stderr: ${stderr}`);
        const left = end - Date.now();
        if (left <= 0) {
          throw new HangError(`Timed out waiting for a line from child ${name}; stderr: ${stderr}`);
        }
        await wakeOrTimeout(Math.min(left, 100), (next) => (wake = next));
      }
    },
    kill(signal) {
      if (!gone) child.kill(signal);
    },
  };
}

/**
 * Child peer: connects over TCP, announces a keyword, writes the first `sent` bytes of a frame that
 * declares `declared` bytes, prints `ready` once the kernel took them, and waits to be killed.
 * Arguments: host port keyword declared sent.
 */
export const HALF_FRAME_PEER = `
import net from "node:net";
import process from "node:process";
const [host, port, keyword, declared, sent] = process.argv.slice(2);
const header = (n) => { const h = new Uint8Array(8); new DataView(h.buffer).setUint32(0, n, true); return h; };
const kw = new TextEncoder().encode(keyword);
const body = new Uint8Array(Number(sent)).fill(0x5a);
const out = new Uint8Array(16 + kw.length + body.length);
out.set(header(kw.length), 0);
out.set(kw, 8);
out.set(header(Number(declared)), 8 + kw.length);
out.set(body, 16 + kw.length);
const socket = net.connect({ host, port: Number(port) }, () => {
  socket.write(out, () => process.stdout.write("ready\\n"));
});
socket.on("data", () => {});
socket.on("error", () => {});
setInterval(() => {}, 60000);
`;

/**
 * Child peer: connects over TCP, announces a keyword, then sends `total` bytes of frames of
 * `payload` bytes as fast as the socket takes them (respecting backpressure, so its own memory stays
 * small). Payload i starts with i (u32 LE) and is filled with i & 0xff. Prints `sent N` as it goes and
 * `done N` at the end, then half-closes. Arguments: host port keyword total payload.
 */
export const FLOOD_PEER = `
import net from "node:net";
import process from "node:process";
const [host, port, keyword, totalArg, payloadArg] = process.argv.slice(2);
const total = Number(totalArg);
const payload = Number(payloadArg);
const perWrite = Math.max(1, Math.floor((1024 * 1024) / (payload + 8)));
const kw = new TextEncoder().encode(keyword);
let seq = 0;
let sent = 0;
let last = 0;
const report = (force) => {
  const now = Date.now();
  if (force || now - last > 100) { last = now; process.stdout.write("sent " + sent + "\\n"); }
};
const socket = net.connect({ host, port: Number(port) }, () => {
  const hello = new Uint8Array(8 + kw.length);
  new DataView(hello.buffer).setUint32(0, kw.length, true);
  hello.set(kw, 8);
  socket.write(hello);
  pump();
});
function pump() {
  while (sent < total) {
    const frames = Math.min(perWrite, Math.ceil((total - sent) / payload));
    const buf = new Uint8Array(frames * (payload + 8));
    const view = new DataView(buf.buffer);
    for (let f = 0; f < frames; f++) {
      const at = f * (payload + 8);
      view.setUint32(at, payload, true);
      buf.fill(seq & 0xff, at + 8, at + 8 + payload);
      view.setUint32(at + 8, seq, true);
      seq++;
    }
    sent += frames * payload;
    const more = socket.write(buf);
    report(false);
    if (!more) { socket.once("drain", pump); return; }
  }
  report(true);
  process.stdout.write("done " + sent + "\\n");
  socket.end();
}
socket.on("data", () => {});
socket.on("error", (err) => { process.stdout.write("error " + err.message + "\\n"); });
socket.on("close", () => { process.stdout.write("closed\\n"); process.exit(0); });
`;

/** The library as a child peer sees it: the sources beside this file, or the compiled copy under Node. */
const library = new URL(import.meta.url.endsWith(".ts") ? "../mod.ts" : "../mod.js", import.meta.url).href;

/**
 * Child peer: a core listening on one TCP or UNIX listener, with one named client, "worker", whose
 * processor echoes. Prints `ready PORT MS` once it listens (PORT 0 on UNIX; MS is its `Date.now()`
 * then), and runs until killed. Arguments: transport (`tcp` or `unix`), then the port or the path.
 */
export const ECHO_SERVER_PEER = `
import process from "node:process";
import { InlineProcessor, IoCore } from ${JSON.stringify(library)};
class Echo extends InlineProcessor {
  onDataReceived(data) { this.outputMessages.push(data); }
}
const [transport, where] = process.argv.slice(2);
const listener = transport === "unix" ? { transport, path: where } : { transport, hostname: "127.0.0.1", port: Number(where) };
const core = new IoCore({ listeners: [listener], logger: null });
const [addr] = await core.listen();
core.addClient({ keyword: "worker", processor: Echo });
console.log("ready " + (addr.port ?? 0) + " " + Date.now());
setInterval(() => {}, 1 << 30);
`;

/** An {@linkcode ECHO_SERVER_PEER} that has printed its `ready` line. */
export interface EchoServerChild {
  /** The child process. */
  readonly child: ChildPeer;
  /** The bound TCP port (0 on UNIX). */
  readonly port: number;
  /** The child's `Date.now()` right after its listener was bound and its client registered. */
  readonly readyAt: number;
}

/**
 * Starts an {@linkcode ECHO_SERVER_PEER} in `dir` on `transport` at `where` (a port, `"0"` for any,
 * or a UNIX socket path) and waits for its `ready` line; throws {@linkcode HangError} after `timeoutMs`.
 *
 * @example
 * ```ts
 * const server = await startEchoServerChild(dir, "tcp", "0");
 * const again = (server.child.kill("SIGKILL"), await server.child.exited, await startEchoServerChild(dir, "tcp", String(server.port)));
 * ```
 */
export async function startEchoServerChild(
  dir: string,
  transport: "tcp" | "unix",
  where: string,
  timeoutMs = 20_000,
): Promise<EchoServerChild> {
  const child = await spawnChildPeer(dir, "echo_server", ECHO_SERVER_PEER, [transport, where]);
  try {
    const line = await child.waitForLine((l) => l.startsWith("ready "), timeoutMs);
    const [, port, readyAt] = line.split(" ");
    return { child, port: Number(port), readyAt: Number(readyAt) };
  } catch (err) {
    child.kill("SIGKILL");
    throw err;
  }
}
