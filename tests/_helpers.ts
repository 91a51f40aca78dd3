/**
 * Helpers shared by every network test: temp dirs, time bounds, byte collection and byte patterns,
 * and an independent check of the runtime under test.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { lstat, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import type { Addr, Connection, ConnectionHandler, Listener, ListenOptions, Transport } from "../mod.ts";
import { Rng } from "./_stream_check.ts";

/** 1024 bytes. */
export const KiB = 1024;
/** 1024 KiB. */
export const MiB = 1024 * KiB;

/** The one time bound of a network test (its own waits are shorter): `it(name, TEST_TIMEOUT, body)`. */
export const TEST_TIMEOUT = { timeout: 60_000 };

/** The runtimes the suite runs on. */
export type Runtime = "deno" | "bun" | "node";

// Node 20 ships Symbol.asyncDispose; the fallback keeps older or stricter runtimes working with `using`.
const asyncDispose: typeof Symbol.asyncDispose = Symbol.asyncDispose ??
  (Symbol.for("Symbol.asyncDispose") as typeof Symbol.asyncDispose);

/** A fresh temporary directory, removed with everything in it on dispose. */
export interface TempDir {
  /** The directory's absolute path. */
  readonly path: string;
  /** A path inside the directory. */
  join(name: string): string;
  /** Removes the directory. Safe to call twice. */
  cleanup(): Promise<void>;
  /** Same as {@linkcode TempDir.cleanup}, for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Creates a fresh temporary directory (kept short, since UNIX socket paths are limited to ~104 bytes).
 */
export async function tempDir(prefix = "asockio-"): Promise<TempDir> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  let removed: Promise<void> | undefined;
  const cleanup = () => (removed ??= rm(path, { recursive: true, force: true }));
  return { path, join: (name: string) => join(path, name), cleanup, [asyncDispose]: cleanup };
}

/** Tells whether `path` exists (as anything, a dangling link included). */
export async function pathExists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** What every bounded wait of the suite throws at its deadline, so a hang is told apart from a failure. */
export class HangError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "HangError";
  }
}

/**
 * Rejects with {@linkcode HangError} when `promise` does not settle within `ms`, naming `label`, so a
 * hung test fails by itself.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(`Timed out after ${ms} ms: ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A promise with its resolve function at hand. */
export interface Deferred<T> {
  /** The promise. */
  readonly promise: Promise<T>;
  /** Settles the promise with a value. */
  resolve(value: T): void;
  /** Settles the promise with an error. */
  reject(reason: unknown): void;
}

/**
 * Creates a promise to settle from elsewhere.
 */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (reason: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** What {@linkcode collect} records from one connection. */
export interface Collector {
  /** Every chunk received, kept as delivered (the transport gave them away). */
  readonly chunks: Uint8Array[];
  /** Bytes received so far. */
  readonly length: number;
  /** How many times `onDrain` fired. */
  readonly drains: number;
  /** How many times `onEnd` fired. */
  readonly ends: number;
  /** How many times `onClose` fired. */
  readonly closes: number;
  /** Resolves on `onEnd`. */
  readonly ended: Promise<void>;
  /** Resolves on `onClose` with its error, if any. */
  readonly closed: Promise<Error | undefined>;
  /** Everything received, in one buffer. */
  bytes(): Uint8Array;
  /** Everything received, decoded as UTF-8. */
  text(): string;
  /** Resolves once at least `length` bytes arrived; rejects if the connection closes first. */
  untilLength(length: number): Promise<void>;
  /** Resolves on the next `onDrain`. */
  nextDrain(): Promise<void>;
}

/**
 * Sets a handler on `conn` that records everything it reports. `hooks` run after the recording, to
 * echo or pause.
 *
 * @example Echo server side
 * ```ts
 * const received = collect(conn, { onData: (chunk) => conn.write(chunk), onEnd: () => conn.closeWrite() });
 * await received.closed;
 * ```
 */
export function collect(conn: Connection, hooks: Partial<ConnectionHandler> = {}): Collector {
  const chunks: Uint8Array[] = [];
  const ended = deferred<void>();
  const closed = deferred<Error | undefined>();
  let length = 0;
  let drains = 0;
  let ends = 0;
  let closes = 0;
  let lengthWaiters: { length: number; done: Deferred<void> }[] = [];
  let drainWaiters: Deferred<void>[] = [];
  conn.setHandler({
    onData(chunk) {
      chunks.push(chunk);
      length += chunk.byteLength;
      if (lengthWaiters.length > 0) {
        const waiting = lengthWaiters;
        lengthWaiters = [];
        for (const w of waiting) {
          if (length >= w.length) w.done.resolve();
          else lengthWaiters.push(w);
        }
      }
      hooks.onData?.(chunk);
    },
    onDrain() {
      drains++;
      const waiters = drainWaiters;
      drainWaiters = [];
      for (const w of waiters) w.resolve();
      hooks.onDrain?.();
    },
    onEnd() {
      ends++;
      ended.resolve();
      hooks.onEnd?.();
    },
    onClose(error) {
      closes++;
      closed.resolve(error);
      const why = new Error(`Connection closed after ${length} bytes${error ? `: ${error.message}` : ""}`);
      for (const w of lengthWaiters) w.done.reject(why);
      for (const w of drainWaiters) w.reject(why);
      lengthWaiters = [];
      drainWaiters = [];
      hooks.onClose?.(error);
    },
  });
  return {
    chunks,
    get length() {
      return length;
    },
    get drains() {
      return drains;
    },
    get ends() {
      return ends;
    },
    get closes() {
      return closes;
    },
    ended: ended.promise,
    closed: closed.promise,
    bytes: () => concatBytes(chunks),
    text: () => new TextDecoder().decode(concatBytes(chunks)),
    untilLength(wanted) {
      if (length >= wanted) return Promise.resolve();
      const done = deferred<void>();
      if (closes > 0) done.reject(new Error(`Connection closed after ${length} of ${wanted} bytes`));
      else lengthWaiters.push({ length: wanted, done });
      return done.promise;
    },
    nextDrain() {
      const done = deferred<void>();
      drainWaiters.push(done);
      return done.promise;
    },
  };
}

/** Joins chunks (bytes, or arrays of byte values) into one buffer. */
export function concatBytes(chunks: readonly (Uint8Array | readonly number[])[]): Uint8Array {
  let total = 0;
  for (const chunk of chunks) total += chunk.length;
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}

/**
 * Deterministic pseudo-random bytes (the suite's one seeded generator, {@linkcode Rng}): no short period,
 * so a lost, doubled or reordered chunk cannot line up by chance.
 */
export function bytePattern(length: number, seed = 1): Uint8Array {
  const words = new Uint32Array(Math.ceil(length / 4));
  const rng = new Rng(seed);
  for (let i = 0; i < words.length; i++) words[i] = rng.u32();
  return new Uint8Array(words.buffer, 0, length);
}

/** Tells whether two byte arrays hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Asserts two byte arrays are equal, reporting the first differing offset instead of a huge diff.
 */
export function assertBytesEqual(actual: Uint8Array, expected: Uint8Array, label: string): void {
  const n = Math.min(actual.byteLength, expected.byteLength);
  for (let i = 0; i < n; i++) {
    if (actual[i] !== expected[i]) {
      throw new Error(`${label}: bytes differ at offset ${i} of ${expected.byteLength}`);
    }
  }
  if (actual.byteLength !== expected.byteLength) {
    throw new Error(`${label}: got ${actual.byteLength} bytes, expected ${expected.byteLength}`);
  }
}

/**
 * The port of a TCP address; throws on a UNIX address.
 */
export function tcpPort(addr: Addr): number {
  if (addr.transport !== "tcp") throw new TypeError(`Expected a TCP address, got ${JSON.stringify(addr)}`);
  return addr.port;
}

/**
 * The runtime this process is, found without the code under test: Deno and Bun add their own entry to
 * `process.versions`. When `ASOCKIO_EXPECT_RUNTIME` is set (by the script that runs the suite on each
 * runtime), a mismatch throws, so a run on the wrong runtime cannot pass unnoticed.
 */
export function expectedRuntime(): Runtime {
  const versions = process.versions as { deno?: string; bun?: string };
  const actual: Runtime = versions.deno ? "deno" : versions.bun ? "bun" : "node";
  const wanted = process.env.ASOCKIO_EXPECT_RUNTIME;
  if (wanted && wanted !== actual) {
    throw new Error(`Expected to run on ${wanted} (ASOCKIO_EXPECT_RUNTIME), but this is ${actual}`);
  }
  return actual;
}

/**
 * Closes what a test opened, last first, even when the test fails half way. Usable with `await using`.
 *
 * @example
 * ```ts
 * await using res = new Resources();
 * const listener = res.add(await transport.listen({ transport: "tcp" }, onConnection));
 * const client = res.add(await transport.connect({ transport: "tcp", port: tcpPort(listener.addr) }));
 * ```
 */
export class Resources {
  #closers: (() => unknown)[] = [];

  /** Registers something with a `close` method (a listener, a connection) and returns it. */
  add<T extends { close(): unknown }>(resource: T): T {
    this.#closers.push(() => resource.close());
    return resource;
  }

  /** Registers a cleanup function. */
  defer(fn: () => unknown): void {
    this.#closers.push(fn);
  }

  /** A fresh {@linkcode tempDir}, removed with the rest (after what was registered later is closed). */
  async tempDir(): Promise<TempDir> {
    const dir = await tempDir();
    this.defer(() => dir.cleanup());
    return dir;
  }

  /** Runs every cleanup, last registered first; failures are ignored so all of them run. */
  async closeAll(): Promise<void> {
    const closers = this.#closers.reverse();
    this.#closers = [];
    for (const close of closers) {
      try {
        await close();
      } catch {
        // Cleanup after a failed test must not hide the failure.
      }
    }
  }

  /** Same as {@linkcode Resources.closeAll}, for `await using`. */
  [asyncDispose](): Promise<void> {
    return this.closeAll();
  }
}

/**
 * Sends `payload` over `client` in 1000-byte writes, half-closes, and checks that the echo (up to the
 * peer's end) is the payload, byte by byte.
 */
export async function echoRoundTrip(client: Connection, payload: Uint8Array): Promise<void> {
  const got = collect(client);
  for (let offset = 0; offset < payload.byteLength; offset += 1000) {
    client.write(payload.subarray(offset, offset + 1000));
  }
  client.closeWrite();
  await got.ended;
  assertBytesEqual(got.bytes(), payload, "echo");
}

/** A listener and the first connection it accepts, recorded by {@linkcode collect}. */
export interface OneAccepted {
  readonly listener: Listener;
  /** Resolves with the first accepted connection and what it received. */
  readonly accepted: Promise<Accepted>;
}

/**
 * Listens on `transport` and records the first accepted connection with {@linkcode collect};
 * `hooks(entry)` may echo or answer (`entry.got` is set by the time a hook runs). The listener and the
 * connection are closed with `res`.
 *
 * @example
 * ```ts
 * const { listener, accepted } = await listenForOne(transport, { transport: "tcp" }, res);
 * const client = res.add(await transport.connect({ transport: "tcp", port: tcpPort(listener.addr) }));
 * const { conn, got } = await accepted;
 * ```
 */
export async function listenForOne(
  transport: Transport,
  options: ListenOptions,
  res: Resources,
  hooks?: (entry: Accepted) => Partial<ConnectionHandler>,
): Promise<OneAccepted> {
  const accepted = deferred<Accepted>();
  const listener = res.add(
    await transport.listen(options, (conn) => {
      res.add(conn);
      const entry = { conn } as { conn: Connection; got: Collector };
      entry.got = collect(conn, hooks?.(entry));
      accepted.resolve(entry);
    }),
  );
  return { listener, accepted: accepted.promise };
}

/** A connection accepted by {@linkcode startEchoServer}, with what it received. */
export interface Accepted {
  readonly conn: Connection;
  readonly got: Collector;
}

/** An echo server: every accepted connection sends back what it gets and half-closes after the peer. */
export interface EchoServer {
  readonly listener: Listener;
  /** The bound port (0 for a UNIX socket). */
  readonly port: number;
  readonly accepted: Accepted[];
  /** Resolves with the accepted connections in order, one per call. */
  nextAccepted(): Promise<Accepted>;
}

/** Starts an echo server on `transport`; the listener and every connection are closed with `res`. */
export async function startEchoServer(
  transport: Transport,
  options: ListenOptions,
  res: Resources,
): Promise<EchoServer> {
  const accepted: Accepted[] = [];
  const waiters: ((entry: Accepted) => void)[] = [];
  const listener = res.add(
    await transport.listen(options, (conn) => {
      res.add(conn);
      const got = collect(conn, {
        onData: (chunk) => {
          if (!conn.closed) conn.write(chunk);
        },
        onEnd: () => conn.closeWrite(),
      });
      const entry = { conn, got };
      accepted.push(entry);
      waiters.shift()?.(entry);
    }),
  );
  let taken = 0;
  return {
    listener,
    port: listener.addr.transport === "unix" ? 0 : listener.addr.port,
    accepted,
    nextAccepted: () => {
      const index = taken++;
      if (index < accepted.length) return Promise.resolve(accepted[index]!);
      return new Promise((resolve) => waiters.push(resolve));
    },
  };
}

/**
 * Why a test that needs an external tool is skipped: `undefined` when `tool versionArg` runs, else
 * a reason with the install command, for `{ skip }`.
 */
export function missingTool(tool: string, versionArg: string, install: string): string | undefined {
  try {
    return spawnSync(tool, [versionArg], { stdio: "ignore", timeout: 5000 }).status === 0
      ? undefined
      : `${tool} is not installed (${install})`;
  } catch {
    return `${tool} is not installed (${install})`;
  }
}
