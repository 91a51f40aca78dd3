/**
 * Robustness workloads shared by `tests/robustness.test.ts` (bounded runs) and the scripts
 * `scripts/fuzz.ts`, `scripts/flood.ts`, `scripts/churn.ts` and `scripts/soak.ts` (full runs).
 *
 * Every workload drives a real {@linkcode IoCore} through real sockets (loopback TCP and UNIX sockets
 * in a fresh temp dir only), counts what the core must never do (throw out of its event loop, hang,
 * lose or reorder bytes, leak memory, descriptors or accounting) and returns a report whose
 * `failures` list is empty when everything held. Every wait is bounded, so a hang is reported, not
 * waited for.
 *
 * @module
 */
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { encodeFrame, encodeFrames, FRAME_HEADER_BYTES, FrameDecoder } from "../core/codec.ts";
import { ConnectionClosedError, MessageTooLargeError } from "../core/errors.ts";
import {
  type ClientId,
  IoCore,
  type IoCoreListenerOptions,
  type IoCoreStats,
  type IoIterationResult,
} from "../mod.ts";
import { detectRuntime, nativeTransport } from "../transports/mod.ts";
import type { Addr, Connection, ConnectOptions } from "../transports/types.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Small utilities

/**
 * A seeded pseudo-random generator (sfc32 seeded through splitmix32): the same seed and stream
 * always give the same sequence, on every runtime.
 *
 * @example
 * ```ts
 * const rng = new Rng(42, 7); // seed 42, stream 7 (e.g. connection #7)
 * const size = rng.int(100); // 0..99
 * ```
 */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  /** Creates the generator for `seed`; `stream` picks an independent sequence for the same seed. */
  constructor(seed: number, stream = 0) {
    let s = (seed >>> 0) ^ Math.imul((stream >>> 0) + 0x632be5ab, 0x9e3779b1);
    const next = (): number => {
      s = (s + 0x9e3779b9) | 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.#a = next();
    this.#b = next();
    this.#c = next();
    this.#d = next();
    for (let i = 0; i < 12; i++) this.u32();
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    const t0 = (this.#a + this.#b) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    const c = (this.#c << 21) | (this.#c >>> 11);
    this.#d = (this.#d + 1) | 0;
    const t = (t0 + this.#d) | 0;
    this.#c = (c + t) | 0;
    return t >>> 0;
  }

  /** A uniform float in [0, 1). */
  float(): number {
    return this.u32() / 4294967296;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.float() * n);
  }

  /** A uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.float() < p;
  }

  /** One element of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = this.u32() & 0xff;
    return out;
  }
}

/**
 * The FNV-1a 32-bit offset basis: the hash of nothing.
 *
 * @example
 * ```ts
 * let hash = FNV_OFFSET;
 * hash = fnv(hash, new Uint8Array([1, 2, 3]));
 * ```
 */
export const FNV_OFFSET = 0x811c9dc5;

/**
 * Folds `bytes` into an FNV-1a 32-bit hash. Chunking does not matter: hashing `a` then `b` equals
 * hashing their concatenation, which is what makes it usable on TCP streams.
 *
 * @example
 * ```ts
 * const h = fnv(fnv(FNV_OFFSET, new Uint8Array([1])), new Uint8Array([2]));
 * ```
 */
export function fnv(hash: number, bytes: Uint8Array): number {
  let h = hash;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

/** Folds a 32-bit length (little-endian) into an FNV-1a hash. */
function fnvLength(hash: number, n: number): number {
  let h = hash;
  h = Math.imul(h ^ (n & 0xff), 0x01000193);
  h = Math.imul(h ^ ((n >>> 8) & 0xff), 0x01000193);
  h = Math.imul(h ^ ((n >>> 16) & 0xff), 0x01000193);
  h = Math.imul(h ^ (n >>> 24), 0x01000193);
  return h >>> 0;
}

/**
 * Folds one whole message (its length, then its bytes) into a hash, so that both the boundaries and
 * the contents of a message sequence are covered.
 *
 * @example
 * ```ts
 * let h = FNV_OFFSET;
 * for (const m of [new Uint8Array([1]), new Uint8Array(0)]) h = messageHash(h, m);
 * ```
 */
export function messageHash(hash: number, message: Uint8Array): number {
  return fnv(fnvLength(hash, message.length), message);
}

/**
 * An independent reference decoder of the framing (8-byte little-endian length, then the payload),
 * written for clarity, not speed, so the fuzzer's oracle does not share code with `FrameDecoder`. It
 * keeps only what the oracle compares: how many messages, their hash, and whether the stream became
 * fatal (a declared length above `max`).
 *
 * @example
 * ```ts
 * const ref = new RefDecoder(4096);
 * ref.push(new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0, 42]));
 * console.log(ref.messages, ref.inSync); // 1 true
 * ```
 */
export class RefDecoder {
  /** The largest payload accepted. */
  readonly max: number;
  /** Whole messages decoded so far. */
  messages = 0;
  /** {@linkcode messageHash} over the whole messages, in order. */
  hash: number = FNV_OFFSET;
  /** A header declared more than `max`: nothing after it is decoded. */
  fatal = false;
  /** The payload of the first message, when `keepFirst` was set. */
  first: Uint8Array | undefined = undefined;
  /** How many bytes had been pushed when the first message completed (-1 before that). */
  firstEnd = -1;
  #pushed = 0;
  readonly #keepFirst: boolean;
  readonly #header = new Uint8Array(FRAME_HEADER_BYTES);
  #headerFill = 0;
  #inPayload = false;
  #remaining = 0;
  #pendingHash = 0;
  #firstParts: number[] | undefined = undefined;

  /** Creates a decoder for payloads up to `max` bytes; `keepFirst` records the first payload. */
  constructor(max: number, keepFirst = false) {
    this.max = max;
    this.#keepFirst = keepFirst;
  }

  /** True between frames: no partial header or payload is pending, and the stream is not fatal. */
  get inSync(): boolean {
    return !this.fatal && this.#headerFill === 0 && !this.#inPayload;
  }

  /** Feeds bytes as they would arrive. */
  push(bytes: Uint8Array): void {
    let i = 0;
    const base = this.#pushed;
    this.#pushed += bytes.length;
    while (i < bytes.length && !this.fatal) {
      if (!this.#inPayload) {
        this.#header[this.#headerFill++] = bytes[i++];
        if (this.#headerFill < FRAME_HEADER_BYTES) continue;
        this.#headerFill = 0;
        const h = this.#header;
        const lo = (h[0] | (h[1] << 8) | (h[2] << 16) | (h[3] << 24)) >>> 0;
        const hi = (h[4] | (h[5] << 8) | (h[6] << 16) | (h[7] << 24)) >>> 0;
        if (hi * 4294967296 + lo > this.max) {
          this.fatal = true;
          return;
        }
        this.#pendingHash = fnvLength(this.hash, lo);
        if (this.#keepFirst && this.messages === 0) this.#firstParts = [];
        if (lo === 0) this.#complete(base + i);
        else {
          this.#inPayload = true;
          this.#remaining = lo;
        }
      } else {
        const take = Math.min(this.#remaining, bytes.length - i);
        const part = bytes.subarray(i, i + take);
        this.#pendingHash = fnv(this.#pendingHash, part);
        if (this.#firstParts) { for (const b of part) this.#firstParts.push(b); }
        i += take;
        this.#remaining -= take;
        if (this.#remaining === 0) {
          this.#inPayload = false;
          this.#complete(base + i);
        }
      }
    }
  }

  #complete(end: number): void {
    if (this.messages === 0) this.firstEnd = end;
    if (this.#firstParts) {
      this.first = new Uint8Array(this.#firstParts);
      this.#firstParts = undefined;
    }
    this.messages++;
    this.hash = this.#pendingHash;
  }
}

/**
 * A bounded wait ran out: the thing waited for did not happen (the fuzzer counts it as a hang).
 *
 * @example
 * ```ts
 * try {
 *   await peer.next(1000);
 * } catch (err) {
 *   if (err instanceof HangError) console.log("no answer within 1 s");
 * }
 * ```
 */
export class HangError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "HangError";
  }
}

/**
 * Resolves after `ms` milliseconds.
 *
 * @example
 * ```ts
 * await sleep(50);
 * ```
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Resolves on the next macrotask, so writes made before it leave as their own native write.
 *
 * @example
 * ```ts
 * peer.write(frame.subarray(0, 3));
 * await macrotask(); // the first 3 bytes go out alone
 * peer.write(frame.subarray(3));
 * ```
 */
export function macrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Polls `condition` every few milliseconds until it holds; throws {@linkcode HangError} after
 * `timeoutMs`.
 *
 * @example
 * ```ts
 * await waitFor(() => core.stats().connections === 0, 5000, "every connection closed");
 * ```
 */
export async function waitFor(condition: () => boolean, timeoutMs: number, label: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new HangError(`Timed out after ${timeoutMs} ms waiting for ${label}`);
    await sleep(5);
  }
}

/**
 * Waits (up to `timeoutMs`) for the core to hold no connection and no byte, then reports through
 * `fail` anything left over (beyond `clients` registered clients) and returns the final stats.
 */
export async function settledStats(
  core: IoCore,
  clients: number,
  timeoutMs: number,
  fail: (message: string) => void,
): Promise<IoCoreStats> {
  try {
    await waitFor(() => core.stats().connections === 0, timeoutMs, "every connection to close");
    await waitFor(
      () => core.stats().inputBytes === 0 && core.stats().outputBytes === 0,
      timeoutMs,
      "accounting back to 0",
    );
  } catch {
    // Reported below with the numbers.
  }
  const stats = core.stats();
  for (const problem of accountingProblems(stats, { connections: 0, clients })) fail(`leak: ${problem}`);
  return stats;
}

/**
 * Rejects with {@linkcode HangError} when `promise` does not settle within `ms`.
 *
 * @example
 * ```ts
 * const peer = await deadline(Peer.connect(target), 5000, "connect");
 * ```
 */
export function deadline<T>(promise: Promise<T>, ms: number, label: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new HangError(`Timed out after ${ms} ms: ${label}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Formats a byte count with a binary unit.
 *
 * @example
 * ```ts
 * formatBytes(1536); // "1.5 KiB"
 * ```
 */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

// ---------------------------------------------------------------------------------------------
// Process monitors

/**
 * Counts `uncaughtException` and `unhandledRejection` events (through `node:process`, which Deno,
 * Bun and Node all support) while installed. Installing a listener also keeps the process alive,
 * which is what a crash counter needs.
 *
 * @example
 * ```ts
 * const crashes = CrashMonitor.install();
 * // ... run the workload ...
 * crashes.dispose();
 * console.log(crashes.total, crashes.samples);
 * ```
 */
export class CrashMonitor {
  /** Uncaught exceptions seen. */
  uncaught = 0;
  /** Unhandled promise rejections seen. */
  unhandled = 0;
  /** The first few errors, for the report. */
  readonly samples: string[] = [];
  readonly #onUncaught = (err: unknown): void => {
    this.uncaught++;
    this.#keep("uncaughtException", err);
  };
  readonly #onUnhandled = (err: unknown): void => {
    this.unhandled++;
    this.#keep("unhandledRejection", err);
  };

  /** Starts counting. */
  static install(): CrashMonitor {
    const monitor = new CrashMonitor();
    process.on("uncaughtException", monitor.#onUncaught);
    process.on("unhandledRejection", monitor.#onUnhandled);
    return monitor;
  }

  /** Both counts together. */
  get total(): number {
    return this.uncaught + this.unhandled;
  }

  /** Stops counting. Safe to call twice. */
  dispose(): void {
    process.off("uncaughtException", this.#onUncaught);
    process.off("unhandledRejection", this.#onUnhandled);
  }

  #keep(kind: string, err: unknown): void {
    if (this.samples.length >= 5) return;
    const text = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ""}` : String(err);
    this.samples.push(`${kind}: ${text}`);
  }
}

/**
 * Samples `process.memoryUsage().rss` every `intervalMs` and keeps the peak.
 *
 * @example
 * ```ts
 * const rss = new RssSampler(50);
 * // ... run the workload ...
 * rss.stop();
 * console.log(rss.peak - rss.baseline);
 * ```
 */
export class RssSampler {
  /** RSS when the sampler started. */
  readonly baseline: number;
  /** The largest RSS sampled. */
  peak: number;
  readonly #timer: ReturnType<typeof setInterval>;

  /** Starts sampling. */
  constructor(intervalMs = 50) {
    this.baseline = this.peak = process.memoryUsage().rss;
    this.#timer = setInterval(() => this.sample(), intervalMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** Takes one sample now and returns it. */
  sample(): number {
    const rss = process.memoryUsage().rss;
    if (rss > this.peak) this.peak = rss;
    return rss;
  }

  /** Stops sampling (after a last sample). */
  stop(): void {
    this.sample();
    clearInterval(this.#timer);
  }
}

/**
 * The number of descriptors this process has open (`/proc/self/fd`), or -1 where there is no /proc.
 *
 * @example
 * ```ts
 * const before = openFdCount();
 * // ... open and close connections ...
 * console.log(openFdCount() - before); // 0 when nothing leaked
 * ```
 */
export function openFdCount(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return -1;
  }
}

// ---------------------------------------------------------------------------------------------
// A bare framed peer on the native transport

/** Options for {@linkcode Peer}. */
export interface PeerOptions {
  /**
   * The largest frame the peer accepts from the core.
   * @default {67108864}
   */
  maxMessageBytes?: number;
  /**
   * Close our side as soon as the core half-closes, like an ordinary client.
   * @default {true}
   */
  closeOnEnd?: boolean;
}

/**
 * A peer that speaks the wire protocol directly over the runtime's native transport, so the core is
 * checked against the wire format and not against itself. Incoming frames are decoded into an inbox.
 *
 * @example
 * ```ts
 * const peer = await Peer.connect({ transport: "tcp", port });
 * peer.send("manager client");
 * console.log(text(await peer.next(5000))); // "OK"
 * ```
 */
export class Peer {
  /** The transport connection. */
  readonly conn: Connection;
  /** Bytes received so far. */
  receivedBytes = 0;
  /** The core half-closed. */
  ended = false;
  /** The connection is closed. */
  closed = false;
  /** Why it closed, when it was an error (or the core sent a malformed frame). */
  error: Error | undefined = undefined;
  readonly #decoder: FrameDecoder;
  readonly #closeOnEnd: boolean;
  #inbox: Uint8Array[] = [];
  #head = 0;
  #waiters: Array<() => void> = [];

  /** Wraps a connected transport connection and starts reading. */
  constructor(conn: Connection, options: PeerOptions = {}) {
    this.conn = conn;
    this.#decoder = new FrameDecoder({ maxMessageBytes: options.maxMessageBytes ?? 64 * MiB });
    this.#closeOnEnd = options.closeOnEnd ?? true;
    conn.setNoDelay(true);
    conn.setHandler({
      onData: (chunk) => this.#onData(chunk),
      onDrain: () => this.#notify(),
      onEnd: () => {
        this.ended = true;
        if (this.#closeOnEnd) conn.close();
        this.#notify();
      },
      onClose: (error) => {
        this.closed = true;
        this.error ??= error;
        this.#notify();
      },
    });
  }

  /** Connects over the native transport. */
  static async connect(target: ConnectOptions, options?: PeerOptions): Promise<Peer> {
    return new Peer(await nativeTransport().connect(target), options);
  }

  /** Messages received and not yet taken. */
  get pending(): number {
    return this.#inbox.length - this.#head;
  }

  /** Takes the next received message, if any. */
  take(): Uint8Array | undefined {
    if (this.#head >= this.#inbox.length) return undefined;
    const message = this.#inbox[this.#head++];
    if (this.#head === this.#inbox.length) {
      this.#inbox = [];
      this.#head = 0;
    }
    return message;
  }

  /** Writes bytes as they are; returns false when the connection is already closed. */
  write(bytes: Uint8Array): boolean {
    if (this.closed || this.conn.closed) return false;
    try {
      this.conn.write(bytes);
      return true;
    } catch (err) {
      if (err instanceof ConnectionClosedError) return false;
      throw err;
    }
  }

  /** Sends framed messages in one write; returns false when the connection is already closed. */
  send(...messages: Array<string | Uint8Array>): boolean {
    return this.write(encodeFrames(messages.map((m) => typeof m === "string" ? encoder.encode(m) : m)));
  }

  /** Waits until `condition` holds, re-checked after every event; throws {@linkcode HangError} at the deadline. */
  async waitUntil(condition: () => boolean, timeoutMs: number, label: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!condition()) {
      const left = end - Date.now();
      if (left <= 0) throw new HangError(`Timed out after ${timeoutMs} ms waiting for ${label}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, Math.min(left, 250));
        function done(): void {
          clearTimeout(timer);
          resolve();
        }
        this.#waiters.push(done);
      });
    }
  }

  /** The next message, or `undefined` once the connection closed with nothing left to take. */
  async next(timeoutMs: number): Promise<Uint8Array | undefined> {
    await this.waitUntil(() => this.pending > 0 || this.closed, timeoutMs, "a message");
    return this.take();
  }

  /** Waits until the connection is closed. */
  waitClosed(timeoutMs: number): Promise<void> {
    return this.waitUntil(() => this.closed, timeoutMs, "the connection to close");
  }

  /** Half-closes: sends FIN after what is queued. */
  closeWrite(): void {
    if (!this.closed) this.conn.closeWrite();
  }

  /** Closes now; bytes still queued in the transport are discarded (the transport contract). */
  close(): void {
    this.conn.close();
  }

  /** Closes once everything written has reached the kernel, so the core gets it before the FIN. */
  async closeAfterFlush(timeoutMs: number): Promise<void> {
    await this.waitUntil(
      () => this.conn.bufferedAmount === 0 || this.closed,
      timeoutMs,
      "our writes to flush",
    );
    this.conn.close();
  }

  #onData(chunk: Uint8Array): void {
    this.receivedBytes += chunk.length;
    try {
      this.#decoder.push(chunk);
      for (let m = this.#decoder.next(); m !== undefined; m = this.#decoder.next()) this.#inbox.push(m);
    } catch (err) {
      this.error ??= err as Error;
      this.conn.close();
    }
    this.#notify();
  }

  #notify(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/**
 * Decodes a message as UTF-8 (`"<none>"` for `undefined`).
 *
 * @example
 * ```ts
 * text(new TextEncoder().encode("OK")); // "OK"
 * ```
 */
export function text(bytes: Uint8Array | undefined): string {
  return bytes ? decoder.decode(bytes) : "<none>";
}

// ---------------------------------------------------------------------------------------------
// The application side: an ioIteration loop, and a control client that measures round trips

/**
 * Runs the plain-code API loop (`ioIteration`) until stopped, handing every result to `onResult`.
 * Anything thrown by the core or by `onResult` is kept in `errors` instead of stopping the loop.
 *
 * @example
 * ```ts
 * const app = new AppLoop(core, (r) => {
 *   for (const id of r.clientsHaveDataToRead) core.sendMessagesToClient(id, core.getMessagesFromClient(id));
 * });
 * // ...
 * await app.stop();
 * ```
 */
export class AppLoop {
  /** What the core or the handler threw. */
  readonly errors: unknown[] = [];
  /** ioIteration calls made. */
  iterations = 0;
  #running = true;
  readonly #done: Promise<void>;

  /** Starts the loop; each `ioIteration` waits at most `waitMs`. */
  constructor(core: IoCore, onResult: (result: IoIterationResult) => void, waitMs = 20) {
    this.#done = this.#run(core, onResult, waitMs);
  }

  /** Stops after the current iteration. */
  stop(): Promise<void> {
    this.#running = false;
    return this.#done;
  }

  async #run(core: IoCore, onResult: (result: IoIterationResult) => void, waitMs: number): Promise<void> {
    while (this.#running) {
      let result: IoIterationResult;
      try {
        result = await core.ioIteration(waitMs);
      } catch (err) {
        this.errors.push(err);
        await sleep(waitMs);
        continue;
      }
      this.iterations++;
      try {
        onResult(result);
      } catch (err) {
        this.errors.push(err);
      }
    }
  }
}

/**
 * Echoes every message of `id` back to it; a client that has just gone is not an error.
 *
 * @example
 * ```ts
 * const app = new AppLoop(core, (r) => {
 *   if (r.clientsHaveDataToRead.has(controlId)) echo(core, controlId);
 * });
 * ```
 */
export function echo(core: IoCore, id: ClientId): void {
  const messages = core.getMessagesFromClient(id);
  if (messages.length === 0) return;
  try {
    core.sendMessagesToClient(id, messages);
  } catch (err) {
    if (!(err instanceof ConnectionClosedError)) throw err;
  }
}

/**
 * The control client: sends `ping N`, waits for the echo, measures the latency, and goes on until
 * stopped. A round trip slower than `stallMs` counts as a stall (it keeps waiting for it).
 *
 * @example
 * ```ts
 * const pinger = new ControlPinger(controlPeer);
 * // ... the workload runs ...
 * await pinger.stop();
 * console.log(pinger.roundTrips, pinger.maxLatencyMs);
 * ```
 */
export class ControlPinger {
  /** Round trips completed. */
  roundTrips = 0;
  /** The slowest round trip, in milliseconds. */
  maxLatencyMs = 0;
  /** Round trips that took longer than `stallMs`. */
  stalls = 0;
  /** Wrong answers, or the control connection lost. */
  readonly failures: string[] = [];
  readonly #peer: Peer;
  readonly #stallMs: number;
  readonly #intervalMs: number;
  #running = true;
  readonly #done: Promise<void>;

  /** Starts pinging through `peer` (already past its handshake). */
  constructor(peer: Peer, options: { intervalMs?: number; stallMs?: number } = {}) {
    this.#peer = peer;
    this.#intervalMs = options.intervalMs ?? 2;
    this.#stallMs = options.stallMs ?? 5000;
    this.#done = this.#run();
  }

  /** Stops after the round trip in flight, which is still awaited (within `stallMs`). */
  stop(): Promise<void> {
    this.#running = false;
    return this.#done;
  }

  async #run(): Promise<void> {
    const peer = this.#peer;
    for (let n = 1; this.#running; n++) {
      const started = performance.now();
      if (!peer.send(`ping ${n}`)) {
        this.failures.push(`control: connection closed before ping ${n}`);
        return;
      }
      let stalled = false;
      for (;;) {
        try {
          await peer.waitUntil(() => peer.pending > 0 || peer.closed, this.#stallMs, `ping ${n}`);
        } catch (err) {
          if (!(err instanceof HangError)) throw err;
          if (!stalled) this.stalls++;
          stalled = true;
          if (!this.#running) {
            this.failures.push(`control: ping ${n} unanswered at stop`);
            return;
          }
          continue;
        }
        break;
      }
      const answer = peer.take();
      if (answer === undefined) {
        this.failures.push(`control: connection closed while waiting for ping ${n}`);
        return;
      }
      if (text(answer) !== `ping ${n}`) {
        this.failures.push(`control: expected "ping ${n}", got ${JSON.stringify(text(answer).slice(0, 40))}`);
      }
      const latency = performance.now() - started;
      this.roundTrips++;
      if (latency > this.maxLatencyMs) this.maxLatencyMs = latency;
      if (this.#intervalMs > 0) await sleep(this.#intervalMs);
      else await macrotask();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Child peer processes (same runtime as this one)

/**
 * Arguments that make `process.execPath` run a JavaScript file, on this runtime.
 *
 * @example
 * ```ts
 * spawn(process.execPath, [...runtimeArgs("/tmp/peer.mjs"), "127.0.0.1", "5000"]);
 * ```
 */
export function runtimeArgs(file: string): string[] {
  return detectRuntime() === "deno" ? ["run", "-A", "--no-config", file] : [file];
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
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 100));
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
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
 *
 * @example
 * ```ts
 * const child = await spawnChildPeer(dir, "half", HALF_FRAME_PEER, ["127.0.0.1", "5000", "kw", "1000", "500"]);
 * ```
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
 *
 * @example
 * ```ts
 * const child = await spawnChildPeer(dir, "flood", FLOOD_PEER, ["127.0.0.1", "5000", "flood", "1048576", "65536"]);
 * ```
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

// ---------------------------------------------------------------------------------------------
// Script helpers

/**
 * Parses `--name value` / `--name=value` options into numbers; `4GiB`, `64MiB`, `10M`, `20k` and
 * `1e6` are accepted. Unknown options throw a `TypeError` naming them.
 *
 * @example
 * ```ts
 * const { cases, seed } = parseNumberArgs(process.argv.slice(2), { cases: 1_000_000, seed: 1 });
 * ```
 */
export function parseNumberArgs<T extends Record<string, number>>(argv: readonly string[], defaults: T): T {
  const out: Record<string, number> = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match) throw new TypeError(`Cannot parse argument ${JSON.stringify(arg)}`);
    const name = match[1].replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(name in defaults)) {
      throw new TypeError(`Cannot parse argument --${match[1]}: known options are ${Object.keys(defaults)}`);
    }
    const raw = match[2] ?? argv[++i];
    const value = parseSize(raw ?? "");
    if (!Number.isFinite(value)) throw new TypeError(`Cannot parse --${match[1]}: ${JSON.stringify(raw)}`);
    out[name] = value;
  }
  return out as T;
}

function parseSize(raw: string): number {
  const m = /^(\d+(?:\.\d+)?(?:e\d+)?)([kKMG]i?B?|[kKMG])?$/.exec(raw.trim());
  if (!m) return NaN;
  const n = Number(m[1]);
  const unit = m[2] ?? "";
  const binary = unit.includes("i");
  const base = binary ? 1024 : 1000;
  const power = { "": 0, k: 1, K: 1, M: 2, G: 3 }[unit.charAt(0) as "" | "k" | "K" | "M" | "G"] ?? 0;
  return Math.round(n * base ** power);
}

/**
 * The runtime and its version, for report headers.
 *
 * @example
 * ```ts
 * console.log(`fuzz on ${runtimeLabel()}`); // "fuzz on deno 2.9.6"
 * ```
 */
export function runtimeLabel(): string {
  const runtime = detectRuntime();
  const versions = process.versions as Record<string, string | undefined>;
  const version = runtime === "deno" ? versions.deno : runtime === "bun" ? versions.bun : versions.node;
  return `${runtime} ${version ?? "?"}`;
}

/**
 * Creates a fresh temp dir for UNIX sockets and child scripts; `remove` deletes it.
 *
 * @example
 * ```ts
 * const dir = await tempDir("asockio-fuzz-");
 * try {
 *   // ... listen on `${dir.path}/core.sock` ...
 * } finally {
 *   await dir.remove();
 * }
 * ```
 */
export async function tempDir(prefix: string): Promise<{ path: string; remove: () => Promise<void> }> {
  const path = await mkdtemp(join(tmpdir(), prefix));
  return { path, remove: () => rm(path, { recursive: true, force: true }) };
}

/**
 * A connect target for a bound listener address.
 *
 * @example
 * ```ts
 * const [addr] = await core.listen();
 * const peer = await Peer.connect(targetOf(addr));
 * ```
 */
export function targetOf(addr: Addr): ConnectOptions {
  return addr.transport === "unix"
    ? { transport: "unix", path: addr.path }
    : { transport: "tcp", hostname: addr.hostname, port: addr.port };
}

/**
 * Checks that a core is idle and its accounting is back to zero; returns what is off.
 *
 * @example
 * ```ts
 * const problems = accountingProblems(core.stats(), { connections: 0, clients: 2 });
 * if (problems.length) console.error(problems.join("; "));
 * ```
 */
export function accountingProblems(
  stats: IoCoreStats,
  expect: { connections: number; clients: number },
): string[] {
  const problems: string[] = [];
  if (stats.connections !== expect.connections) {
    problems.push(`connections ${stats.connections}, expected ${expect.connections}`);
  }
  if (stats.clients !== expect.clients) problems.push(`clients ${stats.clients}, expected ${expect.clients}`);
  if (stats.heldConnections !== 0) problems.push(`heldConnections ${stats.heldConnections}, expected 0`);
  if (stats.inputBytes !== 0) problems.push(`inputBytes ${stats.inputBytes}, expected 0`);
  if (stats.outputBytes !== 0) problems.push(`outputBytes ${stats.outputBytes}, expected 0`);
  return problems;
}

// ---------------------------------------------------------------------------------------------
// Fuzzer

/** The answer a handshake plan allows when the core may close without answering. */
const NO_ANSWER = "<none>";
/** Matches any `AUTH-HMAC-SHA256:` challenge. */
const CHALLENGE = "AUTH*";
const CHALLENGE_PREFIX = "AUTH-HMAC-SHA256:";
/** A frame starting with these bytes asks the fuzz server to switch the connection to raw mode. */
const RAW_SWITCH_MAGIC = new Uint8Array([0x00, 0xff, ...encoder.encode("FUZZ-RAW:")]);
const RAW_ACK = "RAW-ACK";
const FRAMED_ACK = "FRAMED-ACK";
const SECRET_KEYWORD = "hs-secret";
const HANDSHAKE_KEYWORDS = 16;

/** One step of a fuzz connection's script. */
type FuzzStep =
  | { op: "write"; bytes: Uint8Array }
  | { op: "yield" }
  | { op: "expect"; answers: readonly string[] };

/** The outcome the oracle predicts for a stream connection. */
interface StreamExpectation {
  messages: number;
  hash: number;
  rawBytes: number;
  rawHash: number;
  fatal: boolean;
}

/**
 * One fuzz connection, fully determined by `(seed, index)`: what it writes, what it expects, and how
 * it ends. `scripts/fuzz.ts --seed S --only I` replays connection I alone.
 */
export interface FuzzPlan {
  /** The connection's index in the run. */
  readonly index: number;
  /**
   * `framed`: a valid handshake, then a stream of mutated frames (with raw-mode segments);
   * `raw`: a valid handshake of a raw client, then garbage chunks; `unknown`: garbage to the raw
   * listener; `handshake`: a mutated handshake on its own connection.
   */
  readonly kind: "framed" | "raw" | "unknown" | "handshake";
  /** The listener it goes to. */
  readonly target: "tcp4" | "tcp6" | "unix";
  /** Stream plans: write the stream right behind the keyword, without waiting for `OK`. */
  readonly pipelined: boolean;
  /** What to write, when to yield to the event loop, and which answers to wait for. */
  readonly steps: FuzzStep[];
  /** How it ends: the peer half-closes, closes, stalls, or the core must close it (fatal). */
  readonly ending: "half-close" | "close" | "fatal" | "stall";
  /** Handshake plans: the answers allowed after the steps (`<none>`: the core may close silently). */
  readonly finalAnswers: readonly string[];
  /** Stream plans: the oracle's prediction. */
  readonly expect: StreamExpectation;
  /** Cases in this plan, by kind (see {@linkcode FuzzReport}). */
  readonly frameCases: number;
  /** Raw chunks written (raw plans, unknown plans and raw segments of framed plans). */
  readonly rawCases: number;
  /** 1 for a handshake plan. */
  readonly handshakeCases: number;
  /** Bytes written. */
  readonly bytes: number;
  /** A short description, for failure messages. */
  readonly label: string;
}

/** Limits the fuzz core runs with (small, so the caps are cheap to reach). */
export interface FuzzLimits {
  /** The core's `maxMessageBytes`. */
  maxMessageBytes: number;
  /** The core's `maxKeywordBytes`. */
  maxKeywordBytes: number;
  /** The core's `inputBytes` cap (small, to exercise pausing). */
  inputBytes: number;
  /** The core's `handshakeTimeoutMs`. */
  handshakeTimeoutMs: number;
  /** The most cases in one stream connection. */
  maxCasesPerConnection: number;
}

/**
 * The limits used unless overridden.
 *
 * @example
 * ```ts
 * const report = await runFuzz({ cases: 1000, seed: 1, limits: { ...DEFAULT_FUZZ_LIMITS, maxMessageBytes: 1024 } });
 * ```
 */
export const DEFAULT_FUZZ_LIMITS: FuzzLimits = {
  maxMessageBytes: 4096,
  maxKeywordBytes: 64,
  inputBytes: 64 * KiB,
  handshakeTimeoutMs: 400,
  maxCasesPerConnection: 200,
};

function lengthHeader(length: number | bigint): Uint8Array {
  const h = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(h.buffer).setBigUint64(0, BigInt(length), true);
  return h;
}

function concatBytes(...parts: Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `size` bytes in one of several shapes: random, zeros, one repeated byte, text, a ramp. */
function fuzzFill(rng: Rng, size: number): Uint8Array {
  const out = new Uint8Array(size);
  switch (rng.int(5)) {
    case 0:
      for (let i = 0; i < size; i += 4) {
        const v = rng.u32();
        out[i] = v;
        if (i + 1 < size) out[i + 1] = v >>> 8;
        if (i + 2 < size) out[i + 2] = v >>> 16;
        if (i + 3 < size) out[i + 3] = v >>> 24;
      }
      break;
    case 1:
      break;
    case 2:
      out.fill(rng.int(256));
      break;
    case 3:
      for (let i = 0; i < size; i++) out[i] = 0x20 + (rng.u32() % 95);
      break;
    default: {
      const start = rng.int(256);
      for (let i = 0; i < size; i++) out[i] = (start + i) & 0xff;
    }
  }
  return out;
}

function fuzzPayload(rng: Rng, max: number): Uint8Array {
  const r = rng.float();
  const size = r < 0.7
    ? rng.int(Math.min(33, max + 1))
    : r < 0.95
    ? rng.int(Math.min(513, max + 1))
    : rng.int(
      max + 1,
    );
  return fuzzFill(rng, size);
}

function flipBits(rng: Rng, bytes: Uint8Array, from: number, to: number, count: number): void {
  if (to <= from) return;
  for (let i = 0; i < count; i++) {
    const at = from + rng.int(to - from);
    bytes[at] ^= 1 << rng.int(8);
  }
}

/** A garbage chunk for raw connections: random bytes, frames, huge headers, text, or zeros. */
function rawChunk(rng: Rng, max: number): Uint8Array {
  const r = rng.float();
  if (r < 0.4) return fuzzFill(rng, rng.range(1, 256));
  if (r < 0.6) return encodeFrame(fuzzPayload(rng, max));
  if (r < 0.7) return lengthHeader(2n ** 64n - 1n);
  if (r < 0.8) return encoder.encode(`GET /${rng.int(1000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
  return fuzzFill(rng, rng.range(1, max));
}

/** Writes for one plan, fed to the oracle as they are made. */
class PlanWriter {
  readonly steps: FuzzStep[] = [];
  bytes = 0;
  readonly ref: RefDecoder;
  constructor(max: number) {
    this.ref = new RefDecoder(max);
  }
  /** Framed-mode bytes: the oracle decodes them. */
  framed(bytes: Uint8Array): void {
    // Past a fatal header the core has closed the connection: the rest of a case is never sent.
    if (bytes.length === 0 || this.ref.fatal) return;
    this.steps.push({ op: "write", bytes });
    this.bytes += bytes.length;
    this.ref.push(bytes);
  }
  /** Raw-mode bytes: the oracle only hashes them (the caller does). */
  raw(bytes: Uint8Array): void {
    this.steps.push({ op: "write", bytes });
    this.bytes += bytes.length;
  }
  yield(): void {
    this.steps.push({ op: "yield" });
  }
  expect(...answers: string[]): void {
    this.steps.push({ op: "expect", answers });
  }
}

/** Emits one fuzz case (sometimes several coalesced frames) and returns how many frame cases it was. */
function fuzzFrameCase(rng: Rng, limits: FuzzLimits, w: PlanWriter): number {
  const max = limits.maxMessageBytes;
  const r = rng.float();
  const payload = fuzzPayload(rng, max);
  const frame = encodeFrame(payload);
  if (r < 0.4) {
    w.framed(frame);
  } else if (r < 0.52) {
    // Many small frames in one write.
    const k = rng.range(2, 32);
    const list: Uint8Array[] = [];
    for (let i = 0; i < k; i++) list.push(fuzzFill(rng, rng.int(65)));
    w.framed(encodeFrames(list));
    return k;
  } else if (r < 0.64) {
    // Random splits, each piece its own write.
    const cuts = new Set<number>();
    const pieces = rng.range(1, 3);
    for (let i = 0; i < pieces && frame.length > 1; i++) cuts.add(rng.range(1, frame.length - 1));
    let at = 0;
    for (const cut of [...cuts].sort((a, b) => a - b)) {
      w.framed(frame.subarray(at, cut));
      w.yield();
      at = cut;
    }
    w.framed(frame.subarray(at));
  } else if (r < 0.66) {
    // The header byte by byte.
    for (let i = 0; i < FRAME_HEADER_BYTES; i++) {
      w.framed(frame.subarray(i, i + 1));
      w.yield();
    }
    w.framed(frame.subarray(FRAME_HEADER_BYTES));
  } else if (r < 0.7) {
    w.framed(lengthHeader(0));
  } else if (r < 0.78) {
    flipBits(rng, frame, FRAME_HEADER_BYTES, frame.length, rng.range(1, 4));
    w.framed(frame);
  } else if (r < 0.795) {
    w.framed(encodeFrame(fuzzFill(rng, max - 1)));
  } else if (r < 0.81) {
    w.framed(encodeFrame(fuzzFill(rng, max)));
  } else if (r < 0.825) {
    // A low length bit flipped: the stream desynchronizes by a little.
    flipBits(rng, frame, 0, 2, 1);
    w.framed(frame);
  } else if (r < 0.835) {
    flipBits(rng, frame, 0, FRAME_HEADER_BYTES, 1);
    w.framed(frame);
  } else if (r < 0.845) {
    // A length of 0 with the payload still following.
    w.framed(concatBytes(lengthHeader(0), payload));
  } else if (r < 0.86) {
    w.framed(frame.subarray(0, rng.int(frame.length)));
  } else if (r < 0.875) {
    w.framed(concatBytes(fuzzFill(rng, rng.range(1, 16)), frame));
  } else if (r < 0.88) {
    w.framed(concatBytes(frame.subarray(0, FRAME_HEADER_BYTES), frame));
  } else if (r < 0.89) {
    // Declares more than it sends: the next frames fill the gap.
    w.framed(concatBytes(lengthHeader(Math.min(max, payload.length + rng.range(1, 64))), payload));
  } else if (r < 0.9) {
    w.framed(concatBytes(lengthHeader(rng.int(payload.length + 1)), payload));
  } else if (r < 0.904) {
    w.framed(concatBytes(lengthHeader(max + 1), fuzzFill(rng, rng.int(64))));
  } else if (r < 0.908) {
    w.framed(concatBytes(lengthHeader(2n ** 64n - 1n), fuzzFill(rng, rng.int(64))));
  } else if (r < 0.912) {
    const huge = rng.pick([2n ** 32n, 2n ** 53n + 1n, 2n ** 63n, BigInt(max) * 2n, 2n ** 31n]);
    const h = lengthHeader(huge);
    // Sometimes split inside the header, so the check runs on a header assembled across reads.
    const cut = rng.range(1, 7);
    w.framed(h.subarray(0, cut));
    w.yield();
    w.framed(h.subarray(cut));
  } else {
    w.yield();
    w.framed(frame);
  }
  return 1;
}

function fuzzTarget(rng: Rng): FuzzPlan["target"] {
  const r = rng.float();
  return r < 0.4 ? "tcp4" : r < 0.5 ? "tcp6" : "unix";
}

function streamPlan(rng: Rng, index: number, limits: FuzzLimits, raw: boolean): FuzzPlan {
  const w = new PlanWriter(limits.maxMessageBytes);
  const target = fuzzTarget(rng);
  const pipelined = rng.chance(0.5);
  const goal = rng.range(1, limits.maxCasesPerConnection);
  let frameCases = 0;
  let rawCases = 0;
  let rawBytes = 0;
  let rawHash = FNV_OFFSET;
  const rawPiece = (bytes: Uint8Array): void => {
    w.raw(bytes);
    rawCases++;
    rawBytes += bytes.length;
    rawHash = fnv(rawHash, bytes);
  };
  while (frameCases + rawCases < goal && !w.ref.fatal) {
    if (raw) {
      rawPiece(rawChunk(rng, limits.maxMessageBytes));
      if (rng.chance(0.3)) w.yield();
    } else if (w.ref.inSync && rng.chance(0.015)) {
      // A raw segment: the server switches to raw on the magic frame, reads n bytes, switches back.
      const n = rng.range(1, limits.maxMessageBytes);
      w.framed(encodeFrame(concatBytes(RAW_SWITCH_MAGIC, encoder.encode(String(n)))));
      frameCases++;
      w.expect(RAW_ACK);
      let left = n;
      while (left > 0) {
        const piece = rawChunk(rng, limits.maxMessageBytes).subarray(0, left);
        rawPiece(piece);
        left -= piece.length;
        if (rng.chance(0.3)) w.yield();
      }
      w.expect(FRAMED_ACK);
    } else {
      frameCases += fuzzFrameCase(rng, limits, w);
    }
  }
  const ending = w.ref.fatal ? "fatal" : rng.chance(0.75) ? "half-close" : "close";
  return {
    index,
    kind: raw ? "raw" : "framed",
    target,
    pipelined,
    steps: w.steps,
    ending,
    finalAnswers: [],
    expect: { messages: w.ref.messages, hash: w.ref.hash, rawBytes, rawHash, fatal: w.ref.fatal },
    frameCases,
    rawCases,
    handshakeCases: 0,
    bytes: w.bytes,
    label: `${raw ? "raw" : "framed"} stream, ${frameCases + rawCases} cases, ending ${ending}`,
  };
}

function unknownPlan(rng: Rng, index: number, limits: FuzzLimits): FuzzPlan {
  const w = new PlanWriter(limits.maxMessageBytes);
  const goal = rng.range(1, 64);
  for (let i = 0; i < goal; i++) {
    w.raw(rawChunk(rng, limits.maxMessageBytes));
    if (rng.chance(0.3)) w.yield();
  }
  const ending = rng.chance(0.7) ? "half-close" : "close";
  return {
    index,
    kind: "unknown",
    target: "tcp4",
    pipelined: true,
    steps: w.steps,
    ending,
    finalAnswers: [],
    expect: { messages: 0, hash: FNV_OFFSET, rawBytes: w.bytes, rawHash: FNV_OFFSET, fatal: false },
    frameCases: 0,
    rawCases: goal,
    handshakeCases: 0,
    bytes: w.bytes,
    label: `unknown raw client, ${goal} chunks, ending ${ending}`,
  };
}

function handshakePlan(rng: Rng, index: number, limits: FuzzLimits): FuzzPlan {
  const maxKw = limits.maxKeywordBytes;
  let keyword: Uint8Array;
  const k = rng.float();
  if (k < 0.25) keyword = encoder.encode(`hs-${index % HANDSHAKE_KEYWORDS}`);
  else if (k < 0.3) keyword = encoder.encode(`hsr-${index % HANDSHAKE_KEYWORDS}`);
  else if (k < 0.55) {
    keyword = encoder.encode(`un-${index}-${text(fuzzFill(rng, rng.int(16)).map((b) => 97 + b % 26))}`);
  } else if (k < 0.6) keyword = encoder.encode("control");
  else if (k < 0.72) keyword = encoder.encode(SECRET_KEYWORD);
  else if (k < 0.75) keyword = new Uint8Array(0);
  else if (k < 0.8) keyword = encoder.encode(`ux-${index}-`.padEnd(maxKw, "x"));
  else if (k < 0.9) keyword = concatBytes(encoder.encode(`rb-${index}-`), rng.bytes(rng.int(maxKw - 16)));
  else keyword = encoder.encode("o".repeat(maxKw + 1));
  const base = encodeFrame(keyword);
  let bytes: Uint8Array;
  let split = false;
  const m = rng.float();
  if (m < 0.4) bytes = base;
  else if (m < 0.5) bytes = concatBytes(rng.bytes(rng.range(1, 24)), base);
  else if (m < 0.53) bytes = encoder.encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
  else if (m < 0.55) {
    bytes = concatBytes(
      new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc]),
      rng.bytes(64),
    );
  } else if (m < 0.65) {
    bytes = base.slice();
    flipBits(rng, bytes, 0, bytes.length, rng.range(1, 3));
  } else if (m < 0.68) bytes = concatBytes(lengthHeader(2n ** 64n - 1n), keyword);
  else if (m < 0.71) bytes = concatBytes(lengthHeader(maxKw + 1), keyword);
  else if (m < 0.73) bytes = concatBytes(lengthHeader(2n ** 32n), keyword);
  else if (m < 0.85) bytes = base.subarray(0, rng.int(base.length));
  else if (m < 0.88) bytes = concatBytes(lengthHeader(0), keyword);
  else {
    bytes = base;
    split = true;
  }
  const w = new PlanWriter(maxKw);
  if (split) {
    const byteByByte = rng.chance(0.5);
    for (let at = 0; at < bytes.length;) {
      const n = byteByByte ? 1 : rng.range(1, Math.max(1, bytes.length - at));
      w.raw(bytes.subarray(at, at + n));
      w.yield();
      at += n;
    }
  } else if (bytes.length > 0) w.raw(bytes);

  // The oracle: what does the first frame (decoded with maxKeywordBytes) announce?
  const ref = new RefDecoder(maxKw, true);
  ref.push(bytes);
  let finalAnswers: string[];
  let ending: FuzzPlan["ending"];
  let label: string;
  if (ref.messages === 0 && ref.fatal) {
    finalAnswers = [NO_ANSWER];
    ending = "fatal";
    label = "first frame declares more than maxKeywordBytes";
  } else if (ref.messages === 0) {
    finalAnswers = [NO_ANSWER];
    ending = rng.chance(0.06) ? "stall" : rng.chance(0.6) ? "half-close" : "close";
    label = `incomplete first frame (${bytes.length} bytes)`;
  } else {
    const announced = ref.first!;
    const name = text(announced);
    const rest = bytes.subarray(ref.firstEnd);
    label = `keyword ${JSON.stringify(name.slice(0, 24))}${rest.length ? ` + ${rest.length} bytes` : ""}`;
    ending = rng.chance(0.6) ? "half-close" : "close";
    if (name === "control") {
      finalAnswers = ["duplicate keyword"];
    } else if (name === SECRET_KEYWORD && rest.length === 0) {
      // Challenge, then a wrong, oversized or truncated proof.
      w.expect(CHALLENGE);
      const p = rng.float();
      let proof: Uint8Array;
      if (p < 0.5) proof = encodeFrame(rng.bytes(32));
      else if (p < 0.6) proof = encodeFrame(new Uint8Array(0));
      else if (p < 0.7) proof = concatBytes(lengthHeader(maxKw + 1), rng.bytes(8));
      else if (p < 0.8) proof = encodeFrame(rng.bytes(32)).subarray(0, rng.range(1, 39));
      else proof = encodeFrame(rng.bytes(rng.range(1, maxKw)));
      w.raw(proof);
      const proofRef = new RefDecoder(maxKw);
      proofRef.push(proof);
      if (proofRef.messages > 0) {
        // A half-close right behind the proof may close before the (asynchronous) check answers.
        finalAnswers = ending === "half-close"
          ? ["authentication failed", NO_ANSWER]
          : ["authentication failed"];
      } else {
        finalAnswers = [NO_ANSWER];
        if (proofRef.fatal) ending = "fatal";
      }
      label += ", wrong proof";
    } else if (name === SECRET_KEYWORD) {
      finalAnswers = [CHALLENGE, NO_ANSWER];
    } else {
      // Named, raw named or held: OK, or a duplicate of a concurrent connection. A tail that is fatal
      // under maxMessageBytes may close the connection before OK leaves.
      // A raw client's tail is raw bytes, never fatal.
      const rawClient = name.startsWith("hsr-");
      const tail = new RefDecoder(limits.maxMessageBytes);
      if (!rawClient) tail.push(rest);
      finalAnswers = tail.fatal ? ["OK", "duplicate keyword", NO_ANSWER] : ["OK", "duplicate keyword"];
      if (!tail.fatal && rng.chance(0.5)) {
        // Wait for the answer, then a few more (mutated) frames to the admitted connection.
        w.expect("OK", "duplicate keyword");
        finalAnswers = [NO_ANSWER];
        const more = rng.int(8);
        const after = new PlanWriter(limits.maxMessageBytes);
        for (let i = 0; i < more; i++) fuzzFrameCase(rng, limits, after);
        for (const step of after.steps) w.steps.push(step);
        w.bytes += after.bytes;
        if (after.ref.fatal && !rawClient) ending = "fatal";
      }
    }
  }
  return {
    index,
    kind: "handshake",
    target: fuzzTarget(rng),
    pipelined: true,
    steps: w.steps,
    ending,
    finalAnswers,
    expect: { messages: 0, hash: FNV_OFFSET, rawBytes: 0, rawHash: FNV_OFFSET, fatal: false },
    frameCases: 0,
    rawCases: 0,
    handshakeCases: 1,
    bytes: w.bytes,
    label: `handshake: ${label}, ending ${ending}`,
  };
}

/**
 * Builds fuzz connection `index` of the run seeded with `seed`: the same arguments always give the
 * same plan, on every runtime.
 *
 * @example
 * ```ts
 * const plan = fuzzPlan(1, 1234);
 * console.log(plan.label, plan.frameCases);
 * ```
 */
export function fuzzPlan(seed: number, index: number, limits: FuzzLimits = DEFAULT_FUZZ_LIMITS): FuzzPlan {
  const rng = new Rng(seed, index);
  const r = rng.float();
  if (r < 0.72) return streamPlan(rng, index, limits, false);
  if (r < 0.8) return streamPlan(rng, index, limits, true);
  if (r < 0.84) return unknownPlan(rng, index, limits);
  return handshakePlan(rng, index, limits);
}

function answerMatches(answers: readonly string[], message: Uint8Array | undefined): boolean {
  if (message === undefined) return answers.includes(NO_ANSWER);
  const got = text(message);
  if (answers.includes(CHALLENGE) && got.startsWith(CHALLENGE_PREFIX)) return true;
  return answers.includes(got);
}

function rawSwitchLength(message: Uint8Array): number | undefined {
  if (message.length <= RAW_SWITCH_MAGIC.length) return undefined;
  for (let i = 0; i < RAW_SWITCH_MAGIC.length; i++) if (message[i] !== RAW_SWITCH_MAGIC[i]) return undefined;
  const n = Number(text(message.subarray(RAW_SWITCH_MAGIC.length)));
  return Number.isSafeInteger(n) && n > 0 ? n : undefined;
}

/** What the fuzz server saw on one stream connection. */
interface StreamState {
  messages: number;
  hash: number;
  rawBytes: number;
  rawHash: number;
  raw: boolean;
  rawUntil: number;
  errors: string[];
}

interface StreamRecord {
  state: StreamState;
  lastError: Error | undefined;
}

/** The application side of the fuzz run: echoes the control client, tallies every stream. */
class FuzzServer {
  readonly core: IoCore;
  readonly controlId: ClientId;
  readonly streams = new Map<ClientId, "framed" | "raw">();
  readonly unknown = new Set<ClientId>();
  unknownBytes = 0;
  readonly #states = new Map<ClientId, StreamState>();
  readonly #records = new Map<ClientId, StreamRecord>();
  readonly #waiters = new Map<ClientId, () => void>();

  constructor(core: IoCore, controlId: ClientId) {
    this.core = core;
    this.controlId = controlId;
  }

  onResult = (r: IoIterationResult): void => {
    for (const id of r.newlyConnectedUnknownClients) this.unknown.add(id);
    for (const id of r.clientsHaveDataToRead) this.#read(id);
    for (const id of r.clientsWithDisconnectedConnection) {
      this.#read(id);
      if (this.unknown.delete(id) || !this.streams.has(id)) continue;
      const state = this.#states.get(id) ?? newStreamState(this.streams.get(id) === "raw");
      this.#states.delete(id);
      this.#records.set(id, { state, lastError: this.core.getClientInfo(id)?.lastError });
      const wake = this.#waiters.get(id);
      this.#waiters.delete(id);
      wake?.();
    }
  };

  /** Forgets the last record of `id`, before a new connection for it. */
  prepare(id: ClientId): void {
    this.#records.delete(id);
    this.#states.delete(id);
  }

  /** Waits for the server side of `id`'s connection to be over. */
  async waitRecord(id: ClientId, timeoutMs: number): Promise<StreamRecord> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const record = this.#records.get(id);
      if (record) {
        this.#records.delete(id);
        return record;
      }
      const left = end - Date.now();
      if (left <= 0) {
        throw new HangError(
          `Timed out after ${timeoutMs} ms waiting for the core to report the disconnection`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.#waiters.set(id, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  #read(id: ClientId): void {
    if (id === this.controlId) {
      echo(this.core, id);
      return;
    }
    const messages = this.core.getMessagesFromClient(id);
    if (messages.length === 0) return;
    if (this.unknown.has(id)) {
      for (const m of messages) this.unknownBytes += m.length;
      return;
    }
    const kind = this.streams.get(id);
    if (kind === undefined) return; // handshake keywords: read and dropped
    let st = this.#states.get(id);
    if (!st) this.#states.set(id, st = newStreamState(kind === "raw"));
    for (const m of messages) {
      if (st.raw) {
        st.rawBytes += m.length;
        st.rawHash = fnv(st.rawHash, m);
        if (kind === "framed" && st.rawBytes >= st.rawUntil) {
          if (st.rawBytes > st.rawUntil) {
            st.errors.push(`raw segment overran by ${st.rawBytes - st.rawUntil} bytes`);
          }
          st.raw = false;
          this.#switch(id, false, FRAMED_ACK);
        }
        continue;
      }
      st.messages++;
      st.hash = messageHash(st.hash, m);
      const n = rawSwitchLength(m);
      if (n !== undefined) {
        st.raw = true;
        st.rawUntil = st.rawBytes + n;
        this.#switch(id, true, RAW_ACK);
      }
    }
  }

  #switch(id: ClientId, raw: boolean, ack: string): void {
    try {
      // The ack is always framed: queued before switching to raw, after switching back.
      if (raw) this.core.sendMessageToClient(id, ack);
      this.core.switchClientRawConnectionMode(id, raw);
      if (!raw) this.core.sendMessageToClient(id, ack);
    } catch (err) {
      if (!(err instanceof ConnectionClosedError)) throw err;
    }
  }
}

function newStreamState(raw: boolean): StreamState {
  return { messages: 0, hash: FNV_OFFSET, rawBytes: 0, rawHash: FNV_OFFSET, raw, rawUntil: 0, errors: [] };
}

/** Options for {@linkcode runFuzz}. */
export interface FuzzOptions {
  /** Stop planning connections once this many cases are planned. */
  cases: number;
  /** The seed: the same seed gives the same connections. */
  seed: number;
  /**
   * Connections in flight at once.
   * @default {12}
   */
  concurrency?: number;
  /** Override the fuzz core's limits. */
  limits?: Partial<FuzzLimits>;
  /**
   * Bound on each connection (and each wait in it); past it the connection counts as a hang.
   * @default {15000}
   */
  connectionTimeoutMs?: number;
  /** Replay this one connection index alone. */
  only?: number;
  /**
   * The most RSS may grow over its value at the start; past it the run fails (a leak that grows
   * with the cases would cross it long before 1M cases).
   * @default {536870912} (512 MiB)
   */
  maxRssGrowth?: number;
  /** Called about once a second with the report so far. */
  progress?: (report: FuzzReport) => void;
}

/**
 * What a fuzz run did. A *case* is one generated frame unit written into a live core connection
 * (a valid or mutated frame: bit flips, truncation, lengths of 0, 2^64−1 and maxMessageBytes−1/0/+1,
 * garbage, random splits, raw-mode switches), one raw chunk written to a raw connection, or one
 * mutated handshake on its own connection. Cases after a fatal one are never generated.
 */
export interface FuzzReport {
  /** Runtime and version. */
  runtime: string;
  /** The seed. */
  seed: number;
  /** All cases run. */
  cases: number;
  /** Frame cases (valid or mutated frames). */
  frameCases: number;
  /** Raw chunks written to raw connections. */
  rawCases: number;
  /** Mutated handshakes, one connection each. */
  handshakeCases: number;
  /** Connections made. */
  connections: number;
  /** Bytes written into the core. */
  bytesSent: number;
  /** Wall time. */
  durationMs: number;
  /** cases / duration. */
  casesPerSecond: number;
  /** Uncaught exceptions, unhandled rejections, errors out of ioIteration and error log lines. */
  crashes: number;
  /** Connections whose expected outcome did not come within the bound. */
  hangs: number;
  /** Connections whose outcome differed from the oracle's prediction. */
  mismatches: number;
  /** Control round trips completed during the run. */
  controlRoundTrips: number;
  /** The slowest control round trip. */
  controlMaxLatencyMs: number;
  /** RSS at start. */
  baselineRss: number;
  /** Peak RSS. */
  peakRss: number;
  /** The core's counters after the run (all connections closed, the control stopped). */
  finalStats: IoCoreStats | undefined;
  /** Everything that went wrong, first ones first (capped). */
  failures: string[];
}

interface FuzzSlot {
  n: number;
  generation: number;
  id: ClientId;
  rawId: ClientId;
  keyword: string;
  rawKeyword: string;
}

async function ipv6Loopback(): Promise<boolean> {
  try {
    const listener = await nativeTransport().listen(
      { transport: "tcp", hostname: "::1", port: 0 },
      (c) => c.close(),
    );
    await listener.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs the fuzzer: a core with small limits listening on TCP (IPv4, and IPv6 when the machine has
 * `::1`), a UNIX socket and a raw listener; a control client doing round trips all along; and
 * `concurrency` connections at a time, each carrying a {@linkcode FuzzPlan}. Every stream connection is
 * checked against an independent oracle (messages, their hash, raw bytes, the close reason).
 *
 * @example
 * ```ts
 * const report = await runFuzz({ cases: 20_000, seed: 1 });
 * if (report.failures.length) console.error(report.failures);
 * ```
 */
export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const limits: FuzzLimits = { ...DEFAULT_FUZZ_LIMITS, ...options.limits };
  const timeout = options.connectionTimeoutMs ?? 15_000;
  const crashes = CrashMonitor.install();
  const rss = new RssSampler();
  const dir = await tempDir("asockio-fuzz-");
  const failures: string[] = [];
  const fail = (message: string): void => {
    if (failures.length < 50) failures.push(message);
  };
  let loggedErrors = 0;
  const report: FuzzReport = {
    runtime: runtimeLabel(),
    seed: options.seed,
    cases: 0,
    frameCases: 0,
    rawCases: 0,
    handshakeCases: 0,
    connections: 0,
    bytesSent: 0,
    durationMs: 0,
    casesPerSecond: 0,
    crashes: 0,
    hangs: 0,
    mismatches: 0,
    controlRoundTrips: 0,
    controlMaxLatencyMs: 0,
    baselineRss: rss.baseline,
    peakRss: rss.baseline,
    finalStats: undefined,
    failures,
  };
  const started = performance.now();
  const listeners: IoCoreListenerOptions[] = [
    { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "tcp4" },
    { transport: "unix", path: join(dir.path, "fuzz.sock"), name: "unix" },
    { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "raw" },
  ];
  const hasIpv6 = await ipv6Loopback();
  if (hasIpv6) listeners.push({ transport: "tcp", hostname: "::1", port: 0, name: "tcp6" });
  const core = new IoCore({
    listeners,
    rawConnection: ({ listener }) => listener.name === "raw",
    unknownClients: "allow",
    limits: {
      maxMessageBytes: limits.maxMessageBytes,
      maxKeywordBytes: limits.maxKeywordBytes,
      inputBytes: limits.inputBytes,
      handshakeTimeoutMs: limits.handshakeTimeoutMs,
      closeTimeoutMs: 5000,
    },
    logger: {
      error: (message: string, ...details: unknown[]) => {
        loggedErrors++;
        fail(`core logged an error: ${message} ${details.map(String).join(" ")}`);
      },
    },
  });
  let app: AppLoop | undefined;
  let pinger: ControlPinger | undefined;
  let control: Peer | undefined;
  try {
    const addrs = await core.listen();
    const targets: Record<FuzzPlan["target"] | "raw", ConnectOptions> = {
      tcp4: targetOf(addrs[0]),
      unix: targetOf(addrs[1]),
      raw: targetOf(addrs[2]),
      tcp6: targetOf(hasIpv6 ? addrs[3] : addrs[0]),
    };
    const controlId = core.addClient({ keyword: "control" });
    const server = new FuzzServer(core, controlId);
    for (let i = 0; i < HANDSHAKE_KEYWORDS; i++) {
      core.addClient({ keyword: `hs-${i}` });
      core.addClient({ keyword: `hsr-${i}`, raw: true });
    }
    core.addClient({ keyword: SECRET_KEYWORD, secret: "fuzz secret" });
    app = new AppLoop(core, server.onResult, 20);
    control = await Peer.connect(targets.tcp4);
    control.send("control");
    if (text(await control.next(timeout)) !== "OK") {
      throw new Error("Cannot start the fuzz run: control refused");
    }
    pinger = new ControlPinger(control, { intervalMs: 5, stallMs: timeout });

    const concurrency = options.only === undefined ? (options.concurrency ?? 12) : 1;
    const slots: FuzzSlot[] = [];
    const register = (slot: FuzzSlot): void => {
      slot.keyword = `fz-${slot.n}-${slot.generation}`;
      slot.rawKeyword = `fzr-${slot.n}-${slot.generation}`;
      slot.id = core.addClient({ keyword: slot.keyword });
      slot.rawId = core.addClient({ keyword: slot.rawKeyword, raw: true });
      server.streams.set(slot.id, "framed");
      server.streams.set(slot.rawId, "raw");
    };
    const retire = (slot: FuzzSlot): void => {
      // After a hang the old keyword may still be bound: give the slot fresh ones.
      core.removeClient(slot.id);
      core.removeClient(slot.rawId);
      server.streams.delete(slot.id);
      server.streams.delete(slot.rawId);
      slot.generation++;
      register(slot);
    };
    for (let n = 0; n < concurrency; n++) {
      const slot: FuzzSlot = { n, generation: 0, id: 0, rawId: 0, keyword: "", rawKeyword: "" };
      register(slot);
      slots.push(slot);
    }
    const registered = 1 + 2 * HANDSHAKE_KEYWORDS + 1 + 2 * concurrency;

    let nextIndex = 0;
    let planned = 0;
    const claim = (): FuzzPlan | undefined => {
      if (options.only !== undefined) {
        return nextIndex++ === 0 ? fuzzPlan(options.seed, options.only, limits) : undefined;
      }
      if (planned >= options.cases) return undefined;
      const plan = fuzzPlan(options.seed, nextIndex++, limits);
      planned += plan.frameCases + plan.rawCases + plan.handshakeCases;
      return plan;
    };
    let unknownSent = 0;

    const runStream = async (plan: FuzzPlan, slot: FuzzSlot): Promise<string[]> => {
      const raw = plan.kind === "raw";
      const id = raw ? slot.rawId : slot.id;
      server.prepare(id);
      const peer = await deadline(Peer.connect(targets[plan.target]), timeout, "connect");
      const problems: string[] = [];
      try {
        let okSeen = false;
        const takeOk = async (): Promise<void> => {
          if (okSeen) return;
          okSeen = true;
          const m = await peer.next(timeout);
          if (text(m) !== "OK") problems.push(`handshake answered ${JSON.stringify(text(m))}, expected "OK"`);
        };
        peer.write(encodeFrame(encoder.encode(raw ? slot.rawKeyword : slot.keyword)));
        if (!plan.pipelined) await takeOk();
        for (const step of plan.steps) {
          if (step.op === "write") {
            if (!peer.write(step.bytes)) {
              // The fatal header may go out in the same native write as earlier bytes.
              if (!plan.expect.fatal) problems.push("the core closed the connection before the stream ended");
              break;
            }
          } else if (step.op === "yield") await macrotask();
          else {
            await takeOk();
            const m = await peer.next(timeout);
            if (!answerMatches(step.answers, m)) {
              problems.push(
                `expected ${step.answers.join(" or ")}, got ${JSON.stringify(text(m).slice(0, 40))}`,
              );
              break;
            }
          }
        }
        if (plan.ending === "half-close") peer.closeWrite();
        else if (plan.ending === "close") {
          await takeOk();
          await peer.closeAfterFlush(timeout);
        }
        const record = await server.waitRecord(id, timeout);
        const st = record.state;
        const want = plan.expect;
        if (st.messages !== want.messages || st.hash !== want.hash) {
          problems.push(
            `core delivered ${st.messages} messages (hash ${
              st.hash.toString(16)
            }), oracle expects ${want.messages} (hash ${want.hash.toString(16)})`,
          );
        }
        if (st.rawBytes !== want.rawBytes || st.rawHash !== want.rawHash) {
          problems.push(
            `core delivered ${st.rawBytes} raw bytes, oracle expects ${want.rawBytes} (or their hash differs)`,
          );
        }
        problems.push(...st.errors);
        if (want.fatal && !(record.lastError instanceof MessageTooLargeError)) {
          problems.push(
            `expected a MessageTooLargeError, the connection ended with ${record.lastError ?? "no error"}`,
          );
        }
        if (!want.fatal && record.lastError) problems.push(`the connection ended with ${record.lastError}`);
        if (plan.ending !== "close") await peer.waitClosed(timeout);
        if (plan.ending !== "fatal") await takeOk();
      } finally {
        peer.close();
      }
      return problems;
    };

    const runHandshake = async (plan: FuzzPlan): Promise<string[]> => {
      const peer = await deadline(Peer.connect(targets[plan.target]), timeout, "connect");
      const problems: string[] = [];
      try {
        for (const step of plan.steps) {
          if (step.op === "write") peer.write(step.bytes);
          else if (step.op === "yield") await macrotask();
          else {
            const m = await peer.next(timeout);
            if (!answerMatches(step.answers, m)) {
              problems.push(
                `expected ${step.answers.join(" or ")}, got ${JSON.stringify(text(m).slice(0, 40))}`,
              );
              return problems;
            }
          }
        }
        const final = plan.finalAnswers;
        const mustAnswer = !final.includes(NO_ANSWER);
        if (plan.ending === "close") {
          if (mustAnswer) await peer.waitUntil(() => peer.pending > 0 || peer.closed, timeout, "an answer");
          await peer.closeAfterFlush(timeout);
        } else {
          if (plan.ending === "half-close") peer.closeWrite();
          await peer.waitClosed(plan.ending === "stall" ? limits.handshakeTimeoutMs + timeout : timeout);
        }
        if (plan.ending === "close" && !mustAnswer) return problems;
        const answer = peer.take();
        if (!answerMatches(final, answer)) {
          problems.push(`expected ${final.join(" or ")}, got ${JSON.stringify(text(answer).slice(0, 40))}`);
        } else if (peer.pending > 0) {
          problems.push(`unexpected extra answer ${JSON.stringify(text(peer.take()).slice(0, 40))}`);
        }
      } finally {
        peer.close();
      }
      return problems;
    };

    const runUnknown = async (plan: FuzzPlan): Promise<string[]> => {
      const peer = await deadline(Peer.connect(targets.raw), timeout, "connect");
      const problems: string[] = [];
      try {
        for (const step of plan.steps) {
          if (step.op === "write") {
            if (peer.write(step.bytes)) unknownSent += step.bytes.length;
            else problems.push("the core closed an unknown client's connection");
          } else if (step.op === "yield") await macrotask();
        }
        if (plan.ending === "half-close") {
          peer.closeWrite();
          await peer.waitClosed(timeout);
        } else await peer.closeAfterFlush(timeout);
        if (peer.receivedBytes !== 0) {
          problems.push(`the core sent ${peer.receivedBytes} bytes to an unknown client`);
        }
      } finally {
        peer.close();
      }
      return problems;
    };

    const runSlot = async (slot: FuzzSlot): Promise<void> => {
      for (let plan = claim(); plan; plan = claim()) {
        report.connections++;
        report.frameCases += plan.frameCases;
        report.rawCases += plan.rawCases;
        report.handshakeCases += plan.handshakeCases;
        report.cases += plan.frameCases + plan.rawCases + plan.handshakeCases;
        report.bytesSent += plan.bytes;
        const where = `seed ${options.seed} connection ${plan.index} (${plan.label}, ${plan.target})`;
        try {
          const problems = plan.kind === "handshake"
            ? await runHandshake(plan)
            : plan.kind === "unknown"
            ? await runUnknown(plan)
            : await runStream(plan, slot);
          if (problems.length) {
            report.mismatches++;
            fail(`mismatch at ${where}: ${problems.join("; ")}`);
          }
        } catch (err) {
          if (err instanceof HangError) {
            report.hangs++;
            fail(`hang at ${where}: ${err.message}`);
            retire(slot); // same client count: two removed, two added
          } else {
            report.mismatches++;
            fail(`error at ${where}: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
          }
        }
      }
    };

    let lastProgress = performance.now();
    const progressTimer = setInterval(() => {
      if (!options.progress) return;
      const now = performance.now();
      if (now - lastProgress < 900) return;
      lastProgress = now;
      report.durationMs = now - started;
      report.casesPerSecond = report.cases / (report.durationMs / 1000);
      report.controlRoundTrips = pinger!.roundTrips;
      report.controlMaxLatencyMs = pinger!.maxLatencyMs;
      report.peakRss = rss.peak;
      report.crashes = crashes.total + app!.errors.length + loggedErrors;
      options.progress(report);
    }, 250);
    try {
      await Promise.all(slots.map(runSlot));
    } finally {
      clearInterval(progressTimer);
    }

    // Quiescence: every fuzz connection gone, then the control stopped, then accounting at zero.
    try {
      await waitFor(
        () => core.stats().connections === 1 && core.stats().heldConnections === 0,
        timeout,
        "idle core",
      );
    } catch (err) {
      fail(`leak: ${(err as Error).message}: ${JSON.stringify(core.stats())}`);
    }
    try {
      await waitFor(() => server.unknownBytes === unknownSent, timeout, "the unknown clients' bytes");
    } catch {
      // Reported just below with the numbers.
    }
    await pinger.stop();
    if (server.unknownBytes !== unknownSent) {
      report.mismatches++;
      fail(`unknown clients: the core delivered ${server.unknownBytes} bytes, ${unknownSent} were sent`);
    }
    control.close();
    report.finalStats = await settledStats(core, registered, timeout, fail);
    for (const problem of pinger.failures) fail(problem);
    if (pinger.stalls) fail(`control: ${pinger.stalls} round trips took longer than ${timeout} ms`);
    report.controlRoundTrips = pinger.roundTrips;
    report.controlMaxLatencyMs = pinger.maxLatencyMs;
  } catch (err) {
    fail(`fuzz run aborted: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    await pinger?.stop();
    control?.close();
    await app?.stop();
    await core.close();
    await dir.remove();
    rss.stop();
    crashes.dispose();
  }
  for (const sample of crashes.samples) fail(sample);
  for (const err of app?.errors ?? []) {
    fail(`ioIteration loop: ${err instanceof Error ? err.stack : String(err)}`);
  }
  report.crashes = crashes.total + (app?.errors.length ?? 0) + loggedErrors;
  report.durationMs = performance.now() - started;
  report.casesPerSecond = report.cases / (report.durationMs / 1000);
  report.peakRss = rss.peak;
  const maxGrowth = options.maxRssGrowth ?? 512 * MiB;
  if (report.peakRss - report.baselineRss > maxGrowth) {
    fail(
      `RSS grew by ${formatBytes(report.peakRss - report.baselineRss)}, more than ${formatBytes(maxGrowth)}`,
    );
  }
  return report;
}

// ---------------------------------------------------------------------------------------------
// Churn

/** Waits for the application loop to see clients disconnect. */
class DisconnectBoard {
  readonly #done = new Set<ClientId>();
  readonly #waiters = new Map<ClientId, () => void>();

  mark(id: ClientId): void {
    this.#done.add(id);
    const wake = this.#waiters.get(id);
    this.#waiters.delete(id);
    wake?.();
  }

  reset(id: ClientId): void {
    this.#done.delete(id);
  }

  async wait(id: ClientId, timeoutMs: number, label: string): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!this.#done.has(id)) {
      const left = end - Date.now();
      if (left <= 0) {
        throw new HangError(`Timed out after ${timeoutMs} ms waiting for the core to report ${label}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.#waiters.set(id, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    this.#done.delete(id);
  }
}

/** Options for {@linkcode runChurn}. */
export interface ChurnOptions {
  /** Connections to open and close. */
  connections: number;
  /**
   * Connections in flight at once.
   * @default {32}
   */
  concurrency?: number;
  /**
   * Picks each connection's variant.
   * @default {1}
   */
  seed?: number;
  /**
   * Bound on each connection's life.
   * @default {15000}
   */
  timeoutMs?: number;
  /**
   * Descriptors allowed above the baseline at the end.
   * @default {4}
   */
  fdSlack?: number;
  /** Called about once a second with the report so far. */
  progress?: (report: ChurnReport) => void;
}

/** What a churn run did. */
export interface ChurnReport {
  /** Runtime and version. */
  runtime: string;
  /** Connections opened and closed. */
  connections: number;
  /** How many connections of each variant. */
  variants: Record<string, number>;
  /** Wall time. */
  durationMs: number;
  /** Connections per second. */
  perSecond: number;
  /** Open descriptors after the warm-up, before the churn. */
  fdBaseline: number;
  /** The most descriptors sampled during the churn. */
  fdPeak: number;
  /** Open descriptors once everything closed. */
  fdAfter: number;
  /** RSS before and at peak. */
  rssBaseline: number;
  /** Peak RSS. */
  rssPeak: number;
  /** Control round trips completed meanwhile. */
  controlRoundTrips: number;
  /** The core's counters at the end (control closed too). */
  finalStats: IoCoreStats | undefined;
  /** Clients registered with addClient (what `finalStats.clients` must be). */
  registeredClients: number;
  /** Uncaught exceptions, unhandled rejections and errors out of ioIteration. */
  crashes: number;
  /** Connections whose expected outcome did not come in time. */
  hangs: number;
  /** Everything that went wrong (capped). */
  failures: string[];
}

const CHURN_VARIANTS = [
  "client closes",
  "core closes",
  "graceful close",
  "client half-closes",
  "held keyword",
  "duplicate keyword",
  "partial handshake",
  "connect and close",
  "unknown client",
  "oversized keyword",
] as const;

/**
 * Opens and closes `connections` connections of varied kinds (named clients closed by either side,
 * half-closes, held and refused keywords, abandoned handshakes, unknown raw clients) while a control
 * client keeps doing round trips; then checks that descriptors are back to the baseline and that the
 * core's counters are back to zero.
 *
 * @example
 * ```ts
 * const report = await runChurn({ connections: 2000 });
 * console.log(report.fdBaseline, report.fdAfter, report.finalStats);
 * ```
 */
export async function runChurn(options: ChurnOptions): Promise<ChurnReport> {
  const timeout = options.timeoutMs ?? 15_000;
  const concurrency = options.concurrency ?? 32;
  const seed = options.seed ?? 1;
  const crashes = CrashMonitor.install();
  const rss = new RssSampler();
  const dir = await tempDir("asockio-churn-");
  const failures: string[] = [];
  const fail = (message: string): void => {
    if (failures.length < 50) failures.push(message);
  };
  const report: ChurnReport = {
    runtime: runtimeLabel(),
    connections: 0,
    variants: {},
    durationMs: 0,
    perSecond: 0,
    fdBaseline: -1,
    fdPeak: -1,
    fdAfter: -1,
    rssBaseline: rss.baseline,
    rssPeak: rss.baseline,
    controlRoundTrips: 0,
    finalStats: undefined,
    registeredClients: 1 + concurrency,
    crashes: 0,
    hangs: 0,
    failures,
  };
  const maxKw = 64;
  const core = new IoCore({
    listeners: [
      { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "tcp" },
      { transport: "unix", path: join(dir.path, "churn.sock"), name: "unix" },
      { transport: "tcp", hostname: "127.0.0.1", port: 0, name: "raw" },
    ],
    rawConnection: ({ listener }) => listener.name === "raw",
    unknownClients: "allow",
    limits: { maxKeywordBytes: maxKw, handshakeTimeoutMs: 5000 },
    logger: { error: (message: string) => fail(`core logged an error: ${message}`) },
  });
  const board = new DisconnectBoard();
  let app: AppLoop | undefined;
  let pinger: ControlPinger | undefined;
  let control: Peer | undefined;
  let started = performance.now();
  try {
    const [tcpAddr, unixAddr, rawAddr] = await core.listen();
    const controlId = core.addClient({ keyword: "control" });
    const slotIds: ClientId[] = [];
    for (let n = 0; n < concurrency; n++) slotIds.push(core.addClient({ keyword: `churn-${n}` }));
    const slotSet = new Set(slotIds);
    app = new AppLoop(core, (r) => {
      for (const id of r.clientsHaveDataToRead) {
        if (id === controlId) {
          echo(core, id);
          continue;
        }
        const messages = core.getMessagesFromClient(id);
        if (!slotSet.has(id)) continue; // held, unknown: read and dropped
        for (const m of messages) {
          const command = text(m);
          try {
            if (command === "close-now") core.closeClientConnection(id);
            else if (command === "close-graceful") {
              core.sendMessageToClient(id, "bye");
              core.markClientConnectionAsReadyToBeClosed(id);
            } else core.sendMessageToClient(id, m);
          } catch (err) {
            if (!(err instanceof ConnectionClosedError)) throw err;
          }
        }
      }
      for (const id of r.clientsWithDisconnectedConnection) {
        core.getMessagesFromClient(id);
        if (slotSet.has(id)) board.mark(id);
      }
    });
    control = await Peer.connect(targetOf(tcpAddr));
    control.send("control");
    if (text(await control.next(timeout)) !== "OK") {
      throw new Error("Cannot start the churn: control refused");
    }
    pinger = new ControlPinger(control, { intervalMs: 5, stallMs: timeout });

    const one = async (index: number, slot: number): Promise<void> => {
      const rng = new Rng(seed, index);
      const variant = CHURN_VARIANTS[rng.int(CHURN_VARIANTS.length)];
      report.variants[variant] = (report.variants[variant] ?? 0) + 1;
      const id = slotIds[slot];
      const keyword = `churn-${slot}`;
      const target = variant === "unknown client"
        ? targetOf(rawAddr)
        : rng.chance(0.5)
        ? targetOf(tcpAddr)
        : targetOf(unixAddr);
      const named = variant === "client closes" || variant === "core closes" ||
        variant === "graceful close" ||
        variant === "client half-closes";
      if (named) board.reset(id);
      const peer = await deadline(Peer.connect(target), timeout, "connect");
      try {
        const expect = async (want: string): Promise<void> => {
          const got = text(await peer.next(timeout));
          if (got !== want) {
            throw new Error(`${variant}: expected ${JSON.stringify(want)}, got ${JSON.stringify(got)}`);
          }
        };
        switch (variant) {
          case "client closes":
            peer.send(keyword, "hello");
            await expect("OK");
            await expect("hello");
            await peer.closeAfterFlush(timeout);
            break;
          case "core closes":
            // closeClientConnection discards unwritten output, so the OK is awaited first.
            peer.send(keyword);
            await expect("OK");
            peer.send("close-now");
            await peer.waitClosed(timeout);
            break;
          case "graceful close":
            peer.send(keyword, "close-graceful");
            await expect("OK");
            await expect("bye");
            await peer.waitClosed(timeout);
            break;
          case "client half-closes":
            peer.send(keyword, "last words");
            peer.closeWrite();
            await peer.waitClosed(timeout);
            break;
          case "held keyword":
            peer.send(`held-${index}`, "kept until addClient");
            await expect("OK");
            await peer.closeAfterFlush(timeout);
            break;
          case "duplicate keyword":
            peer.send("control");
            await expect("duplicate keyword");
            await peer.waitClosed(timeout);
            break;
          case "partial handshake":
            peer.write(new Uint8Array([5, 0, 0]));
            await peer.closeAfterFlush(timeout);
            break;
          case "connect and close":
            peer.close();
            break;
          case "unknown client":
            peer.write(rng.bytes(rng.range(1, 2048)));
            await peer.closeAfterFlush(timeout);
            break;
          case "oversized keyword":
            peer.write(lengthHeader(maxKw + 1));
            await peer.waitClosed(timeout);
            break;
        }
        if (named) await board.wait(id, timeout, `${keyword}'s disconnection`);
      } finally {
        peer.close();
      }
    };

    const churn = async (from: number, count: number): Promise<void> => {
      let next = from;
      const end = from + count;
      await Promise.all(Array.from({ length: concurrency }, async (_, slot) => {
        while (next < end) {
          const index = next++;
          report.connections++;
          try {
            await one(index, slot);
          } catch (err) {
            if (err instanceof HangError) report.hangs++;
            fail(`connection ${index}: ${err instanceof Error ? err.message : String(err)}`);
          }
        }
      }));
    };
    const settle = (label: string) =>
      waitFor(() => core.stats().connections === 1 && core.stats().heldConnections === 0, timeout, label);

    // Warm-up: the runtimes open some descriptors (thread pools, timers) on first use.
    await churn(0, Math.min(200, options.connections));
    await settle("the warm-up connections to close");
    await sleep(50);
    report.fdBaseline = report.fdPeak = openFdCount();
    report.connections = 0;
    report.variants = {};
    started = performance.now();
    let lastProgress = started;
    const sampler = setInterval(() => {
      report.fdPeak = Math.max(report.fdPeak, openFdCount());
      const now = performance.now();
      if (options.progress && now - lastProgress >= 1000) {
        lastProgress = now;
        report.durationMs = now - started;
        report.perSecond = report.connections / (report.durationMs / 1000);
        options.progress(report);
      }
    }, 100);
    try {
      await churn(1_000_000, options.connections);
    } finally {
      clearInterval(sampler);
    }
    report.durationMs = performance.now() - started;
    report.perSecond = report.connections / (report.durationMs / 1000);
    try {
      await settle("every churn connection to close");
    } catch (err) {
      fail(`leak: ${(err as Error).message}: ${JSON.stringify(core.stats())}`);
    }
    const slack = options.fdSlack ?? 4;
    try {
      await waitFor(
        () => openFdCount() <= report.fdBaseline + slack,
        5000,
        "descriptors back to the baseline",
      );
    } catch {
      // Reported below with the numbers.
    }
    report.fdAfter = openFdCount();
    if (report.fdAfter > report.fdBaseline + slack) {
      fail(`leak: ${report.fdAfter} descriptors open, baseline ${report.fdBaseline} (+${slack} allowed)`);
    }
    await pinger.stop();
    report.controlRoundTrips = pinger.roundTrips;
    for (const problem of pinger.failures) fail(problem);
    control.close();
    report.finalStats = await settledStats(core, report.registeredClients, timeout, fail);
  } catch (err) {
    fail(`churn aborted: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    await pinger?.stop();
    control?.close();
    await app?.stop();
    await core.close();
    await dir.remove();
    rss.stop();
    crashes.dispose();
  }
  for (const sample of crashes.samples) fail(sample);
  for (const err of app?.errors ?? []) {
    fail(`ioIteration loop: ${err instanceof Error ? err.stack : String(err)}`);
  }
  report.crashes = crashes.total + (app?.errors.length ?? 0);
  report.rssPeak = rss.peak;
  return report;
}

// ---------------------------------------------------------------------------------------------
// Flood

/** Options for {@linkcode runFlood}. */
export interface FloodOptions {
  /** Bytes of payload the flooding child sends in all. */
  bytes: number;
  /** The core's `limits.inputBytes`. */
  inputBytes: number;
  /**
   * Payload bytes per frame.
   * @default {65536}
   */
  payloadBytes?: number;
  /**
   * How long each no-read phase lasts once the flooder is blocked, before the application drains.
   * @default {300}
   */
  holdMs?: number;
  /**
   * Bound on the whole run.
   * @default {600000}
   */
  timeoutMs?: number;
  /**
   * Force a garbage collection before each no-read phase, where the runtime allows it (Bun always;
   * Node with `--expose-gc`; Deno with `--v8-flags=--expose-gc`), to tell garbage waiting for the
   * collector apart from a leak in the whole-run peak.
   * @default {false}
   */
  collectGarbage?: boolean;
  /** Called about once a second with the report so far. */
  progress?: (report: FloodReport) => void;
}

/**
 * Runs a full garbage collection if the runtime exposes one; returns whether it did.
 *
 * @example
 * ```ts
 * if (!collectGarbage()) console.log("run Node with --expose-gc to collect on demand");
 * ```
 */
export function collectGarbage(): boolean {
  const g = globalThis as { gc?: () => void; Bun?: { gc?: (force: boolean) => void } };
  if (typeof g.Bun?.gc === "function") {
    g.Bun.gc(true);
    return true;
  }
  if (typeof g.gc === "function") {
    g.gc();
    return true;
  }
  return false;
}

/** What a flood run measured. */
export interface FloodReport {
  /** Runtime and version. */
  runtime: string;
  /** Payload bytes the child reported sent. */
  bytesSent: number;
  /** Payload bytes the application read, checked in order. */
  bytesReceived: number;
  /** Messages read. */
  messages: number;
  /** Wall time. */
  durationMs: number;
  /** Throughput of the payload. */
  mibPerSecond: number;
  /** The core's input cap. */
  inputBytes: number;
  /** The most unread input the core held (`stats().inputBytes`). */
  peakInputBytes: number;
  /** RSS before the flood. */
  rssBaseline: number;
  /**
   * Peak RSS in the first no-read phase: the flooder sends as fast as it can, the application reads
   * nothing, and nothing was read before. (Later phases start with what was read still waiting for
   * the collector, or, once collected, kept by the allocator: RSS rarely shrinks.)
   */
  rssNoReadPeak: number;
  /** What `rssNoReadPeak - rssBaseline` must stay under: `inputBytes + 64 MiB`. */
  rssBound: number;
  /** Peak RSS over the whole run, garbage of the read phases included (reported, not bounded). */
  rssPeak: number;
  /** Whether a collection was forced before each no-read phase. */
  collectedGarbage: boolean;
  /** No-read phases in which the core paused the flooder (reading paused, the child blocked). */
  pausedPhases: number;
  /** Control round trips completed while the flooder was paused and the application did not read it. */
  controlWhilePaused: number;
  /** Control round trips in all, and the slowest. */
  controlRoundTrips: number;
  /** The slowest control round trip. */
  controlMaxLatencyMs: number;
  /** The core's counters at the end. */
  finalStats: IoCoreStats | undefined;
  /** Uncaught exceptions, unhandled rejections and errors out of ioIteration. */
  crashes: number;
  /** Everything that went wrong (capped). */
  failures: string[];
}

/**
 * A child process floods the core as fast as it can while the application does not read it, in
 * phases: the application holds off until the core has paused the flooder (and the control client
 * must keep its round trips meanwhile), then drains, and again, until `bytes` went through in order.
 * Checks unread input against the cap and RSS against `inputBytes + 64 MiB`.
 *
 * @example
 * ```ts
 * const report = await runFlood({ bytes: 4 * 1024 ** 3, inputBytes: 256 * 1024 ** 2 });
 * console.log(report.rssPeak - report.rssBaseline, report.rssBound);
 * ```
 */
export async function runFlood(options: FloodOptions): Promise<FloodReport> {
  const payload = options.payloadBytes ?? 64 * KiB;
  const holdMs = options.holdMs ?? 300;
  const timeout = options.timeoutMs ?? 600_000;
  const crashes = CrashMonitor.install();
  const dir = await tempDir("asockio-flood-");
  const failures: string[] = [];
  const fail = (message: string): void => {
    if (failures.length < 50) failures.push(message);
  };
  const core = new IoCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
    limits: { inputBytes: options.inputBytes, maxMessageBytes: Math.max(payload, 1024) },
    logger: { error: (message: string) => fail(`core logged an error: ${message}`) },
  });
  let rss: RssSampler | undefined;
  const report: FloodReport = {
    runtime: runtimeLabel(),
    bytesSent: 0,
    bytesReceived: 0,
    messages: 0,
    durationMs: 0,
    mibPerSecond: 0,
    inputBytes: options.inputBytes,
    peakInputBytes: 0,
    rssBaseline: 0,
    rssNoReadPeak: 0,
    rssBound: options.inputBytes + 64 * MiB,
    rssPeak: 0,
    collectedGarbage: false,
    pausedPhases: 0,
    controlWhilePaused: 0,
    controlRoundTrips: 0,
    controlMaxLatencyMs: 0,
    finalStats: undefined,
    crashes: 0,
    failures,
  };
  let app: AppLoop | undefined;
  let pinger: ControlPinger | undefined;
  let control: Peer | undefined;
  let child: ChildPeer | undefined;
  const started = performance.now();
  try {
    const [addr] = await core.listen();
    const port = (addr as { port: number }).port;
    const controlId = core.addClient({ keyword: "control" });
    const floodId = core.addClient({ keyword: "flood" });
    let reading = false;
    let nextSeq = 0;
    let floodGone = false;
    const readFlood = (): void => {
      for (const m of core.getMessagesFromClient(floodId)) {
        const seq = m.length >= 4
          ? new DataView(m.buffer, m.byteOffset, m.byteLength).getUint32(0, true)
          : -1;
        if (m.length !== payload || seq !== nextSeq || m[m.length - 1] !== (seq & 0xff)) {
          fail(`flood message ${nextSeq}: got ${m.length} bytes with sequence ${seq}`);
          nextSeq = seq + 1;
        } else nextSeq++;
        report.messages++;
        report.bytesReceived += m.length;
      }
    };
    app = new AppLoop(core, (r) => {
      if (r.clientsHaveDataToRead.has(controlId)) echo(core, controlId);
      if (reading || floodGone) readFlood();
      if (r.clientsWithDisconnectedConnection.has(floodId)) {
        floodGone = true;
        readFlood();
      }
      const unread = core.stats().inputBytes;
      if (unread > report.peakInputBytes) report.peakInputBytes = unread;
    }, 10);
    control = await Peer.connect(targetOf(addr));
    control.send("control");
    if (text(await control.next(10_000)) !== "OK") throw new Error("Cannot start the flood: control refused");
    pinger = new ControlPinger(control, { intervalMs: 1, stallMs: 5000 });
    await sleep(200);
    rss = new RssSampler(20);
    report.rssBaseline = rss.baseline;
    child = await spawnChildPeer(dir.path, "flood", FLOOD_PEER, [
      "127.0.0.1",
      String(port),
      "flood",
      String(options.bytes),
      String(payload),
    ]);
    const sent = (): number => {
      for (let i = child!.lines.length - 1; i >= 0; i--) {
        const m = /^(?:sent|done) (\d+)$/.exec(child!.lines[i]);
        if (m) return Number(m[1]);
      }
      return 0;
    };
    const childDone = (): boolean => child!.lines.some((l) => l.startsWith("done ") || l === "closed");
    const end = Date.now() + timeout;
    let lastProgress = performance.now();
    const progress = (): void => {
      report.peakInputBytes = Math.max(report.peakInputBytes, core.stats().inputBytes);
      const now = performance.now();
      if (!options.progress || now - lastProgress < 1000) return;
      lastProgress = now;
      report.bytesSent = sent();
      report.rssPeak = rss!.peak;
      report.durationMs = now - started;
      report.mibPerSecond = report.bytesReceived / MiB / (report.durationMs / 1000);
      report.controlRoundTrips = pinger!.roundTrips;
      options.progress(report);
    };
    while (!floodGone || report.bytesReceived < sent()) {
      if (Date.now() > end) throw new HangError(`Timed out after ${timeout} ms: flood not through`);
      // No-read phase: wait until the core has paused the flooder and the child is blocked.
      reading = false;
      if (options.collectGarbage && collectGarbage()) report.collectedGarbage = true;
      const first = report.pausedPhases === 0;
      let phasePeak = rss.sample();
      let lastSent = sent();
      let stableSince = Date.now();
      while (!childDone() && !floodGone && Date.now() < end) {
        await sleep(10);
        progress();
        phasePeak = Math.max(phasePeak, rss.sample());
        const now = sent();
        if (now !== lastSent) {
          lastSent = now;
          stableSince = Date.now();
        }
        if (core.stats().readingPaused && Date.now() - stableSince > 50) break;
        if (Date.now() - stableSince > 5000) {
          fail("the flooder stalled without the core pausing it");
          break;
        }
      }
      if (core.stats().readingPaused && !floodGone) {
        report.pausedPhases++;
        const before = pinger.roundTrips;
        await sleep(holdMs);
        progress();
        const during = pinger.roundTrips - before;
        report.controlWhilePaused += during;
        phasePeak = Math.max(phasePeak, rss.sample());
        if (first) report.rssNoReadPeak = phasePeak;
        if (during === 0) fail(`no control round trip in ${holdMs} ms while the flooder was paused`);
      }
      // Read phase: drain until the unread input is small.
      reading = true;
      const drainEnd = Date.now() + 60_000;
      while (core.stats().inputBytes > options.inputBytes / 4 && Date.now() < drainEnd) {
        await sleep(5);
        progress();
      }
      if (childDone() || floodGone) {
        await waitFor(
          () => floodGone && report.bytesReceived >= sent(),
          Math.max(1000, end - Date.now()),
          "the whole flood",
        );
        break;
      }
    }
    report.bytesSent = sent();
    // The child sends whole frames: the last one may run past the planned byte count.
    const wholeFrames = Math.ceil(options.bytes / payload) * payload;
    if (report.bytesReceived !== wholeFrames || report.bytesSent !== wholeFrames) {
      fail(
        `flood: ${wholeFrames} bytes planned (whole ${payload}-byte frames), child sent ${report.bytesSent}, core delivered ${report.bytesReceived}`,
      );
    }
    await pinger.stop();
    for (const problem of pinger.failures) fail(problem);
    control.close();
    await waitFor(() => core.stats().connections === 0, 10_000, "every connection to close").catch(() => {});
    report.finalStats = core.stats();
    for (const problem of accountingProblems(report.finalStats, { connections: 0, clients: 2 })) {
      fail(`leak: ${problem}`);
    }
  } catch (err) {
    fail(`flood aborted: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    child?.kill("SIGKILL");
    if (child) await deadline(child.exited, 5000, "the flood child to exit").catch(() => {});
    await pinger?.stop();
    control?.close();
    await app?.stop();
    await core.close();
    await dir.remove();
    rss?.stop();
    crashes.dispose();
  }
  report.durationMs = performance.now() - started;
  report.mibPerSecond = report.bytesReceived / MiB / (report.durationMs / 1000);
  report.rssPeak = rss?.peak ?? 0;
  report.controlRoundTrips = pinger?.roundTrips ?? 0;
  report.controlMaxLatencyMs = pinger?.maxLatencyMs ?? 0;
  if (report.peakInputBytes > options.inputBytes + MiB) {
    fail(`unread input reached ${report.peakInputBytes} bytes, over the cap ${options.inputBytes} + 1 MiB`);
  }
  if (report.pausedPhases === 0) fail("the core never paused the flooder");
  if (report.rssNoReadPeak - report.rssBaseline >= report.rssBound) {
    fail(
      `RSS grew by ${
        formatBytes(report.rssNoReadPeak - report.rssBaseline)
      } while the application did not read, over inputBytes + 64 MiB = ${formatBytes(report.rssBound)}`,
    );
  }
  for (const sample of crashes.samples) fail(sample);
  for (const err of app?.errors ?? []) {
    fail(`ioIteration loop: ${err instanceof Error ? err.stack : String(err)}`);
  }
  report.crashes = crashes.total + (app?.errors.length ?? 0);
  return report;
}

// ---------------------------------------------------------------------------------------------
// Soak

/**
 * Message `seq` of the soak: seq (u32), size (u32), FNV-1a of the body (u32), then 0..127 body bytes.
 *
 * @example
 * ```ts
 * core.sendMessagesToClient(id, [soakMessage(0), soakMessage(1)]);
 * ```
 */
export function soakMessage(seq: number): Uint8Array {
  const size = 12 + ((Math.imul(seq, 2654435761) >>> 24) & 127);
  const m = new Uint8Array(size);
  for (let i = 12; i < size; i++) m[i] = (seq + i * 31) & 0xff;
  const view = new DataView(m.buffer);
  view.setUint32(0, seq, true);
  view.setUint32(4, size, true);
  view.setUint32(8, fnv(FNV_OFFSET, m.subarray(12)), true);
  return m;
}

/** Checks messages of one direction of the soak: order, duplicates, gaps and checksums. */
class SoakChecker {
  next = 0;
  received = 0;
  lost = 0;
  duplicatedOrLate = 0;
  corrupt = 0;
  readonly #label: string;
  readonly #fail: (message: string) => void;

  constructor(label: string, fail: (message: string) => void) {
    this.#label = label;
    this.#fail = fail;
  }

  check(m: Uint8Array): void {
    this.received++;
    const view = new DataView(m.buffer, m.byteOffset, m.byteLength);
    if (
      m.length < 12 || view.getUint32(4, true) !== m.length ||
      view.getUint32(8, true) !== fnv(FNV_OFFSET, m.subarray(12))
    ) {
      if (this.corrupt++ < 3) this.#fail(`${this.#label}: corrupt message after sequence ${this.next - 1}`);
      return;
    }
    const seq = view.getUint32(0, true);
    if (seq === this.next) {
      this.next++;
    } else if (seq > this.next) {
      if (this.lost === 0) this.#fail(`${this.#label}: expected sequence ${this.next}, got ${seq}`);
      this.lost += seq - this.next;
      this.next = seq + 1;
    } else {
      if (this.duplicatedOrLate++ < 3) {
        this.#fail(`${this.#label}: sequence ${seq} again after ${this.next - 1}`);
      }
    }
  }
}

/** Options for {@linkcode runSoak}. */
export interface SoakOptions {
  /** Messages the client core sends (each echoed back by the server core). */
  messages: number;
  /**
   * Messages in flight (sent, not yet echoed) at most.
   * @default {20000}
   */
  window?: number;
  /**
   * Messages per send call.
   * @default {2000}
   */
  batch?: number;
  /**
   * Messages queued right before each graceful close (server to client, then client to server).
   * @default {100000}
   */
  tail?: number;
  /**
   * Bound on the whole run.
   * @default {900000}
   */
  timeoutMs?: number;
  /** Called about once a second with the report so far. */
  progress?: (report: SoakReport) => void;
}

/** One direction's tally. */
export interface SoakDirection {
  /** Messages checked. */
  received: number;
  /** Missing sequence numbers. */
  lost: number;
  /** Sequence numbers seen again or out of order. */
  duplicatedOrLate: number;
  /** Messages whose size or checksum was wrong. */
  corrupt: number;
}

/** What a soak run measured. */
export interface SoakReport {
  /** Runtime and version. */
  runtime: string;
  /** Messages sent client to server (and echoed back). */
  messages: number;
  /** Payload bytes client to server. */
  bytes: number;
  /** Wall time of the main phase. */
  durationMs: number;
  /** Round-tripped messages per second in the main phase. */
  perSecond: number;
  /** Client to server, as the server checked it. */
  toServer: SoakDirection;
  /** The echoes, as the client checked them. */
  echoes: SoakDirection;
  /** The server's tail before its graceful close, as the client checked it. */
  serverTail: SoakDirection & { sent: number; cleanClose: boolean };
  /** The client's tail before its graceful close, as the server checked it. */
  clientTail: SoakDirection & { sent: number; cleanClose: boolean };
  /** RSS before and at peak. */
  rssBaseline: number;
  /** Peak RSS. */
  rssPeak: number;
  /** Uncaught exceptions, unhandled rejections and errors out of ioIteration. */
  crashes: number;
  /** Everything that went wrong (capped). */
  failures: string[];
}

function direction(c: SoakChecker): SoakDirection {
  return { received: c.received, lost: c.lost, duplicatedOrLate: c.duplicatedOrLate, corrupt: c.corrupt };
}

/**
 * A client core sends `messages` sequence-numbered, checksummed messages to a server core, which
 * checks and echoes them; the client checks the echoes. Then the server queues `tail` messages and
 * closes gracefully (`markClientConnectionAsReadyToBeClosed`), and the client must get them all
 * before the disconnection; then the client reconnects and does the same the other way.
 *
 * @example
 * ```ts
 * const report = await runSoak({ messages: 200_000, tail: 20_000 });
 * console.log(report.perSecond, report.toServer.lost, report.serverTail.received);
 * ```
 */
export async function runSoak(options: SoakOptions): Promise<SoakReport> {
  const total = options.messages;
  const window = options.window ?? 20_000;
  const batch = options.batch ?? 2000;
  const tail = options.tail ?? 100_000;
  const timeout = options.timeoutMs ?? 900_000;
  const crashes = CrashMonitor.install();
  const rss = new RssSampler();
  const failures: string[] = [];
  const fail = (message: string): void => {
    if (failures.length < 50) failures.push(message);
  };
  const logger = { error: (message: string) => fail(`core logged an error: ${message}`) };
  const server = new IoCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }], logger });
  const client = new IoCore({ logger });
  const toServer = new SoakChecker("client to server", fail);
  const echoes = new SoakChecker("echoes", fail);
  const serverTail = new SoakChecker("server tail", fail);
  const clientTail = new SoakChecker("client tail", fail);
  const report: SoakReport = {
    runtime: runtimeLabel(),
    messages: 0,
    bytes: 0,
    durationMs: 0,
    perSecond: 0,
    toServer: direction(toServer),
    echoes: direction(echoes),
    serverTail: { ...direction(serverTail), sent: 0, cleanClose: false },
    clientTail: { ...direction(clientTail), sent: 0, cleanClose: false },
    rssBaseline: rss.baseline,
    rssPeak: rss.baseline,
    crashes: 0,
    failures,
  };
  let serverApp: AppLoop | undefined;
  let clientApp: AppLoop | undefined;
  const started = performance.now();
  try {
    const [addr] = await server.listen();
    const sid = server.addClient({ keyword: "soak" });
    // Phases: "main" (echo), "server-tail" (server closes gracefully), "client-tail" (client does).
    let phase: "main" | "server-tail" | "client-tail" | "done" = "main";
    let serverClosed = false;
    let clientClosed = false;
    let connected = false;
    let sent = 0;
    serverApp = new AppLoop(server, (r) => {
      if (r.clientsHaveDataToRead.has(sid)) {
        const messages = server.getMessagesFromClient(sid);
        if (phase === "client-tail") {
          for (const m of messages) clientTail.check(m);
        } else {
          const echo: Uint8Array[] = [];
          let closing = false;
          for (const m of messages) {
            if (m.length === 4 && text(m) === "TAIL") {
              // Everything echoed so far goes first, then the tail, then the graceful close.
              for (let i = 0; i < tail; i++) echo.push(soakMessage(i));
              report.serverTail.sent = tail;
              closing = true;
              break;
            }
            toServer.check(m);
            echo.push(m);
          }
          server.sendMessagesToClient(sid, echo);
          if (closing) server.markClientConnectionAsReadyToBeClosed(sid);
        }
      }
      if (r.clientsWithDisconnectedConnection.has(sid)) {
        for (const m of server.getMessagesFromClient(sid)) {
          (phase === "client-tail" ? clientTail : toServer).check(m);
        }
        const err = server.getClientInfo(sid)?.lastError;
        if (err) fail(`server: the ${phase} connection ended with ${err}`);
        serverClosed = true;
      }
    }, 20);
    let cid = client.addClient({ keyword: "soak", connect: targetOf(addr) });
    const pump = (): void => {
      while (phase === "main" && connected && sent < total && sent - echoes.received < window) {
        const n = Math.min(batch, total - sent);
        const messages: Uint8Array[] = new Array(n);
        for (let i = 0; i < n; i++) {
          const m = soakMessage(sent + i);
          messages[i] = m;
          report.bytes += m.length;
        }
        client.sendMessagesToClient(cid, messages);
        sent += n;
      }
    };
    clientApp = new AppLoop(client, (r) => {
      if (r.newlyConnectedExpectedClients.has(cid)) connected = true;
      if (r.clientsHaveDataToRead.has(cid)) {
        for (const m of client.getMessagesFromClient(cid)) (phase === "main" ? echoes : serverTail).check(m);
      }
      if (r.clientsWithDisconnectedConnection.has(cid)) {
        connected = false;
        for (const m of client.getMessagesFromClient(cid)) (phase === "main" ? echoes : serverTail).check(m);
        const err = client.getClientInfo(cid)?.lastError;
        if (err) fail(`client: the ${phase} connection ended with ${err}`);
        clientClosed = true;
      }
      pump();
    }, 20);

    const end = Date.now() + timeout;
    let lastProgress = performance.now();
    const progress = (): void => {
      const now = performance.now();
      if (!options.progress || now - lastProgress < 1000) return;
      lastProgress = now;
      report.messages = echoes.received;
      report.durationMs = now - started;
      report.perSecond = echoes.received / (report.durationMs / 1000);
      report.rssPeak = rss.peak;
      options.progress(report);
    };
    const until = async (condition: () => boolean, label: string): Promise<void> => {
      while (!condition()) {
        if (Date.now() > end) throw new HangError(`Timed out after ${timeout} ms waiting for ${label}`);
        if (clientClosed && phase === "main") {
          throw new Error("the client connection closed during the main phase");
        }
        await sleep(10);
        progress();
      }
    };
    await until(() => connected, "the client core to connect");
    pump();
    await until(() => echoes.received + echoes.corrupt >= total || echoes.next >= total, "every echo");
    report.messages = echoes.received;
    report.durationMs = performance.now() - started;
    report.perSecond = echoes.received / (report.durationMs / 1000);
    if (toServer.received !== total || toServer.next !== total) {
      fail(`the server got ${toServer.received} of ${total}`);
    }

    // Server to client: queue a tail, close gracefully; the client must get all of it first.
    phase = "server-tail";
    client.sendMessageToClient(cid, "TAIL");
    await until(() => serverClosed && clientClosed, "the server's graceful close");
    report.serverTail.cleanClose = !client.getClientInfo(cid)?.lastError &&
      !server.getClientInfo(sid)?.lastError;
    if (serverTail.received !== tail || serverTail.next !== tail) {
      fail(`server tail: the client got ${serverTail.received} of ${tail} before the close`);
    }

    // Client to server: reconnect, queue a tail, close gracefully; the server must get all of it.
    phase = "client-tail";
    serverClosed = clientClosed = false;
    client.removeClient(cid);
    cid = client.addClient({ keyword: "soak", connect: targetOf(addr) });
    await until(() => connected, "the client core to reconnect");
    const tailMessages: Uint8Array[] = [];
    for (let i = 0; i < tail; i++) tailMessages.push(soakMessage(i));
    client.sendMessagesToClient(cid, tailMessages);
    client.markClientConnectionAsReadyToBeClosed(cid);
    report.clientTail.sent = tail;
    await until(() => serverClosed && clientClosed, "the client's graceful close");
    report.clientTail.cleanClose = !client.getClientInfo(cid)?.lastError &&
      !server.getClientInfo(sid)?.lastError;
    if (clientTail.received !== tail || clientTail.next !== tail) {
      fail(`client tail: the server got ${clientTail.received} of ${tail} before the close`);
    }
    phase = "done";
    for (
      const [name, stats, clients] of [["server", server.stats(), 1], ["client", client.stats(), 1]] as const
    ) {
      for (const problem of accountingProblems(stats, { connections: 0, clients })) {
        fail(`${name} leak: ${problem}`);
      }
    }
  } catch (err) {
    fail(`soak aborted: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  } finally {
    await clientApp?.stop();
    await serverApp?.stop();
    await client.close();
    await server.close();
    rss.stop();
    crashes.dispose();
  }
  report.toServer = direction(toServer);
  report.echoes = direction(echoes);
  report.serverTail = { ...report.serverTail, ...direction(serverTail) };
  report.clientTail = { ...report.clientTail, ...direction(clientTail) };
  for (const [name, d] of [["client to server", report.toServer], ["echoes", report.echoes]] as const) {
    if (d.lost || d.duplicatedOrLate || d.corrupt) {
      fail(`${name}: ${d.lost} lost, ${d.duplicatedOrLate} duplicated or late, ${d.corrupt} corrupt`);
    }
  }
  report.rssPeak = rss.peak;
  for (const sample of crashes.samples) fail(sample);
  for (const err of [...(serverApp?.errors ?? []), ...(clientApp?.errors ?? [])]) {
    fail(`ioIteration loop: ${err instanceof Error ? err.stack : String(err)}`);
  }
  report.crashes = crashes.total + (serverApp?.errors.length ?? 0) + (clientApp?.errors.length ?? 0);
  return report;
}
