/**
 * The one framed wire peer of the suite: a raw connection through the runtime's native transport that
 * speaks the wire protocol itself (8-byte little-endian length + payload), so the core is checked
 * against the wire format and not against itself.
 *
 * @module
 */
import {
  type Addr,
  type Connection,
  ConnectionClosedError,
  type ConnectOptions,
  encodeFrames,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  nativeTransport,
} from "../mod.ts";
import { HangError } from "./_helpers.ts";
import { wakeOrTimeout } from "./_settle.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options for {@linkcode WirePeer}. */
export interface WirePeerOptions {
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
  /**
   * Start in raw mode (see {@linkcode WirePeer.raw}), to see the core's answers as bytes on the wire.
   * @default {false}
   */
  raw?: boolean;
}

/**
 * A peer that speaks the wire protocol over a raw transport connection. Incoming frames are decoded
 * into an inbox; in raw mode ({@linkcode WirePeer.raw}) incoming bytes are kept undecoded instead.
 * Every wait is bounded and throws {@linkcode HangError} at its deadline.
 *
 * @example
 * ```ts
 * const peer = await WirePeer.handshake({ transport: "tcp", port }, "manager client");
 * peer.send("hello");
 * console.log(text(await peer.next(5000)));
 * peer.close();
 * ```
 */
export class WirePeer {
  /** The transport connection. */
  readonly conn: Connection;
  /** Bytes received so far (framed and raw). */
  receivedBytes = 0;
  /** The core half-closed. */
  ended = false;
  /** The connection is closed. */
  closed = false;
  /** Why it closed, when it was an error (or the core sent a malformed frame). */
  error: Error | undefined = undefined;
  /** When true, incoming bytes are kept as they are (see {@linkcode WirePeer.takeRaw}) instead of decoded. */
  raw = false;
  readonly #decoder: FrameDecoder;
  readonly #closeOnEnd: boolean;
  #inbox: Uint8Array[] = [];
  #head = 0;
  #rawChunks: Uint8Array[] = [];
  #rawLength = 0;
  #waiters: Array<() => void> = [];

  /** Wraps a connected transport connection and starts reading. */
  constructor(conn: Connection, options: WirePeerOptions = {}) {
    this.conn = conn;
    this.#decoder = new FrameDecoder({ maxMessageBytes: options.maxMessageBytes ?? 64 * 1024 * 1024 });
    this.#closeOnEnd = options.closeOnEnd ?? true;
    this.raw = options.raw ?? false;
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

  /** Connects over the native transport and, when `keyword` is given, announces it (without waiting for the answer). */
  static async connect(
    target: ConnectOptions,
    keyword?: string | Uint8Array,
    options?: WirePeerOptions,
  ): Promise<WirePeer> {
    const peer = new WirePeer(await nativeTransport().connect(target), options);
    if (keyword !== undefined) peer.send(keyword);
    return peer;
  }

  /** Connects, announces `keyword` and expects `OK`; throws with what came instead. */
  static async handshake(
    target: ConnectOptions,
    keyword: string | Uint8Array,
    timeoutMs = 10_000,
  ): Promise<WirePeer> {
    const peer = await WirePeer.connect(target, keyword);
    const answer = await peer.next(timeoutMs);
    if (text(answer) !== "OK") {
      peer.close();
      throw new Error(`Cannot complete handshake: expected OK, got ${text(answer)}`);
    }
    return peer;
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

  /** Takes every received message not yet taken. */
  takeAll(): Uint8Array[] {
    const messages = this.#inbox.slice(this.#head);
    this.#inbox = [];
    this.#head = 0;
    return messages;
  }

  /** Raw-mode bytes received and not yet taken. */
  get rawLength(): number {
    return this.#rawLength;
  }

  /** Takes every raw-mode byte received so far, in one buffer. */
  takeRaw(): Uint8Array {
    const out = new Uint8Array(this.#rawLength);
    let at = 0;
    for (const chunk of this.#rawChunks) {
      out.set(chunk, at);
      at += chunk.length;
    }
    this.#rawChunks = [];
    this.#rawLength = 0;
    return out;
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
  async until(condition: () => boolean, timeoutMs = 10_000, label = "a condition"): Promise<void> {
    const end = Date.now() + timeoutMs;
    while (!condition()) {
      const left = end - Date.now();
      if (left <= 0) throw new HangError(`Timed out after ${timeoutMs} ms waiting for ${label}`);
      await wakeOrTimeout(Math.min(left, 250), (wake) => this.#waiters.push(wake));
    }
  }

  /** The next message, or `undefined` once the connection closed with nothing left to take. */
  async next(timeoutMs = 10_000): Promise<Uint8Array | undefined> {
    await this.until(() => this.pending > 0 || this.closed, timeoutMs, "a message");
    return this.take();
  }

  /** Waits until the connection is closed. */
  waitClosed(timeoutMs = 10_000): Promise<void> {
    return this.until(() => this.closed, timeoutMs, "the connection to close");
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
    await this.until(() => this.conn.bufferedAmount === 0 || this.closed, timeoutMs, "our writes to flush");
    this.conn.close();
  }

  #onData(chunk: Uint8Array): void {
    this.receivedBytes += chunk.length;
    if (this.raw) {
      this.#rawChunks.push(chunk);
      this.#rawLength += chunk.length;
    } else {
      try {
        this.#decoder.push(chunk);
        for (let m = this.#decoder.next(); m !== undefined; m = this.#decoder.next()) this.#inbox.push(m);
      } catch (err) {
        this.error ??= err as Error;
        this.conn.close();
      }
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
 */
export function text(bytes: Uint8Array | undefined): string {
  return bytes ? decoder.decode(bytes) : "<none>";
}

/**
 * A connect target for a bound listener address (TCP or UNIX).
 *
 * @example
 * ```ts
 * const [addr] = await core.listen();
 * const peer = await WirePeer.connect(targetOf(addr));
 * ```
 */
export function targetOf(addr: Addr): ConnectOptions {
  if (addr.transport === "unix") return { transport: "unix", path: addr.path };
  if (addr.transport === "tcp") return { transport: "tcp", hostname: addr.hostname, port: addr.port };
  throw new TypeError(`Cannot connect a wire peer to ${JSON.stringify(addr)}: only tcp and unix`);
}

/**
 * One frame as it goes on the wire: the 8-byte little-endian length, then the payload.
 */
export function frameBytes(payload: string | Uint8Array): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const out = new Uint8Array(FRAME_HEADER_BYTES + body.length);
  out.set(frameHeader(body.length));
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

/**
 * A frame header alone: `length` as 8 bytes, little-endian (any length, even one no decoder accepts).
 */
export function frameHeader(length: number | bigint): Uint8Array {
  const header = new Uint8Array(FRAME_HEADER_BYTES);
  new DataView(header.buffer).setBigUint64(0, BigInt(length), true);
  return header;
}
