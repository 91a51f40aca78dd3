/**
 * {@linkcode connectWebSocket}: a named client of an asockio core over WebSocket, for Deno, Bun, Node 22+
 * (their global `WebSocket`) and Node 20 (`options.WebSocket`, from `ws`). It does the keyword
 * handshake and the shared-secret proof with WebCrypto, and reconnects with the core's policy.
 *
 * @example
 * ```ts
 * import { connectWebSocket } from "@asockio/core/websocket";
 * const client = await connectWebSocket("ws://127.0.0.1:8080/ws", { keyword: "tab", secret: "per-user secret" });
 * client.send("hello");
 * for await (const message of client) console.log(new TextDecoder().decode(message));
 * ```
 *
 * @module
 */
import { authProof, challengeNonce, importSecret } from "../core/wire/auth.ts";
import { toBytes } from "../core/wire/bytes.ts";
import { backoffDelay, type ReconnectOptions, resolveReconnect } from "../core/clients/reconnect.ts";
import {
  ConnectionClosedError,
  HandshakeRejectedError,
  SendBufferFullError,
  TimeoutError,
} from "../core/errors.ts";

export type { ReconnectOptions };

/** The part of the WHATWG `WebSocket` the client uses: the global one and `ws` both have it. */
export interface WebSocketLike {
  /** Set to `"arraybuffer"` by the client. */
  binaryType: string;
  /** Bytes queued and not yet sent. */
  readonly bufferedAmount: number;
  /** Called once open. */
  onopen: ((event: unknown) => void) | null;
  /** Called for each message. */
  onmessage: ((event: { data: unknown }) => void) | null;
  /** Called once closed, with the close code and reason. */
  onclose: ((event: { code: number; reason: string }) => void) | null;
  /** Called on a failure (a close follows). */
  onerror: ((event: unknown) => void) | null;
  /** Sends one message. */
  send(data: Uint8Array | string): void;
  /** Starts the close handshake. */
  close(code?: number, reason?: string): void;
}

/** A `WebSocket` constructor, such as `globalThis.WebSocket` or `ws`'s default export. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Options of {@linkcode connectWebSocket}. */
export interface ConnectWebSocketOptions {
  /** The keyword the core knows this client by. */
  keyword: string | Uint8Array;
  /** The shared secret, when the core registered the keyword with one. */
  secret?: string | Uint8Array;
  /**
   * How to reconnect after a lost connection; `false` not at all. A refusal is final, as for the core's
   * outgoing clients. Messages sent meanwhile wait, up to `bufferBytes`, and go out after the next handshake.
   * @default {the core's defaults (`ReconnectOptions`)}
   */
  reconnect?: ReconnectOptions | false;
  /**
   * The `WebSocket` class to use.
   * @default {globalThis.WebSocket}
   */
  WebSocket?: WebSocketConstructor;
  /**
   * Each connection must be open and admitted within this long.
   * @default {10000}
   */
  handshakeTimeoutMs?: number;
  /**
   * The most bytes `send` lets wait in the socket (its `bufferedAmount`): past it `send` throws
   * `SendBufferFullError` and takes nothing, and `drain()` tells when there is room again. A message
   * alone larger than the cap is taken when nothing waits, so every message can be sent.
   * @default {8388608}
   */
  maxBufferedBytes?: number;
}

/** A connected (or reconnecting) client; `for await` yields each message the core sends, as bytes. */
export interface WebSocketClient extends AsyncIterable<Uint8Array> {
  /**
   * Sends one message (a string as UTF-8); while reconnecting it waits in the send buffer. Throws
   * `SendBufferFullError`, taking nothing, when it would put `bufferedAmount` over
   * `maxBufferedBytes` (or the send buffer over `reconnect.bufferBytes`): `await drain()`, then send.
   */
  send(data: Uint8Array | string): void;
  /**
   * Resolves once `bufferedAmount` is at most half of `maxBufferedBytes` (at once when it is);
   * rejects with `ConnectionClosedError` when the client closes for good first. The WebSocket API
   * has no drain event: `bufferedAmount` is polled every 10 ms while someone waits.
   */
  drain(): Promise<void>;
  /** Resolves once the client is closed for good: `close()`, a refusal, or reconnecting given up. */
  readonly closed: Promise<void>;
  /** Why it closed for good, when that was an error. */
  readonly error: Error | undefined;
  /** Closes for good. */
  close(): void;
  /** Bytes handed to the socket and not yet sent, plus those waiting for the next connection. */
  readonly bufferedAmount: number;
}

const OK = "OK";
/** How often `drain()` looks at `bufferedAmount`. */
const DRAIN_POLL_MS = 10;
const decoder = new TextDecoder();

/**
 * Connects to an asockio `websocket` listener at `url` as the named client `options.keyword`; resolves
 * once the first handshake admitted it.
 *
 * @throws {HandshakeRejectedError} When the core refused the keyword (the reason is in `reason`).
 * @throws {ConnectionClosedError} When the first connection failed and `reconnect` is `false`.
 *
 * @example
 * ```ts
 * import { connectWebSocket } from "@asockio/core/websocket";
 * const client = await connectWebSocket("ws://127.0.0.1:8080/ws", { keyword: "tab", reconnect: false });
 * client.send(new Uint8Array([1, 2, 3]));
 * client.close();
 * ```
 */
export function connectWebSocket(url: string, options: ConnectWebSocketOptions): Promise<WebSocketClient> {
  const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
  if (typeof Ctor !== "function") {
    throw new TypeError(
      "Cannot connect WebSocket: no global WebSocket here (Node 20); pass options.WebSocket",
    );
  }
  if (typeof options.keyword !== "string" && !(options.keyword instanceof Uint8Array)) {
    throw new TypeError("Cannot connect WebSocket: keyword must be a string or a Uint8Array");
  }
  const client = new Client(url, options, Ctor);
  return client.firstAdmission.then(() => client);
}

class Client implements WebSocketClient {
  readonly #url: string;
  readonly #Ctor: WebSocketConstructor;
  readonly #keyword: Uint8Array;
  readonly #secret: Uint8Array | undefined;
  readonly #policy: ReturnType<typeof resolveReconnect>;
  readonly #timeoutMs: number;
  readonly #maxBuffered: number;
  /** `drain()` callers waiting for room, and the timer that polls for it. */
  #drainWaiters: { resolve(): void; reject(error: Error): void }[] = [];
  #drainTimer: ReturnType<typeof setTimeout> | undefined;
  #socket: WebSocketLike | undefined;
  #admitted = false;
  #failures = 0;
  #done = false;
  #error: Error | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** Messages sent while not admitted, and their bytes. */
  #outbox: Uint8Array[] = [];
  #outboxBytes = 0;
  #inbox: Uint8Array[] = [];
  #wake: (() => void) | undefined;
  #resolveClosed!: () => void;
  readonly closed: Promise<void> = new Promise((resolve) => (this.#resolveClosed = resolve));
  #settleFirst: ((error?: Error) => void) | undefined;
  readonly firstAdmission: Promise<void>;

  constructor(url: string, options: ConnectWebSocketOptions, Ctor: WebSocketConstructor) {
    this.#url = url;
    this.#Ctor = Ctor;
    this.#keyword = toBytes(options.keyword);
    this.#secret = options.secret === undefined ? undefined : toBytes(options.secret);
    this.#policy = resolveReconnect(options.reconnect);
    this.#timeoutMs = options.handshakeTimeoutMs ?? 10_000;
    this.#maxBuffered = options.maxBufferedBytes ?? 8 * 1024 * 1024;
    if (!(this.#maxBuffered > 0)) {
      throw new TypeError(
        `Cannot connect WebSocket: maxBufferedBytes must be a positive number, got ${options.maxBufferedBytes}`,
      );
    }
    this.firstAdmission = new Promise((resolve, reject) => {
      this.#settleFirst = (error) => (error ? reject(error) : resolve());
    });
    this.#open();
  }

  get error(): Error | undefined {
    return this.#error;
  }

  get bufferedAmount(): number {
    return (this.#socket?.bufferedAmount ?? 0) + this.#outboxBytes;
  }

  send(data: Uint8Array | string): void {
    if (this.#done) {
      throw new ConnectionClosedError("Cannot send: the WebSocket client is closed", { cause: this.#error });
    }
    const bytes = toBytes(data);
    if (this.#admitted) {
      const buffered = this.#socket!.bufferedAmount;
      if (buffered > 0 && buffered + bytes.length > this.#maxBuffered) {
        throw new SendBufferFullError(
          `Cannot send: ${buffered} bytes already wait in the socket (maxBufferedBytes ${this.#maxBuffered}); await drain()`,
        );
      }
      return this.#socket!.send(bytes);
    }
    const limit = this.#policy?.bufferBytes ?? 0;
    if (this.#outboxBytes + bytes.length > limit) {
      throw new SendBufferFullError(
        `Cannot send: ${this.#outboxBytes} bytes already wait for the connection (reconnect.bufferBytes ${limit})`,
      );
    }
    this.#outbox.push(bytes);
    this.#outboxBytes += bytes.length;
  }

  close(): void {
    this.#finish(undefined);
  }

  drain(): Promise<void> {
    if (this.#done) {
      return Promise.reject(
        new ConnectionClosedError("Cannot drain: the WebSocket client is closed", { cause: this.#error }),
      );
    }
    if (this.#hasRoom()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.#drainWaiters.push({ resolve, reject });
      this.#drainTimer ??= setTimeout(this.#pollDrain, DRAIN_POLL_MS);
    });
  }

  #hasRoom(): boolean {
    return this.bufferedAmount <= this.#maxBuffered / 2;
  }

  #pollDrain = (): void => {
    this.#drainTimer = undefined;
    if (this.#done || this.#drainWaiters.length === 0) return;
    if (!this.#hasRoom()) {
      this.#drainTimer = setTimeout(this.#pollDrain, DRAIN_POLL_MS);
      return;
    }
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) waiter.resolve();
  };

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array, void, undefined> {
    for (;;) {
      const next = this.#inbox.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.#done) return;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  #open(): void {
    const socket = new this.#Ctor(this.#url);
    this.#socket = socket;
    socket.binaryType = "arraybuffer";
    let proving = false;
    this.#timer = setTimeout(() => {
      socket.close();
      this.#lost(
        new TimeoutError(
          `Cannot connect WebSocket to ${this.#url}: no admission within ${this.#timeoutMs} ms`,
        ),
      );
    }, this.#timeoutMs);
    socket.onopen = () => socket.send(this.#keyword);
    socket.onmessage = ({ data }) => {
      if (socket !== this.#socket) return;
      const bytes = typeof data === "string" ? toBytes(data) : new Uint8Array(data as ArrayBuffer);
      if (this.#admitted) return this.#deliver(bytes);
      const nonce = proving ? undefined : challengeNonce(bytes);
      if (nonce !== undefined && this.#secret !== undefined) {
        proving = true;
        void this.#prove(socket, nonce.slice());
      } else if (decoder.decode(bytes) === OK) this.#admit();
      else {
        // A refusal is final: the reason, then close 1008.
        this.#finish(new HandshakeRejectedError(decoder.decode(bytes)));
      }
    };
    socket.onerror = () => {};
    socket.onclose = ({ code, reason }) => {
      if (socket !== this.#socket) return;
      this.#lost(
        new ConnectionClosedError(`WebSocket to ${this.#url} closed (${code}${reason ? ` ${reason}` : ""})`),
      );
    };
  }

  async #prove(socket: WebSocketLike, nonce: Uint8Array): Promise<void> {
    const proof = await authProof(await importSecret(this.#secret!), nonce, this.#keyword);
    if (socket === this.#socket) socket.send(proof);
  }

  #admit(): void {
    clearTimeout(this.#timer);
    this.#admitted = true;
    this.#failures = 0;
    const outbox = this.#outbox;
    this.#outbox = [];
    this.#outboxBytes = 0;
    for (const message of outbox) this.#socket!.send(message);
    this.#settleFirst?.();
    this.#settleFirst = undefined;
  }

  #deliver(bytes: Uint8Array): void {
    this.#inbox.push(bytes);
    this.#wake?.();
    this.#wake = undefined;
  }

  /** The connection went away: reconnect with backoff, or finish. */
  #lost(error: Error): void {
    if (this.#done) return;
    clearTimeout(this.#timer);
    this.#admitted = false;
    this.#socket = undefined;
    const policy = this.#policy;
    if (policy === undefined || ++this.#failures > policy.maxAttempts) return this.#finish(error);
    this.#timer = setTimeout(() => this.#open(), backoffDelay(policy, this.#failures - 1));
  }

  #finish(error: Error | undefined): void {
    if (this.#done) return;
    this.#done = true;
    this.#error = error;
    clearTimeout(this.#timer);
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.close(1000);
    this.#outbox = [];
    this.#outboxBytes = 0;
    this.#settleFirst?.(
      error ?? new ConnectionClosedError("Cannot connect WebSocket: closed before admission"),
    );
    this.#settleFirst = undefined;
    this.#wake?.();
    clearTimeout(this.#drainTimer);
    this.#drainTimer = undefined;
    const waiters = this.#drainWaiters;
    this.#drainWaiters = [];
    for (const waiter of waiters) {
      waiter.reject(new ConnectionClosedError("Cannot drain: the WebSocket client closed", { cause: error }));
    }
    this.#resolveClosed();
  }
}
