/**
 * {@linkcode ClientRegistry}: every client by id and by keyword, and the connections held for
 * keywords nobody has registered yet. {@linkcode ClientRecord}: one client and its inbox.
 *
 * @module
 */
import type { HmacKey } from "../wire/auth.ts";
import type { ConnectOptions, UdpConnectOptions } from "../../transports/types.ts";
import type { InlineProcessorClass } from "../processor.ts";
import type { ResolvedReconnect } from "./reconnect.ts";
import type { RuleCheck } from "../admission/rules.ts";
import type { Session } from "../connection/session.ts";
import type { Addr } from "../../transports/types.ts";
import type { ClientId, ListenerInfo, MessageStream } from "../types.ts";
import { FRAME_HEADER_BYTES } from "../wire/codec.ts";
import { frameLengthAt } from "../wire/frame_header.ts";
import { createFrameBatch, type FrameBatch, pushPayloadViews } from "../wire/frame_batch.ts";
import { releaseArena } from "../wire/_byte_arena.ts";
import { RecordExtras } from "./record_extras.ts";

/**
 * What one unread message costs besides its bytes (its view object and its slot in the inbox),
 * counted against `limits.inputBytes` so that floods of small frames stay within the cap.
 */
export const UNREAD_MESSAGE_OVERHEAD_BYTES = 64;

/** An inbox entry's count for a raw chunk (framed runs count their frames). */
const RAW_CHUNK = -1;

/** What an unknown client's keyword starts with; its id follows (the bytes are made when asked for). */
export const UNKNOWN_KEYWORD_PREFIX = "UNKNOWN CLIENT: ";

/** The inbox of a record with nothing unread: shared, never written (the first push takes a fresh array). */
const NO_ENTRIES: never[] = [];
const NO_COUNTS: never[] = [];
/** The registration of a client registered with no options. */
const NO_REGISTRATION: ClientRegistration = {};

/** What a client is registered with, fixed for its lifetime (see `IoCore.addClient`). */
export interface ClientRegistration {
  /** Outgoing clients: where to connect. */
  readonly connect?: ConnectOptions | UdpConnectOptions;
  /** Connections start in raw mode. */
  readonly raw?: boolean;
  /** The processor class each connection gets. */
  readonly processorClass?: InlineProcessorClass;
  /** Who may announce the keyword. */
  readonly rules?: RuleCheck;
  /** The secret to prove, as a key. */
  readonly secretKey?: Promise<HmacKey>;
  /** Outgoing clients: the reconnect policy. */
  readonly reconnect?: ResolvedReconnect;
  /** Registered by `acceptUnexpectedKeywords: "adopt"`: forgotten once disconnected and read. */
  readonly adopted?: boolean;
  /** Frames declaring more are delivered as streams (see `IoCoreOptions.streamThresholdBytes`). */
  readonly streamThresholdBytes?: number;
  /** The client is an unknown (raw) one: its record's `kind` is `"unknown"`. */
  readonly unknown?: boolean;
}

/** A `messages()` iteration reading a client's inbox. */
export interface InboxReader {
  /** Above this many unread bytes, reading from the client's connection pauses. */
  readonly highWaterMarkBytes: number;
  /** Called when a message arrives, or the iteration should look again (removed, closed, aborted). */
  wake(): void;
}

/** The bytes a keyword is looked up by: one char per byte, so any byte sequence is a key. */
export function keywordKey(keyword: Uint8Array): string {
  let key = "";
  for (let i = 0; i < keyword.length; i++) key += String.fromCharCode(keyword[i]!);
  return key;
}

/**
 * A registered client: expected (named), unknown (raw), or a held unexpected keyword; with the
 * messages received for it and not read yet. The inbox keeps them as they arrived: runs of whole
 * frames (a chunk's frames with their headers, as one view) and raw chunks. Views of single
 * messages are made only when they are read one by one.
 *
 * @example
 * ```ts
 * import { ClientRecord } from "./client_registry.ts";
 * import { encodeFrames } from "../wire/codec.ts";
 * const record = new ClientRecord(1, "expected", new TextEncoder().encode("worker"));
 * record.pushFrames(encodeFrames([new Uint8Array(3), new Uint8Array(0)]), 2, 3);
 * console.log(record.unread, record.inboxBytes, record.takeOne()?.length); // 2 3 3
 * ```
 */
export class ClientRecord {
  /** Given once, never changed. */
  readonly id: ClientId;
  /**
   * The keyword as a lookup key (see {@linkcode keywordKey}), which the keyword's bytes are made from;
   * `undefined` for an unknown client (see {@linkcode keyword}). One field, not two, per record.
   */
  readonly #key: string | undefined;
  /** What the client was registered with (one object, read when a connection starts; `kind` too). */
  readonly #registration: ClientRegistration;
  /** The connection; its listener and peer are the client's (kept in the extras once it closes). */
  #session: Session | undefined = undefined;
  /** Unread entries, oldest first from `#head`: runs of whole frames, and raw chunks. */
  #inbox: Uint8Array[] = NO_ENTRIES;
  /** Per entry: the frames left in it, or `RAW_CHUNK`. */
  #counts: number[] = NO_COUNTS;
  #head = 0;
  /** Bytes of the head entry already read (a run read one message at a time), and a view of it. */
  #headTaken = 0;
  #unread = 0;
  /** Payload bytes of the unread messages. */
  #inboxBytes = 0;
  /** The `messages()` iteration reading this inbox, if any. */
  reader: InboxReader | undefined = undefined;
  /** What the client needs only at times (see {@linkcode RecordExtras}); made when first written. */
  #extras: RecordExtras | undefined = undefined;

  /**
   * A record with no connection and an empty inbox, registered with `registration`. An unknown client
   * has no keyword of its own (`undefined`): {@linkcode keyword} names it by its id when asked.
   */
  constructor(
    id: ClientId,
    kind: "expected" | "unknown",
    keyword: Uint8Array | undefined,
    registration: ClientRegistration = NO_REGISTRATION,
  ) {
    this.id = id;
    this.#key = keyword === undefined ? undefined : keywordKey(keyword);
    // The core registers unknown clients with a registration that says so: this copy is for other callers.
    if (kind === "unknown" && registration.unknown !== true) {
      registration = { ...registration, unknown: true };
    }
    this.#registration = registration;
  }

  /** `"expected"` (named, or a held keyword) or `"unknown"` (raw). */
  get kind(): "expected" | "unknown" {
    return this.#registration.unknown === true ? "unknown" : "expected";
  }

  /** The keyword; an unknown client's is `UNKNOWN CLIENT: <id>`, made on each call (none is kept per client). */
  get keyword(): Uint8Array {
    const key = this.#key;
    if (key === undefined) return new TextEncoder().encode(`${UNKNOWN_KEYWORD_PREFIX}${this.id}`);
    const keyword = new Uint8Array(key.length);
    for (let i = 0; i < key.length; i++) keyword[i] = key.charCodeAt(i);
    return keyword;
  }

  /** The keyword as a lookup key (see {@linkcode keywordKey}); an unknown client's is made on each call. */
  get key(): string {
    return this.#key ?? keywordKey(this.keyword);
  }

  /** Outgoing clients: where to connect. */
  get connect(): ConnectOptions | UdpConnectOptions | undefined {
    return this.#registration.connect;
  }

  /** True when a connection starts in raw mode. */
  get rawOnConnect(): boolean {
    return this.#registration.raw ?? false;
  }

  /** Who may announce this keyword; `undefined`: the core's rules. */
  get rules(): RuleCheck | undefined {
    return this.#registration.rules;
  }

  /** The secret the client proves, as a key. */
  get secretKey(): Promise<HmacKey> | undefined {
    return this.#registration.secretKey;
  }

  /** Outgoing clients: the reconnect policy, or `undefined` when reconnecting is off. */
  get reconnect(): ResolvedReconnect | undefined {
    return this.#registration.reconnect;
  }

  /** Registered by `acceptUnexpectedKeywords: "adopt"`: forgotten once disconnected and read. */
  get adopted(): boolean {
    return this.#registration.adopted ?? false;
  }

  /** Frames declaring more are delivered as streams; `undefined`: every message whole. */
  get streamThresholdBytes(): number | undefined {
    return this.#registration.streamThresholdBytes;
  }

  /** The processor class each connection of this client gets, if any. */
  get processorClass(): InlineProcessorClass | undefined {
    return this.#extras?.processorClass ?? this.#registration.processorClass;
  }

  /** The client's connection (in its handshake or open), if any. */
  get session(): Session | undefined {
    return this.#session;
  }

  /** True while an outgoing client's connect is under way (before its handshake). */
  get connecting(): boolean {
    return this.#extras?.connecting ?? false;
  }

  /** The listener of the client's last incoming connection. */
  get listener(): ListenerInfo | undefined {
    return this.#session !== undefined ? this.#session.listener : this.#extras?.listener;
  }

  /** The peer of the client's last connection. */
  get remoteAddr(): Addr | undefined {
    return this.#session !== undefined ? this.#session.remoteAddr : this.#extras?.remoteAddr;
  }

  /** The balancer's address, when the connection came through a trusted PROXY protocol source. */
  get proxyAddr(): Addr | undefined {
    return this.#extras?.proxyAddr;
  }

  /** Why the client's last connection or attempt ended, if it was an error. */
  get lastError(): Error | undefined {
    return this.#extras?.lastError;
  }

  /** True once the client was removed. */
  get removed(): boolean {
    return this.#extras?.removed ?? false;
  }

  /** Connections from now on get `processorClass`. */
  processorChanged(processorClass: InlineProcessorClass): void {
    // Set again to the registered class at each connection: that makes no extras.
    if (this.#extras === undefined && processorClass === this.#registration.processorClass) return;
    this.#more().processorClass = processorClass;
  }

  /** An outgoing client's connect began. */
  connectStarted(): void {
    this.#more().connecting = true;
  }

  /** The connect ended without a connection: it failed (`error`), or this side gave it up. */
  connectEnded(error?: Error): void {
    if (this.#extras) this.#extras.connecting = false;
    if (error) this.#more().lastError = error;
  }

  /** An outgoing client's connect succeeded: `session` runs its handshake. */
  handshakeStarted(session: Session): void {
    if (this.#extras) this.#extras.connecting = false;
    this.#session = session;
  }

  /** `session` was admitted (or connected) for this client: it is the client's connection now. */
  bound(session: Session): void {
    this.#session = session;
    const proxyAddr = session.proxyAddr;
    const extras = proxyAddr !== undefined ? this.#more() : this.#extras;
    if (extras !== undefined) {
      extras.connecting = false;
      extras.failures = 0;
      extras.proxyAddr = proxyAddr;
      extras.lastError = undefined;
    }
  }

  /** The client's connection closed, with `error` if it failed. */
  unbound(error: Error | undefined): void {
    const session = this.#session;
    this.#session = undefined;
    const extras = this.#more();
    if (session !== undefined) {
      extras.listener = session.listener;
      extras.remoteAddr = session.remoteAddr;
    }
    if (error) extras.lastError = error;
  }

  /** Consecutive failed connection attempts of an outgoing client. */
  get failures(): number {
    return this.#extras?.failures ?? 0;
  }

  /** True when no attempt is to be made until `reconnectClient`: closed by this side, refused, or given up. */
  get reconnectHeld(): boolean {
    return this.#extras?.reconnectHeld ?? false;
  }

  /** Bytes waiting in the send buffer, as counted against `outputBytes` (a frame header each). */
  get outboxBytes(): number {
    return this.#extras?.outboxBytes ?? 0;
  }

  /** An attempt failed; returns the consecutive failures so far. */
  attemptFailed(): number {
    return ++this.#more().failures;
  }

  /** No more attempts until `reconnectClient`. */
  reconnectsHeld(): void {
    this.#more().reconnectHeld = true;
  }

  /** `reconnectClient`: attempts again, with a fresh count. */
  reconnectsResumed(): void {
    if (this.#extras === undefined) return;
    this.#extras.reconnectHeld = false;
    this.#extras.failures = 0;
  }

  /**
   * Keeps `payloads` (of `bytes`, headers counted) for the next connection: after what waits, or
   * before it (`first`: the unsent rest of a lost connection). Appending is O(1) per message.
   */
  keepWhileAway(payloads: Uint8Array[], bytes: number, first: boolean): void {
    const extras = this.#more();
    const outbox = extras.outbox ??= [];
    if (first) extras.outbox = payloads.concat(outbox);
    else for (const payload of payloads) outbox.push(payload);
    extras.outboxBytes += bytes;
  }

  /** Takes everything kept while away, oldest first, and empties the send buffer. */
  takeOutbox(): Uint8Array[] {
    const extras = this.#extras;
    if (extras === undefined) return [];
    const outbox = extras.outbox ?? [];
    extras.outbox = undefined;
    extras.outboxBytes = 0;
    return outbox;
  }

  /** The client was removed: it gets no connection any more. */
  markRemoved(): void {
    this.#more().removed = true;
  }

  /** A streamed message arrived after the unread messages; `takeStream` hands it out once. */
  streamArrived(stream: MessageStream): void {
    this.#more().stream = stream;
  }

  /** True when a streamed message not taken yet is the next unread item. */
  get streamIsNext(): boolean {
    return this.#extras?.stream !== undefined && this.#unread === 0;
  }

  /** Takes the streamed message when it is the next unread item (see `IoCore.takeMessageStream`). */
  takeStream(): MessageStream | undefined {
    if (!this.streamIsNext) return undefined;
    const extras = this.#extras!;
    const stream = extras.stream;
    extras.stream = undefined;
    return stream;
  }

  /** `stream` was read to its end or cancelled. */
  streamFinished(stream: MessageStream): void {
    if (this.#extras?.stream === stream) this.#extras.stream = undefined;
  }

  /** Payload bytes of the unread messages. */
  get inboxBytes(): number {
    return this.#inboxBytes;
  }

  /** Messages received and not read. */
  get unread(): number {
    return this.#unread;
  }

  /** What the unread messages count against `limits.inputBytes`. */
  get inboxCost(): number {
    return this.#inboxBytes + this.#unread * UNREAD_MESSAGE_OVERHEAD_BYTES;
  }

  /**
   * Adds `count` whole frames as received (headers included), with `payloadBytes` of payload;
   * returns what they cost against the input cap.
   */
  pushFrames(frames: Uint8Array, count: number, payloadBytes: number): number {
    if (this.#inbox === NO_ENTRIES) this.#fresh();
    this.#inbox.push(frames);
    this.#counts.push(count);
    this.#unread += count;
    this.#inboxBytes += payloadBytes;
    return payloadBytes + count * UNREAD_MESSAGE_OVERHEAD_BYTES;
  }

  /**
   * Adds one message as `FrameDecoder.next` returned it (its header is in the 8 bytes before it),
   * or a raw chunk; returns what it costs against the input cap.
   */
  push(message: Uint8Array, raw: boolean): number {
    const n = message.length;
    if (raw) {
      if (this.#inbox === NO_ENTRIES) this.#fresh();
      this.#inbox.push(message);
      this.#counts.push(RAW_CHUNK);
      this.#unread++;
      this.#inboxBytes += n;
    } else {
      const frame = new Uint8Array(
        message.buffer,
        message.byteOffset - FRAME_HEADER_BYTES,
        FRAME_HEADER_BYTES + n,
      );
      this.pushFrames(frame, 1, n);
    }
    return n + UNREAD_MESSAGE_OVERHEAD_BYTES;
  }

  /** Removes the oldest unread message, or returns `undefined`. */
  takeOne(): Uint8Array | undefined {
    const head = this.#head;
    if (head >= this.#inbox.length) return undefined;
    const entry = this.#inbox[head]!;
    let message = entry;
    let headDone = true;
    if (this.#counts[head] !== RAW_CHUNK) {
      const at = this.#headTaken + FRAME_HEADER_BYTES;
      const end = at + frameLengthAt(entry, at - FRAME_HEADER_BYTES);
      message = new Uint8Array(entry.buffer, entry.byteOffset + at, end - at);
      this.#headTaken = end;
      headDone = --this.#counts[head] === 0;
    }
    this.#unread--;
    this.#inboxBytes -= message.length;
    if (headDone) this.#shift();
    return message;
  }

  /** Removes every unread message, oldest first, one view each (a copy under `copyBelow` bytes). */
  takeAll(copyBelow = 0): Uint8Array[] {
    const inbox = this.#inbox;
    const counts = this.#counts;
    const messages: Uint8Array[] = [];
    let copied = false; // the last entry's messages all read as copies (none read before as views)
    for (let i = this.#head, at = this.#headTaken; i < inbox.length; i++, at = 0) {
      const entry = inbox[i]!;
      copied = counts[i] !== RAW_CHUNK && pushPayloadViews(messages, entry, at, copyBelow) && at === 0;
      if (counts[i] === RAW_CHUNK) messages.push(entry);
    }
    // Nothing refers to its bytes anymore: a WebSocket parser's next input may go there (see `releaseArena`).
    if (copied) releaseArena(inbox[inbox.length - 1]!);
    this.clearInbox();
    return messages;
  }

  /**
   * Removes the unread messages up to the first raw chunk, as a batch of `owner`'s, or returns
   * `undefined` when there are none (nothing unread, or a raw chunk comes next).
   */
  takeFrames(owner: object): FrameBatch | undefined {
    const inbox = this.#inbox;
    const counts = this.#counts;
    const head = this.#head;
    let end = head;
    let count = 0;
    let byteLength = -this.#headTaken;
    // A pass over the entries (runs of frames, not frames): no raw-chunk counter is kept per record.
    for (; end < inbox.length && counts[end] !== RAW_CHUNK; end++) {
      count += counts[end]!;
      byteLength += inbox[end]!.length;
    }
    if (count === 0) return undefined;
    let runs: Uint8Array[];
    if (head === 0 && end === inbox.length) runs = inbox;
    else runs = inbox.slice(head, end);
    if (this.#headTaken > 0) runs[0] = runs[0]!.subarray(this.#headTaken);
    if (end === inbox.length) this.clearInbox();
    else {
      for (let i = head; i < end; i++) inbox[i] = undefined as unknown as Uint8Array;
      this.#head = end;
      this.#headTaken = 0;
      this.#unread -= count;
      this.#inboxBytes -= byteLength - count * FRAME_HEADER_BYTES;
    }
    return createFrameBatch(owner, runs, count, byteLength);
  }

  /**
   * Moves `from`'s unread messages into this empty inbox, leaving `from` empty: a held connection's
   * provisional record hands them to the client registered for its keyword. What they count against
   * the input cap does not change.
   */
  adoptInbox(from: ClientRecord): void {
    if (this.#unread !== 0) throw new TypeError("Cannot adopt an inbox: this one is not empty");
    this.#inbox = from.#inbox;
    this.#counts = from.#counts;
    this.#head = from.#head;
    this.#headTaken = from.#headTaken;
    this.#unread = from.#unread;
    this.#inboxBytes = from.#inboxBytes;
    from.clearInbox();
  }

  /** Forgets every unread message. */
  clearInbox(): void {
    this.#inbox = NO_ENTRIES;
    this.#counts = NO_COUNTS;
    this.#head = 0;
    this.#headTaken = 0;
    this.#unread = 0;
    this.#inboxBytes = 0;
  }

  #more(): RecordExtras {
    return this.#extras ??= new RecordExtras();
  }

  /** The first unread entry arrives: the inbox gets arrays of its own. */
  #fresh(): void {
    this.#inbox = [];
    this.#counts = [];
  }

  /** Moves past the head entry once it is read. */
  #shift(): void {
    this.#inbox[this.#head++] = undefined as unknown as Uint8Array;
    this.#headTaken = 0;
    const length = this.#inbox.length;
    if (this.#head === length) this.clearInbox();
    else if (this.#head > 1024 && this.#head * 2 > length) {
      this.#inbox = this.#inbox.slice(this.#head);
      this.#counts = this.#counts.slice(this.#head);
      this.#head = 0;
    }
  }
}

/**
 * Clients by id and by keyword, and the connections that hold an unexpected keyword.
 *
 * @example
 * ```ts
 * import { ClientRecord, ClientRegistry } from "./client_registry.ts";
 * const registry = new ClientRegistry();
 * const record = new ClientRecord(registry.nextId(), "expected", new TextEncoder().encode("worker"));
 * registry.add(record);
 * console.log(registry.byKeyword(record.key) === record); // true
 * ```
 */
export class ClientRegistry {
  #nextId = 1;
  readonly #byId = new Map<ClientId, ClientRecord>();
  readonly #byKeyword = new Map<string, ClientRecord>();
  /** Connections that got `OK` for a keyword nobody registered, by keyword key. */
  readonly held = new Map<string, Session>();

  /** A fresh id, never reused. */
  nextId(): ClientId {
    return this.#nextId++;
  }

  /** The number of registered clients. */
  get size(): number {
    return this.#byId.size;
  }

  /** The client with this id. */
  get(id: ClientId): ClientRecord | undefined {
    return this.#byId.get(id);
  }

  /** True when the client has unread messages (the event board's check). */
  hasUnread(id: ClientId): boolean {
    return (this.#byId.get(id)?.unread ?? 0) > 0;
  }

  /** True when the client's next unread item is a streamed message (the event board's check). */
  streamIsNext(id: ClientId): boolean {
    return this.#byId.get(id)?.streamIsNext ?? false;
  }

  /** The named client registered with this keyword key. */
  byKeyword(key: string): ClientRecord | undefined {
    return this.#byKeyword.get(key);
  }

  /** Registers a client (named clients by keyword too). */
  add(record: ClientRecord): void {
    this.#byId.set(record.id, record);
    if (record.kind === "expected") this.#byKeyword.set(record.key, record);
  }

  /** Forgets a client; returns false when it was not registered (any more). */
  delete(record: ClientRecord): boolean {
    if (this.#byId.get(record.id) !== record) return false;
    this.#byId.delete(record.id);
    if (record.kind === "expected" && this.#byKeyword.get(record.key) === record) {
      this.#byKeyword.delete(record.key);
    }
    return true;
  }
}
