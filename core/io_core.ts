/**
 * {@linkcode IoCore}: one scheduler over many listeners and outgoing connections, with named
 * (expected) clients bound by a keyword handshake, unknown raw clients, two API styles and global
 * memory limits. This file is the public face only; the parts live beside it (see `scheduler.ts`).
 *
 * @module
 */
import { toBytes } from "./wire/bytes.ts";
import { checkMessage, checkMessages, messageArray, messageList } from "./engine/message_check.ts";
import { keywordKey } from "./clients/client_registry.ts";
import { CoreClosedError, UnknownClientError } from "./errors.ts";
import type {
  AddClientOptions,
  IoCoreOptions,
  IoIterationOptions,
  MessagesOptions,
  ShutdownOptions,
} from "./options.ts";
import {
  checkAddClientOptions,
  checkIoCoreOptions,
  IO_ITERATION_OPTIONS,
  MESSAGES_OPTIONS,
  SHUTDOWN_OPTIONS,
} from "./option_tables.ts";
import { boolean, bytesOrText, callable, milliseconds } from "./options_check.ts";
import type { InlineProcessorClass } from "./processor.ts";
import { type FrameBatch, frameBatchRuns } from "./wire/frame_batch.ts";
import { Scheduler } from "./engine/scheduler.ts";
import { ClientIds } from "./engine/client_ids.ts";
import { type MessageStreamSource, startMessageStream } from "./connection/message_stream_send.ts";
import type { Addr, TransportName } from "../transports/types.ts";
import type { ClientId, ClientInfo, IoCoreStats, IoIterationResult, Keyword } from "./types.ts";
import type { ListenerInfo, MessageStream } from "./types.ts";

const DEFAULT_HIGH_WATER_MARK_BYTES = 1024 * 1024;
const WAIT_MS = milliseconds(0, true);
/** The options of a call made without any: nothing to check, in the loop that calls `ioIteration`. */
const NO_OPTIONS: IoIterationOptions = Object.freeze({});

function hasEvents(events: IoIterationResult): boolean {
  return events.newlyConnectedExpectedClients.size > 0 || events.newlyConnectedUnknownClients.size > 0 ||
    events.clientsWithDisconnectedConnection.size > 0 || events.clientsHaveDataToRead.size > 0 ||
    events.clientsWithEmptyOutputFifo.size > 0 || events.clientsHaveMessageStream.size > 0;
}

/**
 * The socket core: listeners, named and unknown clients, outgoing connections, framed and raw
 * traffic, both API styles and memory limits, on one event loop.
 *
 * Wire protocol (the Python FI-ASockIOCore's, so the two interoperate): every message is an
 * 8-byte little-endian length and the payload. The connecting side's first message is its keyword;
 * the accepting side answers `OK` when it admits the connection, or a short reason and closes.
 *
 * @example Plain-code API: a server that answers every message
 * ```ts
 * import { IoCore } from "@asockio/core";
 *
 * await using core = new IoCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }] });
 * const [addr] = await core.listen();
 * const manager = core.addClient({ keyword: "manager client" });
 * const result = await core.ioIteration(100);
 * for (const id of result.clientsHaveDataToRead) {
 *   core.sendMessagesToClient(id, core.getMessagesFromClient(id));
 * }
 * ```
 */
export class IoCore implements AsyncDisposable, AsyncIterable<IoIterationResult> {
  readonly #scheduler: Scheduler;
  readonly #ids: ClientIds;
  /** True while a `for await` loop consumes the events. */
  #iterating = false;
  /** The pending `listen()`, which concurrent calls share. */
  #binding: Promise<Addr[]> | undefined = undefined;

  /**
   * Creates a core. Nothing is bound until {@linkcode listen}. Every option is checked here, listeners
   * and limits included: an unknown name or a wrong value throws a `TypeError` (or a `RangeError` for
   * a number out of range) naming it, with the nearest known name for a misspelt one.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore({
   *   listeners: [{ transport: "tcp", port: 0 }, { transport: "unix", path: "/tmp/app.sock" }],
   *   limits: { inputBytes: 64 * 1024 * 1024 },
   * });
   * ```
   */
  constructor(options: IoCoreOptions = {}) {
    checkIoCoreOptions(options);
    this.#scheduler = new Scheduler(options);
    this.#ids = new ClientIds(this.#scheduler.registry, () => this.#scheduler.closed);
  }

  /** The transport in use (`"deno"`, `"bun"` or `"node"`). */
  get transportName(): TransportName {
    return this.#scheduler.transport.name;
  }

  /** The bound listeners, in the order given in the options. */
  get listeners(): readonly ListenerInfo[] {
    return this.#scheduler.listeners.infos;
  }

  /**
   * Binds every listener and starts accepting. Resolves with the bound addresses (with `port: 0`
   * resolved), in the order given. If one fails, those already bound are closed again. A UDP
   * listener on Deno without `--unstable-net` rejects with `UnsupportedError`. Calls made while one
   * is binding share its outcome; a call after it succeeded or after `stopAccepting()` rejects with a
   * `TypeError`, and one after `close()` with `CoreClosedError`; one after a failure binds again. It never throws: every failure is a rejection.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore({ listeners: [{ transport: "tcp", port: 0 }] });
   * const [addr] = await core.listen();
   * if (addr.transport === "tcp") console.log(`listening on port ${addr.port}`);
   * ```
   */
  listen(): Promise<Addr[]> {
    if (this.#binding) return this.#binding;
    let binding: Promise<Addr[]>;
    try {
      binding = this.#scheduler.listen();
    } catch (err) {
      return Promise.reject(err);
    }
    this.#binding = binding;
    const settled = () => this.#binding = undefined;
    binding.then(settled, settled);
    return binding;
  }

  /**
   * Registers an expected (named) client and returns its id. Without `connect`, a peer announcing
   * `keyword` is bound to it; a connection already holding that unexpected keyword is adopted at
   * once. With `connect`, this core connects out and announces `keyword` there. The options are
   * checked at the call (`connect` as a listener is), so an impossible address throws a `TypeError`
   * or `RangeError` instead of retrying forever; after `close()` it throws `CoreClosedError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * const manager = core.addClient({ keyword: "manager client" });
   * const upstream = core.addClient({ keyword: "worker-7", connect: { transport: "tcp", port: 25000 } });
   * ```
   */
  addClient(options: AddClientOptions): ClientId {
    checkAddClientOptions(options);
    return this.#scheduler.addClient(options);
  }

  /**
   * The id of the client registered with `keyword`, or `undefined`; also after `close()`. A keyword
   * that is neither a string nor a `Uint8Array` throws a `TypeError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * const id = core.addClient({ keyword: "manager client" });
   * console.log(core.getClientIdByKeyword("manager client") === id); // true
   * ```
   */
  getClientIdByKeyword(keyword: Keyword): ClientId | undefined {
    bytesOrText(keyword, "keyword", "find client by keyword");
    return this.#scheduler.registry.byKeyword(keywordKey(toBytes(keyword)))?.id;
  }

  /**
   * A snapshot of a client: keyword, connection state, addresses, listener, raw mode and last error.
   * Returns `undefined` for an unknown id (unknown clients are forgotten once disconnected and read),
   * and answers after `close()` as well. An id that is not a positive integer throws a `TypeError`
   * or `RangeError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * const id = core.addClient({ keyword: "manager client" });
   * console.log(core.getClientInfo(id)?.state); // "disconnected"
   * ```
   */
  getClientInfo(id: ClientId): ClientInfo | undefined {
    const record = this.#ids.query(id, "get client info");
    return record && this.#scheduler.clientInfo(record);
  }

  /**
   * Waits for I/O events and returns those gathered since the last call. Resolves at once if some
   * are pending, as soon as one arrives, or after `timeoutMs` with empty sets. I/O runs in the
   * event loop all the time, not only inside this call. One call at a time, and not while a
   * `for await` loop consumes the events.
   *
   * After `close()` it rejects with a `CoreClosedError`, so a loop ends instead of spinning; a call
   * pending when `close()` is called resolves with the final events (the disconnections). An
   * aborted `options.signal` rejects that call with the signal's reason, and the core stays open.
   * It never throws: a `timeoutMs` that is not a number from 0 to 2147483647 (or `Infinity`), an
   * unknown option, or a second concurrent wait rejects with a `TypeError` or `RangeError`.
   *
   * @example A loop that ends when the core closes
   * ```ts
   * import { CoreClosedError, IoCore } from "@asockio/core";
   * const core = new IoCore({ listeners: [{ transport: "tcp", port: 0 }] });
   * await core.listen();
   * setTimeout(() => core.close(), 1000);
   * try {
   *   for (;;) {
   *     const r = await core.ioIteration(500);
   *     for (const id of r.clientsHaveDataToRead) console.log(id, core.getMessagesFromClient(id));
   *   }
   * } catch (err) {
   *   if (!(err instanceof CoreClosedError)) throw err;
   * }
   * ```
   */
  ioIteration(timeoutMs = 0, options: IoIterationOptions = NO_OPTIONS): Promise<IoIterationResult> {
    const scheduler = this.#scheduler;
    try {
      WAIT_MS(timeoutMs, "timeoutMs", "wait in ioIteration");
      if (options !== NO_OPTIONS) IO_ITERATION_OPTIONS(options, "options", "wait in ioIteration");
      if (this.#iterating) {
        throw new TypeError("Cannot wait in ioIteration: a for await loop is consuming the core's events");
      }
      if (scheduler.closed && !scheduler.board.waiting) {
        throw new CoreClosedError("Cannot wait in ioIteration: the core is closed");
      }
      return scheduler.board.wait(timeoutMs, options.signal);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Yields each non-empty batch of events, as `ioIteration` returns them, and ends quietly when the
   * core closes (the last batch holds the disconnections). One consumer at a time: a second loop,
   * or an `ioIteration` call while it runs, throws a `TypeError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore({ listeners: [{ transport: "tcp", port: 0 }], signal: AbortSignal.timeout(1000) });
   * await core.listen();
   * for await (const events of core) {
   *   for (const id of events.clientsHaveDataToRead) core.sendMessagesToClient(id, core.getMessagesFromClient(id));
   * }
   * ```
   */
  async *[Symbol.asyncIterator](): AsyncGenerator<IoIterationResult, void, undefined> {
    if (this.#iterating || this.#scheduler.board.waiting) {
      throw new TypeError(
        "Cannot iterate the core: another loop or ioIteration call is consuming its events",
      );
    }
    this.#iterating = true;
    try {
      const scheduler = this.#scheduler;
      while (!scheduler.closed) {
        const events = await scheduler.board.wait(Infinity);
        if (hasEvents(events)) yield events;
      }
      // Closed while the loop body ran: the disconnections are still to be seen.
      const last = scheduler.board.take();
      if (hasEvents(last)) yield last;
    } finally {
      this.#iterating = false;
    }
  }

  /**
   * The client's messages (raw chunks in raw mode), in order, as an async iteration. It ends when
   * the client is removed or the core closes; a named client that disconnects and comes back keeps
   * the same iteration. While more than `highWaterMarkBytes` wait unread, reading from the client's
   * connection pauses (the global `inputBytes` cap applies as well). Breaking out of the loop ends
   * the iteration, not the client; an aborted `signal` ends it with the signal's reason. One
   * iteration per client at a time, and not for clients driven by a processor. After `close()` it
   * still yields what arrived before. An unknown id throws `UnknownClientError`; a malformed id or
   * option a `TypeError` or `RangeError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore({ listeners: [{ transport: "tcp", port: 0 }] });
   * await core.listen();
   * const worker = core.addClient({ keyword: "worker" });
   * for await (const message of core.messages(worker)) {
   *   core.sendMessageToClient(worker, message); // echo
   * }
   * ```
   */
  messages(id: ClientId, options: MessagesOptions = {}): AsyncIterable<Uint8Array> {
    MESSAGES_OPTIONS(options, "options", "read messages");
    const record = this.#ids.query(id, "read messages");
    if (!record) throw new UnknownClientError(`Cannot read messages: no client ${id}`);
    const highWaterMark = options.highWaterMarkBytes ?? DEFAULT_HIGH_WATER_MARK_BYTES;
    return this.#scheduler.inbox.read(record, highWaterMark, options.signal);
  }

  /**
   * Removes and returns the client's next unread message (or raw chunk), or `undefined` (also for
   * an unknown id). Messages that arrived before `close()` can still be read.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * const id = core.addClient({ keyword: "manager client" });
   * const message = core.getMessageFromClient(id); // undefined until it sends something
   * ```
   */
  getMessageFromClient(id: ClientId): Uint8Array | undefined {
    const record = this.#ids.query(id, "get message");
    return record && this.#scheduler.takeMessage(record);
  }

  /**
   * Removes and returns all of the client's unread messages (or raw chunks), oldest first; `[]` for
   * an unknown id. Messages that arrived before `close()` can still be read.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * const id = core.addClient({ keyword: "manager client" });
   * for (const message of core.getMessagesFromClient(id)) console.log(message.length);
   * ```
   */
  getMessagesFromClient(id: ClientId): Uint8Array[] {
    const record = this.#ids.query(id, "get messages");
    return record ? this.#scheduler.takeMessages(record) : [];
  }

  /**
   * Takes the client's streamed message (see `IoCoreOptions.streamThresholdBytes`) once the messages
   * before it are read (`getMessagesFromClient`, `takeFrames`, `messages()` stop before it); those
   * after it wait until it is read to its end or cancelled.
   * @returns The stream, or `undefined` when none is next (or it was taken already).
   * @example Read a large message as it arrives
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, id: number;
   * for await (const chunk of core.takeMessageStream(id)?.readable ?? []) console.log(chunk.length);
   * ```
   */
  takeMessageStream(id: ClientId): MessageStream | undefined {
    return this.#ids.query(id, "take message stream")?.takeStream();
  }

  /**
   * Sends one message of `byteLength` bytes read from `source` as fast as the connection drains (about
   * 1 MiB queued at most); messages sent after it, with any API, follow it whole. A source yielding
   * fewer or more bytes rejects with `StreamLengthError`, one that throws with an `AsockioError` (its
   * `cause`), and either closes the connection (the peer never gets the frame as complete). A lost
   * connection rejects with its error: a stream is never resent. UDP or raw mode: `UnsupportedError`.
   * @returns Resolves once the last byte was handed to the transport.
   * @example Forward a stream with bounded memory
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, from: number, to: number;
   * const stream = core.takeMessageStream(from)!;
   * await core.sendMessageStream(to, stream.readable, stream.byteLength);
   * ```
   */
  async sendMessageStream(id: ClientId, source: MessageStreamSource, byteLength: number): Promise<void> {
    const record = this.#ids.client(id, "send message stream");
    await startMessageStream(record, this.#scheduler.budget, source, byteLength, id);
  }

  /**
   * Removes and returns the client's unread messages as one {@linkcode FrameBatch}: the bytes they
   * arrived in, with no view or allocation per message. It mixes freely with
   * `getMessageFromClient(s)`: each takes the oldest unread messages.
   *
   * Raw chunks are never part of a batch: a batch stops at the first one, and `takeFrames` returns
   * `undefined` while a raw chunk is the oldest unread item (read it with `getMessageFromClient`).
   * A raw client's inbox holds only raw chunks, so it always returns `undefined` there.
   *
   * The batch's bytes stay valid until it is sent or dropped: keeping it pins its read buffers, which
   * the transport never reuses meanwhile.
   *
   * @returns The batch, or `undefined` when no framed message is next (none unread, a raw chunk
   *   next, or no such client).
   *
   * @example Echo everything at the batch API's speed
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * for (const id of (await core.ioIteration(100)).clientsHaveDataToRead) {
   *   const batch = core.takeFrames(id);
   *   if (batch) core.sendFrames(id, batch);
   * }
   * ```
   */
  takeFrames(id: ClientId): FrameBatch | undefined {
    const record = this.#ids.query(id, "take frames");
    return record && this.#scheduler.takeFrames(record);
  }

  /**
   * Queues a batch from {@linkcode takeFrames} (or `InlineProcessor.onFramesReceived`) for a client,
   * the one it came from or another (forwarding), as its bytes: neither copied nor re-encoded, also
   * on a connection in raw mode. The payload bytes may be changed in place before, never after; a
   * batch whose frame headers were written into is refused, so the peer's framing stays intact.
   * Counted as output until written. A batch is sent once; it otherwise follows
   * {@linkcode sendMessagesToClient} (an away outgoing client keeps its messages while reconnecting).
   *
   * @throws {TypeError} For anything but a batch this core made and did not send yet: a forged
   *   object, another core's batch, one already sent, or one whose frame headers were changed.
   * @throws {UnknownClientError} For an unknown id; `CoreClosedError` after `close()`.
   *
   * @example Forward everything from one client to another
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, from: number, to: number;
   * const batch = core.takeFrames(from);
   * if (batch) core.sendFrames(to, batch);
   * ```
   */
  sendFrames(id: ClientId, batch: FrameBatch): void {
    const scheduler = this.#scheduler;
    if (scheduler.registry.get(id) === undefined || scheduler.closed) {
      frameBatchRuns(batch, scheduler.budget, "send frames"); // a bad batch is named first
      throw this.#ids.refused(id, "send frames");
    }
    scheduler.sender.sendFrames(id, batch);
  }

  /**
   * Queues one message for the client: framed, or as raw bytes in raw mode. Strings are sent as
   * UTF-8. Writes made in the same tick go out in one write. It works from anywhere: a timer, a
   * database callback or another client's handler, for answers that arrive later.
   *
   * An outgoing client that is reconnecting keeps whole messages, up to `reconnect.bufferBytes`,
   * and sends them right after its next handshake; past that it throws `SendBufferFullError`.
   * Otherwise it throws `ConnectionClosedError` when the client has no open connection: nothing is
   * dropped silently. To a UDP client the message is one datagram: over 65,507 bytes (IPv4) or
   * `maxMessageBytes` it throws `MessageTooLargeError` and sends nothing.
   *
   * The message must be a `Uint8Array` (a Node `Buffer` is one) or a string: anything else, another
   * typed array included, throws a `TypeError` and queues nothing. An unknown id throws
   * `UnknownClientError`, and every send after `close()` throws `CoreClosedError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, id: number;
   * core.sendMessageToClient(id, "hello");
   * ```
   */
  sendMessageToClient(id: ClientId, message: Uint8Array | string): void {
    checkMessage(message, "message", "send message");
    if (this.#scheduler.closed) throw this.#ids.refused(id, "send message");
    try {
      this.#scheduler.sender.sendOne(id, toBytes(message));
    } catch (err) {
      throw this.#ids.sendFailed(err, id, "send message");
    }
  }

  /**
   * Queues several messages for the client, in order, written in one batch. Messages received and
   * sent on in the order they came (echo, forwarding) are written from the received bytes, neither
   * copied nor re-encoded. As with every send, do not modify a message after queueing it. All of
   * them are checked first (see {@linkcode sendMessageToClient}): if one is refused, none is queued.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, id: number;
   * core.sendMessagesToClient(id, ["one", new Uint8Array([2])]);
   * ```
   */
  sendMessagesToClient(id: ClientId, messages: Iterable<Uint8Array | string>): void {
    const list = messageArray(messages, "send messages");
    if (this.#scheduler.closed) {
      checkMessages(list, "send messages");
      throw this.#ids.refused(id, "send messages");
    }
    try {
      this.#scheduler.sender.sendMany(id, list, "send messages");
    } catch (err) {
      throw this.#ids.sendFailed(err, id, "send messages");
    }
  }

  /**
   * Sends one message to the named client with `keyword`, wherever it is connected: in this core
   * (as {@linkcode sendMessagesToClient} does, an away outgoing client's send buffer included), or
   * on another node of `options.cluster`. Resolves once the holder queued it. Messages from one
   * sender to one keyword arrive in the order sent. Delivery is at most once.
   *
   * @throws {TypeError} (synchronously) For a keyword or message that is not a string or `Uint8Array`.
   * @returns Rejects with `ClientNotConnectedError` when no client with the keyword is connected,
   *   `TimeoutError` when the holding node did not answer in time (the message may have been queued),
   *   `CoreClosedError` after `close()`.
   *
   * @example
   * ```ts
   * import { ClientNotConnectedError, IoCore } from "@asockio/core";
   * const core = new IoCore({ acceptUnexpectedKeywords: "adopt" });
   * await core.sendMessageToKeyword("sensor-17", "ping").catch((err) => {
   *   if (!(err instanceof ClientNotConnectedError)) throw err; // offline: try later
   * });
   * ```
   */
  sendMessageToKeyword(keyword: Keyword, message: Uint8Array | string): Promise<void> {
    checkMessage(message, "message", "send message to keyword");
    return this.#toKeyword(keyword, [toBytes(message)], "send message to keyword");
  }

  /**
   * Sends several messages, in order, to the named client with `keyword` (see
   * {@linkcode sendMessageToKeyword}): all of them or, when refused, none.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * await core.sendMessagesToKeyword("sensor-17", ["one", "two"]);
   * ```
   */
  sendMessagesToKeyword(keyword: Keyword, messages: Iterable<Uint8Array | string>): Promise<void> {
    const list = messageList(messages, "send messages to keyword");
    return this.#toKeyword(keyword, list.map(toBytes), "send messages to keyword");
  }

  /**
   * Where the named client with `keyword` is connected: `{ node }` naming this core's node (the
   * cluster's `node`, or a name unique to this process) or another node of the cluster; `undefined`
   * when it is connected nowhere. After `close()` it rejects with `CoreClosedError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * console.log(await core.locateKeyword("sensor-17")); // undefined
   * ```
   */
  locateKeyword(keyword: Keyword): Promise<{ node: string } | undefined> {
    bytesOrText(keyword, "keyword", "locate keyword");
    if (this.#scheduler.closed) {
      return Promise.reject(new CoreClosedError("Cannot locate keyword: the core is closed"));
    }
    return this.#scheduler.router.locate(toBytes(keyword));
  }

  /** Sends checked messages by keyword (see `sendMessagesToKeyword`). */
  #toKeyword(keyword: Keyword, messages: Uint8Array[], action: string): Promise<void> {
    bytesOrText(keyword, "keyword", action);
    if (this.#scheduler.closed) {
      return Promise.reject(new CoreClosedError(`Cannot ${action}: the core is closed`));
    }
    return this.#scheduler.router.send(keyword, messages); // encodes a text keyword once per burst
  }

  /**
   * Switches the client's current connection between framed and raw mode. Messages (or chunks)
   * already received and queued keep their form; bytes not yet decoded are interpreted under the
   * new mode from the next unread byte. Output queued before the switch goes out in the old mode.
   * A UDP client is always raw: switching it to framed throws `UnsupportedError`. A `raw` that is not
   * a boolean throws a `TypeError`; a client without an open connection `ConnectionClosedError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, id: number;
   * core.switchClientRawConnectionMode(id, true); // from now on bytes are passed through unframed
   * ```
   */
  switchClientRawConnectionMode(id: ClientId, raw: boolean): void {
    boolean(raw, "raw", "switch raw mode");
    this.#ids.client(id, "switch raw mode");
    this.#scheduler.openSession(id, "switch raw mode").setRaw(raw);
  }

  /**
   * Sets the processor class that drives this client's connections: one instance per connection.
   * If the client is connected now without a processor, an instance is created at once and given any
   * unread messages; a connection that already has a processor keeps it until it ends, and the new
   * class drives the next connection.
   * Anything but a class (a function) throws a `TypeError`.
   *
   * @example
   * ```ts
   * import { InlineProcessor, IoCore } from "@asockio/core";
   * class Echo extends InlineProcessor {
   *   override onDataReceived(data: Uint8Array) {
   *     this.outputMessages.push(data);
   *   }
   * }
   * const core = new IoCore();
   * core.setInlineProcessorForClient(core.addClient({ keyword: "echo" }), Echo);
   * ```
   */
  setInlineProcessorForClient(id: ClientId, processorClass: InlineProcessorClass): void {
    callable(processorClass, "processorClass", "set processor");
    this.#scheduler.setProcessor(this.#ids.client(id, "set processor"), processorClass);
  }

  /**
   * Connects an outgoing client (one added with `connect`) again now, whatever its backoff, with
   * a fresh attempt count: after this side closed it, after a refused handshake, after
   * `maxAttempts`, or with `reconnect: false`. Does nothing while it is connected or connecting.
   * A client that is not an outgoing one throws a `TypeError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, upstream: number;
   * const r = await core.ioIteration(1000);
   * if (r.clientsWithDisconnectedConnection.has(upstream)) core.reconnectClient(upstream);
   * ```
   */
  reconnectClient(id: ClientId): void {
    const record = this.#ids.client(id, "reconnect");
    if (!record.connect) throw new TypeError(`Cannot reconnect client ${id}: it is not an outgoing client`);
    this.#scheduler.outgoing.reconnectNow(record);
  }

  /**
   * Closes the client's connection now; unwritten output is discarded. The client record stays. An
   * outgoing client does not reconnect by itself after this, until `reconnectClient`. Does nothing
   * when the client has no connection; an unknown id throws `UnknownClientError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, id: number;
   * core.closeClientConnection(id);
   * ```
   */
  closeClientConnection(id: ClientId): void {
    const record = this.#ids.client(id, "close client connection");
    if (record.connect) this.#scheduler.outgoing.hold(record);
    record.session?.close();
  }

  /**
   * Closes the client's connection once everything queued for it has been written. An outgoing client
   * does not reconnect by itself after this, until `reconnectClient`. An unknown id throws
   * `UnknownClientError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, id: number;
   * core.sendMessageToClient(id, "bye");
   * core.markClientConnectionAsReadyToBeClosed(id);
   * ```
   */
  markClientConnectionAsReadyToBeClosed(id: ClientId): void {
    const record = this.#ids.client(id, "close client connection");
    if (record.connect) this.#scheduler.outgoing.hold(record);
    record.session?.closeWhenFlushed();
  }

  /**
   * The original's name for {@linkcode closeClientConnection}: closes now, discarding unsent output.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore, id: number;
   * core.markClientConnectionAsShouldBeClosedImmediately(id);
   * ```
   */
  markClientConnectionAsShouldBeClosedImmediately(id: ClientId): void {
    this.closeClientConnection(id);
  }

  /**
   * Closes the client's connection (if any) and forgets the client and its unread messages. An
   * unknown id is already forgotten, so removing twice does nothing; after `close()` it throws
   * `CoreClosedError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * core.removeClient(core.addClient({ keyword: "temporary" }));
   * ```
   */
  removeClient(id: ClientId): void {
    const record = this.#ids.query(id, "remove client");
    if (this.#scheduler.closed) throw this.#ids.refused(id, "remove client");
    if (record) this.#scheduler.removeClient(record);
  }

  /**
   * Memory and connection counters, always finite numbers; also after `close()`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * const { inputBytes, outputBytes, readingPaused } = core.stats();
   * ```
   */
  stats(): IoCoreStats {
    return this.#scheduler.stats();
  }

  /**
   * Stops the listeners (removing UNIX socket files), closes every connection and resolves a
   * pending `ioIteration`. Safe to call twice.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * await core.close();
   * ```
   */
  close(): Promise<void> {
    return this.#scheduler.close();
  }

  /**
   * Stops accepting: closes the listeners (removing UNIX socket files), while every connection
   * stays. Another process on the same port (`reusePort`) then gets the new connections.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore({ listeners: [{ transport: "tcp", port: 0 }] });
   * await core.listen();
   * await core.stopAccepting(); // the connections already open go on
   * await core.close();
   * ```
   */
  stopAccepting(): Promise<void> {
    return this.#scheduler.stopAccepting();
  }

  /**
   * Shuts down gracefully: stops accepting, closes each connection once everything queued for it
   * has been written (outgoing clients stop reconnecting), and after `timeoutMs` closes whatever is
   * left; resolves once the core is closed. What a worker does on SIGTERM. It never throws: a
   * `timeoutMs` that is not a number from 0 to 2147483647, or an unknown option, rejects with a
   * `TypeError` or `RangeError`.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * import process from "node:process";
   * const core = new IoCore({ listeners: [{ transport: "tcp", port: 0 }] });
   * await core.listen();
   * process.once("SIGTERM", () => core.shutdown({ timeoutMs: 5000 }));
   * ```
   */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    try {
      SHUTDOWN_OPTIONS(options, "options", "shut down");
    } catch (err) {
      return Promise.reject(err);
    }
    return this.#scheduler.shutdown(options.timeoutMs ?? 10_000);
  }

  /**
   * True once `close()` has been called (or `options.signal` aborted).
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * await core.close();
   * console.log(core.isClosed); // true
   * ```
   */
  get isClosed(): boolean {
    return this.#scheduler.closed;
  }

  /**
   * Resolves once the core has closed: connections closed, listeners closed, UNIX socket files
   * removed.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const controller = new AbortController();
   * const core = new IoCore({ signal: controller.signal });
   * controller.abort();
   * await core.closed;
   * ```
   */
  get closed(): Promise<void> {
    return this.#scheduler.closedPromise;
  }

  /** Closes the core; lets `await using core = new IoCore(...)` clean up. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
