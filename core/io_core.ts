/**
 * {@linkcode IoCore}: one scheduler over many listeners and outgoing connections, with named
 * (expected) clients bound by a keyword handshake, unknown raw clients, two API styles and global
 * memory limits.
 *
 * @module
 */
import {
  authProof,
  challengeNonce,
  type HmacKey,
  importSecret,
  makeChallenge,
  timingSafeEqual,
} from "./auth.ts";
import { toBytes } from "./bytes.ts";
import {
  encodeFrames,
  encodeFramesInto,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  framedLength,
  framedRunBytes,
  framedRunEnd,
  writeFrameHeader,
} from "./codec.ts";
import {
  AsockioError,
  ConnectionClosedError,
  HandshakeRejectedError,
  MessageTooLargeError,
  ProtocolError,
  TimeoutError,
} from "./errors.ts";
import {
  type AccessRule,
  ALLOW_ALL,
  compileRules,
  LOCAL_ONLY,
  type PeerInfo,
  type RuleCheck,
} from "./rules.ts";
import {
  attachProcessor,
  type InlineProcessor,
  type InlineProcessorClass,
  type ListenerInfo,
} from "../processors/inline_processor.ts";
import { nativeTransport, transportByName } from "../transports/mod.ts";
import type {
  Addr,
  Connection,
  ConnectionHandler,
  ConnectOptions,
  Listener,
  ListenOptions,
  Transport,
  TransportName,
} from "../transports/types.ts";

/** A client's id: a small positive integer, never reused during a core's life. */
export type ClientId = number;

/** A keyword: compared as bytes; strings are UTF-8. */
export type Keyword = string | Uint8Array;

/** Global byte caps and protocol limits. Every field is optional. */
export interface IoCoreLimits {
  /**
   * Cap on unread input across all clients. Above it the core stops accepting, and stops reading
   * from every connection whose client holds unread messages, until the application has consumed
   * enough; a client whose messages are read promptly keeps working. Nothing is dropped.
   * @default {536870912} (512 MiB)
   */
  inputBytes?: number;
  /**
   * Cap on queued output across all clients. Above it the core stops reading from the producers of
   * that output — the connection whose input was handled last (a processor callback, or the client
   * whose messages were read) when it writes to a congested connection, and any congested connection
   * that keeps sending — until the peers have taken what is queued.
   * @default {536870912} (512 MiB)
   */
  outputBytes?: number;
  /**
   * The largest frame accepted. A larger declared length is rejected before anything is allocated,
   * and only that connection is closed, with a `MessageTooLargeError`.
   * @default {67108864} (64 MiB)
   */
  maxMessageBytes?: number;
  /**
   * The longest keyword accepted in a handshake.
   * @default {1024}
   */
  maxKeywordBytes?: number;
  /**
   * A connection that has not completed its handshake by then is closed (slowloris guard).
   * @default {10000}
   */
  handshakeTimeoutMs?: number;
  /**
   * How long a gracefully closing connection waits for the peer to close after everything has
   * been written, before it is closed anyway.
   * @default {10000}
   */
  closeTimeoutMs?: number;
  /**
   * The most connections open at once (incoming and outgoing, handshakes included). At the cap,
   * new incoming connections wait unread, in order, until a slot frees; nothing is refused.
   * @default {65536}
   */
  maxConnections?: number;
  /**
   * Close a connection that has neither received nor sent anything for this long; `0` disables it.
   * @default {0}
   */
  idleTimeoutMs?: number;
}

/** A listener: where to listen, plus an optional name used by rules and in `getClientInfo`. */
export type IoCoreListenerOptions = ListenOptions & {
  /** A name for logs and rules; defaults to `tcp:<host>:<port>` or `unix:<path>`. */
  name?: string;
  /** The most connections open at once through this listener; more wait unread. Unlimited by default. */
  maxConnections?: number;
};

/** What the core knows of a new incoming connection when `rawConnection` is asked about it. */
export interface IncomingConnectionInfo {
  /** The listener it came through. */
  readonly listener: ListenerInfo;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** The local address it was accepted on. */
  readonly localAddr: Addr;
}

/** Where the core reports what happens. Each method is optional. */
export interface Logger {
  /** Chatty details (refusals, handshakes). */
  debug?(message: string, ...details: unknown[]): void;
  /** Notable events, such as a refused connection with its address. */
  info?(message: string, ...details: unknown[]): void;
  /** Something went wrong with one connection; the core runs on. */
  warn?(message: string, ...details: unknown[]): void;
  /** An application callback threw; its connection was closed. */
  error?(message: string, ...details: unknown[]): void;
}

/** Options for {@linkcode IoCore}. */
export interface IoCoreOptions {
  /**
   * Where to listen. A core with no listeners acts only as a client.
   * @default {[]}
   */
  listeners?: IoCoreListenerOptions[];
  /**
   * The transport, or its name. `"node"` (on `node:net`) works on every runtime.
   * @default {the runtime's native transport}
   */
  transport?: Transport | TransportName;
  /**
   * Decides, for each incoming connection, whether it is raw: no handshake, bytes unframed. A raw
   * connection becomes an unknown client (if `unknownClients` is `"allow"`).
   * @default {() => false}
   */
  rawConnection?: (info: IncomingConnectionInfo) => boolean;
  /**
   * Whether raw connections are admitted as unknown clients or closed.
   * @default {"refuse"}
   */
  unknownClients?: "allow" | "refuse";
  /** The processor that drives every unknown client, if any. */
  unknownClientProcessor?: InlineProcessorClass;
  /**
   * Hold connections announcing a keyword nobody registered, until `addClient` registers it.
   * When false they are refused.
   * @default {true}
   */
  acceptUnexpectedKeywords?: boolean;
  /**
   * What to do when a keyword that is already connected is announced again.
   * @default {"refuse"}
   */
  duplicateKeyword?: "refuse" | "replace";
  /** Memory caps and protocol limits. */
  limits?: IoCoreLimits;
  /**
   * Access rules for named clients (and held unexpected keywords) that have no `allow` of their
   * own. Secure by default: only UNIX sockets and loopback.
   * @default {LOCAL_ONLY}
   */
  allow?: readonly AccessRule[];
  /**
   * Access rules for unknown (raw) clients, checked when they connect.
   * @default {ALLOW_ALL}
   */
  unknownClientsAllow?: readonly AccessRule[];
  /**
   * Where to report refusals and failures; `null` silences the core.
   * @default {warnings and errors to console}
   */
  logger?: Logger | null;
  /**
   * Disable Nagle's algorithm on TCP connections.
   * @default {true}
   */
  noDelay?: boolean;
}

/** Options for {@linkcode IoCore.addClient}. */
export interface AddClientOptions {
  /** The keyword the client announces (or, with `connect`, that this core announces). */
  keyword: Keyword;
  /** Connect out to this address and announce `keyword` there, acting as a client. */
  connect?: ConnectOptions;
  /**
   * Switch the connection to raw mode right after the handshake.
   * @default {false}
   */
  raw?: boolean;
  /** A processor class to drive this client's connections. */
  processor?: InlineProcessorClass;
  /**
   * Where this client may connect from (incoming only); overrides the core's `allow`.
   * @default {the core's allow, LOCAL_ONLY unless set}
   */
  allow?: readonly AccessRule[];
  /**
   * A shared secret: incoming, the peer must prove it knows it (HMAC-SHA256 over a nonce);
   * outgoing, this core answers the server's challenge with it.
   */
  secret?: string | Uint8Array;
}

/** The events gathered by one {@linkcode IoCore.ioIteration} call. */
export interface IoIterationResult {
  /** Expected (named) clients whose connection completed its handshake. */
  readonly newlyConnectedExpectedClients: ReadonlySet<ClientId>;
  /** Unknown (raw) clients just admitted. */
  readonly newlyConnectedUnknownClients: ReadonlySet<ClientId>;
  /** Clients whose connection closed (or, for outgoing ones, failed to connect or was refused). */
  readonly clientsWithDisconnectedConnection: ReadonlySet<ClientId>;
  /** Clients that received new messages (or raw chunks) since the last call, not yet all read. */
  readonly clientsHaveDataToRead: ReadonlySet<ClientId>;
  /** Clients whose queued output has just been fully written. */
  readonly clientsWithEmptyOutputFifo: ReadonlySet<ClientId>;
}

/** The state of a client's connection, as `getClientInfo` reports it. */
export type ClientConnectionState = "connecting" | "handshake" | "connected" | "closing" | "disconnected";

/** A snapshot of one client, from {@linkcode IoCore.getClientInfo}. */
export interface ClientInfo {
  /** The client id. */
  readonly id: ClientId;
  /** `"expected"` for named clients (incoming or outgoing), `"unknown"` for raw unknown clients. */
  readonly kind: "expected" | "unknown";
  /** The keyword bytes. */
  readonly keyword: Uint8Array;
  /** The keyword decoded as UTF-8, for logs. */
  readonly keywordText: string;
  /** `"incoming"` when it connects to us, `"outgoing"` when this core connects out. */
  readonly direction: "incoming" | "outgoing";
  /** Where its connection stands now. */
  readonly state: ClientConnectionState;
  /** The peer's address, while connected (or the last one). */
  readonly remoteAddr: Addr | undefined;
  /** The listener of the current (or last) incoming connection. */
  readonly listener: ListenerInfo | undefined;
  /** True when the connection carries raw bytes. */
  readonly raw: boolean;
  /** Messages (or raw chunks) received and not yet read. */
  readonly unreadMessages: number;
  /** Bytes of those unread messages. */
  readonly unreadBytes: number;
  /** Output bytes queued for the current connection and not yet handed to the kernel. */
  readonly queuedOutputBytes: number;
  /** Why the last connection ended or failed, when it was an error. */
  readonly lastError: Error | undefined;
}

/** Counters from {@linkcode IoCore.stats}. */
export interface IoCoreStats {
  /** Unread input bytes held across all clients (including partial frames). */
  readonly inputBytes: number;
  /** Output bytes queued and not yet handed to the kernel. */
  readonly outputBytes: number;
  /** Open connections, including those still in their handshake. */
  readonly connections: number;
  /** Registered clients (expected and unknown). */
  readonly clients: number;
  /** Connections holding an unexpected keyword, waiting for `addClient`. */
  readonly heldConnections: number;
  /** True while a memory cap has paused reading from some connection (or accepting). */
  readonly readingPaused: boolean;
}

const MiB = 1024 * 1024;
const DEFAULT_LIMITS: Required<IoCoreLimits> = {
  inputBytes: 512 * MiB,
  outputBytes: 512 * MiB,
  maxMessageBytes: 64 * MiB,
  maxKeywordBytes: 1024,
  handshakeTimeoutMs: 10_000,
  closeTimeoutMs: 10_000,
  maxConnections: 65_536,
  idleTimeoutMs: 0,
};
const KEYWORD_ACCEPTED = new Uint8Array([0x4f, 0x4b]); // "OK"
/** Payloads from this size on are written as they are, without a copy. */
const LARGE_PAYLOAD_BYTES = 64 * 1024;
/** Received messages sent on in runs at least this long are written from the received chunk. */
const MIN_FORWARDED_RUN = 4;
const UNKNOWN_KEYWORD_PREFIX = "UNKNOWN CLIENT: ";
const utf8Decoder = new TextDecoder();
const defaultLogger: Logger = {
  warn: (message, ...details) => console.warn(`asockio: ${message}`, ...details),
  error: (message, ...details) => console.error(`asockio: ${message}`, ...details),
};

const oneOf = <T extends string>(
  name: string,
  value: T | undefined,
  allowed: readonly T[],
  fallback: T,
): T => {
  if (value === undefined) return fallback;
  if (!allowed.includes(value)) {
    throw new TypeError(`Cannot create IoCore: ${name} must be one of ${allowed.join(", ")}, got ${value}`);
  }
  return value;
};

/** Session phases. */
const AWAIT_KEYWORD: number = 0;
const AWAIT_OK: number = 1;
const OPEN: number = 2;
const CLOSED: number = 3;
/** Accepting side: keyword known, waiting for the HMAC answer. */
const AWAIT_AUTH: number = 4;
/** Refused: the reason is being written; further input is ignored. */
const REFUSED: number = 5;

function keywordKey(keyword: Uint8Array): string {
  let key = "";
  for (let i = 0; i < keyword.length; i++) key += String.fromCharCode(keyword[i]!);
  return key;
}

function describeAddr(addr: Addr): string {
  return addr.transport === "unix"
    ? `unix:${addr.path || "(unnamed)"}`
    : `${addr.transport}:${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
}

function unrefTimer(timer: unknown): void {
  // Node and Bun timers can be unref'd; Deno's are numbers, and the core clears them on close.
  (timer as { unref?: () => void } | null)?.unref?.();
}

/**
 * A batch of framed messages as the buffers to write. Small payloads are encoded together into one
 * buffer; large ones go as they are, after a buffer that holds their header; and runs of messages
 * that still lie in a received chunk with their headers (echo, forwarding) go back as they came.
 * Only small payloads are ever copied.
 */
function framedPieces(queue: Uint8Array[]): Uint8Array[] {
  const count = queue.length;
  const pieces: Uint8Array[] = [];
  let encodeFrom = 0;
  for (let i = 0; i < count;) {
    const end = framedRunEnd(queue, i);
    const payload = queue[i]!;
    if (end - i >= MIN_FORWARDED_RUN || (end > i && payload.length >= LARGE_PAYLOAD_BYTES)) {
      if (encodeFrom < i) pieces.push(encodeFrames(queue.slice(encodeFrom, i)));
      pieces.push(framedRunBytes(queue, i, end));
      encodeFrom = i = end;
    } else if (payload.length >= LARGE_PAYLOAD_BYTES) {
      const small = queue.slice(encodeFrom, i);
      const head = new Uint8Array(framedLength(small) + FRAME_HEADER_BYTES);
      writeFrameHeader(head, encodeFramesInto(head, 0, small), payload.length);
      pieces.push(head, payload);
      encodeFrom = i = i + 1;
    } else i++;
  }
  if (encodeFrom < count) pieces.push(encodeFrames(encodeFrom === 0 ? queue : queue.slice(encodeFrom)));
  return pieces;
}

/** A registered client: expected (named), unknown (raw), or a held unexpected keyword. */
class ClientRecord {
  id: ClientId;
  kind: "expected" | "unknown";
  keyword: Uint8Array;
  key: string;
  connect: ConnectOptions | undefined;
  rawOnConnect: boolean;
  processorClass: InlineProcessorClass | undefined;
  session: Session | undefined = undefined;
  connecting = false;
  listener: ListenerInfo | undefined = undefined;
  remoteAddr: Addr | undefined = undefined;
  lastError: Error | undefined = undefined;
  inbox: Uint8Array[] = [];
  inboxHead = 0;
  inboxBytes = 0;
  removed = false;
  rules: RuleCheck | undefined = undefined;
  secretKey: Promise<HmacKey> | undefined = undefined;

  constructor(
    id: ClientId,
    kind: "expected" | "unknown",
    keyword: Uint8Array,
    connect: ConnectOptions | undefined,
    raw: boolean,
    processorClass: InlineProcessorClass | undefined,
  ) {
    this.id = id;
    this.kind = kind;
    this.keyword = keyword;
    this.key = keywordKey(keyword);
    this.connect = connect;
    this.rawOnConnect = raw;
    this.processorClass = processorClass;
  }

  get unread(): number {
    return this.inbox.length - this.inboxHead;
  }
}

/** One connection and everything the core tracks for it. */
class Session {
  readonly conn: Connection;
  readonly listener: ListenerInfo | undefined;
  phase: number;
  raw = false;
  decoder: FrameDecoder;
  client: ClientRecord | undefined = undefined;
  /** The provisional record of a held unexpected keyword. */
  held: ClientRecord | undefined = undefined;
  processor: InlineProcessor | undefined = undefined;
  outQueue: Uint8Array[] = [];
  outQueueFramed = true;
  outQueueBytes = 0;
  inflightBytes = 0;
  dirty = false;
  closeWhenFlushed = false;
  closingGracefully = false;
  processorCloseNow = false;
  timer: ReturnType<typeof setTimeout> | undefined = undefined;

  peerEnded = false;
  /** An asynchronous handshake step (HMAC) is running: leave the input in the decoder. */
  busy = false;
  nonce: Uint8Array | undefined = undefined;
  pending: ClientRecord | undefined = undefined;
  lastActivity = 0;
  readPaused = false;

  constructor(conn: Connection, listener: ListenerInfo | undefined, phase: number, decoder: FrameDecoder) {
    this.conn = conn;
    this.listener = listener;
    this.phase = phase;
    this.decoder = decoder;
  }
}

type EventSets = {
  newlyConnectedExpectedClients: Set<ClientId>;
  newlyConnectedUnknownClients: Set<ClientId>;
  clientsWithDisconnectedConnection: Set<ClientId>;
  clientsHaveDataToRead: Set<ClientId>;
  clientsWithEmptyOutputFifo: Set<ClientId>;
};

function newEventSets(): EventSets {
  return {
    newlyConnectedExpectedClients: new Set(),
    newlyConnectedUnknownClients: new Set(),
    clientsWithDisconnectedConnection: new Set(),
    clientsHaveDataToRead: new Set(),
    clientsWithEmptyOutputFifo: new Set(),
  };
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
export class IoCore implements AsyncDisposable {
  readonly #transport: Transport;
  readonly #listenerOptions: IoCoreListenerOptions[];
  readonly #limits: Required<IoCoreLimits>;
  readonly #logger: Logger;
  readonly #rawConnection: ((info: IncomingConnectionInfo) => boolean) | undefined;
  readonly #allowUnknown: boolean;
  readonly #unknownProcessor: InlineProcessorClass | undefined;
  readonly #acceptUnexpected: boolean;
  readonly #replaceDuplicates: boolean;
  readonly #noDelay: boolean;
  readonly #defaultRules: RuleCheck;
  readonly #unknownRules: RuleCheck;

  #listeners: Listener[] = [];
  #listenerInfos: ListenerInfo[] = [];
  #listenerOpen: number[] = [];
  #listenerMax: number[] = [];
  #parked: Array<{ conn: Connection; listener: ListenerInfo }> = [];
  #idleTimer: ReturnType<typeof setInterval> | undefined = undefined;
  #nextClientId = 1;
  #clients = new Map<ClientId, ClientRecord>();
  #byKeyword = new Map<string, ClientRecord>();
  #held = new Map<string, Session>();
  /** The processor session whose incoming chunk is being handled, if any (see #onData). */
  #reading: Session | undefined = undefined;
  #sessions = new Set<Session>();
  #events: EventSets = newEventSets();
  #eventCount = 0;
  #waiter: ((result: IoIterationResult) => void) | undefined = undefined;
  #cancelWaiterTimer: (() => void) | undefined = undefined;
  #wakeScheduled = false;
  #dirty: Session[] = [];
  #flushScheduled = false;
  #inputBytes = 0;
  #outputBytes = 0;
  /**
   * The connection whose input the application handled last (a processor callback, or the client
   * it read messages from): output queued now is attributed to it for the output cap.
   */
  #producer: Session | undefined = undefined;
  /** Sessions whose reading is paused by a memory cap. */
  #paused = new Set<Session>();
  #closed = false;

  /**
   * Creates a core. Nothing is bound until {@linkcode listen}.
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
    const t = options.transport;
    this.#transport = t === undefined ? nativeTransport() : typeof t === "string" ? transportByName(t) : t;
    this.#listenerOptions = [...(options.listeners ?? [])];
    this.#limits = { ...DEFAULT_LIMITS };
    for (const [name, value] of Object.entries(options.limits ?? {})) {
      if (!(name in DEFAULT_LIMITS)) throw new TypeError(`Cannot create IoCore: unknown limit ${name}`);
      if (value === undefined) continue;
      if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
        throw new RangeError(
          `Cannot create IoCore: limits.${name} must be a non-negative integer, got ${value}`,
        );
      }
      (this.#limits as Record<string, number>)[name] = value;
    }
    this.#logger = options.logger === null ? {} : options.logger ?? defaultLogger;
    this.#rawConnection = options.rawConnection;
    this.#allowUnknown =
      oneOf("unknownClients", options.unknownClients, ["allow", "refuse"], "refuse") === "allow";
    this.#unknownProcessor = options.unknownClientProcessor;
    this.#acceptUnexpected = options.acceptUnexpectedKeywords ?? true;
    this.#replaceDuplicates =
      oneOf("duplicateKeyword", options.duplicateKeyword, ["refuse", "replace"], "refuse") === "replace";
    this.#noDelay = options.noDelay ?? true;
    this.#defaultRules = compileRules(options.allow ?? LOCAL_ONLY);
    this.#unknownRules = compileRules(options.unknownClientsAllow ?? ALLOW_ALL);
    for (const listener of this.#listenerOptions) {
      const max = listener.maxConnections;
      if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
        throw new RangeError(
          `Cannot create IoCore: listener maxConnections must be a positive integer, got ${max}`,
        );
      }
    }
  }

  /** The transport in use (`"deno"`, `"bun"` or `"node"`). */
  get transportName(): TransportName {
    return this.#transport.name;
  }

  /** The bound listeners, in the order given in the options. */
  get listeners(): readonly ListenerInfo[] {
    return this.#listenerInfos;
  }

  /**
   * Binds every listener and starts accepting. Resolves with the bound addresses (with `port: 0`
   * resolved), in the order given. If one fails, those already bound are closed again.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore({ listeners: [{ transport: "tcp", port: 0 }] });
   * const [addr] = await core.listen();
   * if (addr.transport === "tcp") console.log(`listening on port ${addr.port}`);
   * ```
   */
  async listen(): Promise<Addr[]> {
    if (this.#closed) throw new ConnectionClosedError("Cannot listen: the core is closed");
    if (this.#listeners.length) throw new TypeError("Cannot listen: the core is already listening");
    try {
      for (const [id, options] of this.#listenerOptions.entries()) {
        const { name, maxConnections, ...listenOptions } = options;
        // Connections accepted before listen() resolves wait for the listener's info.
        const slot: { info?: ListenerInfo; early: Connection[] } = { early: [] };
        const listener = await this.#transport.listen(listenOptions as ListenOptions, (conn) => {
          if (slot.info) this.#accept(conn, slot.info);
          else slot.early.push(conn);
        });
        const info: ListenerInfo = { id, name: name ?? describeAddr(listener.addr), addr: listener.addr };
        slot.info = info;
        this.#listeners.push(listener);
        this.#listenerInfos.push(info);
        this.#listenerOpen.push(0);
        this.#listenerMax.push(maxConnections ?? Infinity);
        for (const conn of slot.early.splice(0)) this.#accept(conn, info);
      }
    } catch (err) {
      await this.#closeListeners();
      throw err;
    }
    return this.#listenerInfos.map((info) => info.addr);
  }

  /**
   * Registers an expected (named) client and returns its id. Without `connect`, a peer announcing
   * `keyword` is bound to it; a connection already holding that unexpected keyword is adopted at
   * once. With `connect`, this core connects out and announces `keyword` there.
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
    if (this.#closed) throw new ConnectionClosedError("Cannot add client: the core is closed");
    const keyword = this.#checkKeyword(options.keyword);
    const key = keywordKey(keyword);
    if (this.#byKeyword.has(key)) {
      throw new TypeError(
        `Cannot add client: keyword ${JSON.stringify(utf8Decoder.decode(keyword))} is registered`,
      );
    }
    const rules = options.allow ? compileRules(options.allow) : undefined;
    if (options.secret !== undefined && !(toBytes(options.secret).length > 0)) {
      throw new TypeError("Cannot add client: secret must be a non-empty string or Uint8Array");
    }
    const id = this.#nextClientId++;
    let held = options.connect ? undefined : this.#held.get(key);
    if (
      held &&
      (options.secret !== undefined || (rules ?? this.#defaultRules)(this.#peerInfo(held, keyword)) < 0)
    ) {
      // The held connection never proved the secret, or this client's rules refuse it.
      this.#logger.info?.(
        `Closing held connection for ${utf8Decoder.decode(keyword)}: not admitted by addClient`,
      );
      this.#closeSession(held);
      held = undefined;
    }
    let record: ClientRecord;
    if (held?.held) {
      // Adopt the held connection: it already got OK, and its messages are in the provisional inbox.
      record = held.held;
      record.id = id;
      record.rawOnConnect = options.raw ?? false;
      record.processorClass = options.processor;
      this.#held.delete(key);
      held.held = undefined;
    } else {
      record = new ClientRecord(
        id,
        "expected",
        keyword,
        options.connect,
        options.raw ?? false,
        options.processor,
      );
    }
    record.rules = rules;
    if (options.secret !== undefined) {
      record.secretKey = importSecret(options.secret);
      record.secretKey.catch(() => {}); // reported where it is awaited
    }
    this.#clients.set(id, record);
    this.#byKeyword.set(key, record);
    if (held) this.#bind(held, record);
    else if (record.connect) this.#connectOut(record);
    return id;
  }

  /**
   * The id of the client registered with `keyword`, or `undefined`.
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
    return this.#byKeyword.get(keywordKey(toBytes(keyword)))?.id;
  }

  /**
   * A snapshot of a client: keyword, connection state, addresses, listener, raw mode and last error.
   * Returns `undefined` for an unknown id (unknown clients are forgotten once disconnected and read).
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
    const record = this.#clients.get(id);
    if (!record) return undefined;
    const session = record.session;
    let state: ClientConnectionState = "disconnected";
    if (record.connecting) state = "connecting";
    else if (session) {
      state = session.phase === OPEN
        ? (session.closingGracefully || session.closeWhenFlushed ? "closing" : "connected")
        : "handshake";
    }
    return {
      id,
      kind: record.kind,
      keyword: record.keyword,
      keywordText: utf8Decoder.decode(record.keyword),
      direction: record.connect ? "outgoing" : "incoming",
      state,
      remoteAddr: record.remoteAddr,
      listener: record.listener,
      raw: session ? session.raw : record.rawOnConnect,
      unreadMessages: record.unread,
      unreadBytes: record.inboxBytes,
      queuedOutputBytes: session ? session.outQueueBytes + session.inflightBytes : 0,
      lastError: record.lastError,
    };
  }

  /**
   * Waits for I/O events and returns those gathered since the last call. Resolves at once if some
   * are pending, as soon as one arrives, or after `timeoutMs` with empty sets. I/O runs in the
   * event loop all the time, not only inside this call. One call at a time.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore({ listeners: [{ transport: "tcp", port: 0 }] });
   * await core.listen();
   * const r = await core.ioIteration(500);
   * for (const id of r.clientsHaveDataToRead) console.log(id, core.getMessagesFromClient(id));
   * ```
   */
  ioIteration(timeoutMs = 0): Promise<IoIterationResult> {
    if (this.#waiter) throw new TypeError("Cannot wait in ioIteration: another call is already waiting");
    if (this.#eventCount > 0 || this.#closed) return Promise.resolve(this.#takeEvents());
    return new Promise((resolve) => {
      this.#waiter = resolve;
      // With no timeout, still yield one turn of the event loop so a tight loop cannot starve I/O.
      if (timeoutMs > 0) {
        const timer = setTimeout(() => this.#resolveWaiter(), timeoutMs);
        this.#cancelWaiterTimer = () => clearTimeout(timer);
      } else {
        const immediate = setImmediate(() => this.#resolveWaiter());
        this.#cancelWaiterTimer = () => clearImmediate(immediate);
      }
    });
  }

  /**
   * Removes and returns the client's next unread message (or raw chunk), or `undefined`.
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
    const record = this.#clients.get(id);
    if (!record || record.inboxHead >= record.inbox.length) return undefined;
    const message = record.inbox[record.inboxHead]!;
    this.#producer = record.session;
    record.inbox[record.inboxHead++] = undefined as unknown as Uint8Array;
    if (record.inboxHead === record.inbox.length) {
      record.inbox = [];
      record.inboxHead = 0;
    } else if (record.inboxHead > 1024 && record.inboxHead * 2 > record.inbox.length) {
      record.inbox = record.inbox.slice(record.inboxHead);
      record.inboxHead = 0;
    }
    this.#consumed(record, message.length);
    return message;
  }

  /**
   * Removes and returns all of the client's unread messages (or raw chunks), oldest first.
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
    const record = this.#clients.get(id);
    if (!record || record.inboxHead >= record.inbox.length) return [];
    const messages = record.inboxHead === 0 ? record.inbox : record.inbox.slice(record.inboxHead);
    this.#producer = record.session;
    record.inbox = [];
    record.inboxHead = 0;
    this.#consumed(record, record.inboxBytes);
    return messages;
  }

  /**
   * Queues one message for the client: framed, or as raw bytes in raw mode. Strings are sent as
   * UTF-8. Writes made in the same tick go out in one write. Throws `ConnectionClosedError` when
   * the client has no open connection; nothing is dropped silently.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * declare const id: number;
   * core.sendMessageToClient(id, "hello");
   * ```
   */
  sendMessageToClient(id: ClientId, message: Uint8Array | string): void {
    this.#queueOutput(this.#openSession(id, "send message"), toBytes(message));
  }

  /**
   * Queues several messages for the client, in order, written in one batch. Messages received and
   * sent on in the order they came (echo, forwarding) are written from the received bytes, neither
   * copied nor re-encoded. As with every send, do not modify a message after queueing it.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * declare const id: number;
   * core.sendMessagesToClient(id, ["one", new Uint8Array([2])]);
   * ```
   */
  sendMessagesToClient(id: ClientId, messages: Iterable<Uint8Array | string>): void {
    const session = this.#openSession(id, "send messages");
    if (Array.isArray(messages)) this.#queueOutputs(session, messages);
    else for (const message of messages) this.#queueOutput(session, toBytes(message));
  }

  /**
   * Switches the client's current connection between framed and raw mode. Messages (or chunks)
   * already received and queued keep their form; bytes not yet decoded are interpreted under the
   * new mode from the next unread byte. Output queued before the switch goes out in the old mode.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * declare const id: number;
   * core.switchClientRawConnectionMode(id, true); // from now on bytes are passed through unframed
   * ```
   */
  switchClientRawConnectionMode(id: ClientId, raw: boolean): void {
    this.#setRaw(this.#openSession(id, "switch raw mode"), raw);
  }

  /**
   * Sets the processor class that drives this client's connections: one instance per connection.
   * If the client is connected now, an instance is created at once and given any unread messages.
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
    const record = this.#clients.get(id);
    if (!record) throw new TypeError(`Cannot set processor: no client ${id}`);
    record.processorClass = processorClass;
    const session = record.session;
    if (session && session.phase === OPEN && !session.processor) {
      this.#attachProcessor(session, record);
      // Hand over what arrived before the processor existed.
      for (const message of this.getMessagesFromClient(id)) {
        this.#account(message.length);
        this.#deliverToProcessor(session, message);
        if (session.phase === CLOSED) break;
      }
    }
  }

  /**
   * Connects an outgoing client (one added with `connect`) again after its connection closed or
   * failed. Does nothing while it is connected or connecting.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * declare const upstream: number;
   * const r = await core.ioIteration(1000);
   * if (r.clientsWithDisconnectedConnection.has(upstream)) core.reconnectClient(upstream);
   * ```
   */
  reconnectClient(id: ClientId): void {
    const record = this.#clients.get(id);
    if (!record?.connect) throw new TypeError(`Cannot reconnect client ${id}: it is not an outgoing client`);
    if (this.#closed) throw new ConnectionClosedError("Cannot reconnect: the core is closed");
    if (record.session || record.connecting) return;
    this.#connectOut(record);
  }

  /**
   * Closes the client's connection now; unwritten output is discarded. The client record stays.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * declare const id: number;
   * core.closeClientConnection(id);
   * ```
   */
  closeClientConnection(id: ClientId): void {
    const session = this.#clients.get(id)?.session;
    if (session) this.#closeSession(session);
  }

  /**
   * Closes the client's connection once everything queued for it has been written.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * declare const id: number;
   * core.sendMessageToClient(id, "bye");
   * core.markClientConnectionAsReadyToBeClosed(id);
   * ```
   */
  markClientConnectionAsReadyToBeClosed(id: ClientId): void {
    const session = this.#clients.get(id)?.session;
    if (session) this.#closeWhenFlushed(session);
  }

  /**
   * The original's name for {@linkcode closeClientConnection}: closes now, discarding unsent output.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * declare const core: IoCore;
   * declare const id: number;
   * core.markClientConnectionAsShouldBeClosedImmediately(id);
   * ```
   */
  markClientConnectionAsShouldBeClosedImmediately(id: ClientId): void {
    this.closeClientConnection(id);
  }

  /**
   * Closes the client's connection (if any) and forgets the client and its unread messages.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * core.removeClient(core.addClient({ keyword: "temporary" }));
   * ```
   */
  removeClient(id: ClientId): void {
    const record = this.#clients.get(id);
    if (!record) return;
    record.removed = true;
    if (record.session) this.#closeSession(record.session);
    this.#forget(record);
  }

  /**
   * Memory and connection counters.
   *
   * @example
   * ```ts
   * import { IoCore } from "@asockio/core";
   * const core = new IoCore();
   * const { inputBytes, outputBytes, readingPaused } = core.stats();
   * ```
   */
  stats(): IoCoreStats {
    return {
      inputBytes: this.#inputBytes,
      outputBytes: this.#outputBytes,
      connections: this.#sessions.size,
      clients: this.#clients.size,
      heldConnections: this.#held.size,
      readingPaused: this.#paused.size > 0 || this.#inputBytes > this.#limits.inputBytes,
    };
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
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#closeListeners();
    for (const session of [...this.#sessions]) this.#closeSession(session);
    for (const { conn } of this.#parked.splice(0)) conn.close();
    if (this.#idleTimer !== undefined) clearInterval(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#resolveWaiter();
  }

  /** Closes the core; lets `await using core = new IoCore(...)` clean up. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------------------------------------
  // Connections

  #hasRoom(listener: ListenerInfo): boolean {
    return this.#sessions.size < this.#limits.maxConnections &&
      this.#listenerOpen[listener.id]! < this.#listenerMax[listener.id]! &&
      this.#inputBytes <= this.#limits.inputBytes; // over the input cap, stop accepting too
  }

  #accept(conn: Connection, listener: ListenerInfo): void {
    if (this.#closed) {
      conn.close();
      return;
    }
    if (this.#parked.length || !this.#hasRoom(listener)) {
      // At the cap: the connection waits unread (the transport reads nothing before setHandler).
      this.#parked.push({ conn, listener });
      return;
    }
    this.#admit(conn, listener);
  }

  #unpark(): void {
    while (this.#parked.length && !this.#closed) {
      const { conn, listener } = this.#parked[0]!;
      if (!conn.closed && !this.#hasRoom(listener)) return;
      this.#parked.shift();
      if (!conn.closed) this.#admit(conn, listener);
    }
  }

  #peerInfo(session: Session, keyword?: Uint8Array): PeerInfo {
    const listener = session.listener!;
    return {
      listener,
      remoteAddr: session.conn.remoteAddr,
      localAddr: session.conn.localAddr,
      transport: listener.addr.transport,
      keyword,
    };
  }

  #admit(conn: Connection, listener: ListenerInfo): void {
    if (this.#noDelay) conn.setNoDelay(true);
    let raw = false;
    if (this.#rawConnection) {
      try {
        raw = this.#rawConnection({ listener, remoteAddr: conn.remoteAddr, localAddr: conn.localAddr });
      } catch (err) {
        this.#logger.error?.(
          `rawConnection threw for ${describeAddr(conn.remoteAddr)}; connection closed`,
          err,
        );
        conn.close();
        return;
      }
    }
    if (raw) {
      const denied = this.#allowUnknown && this.#unknownRules({
            listener,
            remoteAddr: conn.remoteAddr,
            localAddr: conn.localAddr,
            transport: listener.addr.transport,
          }) < 0;
      if (!this.#allowUnknown || denied) {
        this.#logger.info?.(
          `Refused unknown client from ${describeAddr(conn.remoteAddr)} on ${listener.name}`,
        );
        conn.close();
        return;
      }
      const session = this.#newSession(conn, listener, OPEN, this.#limits.maxMessageBytes);
      session.raw = true;
      const id = this.#nextClientId++;
      const keyword = toBytes(`${UNKNOWN_KEYWORD_PREFIX}${id}`);
      const record = new ClientRecord(id, "unknown", keyword, undefined, true, this.#unknownProcessor);
      this.#clients.set(id, record);
      this.#bind(session, record);
      return;
    }
    const session = this.#newSession(conn, listener, AWAIT_KEYWORD, this.#limits.maxKeywordBytes);
    if (this.#limits.handshakeTimeoutMs > 0) {
      session.timer = setTimeout(() => {
        session.timer = undefined;
        if (session.phase !== AWAIT_KEYWORD && session.phase !== AWAIT_AUTH) return;
        this.#fail(
          session,
          new TimeoutError(
            `Cannot complete handshake with ${
              describeAddr(conn.remoteAddr)
            }: not done within ${this.#limits.handshakeTimeoutMs} ms`,
          ),
        );
      }, this.#limits.handshakeTimeoutMs);
      unrefTimer(session.timer);
    }
  }

  #newSession(
    conn: Connection,
    listener: ListenerInfo | undefined,
    phase: number,
    maxFrame: number,
  ): Session {
    const session = new Session(conn, listener, phase, new FrameDecoder({ maxMessageBytes: maxFrame }));
    this.#sessions.add(session);
    if (listener) this.#listenerOpen[listener.id]!++;
    if (this.#limits.idleTimeoutMs > 0) {
      session.lastActivity = Date.now();
      this.#startIdleSweep();
    }
    conn.setHandler(new IoCore.#Handler(this, session));
    return session;
  }

  /**
   * One small object per connection routes the transport's callbacks into the core (cheaper than
   * four closures). Nothing thrown here may reach the runtime's event loop: it would end the process.
   */
  static #Handler = class implements ConnectionHandler {
    readonly core: IoCore;
    readonly session: Session;

    constructor(core: IoCore, session: Session) {
      this.core = core;
      this.session = session;
    }

    onData(chunk: Uint8Array): number | undefined {
      try {
        return this.core.#onData(this.session, chunk);
      } catch (err) {
        this.core.#internalError(this.session, err);
        return undefined;
      }
    }

    onDrain(): void {
      try {
        this.core.#onDrain(this.session);
      } catch (err) {
        this.core.#internalError(this.session, err);
      }
    }

    onEnd(): void {
      try {
        this.core.#onEnd(this.session);
      } catch (err) {
        this.core.#internalError(this.session, err);
      }
    }

    onClose(error?: Error): void {
      try {
        this.core.#finalizeSession(this.session, error);
      } catch (err) {
        this.core.#logger.error?.("Internal error while closing a connection", err);
      }
    }
  };

  #internalError(session: Session, err: unknown): void {
    this.#logger.error?.(
      `Internal error on connection from ${describeAddr(session.conn.remoteAddr)}; closed`,
      err,
    );
    try {
      this.#closeSession(
        session,
        err instanceof Error ? err : new AsockioError("Internal error", { cause: err }),
      );
    } catch (closeErr) {
      this.#logger.error?.("Internal error while closing a connection", closeErr);
    }
  }

  #connectOut(record: ClientRecord): void {
    record.connecting = true;
    this.#transport.connect(record.connect!).then(
      (conn) => {
        record.connecting = false;
        if (this.#closed || record.removed) {
          conn.close();
          return;
        }
        if (this.#noDelay) conn.setNoDelay(true);
        const session = this.#newSession(conn, undefined, AWAIT_OK, this.#limits.maxKeywordBytes);
        session.client = record;
        record.session = session;
        record.remoteAddr = conn.remoteAddr;
        this.#queueOutput(session, record.keyword, true);
      },
      (err: Error) => {
        record.connecting = false;
        if (this.#closed || record.removed) return;
        record.lastError = err;
        this.#logger.warn?.(`Cannot connect client ${record.id}: ${err.message}`);
        this.#emit(this.#events.clientsWithDisconnectedConnection, record.id);
      },
    );
  }

  /** Binds an admitted session to its client and reports it. */
  #bind(session: Session, record: ClientRecord): void {
    session.client = record;
    record.session = session;
    record.listener = session.listener;
    record.remoteAddr = session.conn.remoteAddr;
    record.lastError = undefined;
    if (session.phase !== OPEN) this.#openPhase(session);
    this.#emit(
      record.kind === "unknown"
        ? this.#events.newlyConnectedUnknownClients
        : this.#events.newlyConnectedExpectedClients,
      record.id,
    );
    if (record.unread > 0) this.#emit(this.#events.clientsHaveDataToRead, record.id);
    if (record.rawOnConnect) this.#setRaw(session, true);
    if (record.processorClass) this.setInlineProcessorForClient(record.id, record.processorClass);
  }

  /** Leaves the handshake: from now on frames may be as large as `maxMessageBytes`. */
  #openPhase(session: Session): void {
    session.phase = OPEN;
    if (session.timer !== undefined) {
      clearTimeout(session.timer);
      session.timer = undefined;
    }
    const rest = session.decoder.takeBuffered();
    session.decoder = new FrameDecoder({ maxMessageBytes: this.#limits.maxMessageBytes });
    if (rest.length) session.decoder.push(rest);
  }

  #startIdleSweep(): void {
    if (this.#idleTimer !== undefined) return;
    const idle = this.#limits.idleTimeoutMs;
    this.#idleTimer = setInterval(() => {
      const now = Date.now();
      for (const session of this.#sessions) {
        // Silence the core caused (a memory cap paused reading, output still in flight) is not idleness.
        if (now - session.lastActivity < idle || session.inflightBytes > 0 || session.readPaused) continue;
        this.#fail(
          session,
          new TimeoutError(
            `Closing idle connection from ${describeAddr(session.conn.remoteAddr)} after ${idle} ms`,
          ),
        );
      }
    }, Math.max(10, Math.min(idle / 4, 1000)));
    unrefTimer(this.#idleTimer);
  }

  /**
   * Returns a number when nothing keeps `chunk` (it was copied into a large message being received):
   * how many more bytes of that message are still to come (see `ConnectionHandler.onData`).
   */
  #onData(session: Session, chunk: Uint8Array): number | undefined {
    if (session.phase === CLOSED || session.phase === REFUSED) return undefined;
    if (this.#idleTimer !== undefined) session.lastActivity = Date.now();
    this.#account(chunk.length);
    let givenBack = false;
    // A processor's answers to this chunk go out at its end, as one write, not a microtask later.
    const answersNow = session.processor !== undefined;
    if (answersNow) this.#reading = session;
    try {
      if (session.raw) this.#deliver(session, chunk);
      else {
        givenBack = session.decoder.absorb(chunk);
        if (!givenBack) session.decoder.push(chunk);
        this.#drainDecoder(session);
      }
    } finally {
      if (answersNow) this.#reading = undefined;
    }
    if (session.dirty && (answersNow || session.processor)) this.#flushNow(session);
    if (this.#inputBytes > this.#limits.inputBytes || this.#outputBytes > this.#limits.outputBytes) {
      this.#pressure(session);
    }
    return givenBack ? session.decoder.partialFrameMissingBytes : undefined;
  }

  #drainDecoder(session: Session): void {
    while (session.phase !== CLOSED && session.phase !== REFUSED && !session.busy) {
      if (session.raw) {
        const rest = session.decoder.takeBuffered();
        if (rest.length) this.#deliver(session, rest);
        return;
      }
      const record = session.client;
      if (record !== undefined && session.phase === OPEN && session.processor === undefined) {
        // The common case, many whole frames in one chunk for a polled client: one pass, one event.
        const inbox = record.inbox;
        const before = inbox.length;
        const bytes = session.decoder.takeWholeMessages(inbox);
        if (inbox.length > before) {
          this.#account(-FRAME_HEADER_BYTES * (inbox.length - before));
          record.inboxBytes += bytes;
          this.#emit(this.#events.clientsHaveDataToRead, record.id);
        }
      }
      let message: Uint8Array | undefined;
      try {
        message = session.decoder.next();
      } catch (caught) {
        let err = caught as Error;
        if (session.phase !== OPEN && err instanceof MessageTooLargeError) {
          err = new ProtocolError(
            `Cannot complete handshake with ${
              describeAddr(session.conn.remoteAddr)
            }: first frame declares ${err.declaredLength} bytes, more than the ${this.#limits.maxKeywordBytes} allowed`,
            { cause: err },
          );
        }
        this.#fail(session, err);
        return;
      }
      if (message === undefined) return;
      this.#account(-FRAME_HEADER_BYTES);
      if (session.phase === OPEN) this.#deliver(session, message);
      else {
        this.#account(-message.length);
        if (session.phase === AWAIT_KEYWORD) this.#onKeyword(session, message);
        else if (session.phase === AWAIT_AUTH) this.#onAuthAnswer(session, message);
        else this.#onServerAnswer(session, message);
      }
    }
  }

  /** Delivers one message or raw chunk (already counted as input) to the processor or the inbox. */
  #deliver(session: Session, message: Uint8Array): void {
    if (session.processor) {
      this.#deliverToProcessor(session, message);
      return;
    }
    const record = session.client ?? session.held;
    if (!record) return;
    record.inbox.push(message);
    record.inboxBytes += message.length;
    if (session.client) this.#emit(this.#events.clientsHaveDataToRead, record.id);
  }

  #deliverToProcessor(session: Session, message: Uint8Array): void {
    const processor = session.processor!;
    this.#producer = session;
    this.#account(-message.length);
    try {
      processor.onDataReceived(message);
    } catch (err) {
      this.#processorFailed(session, "onDataReceived", err);
      return;
    }
    this.#afterProcessorCallback(session);
  }

  #afterProcessorCallback(session: Session): void {
    const processor = session.processor;
    if (!processor || session.phase === CLOSED) return;
    const output = processor.outputMessages;
    if (output.length) {
      for (let i = 0; i < output.length; i++) this.#queueOutput(session, toBytes(output[i]!));
      output.length = 0;
    }
    if (session.processorCloseNow) this.#closeSession(session);
  }

  #processorFailed(session: Session, callback: string, err: unknown): void {
    const id = session.client?.id;
    this.#logger.error?.(`InlineProcessor.${callback} threw for client ${id}; its connection is closed`, err);
    const error = err instanceof Error
      ? err
      : new AsockioError(`InlineProcessor.${callback} threw`, { cause: err });
    this.#fail(session, error, false);
  }

  #attachProcessor(session: Session, record: ClientRecord): void {
    const processor = new record.processorClass!();
    session.processor = processor;
    processor[attachProcessor](
      {
        clientId: record.id,
        keyword: record.keyword,
        remoteAddr: session.conn.remoteAddr,
        listener: session.listener,
      },
      {
        setRaw: (raw) => this.#setRaw(session, raw),
        closeNow: () => {
          session.processorCloseNow = true;
        },
        closeWhenFlushed: () => this.#closeWhenFlushed(session),
        isRaw: () => session.raw,
      },
    );
    try {
      processor.onConnected();
    } catch (err) {
      this.#processorFailed(session, "onConnected", err);
      return;
    }
    this.#afterProcessorCallback(session);
  }

  #onKeyword(session: Session, keyword: Uint8Array): void {
    const key = keywordKey(keyword);
    const where = `${describeAddr(session.conn.remoteAddr)} on ${session.listener?.name}`;
    const record = this.#byKeyword.get(key);
    let admitted: number;
    try {
      admitted = (record?.rules ?? this.#defaultRules)(this.#peerInfo(session, keyword));
    } catch (err) {
      this.#logger.error?.(`An access rule threw for ${where}; refusing`, err);
      admitted = -1;
    }
    if (admitted < 0) {
      return this.#refuse(
        session,
        "access denied",
        `${where} (keyword ${JSON.stringify(utf8Decoder.decode(keyword))})`,
      );
    }
    if (record) {
      if (record.connect) return this.#refuse(session, "keyword is not accepted here", where);
      if (record.session && !this.#replaceDuplicates) {
        return this.#refuse(session, "duplicate keyword", where);
      }
      if (record.secretKey) {
        session.phase = AWAIT_AUTH;
        session.pending = record;
        const { challenge, nonce } = makeChallenge();
        session.nonce = nonce;
        this.#queueOutput(session, challenge, true);
        return;
      }
      this.#admitNamed(session, record, where);
      return;
    }
    if (!this.#acceptUnexpected) return this.#refuse(session, "unexpected keyword", where);
    if (this.#held.has(key)) return this.#refuse(session, "duplicate keyword", where);
    // Held as in the original: it gets OK now, and its messages wait for addClient.
    this.#queueOutput(session, KEYWORD_ACCEPTED, true);
    session.held = new ClientRecord(0, "expected", keyword.slice(), undefined, false, undefined);
    this.#held.set(key, session);
    this.#openPhase(session);
  }

  #admitNamed(session: Session, record: ClientRecord, where: string): void {
    if (record.removed) return this.#refuse(session, "unexpected keyword", where);
    if (record.session) {
      if (!this.#replaceDuplicates) return this.#refuse(session, "duplicate keyword", where);
      this.#closeSession(record.session);
    }
    this.#queueOutput(session, KEYWORD_ACCEPTED, true);
    this.#bind(session, record);
  }

  #onAuthAnswer(session: Session, proof: Uint8Array): void {
    const record = session.pending!;
    const nonce = session.nonce!;
    session.busy = true;
    record.secretKey!.then((key) => authProof(key, nonce, record.keyword)).then(
      (expected) => {
        session.busy = false;
        if (session.phase !== AWAIT_AUTH) return;
        session.pending = session.nonce = undefined;
        const where = `${describeAddr(session.conn.remoteAddr)} on ${session.listener?.name}`;
        if (!timingSafeEqual(expected, proof)) return this.#refuse(session, "authentication failed", where);
        this.#admitNamed(session, record, where);
        this.#drainDecoder(session);
      },
      (err: Error) => {
        session.busy = false;
        this.#fail(session, new AsockioError("Cannot verify the client's secret", { cause: err }));
      },
    );
  }

  #onServerAnswer(session: Session, answer: Uint8Array): void {
    const record = session.client!;
    if (answer.length === 2 && answer[0] === KEYWORD_ACCEPTED[0] && answer[1] === KEYWORD_ACCEPTED[1]) {
      this.#bind(session, record);
      return;
    }
    const nonce = challengeNonce(answer);
    if (nonce && record.secretKey) {
      session.busy = true;
      const ownNonce = nonce.slice();
      record.secretKey.then((key) => authProof(key, ownNonce, record.keyword)).then(
        (proof) => {
          session.busy = false;
          if (session.phase !== AWAIT_OK) return;
          this.#queueOutput(session, proof, true);
          this.#drainDecoder(session);
        },
        (err: Error) => {
          session.busy = false;
          this.#fail(session, new AsockioError("Cannot answer the server's challenge", { cause: err }));
        },
      );
      return;
    }
    const reason = nonce
      ? "server requires authentication, and no secret is set for this client"
      : utf8Decoder.decode(answer);
    this.#fail(session, new HandshakeRejectedError(reason));
  }

  #refuse(session: Session, reason: string, where: string): void {
    this.#logger.info?.(`Refused connection from ${where}: ${reason}`);
    if (session.timer !== undefined) clearTimeout(session.timer);
    session.timer = undefined;
    session.phase = REFUSED;
    this.#account(-session.decoder.takeBuffered().length);
    this.#queueOutput(session, toBytes(reason), true);
    this.#closeWhenFlushed(session);
  }

  /** Closes a session because of an error, which becomes the client's `lastError`. */
  #fail(session: Session, error: Error, log = true): void {
    if (session.phase === CLOSED) return;
    if (log) {
      this.#logger.warn?.(
        `Closing connection from ${describeAddr(session.conn.remoteAddr)}: ${error.message}`,
      );
    }
    this.#closeSession(session, error);
  }

  #setRaw(session: Session, raw: boolean): void {
    if (session.raw === raw || session.phase === CLOSED) return;
    session.raw = raw;
    // The rest of the current input is re-read under the new mode: raw gets the undecoded bytes.
    if (raw && session.phase === OPEN && session.decoder.bufferedBytes > 0) {
      queueMicrotask(() => {
        if (session.raw && session.phase === OPEN) this.#drainDecoder(session);
      });
    }
  }

  /** The peer half-closed: deliver what is queued, then close. */
  #onEnd(session: Session): void {
    if (session.phase === CLOSED) return;
    session.peerEnded = true;
    if (session.closingGracefully) this.#closeSession(session);
    else this.#closeWhenFlushed(session);
  }

  #closeWhenFlushed(session: Session): void {
    if (session.phase === CLOSED) return;
    session.closeWhenFlushed = true;
    if (!session.dirty && session.inflightBytes === 0) this.#beginGracefulClose(session);
  }

  #beginGracefulClose(session: Session): void {
    if (session.closingGracefully || session.phase === CLOSED) return;
    session.closingGracefully = true;
    if (session.peerEnded) {
      this.#closeSession(session);
      return;
    }
    session.conn.closeWrite();
    if (session.timer !== undefined) clearTimeout(session.timer);
    session.timer = setTimeout(() => {
      session.timer = undefined;
      this.#closeSession(session);
    }, this.#limits.closeTimeoutMs);
    unrefTimer(session.timer);
  }

  #closeSession(session: Session, error?: Error): void {
    if (session.phase === CLOSED) return;
    this.#finalizeSession(session, error);
    session.conn.close();
  }

  #finalizeSession(session: Session, error: Error | undefined): void {
    if (session.phase === CLOSED) return;
    const wasOpen = session.phase === OPEN;
    const wasOutgoing = session.phase === AWAIT_OK;
    session.phase = CLOSED;
    if (session.timer !== undefined) {
      clearTimeout(session.timer);
      session.timer = undefined;
    }
    this.#sessions.delete(session);
    if (this.#producer === session) this.#producer = undefined;
    if (session.listener) this.#listenerOpen[session.listener.id]!--;
    this.#account(-session.decoder.bufferedBytes);
    this.#outputBytes -= session.outQueueBytes + session.inflightBytes;
    session.outQueue = [];
    session.outQueueBytes = 0;
    session.inflightBytes = 0;
    if (session.held) {
      this.#held.delete(session.held.key);
      this.#account(-session.held.inboxBytes);
      session.held = undefined;
    }
    const record = session.client;
    if (record && record.session === session) {
      record.session = undefined;
      if (wasOutgoing && !error) {
        error = new HandshakeRejectedError("", { cause: new ConnectionClosedError("Connection closed") });
      }
      if (error) record.lastError = error;
      if ((wasOpen || wasOutgoing) && !record.removed) {
        this.#emit(this.#events.clientsWithDisconnectedConnection, record.id);
      }
      const processor = session.processor;
      session.processor = undefined;
      if (processor) {
        try {
          processor.onConnectionLost();
        } catch (err) {
          this.#logger.error?.(`InlineProcessor.onConnectionLost threw for client ${record.id}`, err);
        }
      }
      if (record.kind === "unknown" && record.unread === 0) this.#forget(record);
    }
    if (session.readPaused) this.#paused.delete(session);
    this.#relieve();
    if (this.#idleTimer !== undefined && this.#sessions.size === 0) {
      clearInterval(this.#idleTimer);
      this.#idleTimer = undefined;
    }
  }

  #forget(record: ClientRecord): void {
    if (this.#clients.get(record.id) !== record) return;
    this.#clients.delete(record.id);
    const events = this.#events;
    if (events.newlyConnectedUnknownClients.has(record.id)) {
      // The application never heard of this client: drop its events, so a core that nobody polls
      // (processors only) does not collect the ids of every connection it ever had.
      for (const set of Object.values(events) as Set<ClientId>[]) {
        if (set.delete(record.id)) this.#eventCount--;
      }
    }
    if (this.#byKeyword.get(record.key) === record) this.#byKeyword.delete(record.key);
    this.#account(-record.inboxBytes);
    record.inbox = [];
    record.inboxHead = 0;
    record.inboxBytes = 0;
  }

  #checkKeyword(keyword: Keyword): Uint8Array {
    if (typeof keyword !== "string" && !(keyword instanceof Uint8Array)) {
      throw new TypeError("Cannot add client: keyword must be a string or a Uint8Array");
    }
    const bytes = toBytes(keyword);
    if (bytes.length > this.#limits.maxKeywordBytes) {
      throw new RangeError(
        `Cannot add client: keyword is ${bytes.length} bytes, more than maxKeywordBytes ${this.#limits.maxKeywordBytes}`,
      );
    }
    return bytes.slice();
  }

  #openSession(id: ClientId, action: string): Session {
    const session = this.#clients.get(id)?.session;
    if (!session || session.phase !== OPEN) {
      throw new ConnectionClosedError(`Cannot ${action}: client ${id} has no open connection`);
    }
    return session;
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  #queueOutput(session: Session, payload: Uint8Array, framed = !session.raw): void {
    if (session.phase === CLOSED) return;
    if (session.outQueue.length && session.outQueueFramed !== framed) this.#flushSession(session);
    session.outQueueFramed = framed;
    session.outQueue.push(payload);
    const bytes = framed ? payload.length + FRAME_HEADER_BYTES : payload.length;
    session.outQueueBytes += bytes;
    this.#outputBytes += bytes;
    if (this.#outputBytes > this.#limits.outputBytes) this.#outputPressure(session);
    this.#markDirty(session);
  }

  /** `#queueOutput` for a batch, with one accounting update. */
  #queueOutputs(session: Session, messages: readonly (Uint8Array | string)[]): void {
    if (session.phase === CLOSED || messages.length === 0) return;
    const framed = !session.raw;
    if (session.outQueue.length && session.outQueueFramed !== framed) this.#flushSession(session);
    session.outQueueFramed = framed;
    const queue = session.outQueue;
    const count = messages.length;
    let bytes = framed ? count * FRAME_HEADER_BYTES : 0;
    let i = 0;
    for (; i < count; i++) {
      const message = messages[i];
      if (typeof message === "string") break;
      bytes += message.length;
    }
    if (i === count && queue.length === 0) session.outQueue = messages.slice() as Uint8Array[];
    else {
      for (let k = 0; k < i; k++) queue.push(messages[k] as Uint8Array);
      for (; i < count; i++) {
        const payload = toBytes(messages[i]!);
        queue.push(payload);
        bytes += payload.length;
      }
    }
    session.outQueueBytes += bytes;
    this.#outputBytes += bytes;
    if (this.#outputBytes > this.#limits.outputBytes) this.#outputPressure(session);
    this.#markDirty(session);
  }

  #markDirty(session: Session): void {
    if (!session.dirty) {
      session.dirty = true;
      // Output of the processor whose read is being handled: #onData flushes it when done.
      if (session === this.#reading) return;
      this.#dirty.push(session);
      if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        queueMicrotask(this.#flushAll);
      }
    }
  }

  #flushAll = (): void => {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (let i = 0; i < dirty.length; i++) {
      const session = dirty[i]!;
      if (session.dirty) this.#flushNow(session);
    }
  };

  #flushNow(session: Session): void {
    session.dirty = false;
    this.#flushSession(session);
    if (session.closeWhenFlushed && session.inflightBytes === 0) this.#beginGracefulClose(session);
  }

  #flushSession(session: Session): void {
    const queue = session.outQueue;
    if (!queue.length || session.phase === CLOSED) return;
    const framed = session.outQueueFramed;
    const total = session.outQueueBytes;
    session.outQueue = [];
    session.inflightBytes += total;
    session.outQueueBytes = 0;
    try {
      // Raw pieces go as they are: the transport gathers them into one native write. This is the
      // connection's one batch for the tick, so the transport starts writing it at once.
      session.conn.writeBatch(framed ? framedPieces(queue) : queue);
    } catch (err) {
      this.#closeSession(session, err as Error);
    }
  }

  /** Everything written so far reached the kernel. */
  #onDrain(session: Session): void {
    if (session.phase === CLOSED) return;
    if (this.#idleTimer !== undefined) session.lastActivity = Date.now();
    this.#outputBytes -= session.inflightBytes;
    session.inflightBytes = 0;
    if (this.#paused.size) this.#relieve();
    if (session.dirty) return;
    const record = session.client;
    if (record && session.phase === OPEN) {
      const processor = session.processor;
      // A processor hears of it through onOutputBuffersAreEmpty (waking ioIteration per write would cost).
      if (!processor) this.#emit(this.#events.clientsWithEmptyOutputFifo, record.id);
      else {
        try {
          processor.onOutputBuffersAreEmpty();
        } catch (err) {
          this.#processorFailed(session, "onOutputBuffersAreEmpty", err);
          return;
        }
        this.#afterProcessorCallback(session);
      }
    }
    if (session.closeWhenFlushed && !session.dirty) this.#beginGracefulClose(session);
  }

  // ---------------------------------------------------------------------------------------------
  // Memory limits

  #account(delta: number): void {
    this.#inputBytes += delta;
  }

  #consumed(record: ClientRecord, bytes: number): void {
    record.inboxBytes -= bytes;
    this.#account(-bytes);
    const session = record.session;
    if (session?.readPaused && record.inboxBytes === 0 && this.#outputBytes <= this.#limits.outputBytes) {
      // This client's unread input is gone: it may read again even while others keep the cap exceeded.
      this.#resume(session);
    }
    if (this.#paused.size || this.#parked.length) this.#relieve();
    if (record.kind === "unknown" && !record.session && record.unread === 0) this.#forget(record);
  }

  /**
   * Called when a connection delivered data while a cap is exceeded: stop reading from it if it is
   * a producer. Over the input cap, that is a connection whose client holds unread messages (a held
   * unexpected keyword, which the application cannot read, is closed instead: it would pin the cap
   * for good). Over the output cap, it is a connection whose own output is congested (an echo-like
   * peer that does not read). Connections whose data is read promptly, and whose answers drain,
   * keep working.
   */
  #pressure(session: Session): void {
    if (session.readPaused || session.phase === CLOSED) return;
    if (this.#inputBytes > this.#limits.inputBytes) {
      if (session.held && session.held.inboxBytes > 0) {
        this.#fail(
          session,
          new ProtocolError(
            `Closing held connection from ${
              describeAddr(session.conn.remoteAddr)
            }: its unread input filled the input cap before its keyword was registered`,
          ),
        );
        return;
      }
      if ((session.client?.inboxBytes ?? 0) > 0) return this.#pause(session);
    }
    if (this.#outputBytes > this.#limits.outputBytes && this.#congested(session)) this.#pause(session);
  }

  /** Over the output cap, queueing output to a congested connection pauses the producer. */
  #outputPressure(target: Session): void {
    const producer = this.#producer;
    if (producer && producer.phase !== CLOSED && !producer.readPaused && this.#congested(target)) {
      this.#pause(producer);
    }
  }

  /** Output queued for this connection beyond its fair share of the output cap. */
  #congested(session: Session): boolean {
    const queued = session.outQueueBytes + session.inflightBytes;
    return queued > Math.max(64 * 1024, this.#limits.outputBytes / 16);
  }

  #pause(session: Session): void {
    session.readPaused = true;
    this.#paused.add(session);
    session.conn.pauseReading();
  }

  #resume(session: Session): void {
    session.readPaused = false;
    session.lastActivity = Date.now();
    this.#paused.delete(session);
    if (session.phase !== CLOSED) session.conn.resumeReading();
  }

  /** Under both caps again: resume every paused connection and admit parked ones. */
  #relieve(): void {
    if (
      this.#paused.size && this.#inputBytes <= this.#limits.inputBytes &&
      this.#outputBytes <= this.#limits.outputBytes
    ) {
      for (const session of this.#paused) this.#resume(session);
    }
    if (this.#parked.length) this.#unpark();
  }

  // ---------------------------------------------------------------------------------------------
  // Events

  #emit(set: Set<ClientId>, id: ClientId): void {
    if (set.has(id)) return;
    set.add(id);
    this.#eventCount++;
    if (this.#waiter && !this.#wakeScheduled) {
      this.#wakeScheduled = true;
      // Wake after the current I/O callback has finished, so its events arrive together.
      queueMicrotask(() => {
        this.#wakeScheduled = false;
        this.#resolveWaiter();
      });
    }
  }

  #resolveWaiter(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    this.#waiter = undefined;
    this.#cancelWaiterTimer?.();
    this.#cancelWaiterTimer = undefined;
    waiter(this.#takeEvents());
  }

  #takeEvents(): IoIterationResult {
    const events = this.#events;
    this.#events = newEventSets();
    this.#eventCount = 0;
    // A client reported as having data must still have some when the result is read.
    for (const id of events.clientsHaveDataToRead) {
      const record = this.#clients.get(id);
      if (!record || record.unread === 0) events.clientsHaveDataToRead.delete(id);
    }
    return events;
  }

  async #closeListeners(): Promise<void> {
    const listeners = this.#listeners;
    this.#listeners = [];
    await Promise.allSettled(listeners.map((listener) => listener.close()));
  }
}
