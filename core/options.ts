/**
 * The options of an `IoCore`: limits, listeners, policies and logging, with their defaults and the
 * one function that checks them.
 *
 * @module
 */
import type { ClusterBus } from "./clients/cluster_bus.ts";
import type {
  Addr,
  ConnectOptions,
  DatagramBindOptions,
  ListenOptions,
  Transport,
  TransportName,
  UdpConnectOptions,
} from "../transports/types.ts";
import type { InlineProcessorClass } from "./processor.ts";
import type { ReconnectOptions } from "./clients/reconnect.ts";
import type { AccessRule } from "./admission/rules.ts";
import type { Keyword, ListenerInfo } from "./types.ts";
import type { WebSocketListenerOptions } from "./websocket_options.ts";
export type { WebSocketListenerOptions };

/**
 * Global byte caps and protocol limits. Every field is optional.
 *
 * @example
 * ```ts
 * import type { IoCoreLimits } from "@asockio/core";
 * const limits: IoCoreLimits = { inputBytes: 64 * 1024 * 1024, handshakeTimeoutMs: 5000 };
 * ```
 */
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
   * The largest streamed message accepted (see `IoCoreOptions.streamThresholdBytes`). A larger
   * declared length closes that connection with a `MessageTooLargeError`, as `maxMessageBytes` does.
   * @default {9007199254740991} (`Number.MAX_SAFE_INTEGER`)
   */
  maxStreamedMessageBytes?: number;
  /**
   * The longest keyword accepted in a handshake.
   * @default {1024}
   */
  maxKeywordBytes?: number;
  /**
   * A connection that has not completed its handshake by then is closed (slowloris guard): an
   * accepted one from its admission (a parked one also waits at most this long), an outgoing client's from
   * the start of its connect, which then fails with a `TimeoutError` and is retried.
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
   * After the peer of an accepted connection ends its side (half-close), the connection stays
   * writable, so a slow application can still answer (`getClientInfo(id).peerEnded` is `true`). The
   * core closes it once everything that arrived before the end has been read, nothing is queued, and
   * this long has passed since the end; the application may close it earlier. A connection driven
   * by a processor does not wait for the time (its answers come from its callbacks), and one held
   * for an unregistered keyword closes after it. Outgoing clients whose server ends its side
   * reconnect as before.
   * @default {5000}
   */
  halfOpenTimeoutMs?: number;
  /**
   * The most connections open at once (incoming and outgoing, handshakes included). At the cap,
   * new incoming connections wait unread (parked), in order, until a slot frees, for at most
   * `handshakeTimeoutMs`; see `maxParkedConnections`.
   * @default {65536}
   */
  maxConnections?: number;
  /**
   * The most accepted connections parked at once, waiting for a slot under `maxConnections`, a
   * listener's own `maxConnections` or the input cap. Beyond it a new connection is closed at once,
   * logged and counted in `stats().droppedConnections`.
   * @default {1024}
   */
  maxParkedConnections?: number;
  /**
   * Close a connection that has neither received nor sent anything for this long; `0` disables it.
   * @default {0}
   */
  idleTimeoutMs?: number;
  /**
   * A UDP client (a remote address of a UDP listener) that sends no datagram for this long expires:
   * its connection closes (`clientsWithDisconnectedConnection`), and its next datagram makes a new
   * client. `0` disables it.
   * @default {60000}
   */
  udpIdleTimeoutMs?: number;
  /**
   * The most UDP clients tracked at once. Past it, datagrams from new addresses are dropped (UDP
   * cannot push back) and counted in `stats().droppedUdpDatagrams`.
   * @default {65536}
   */
  maxUdpClients?: number;
}

/**
 * A listener: where to listen, plus an optional name used by rules and in `getClientInfo`. A UDP
 * listener (`transport: "udp"`) makes each remote address an unknown client, one datagram one message.
 *
 * @example
 * ```ts
 * import type { IoCoreListenerOptions } from "@asockio/core";
 * const tcp: IoCoreListenerOptions = { transport: "tcp", port: 0, name: "public", maxConnections: 100 };
 * ```
 */
export type IoCoreListenerOptions = (ListenOptions | DatagramBindOptions) & {
  /** A name for logs and rules; defaults to `tcp:<host>:<port>` or `unix:<path>`. */
  name?: string;
  /** The most connections open at once through this listener; more wait unread. Unlimited by default. */
  maxConnections?: number;
  /**
   * TCP and TLS listeners behind a load balancer (HAProxy `send-proxy`/`send-proxy-v2`, nginx
   * `proxy_protocol on`): every connection must start with a PROXY protocol header (v1 or v2), and
   * only from `trusted` addresses (CIDR ranges). `remoteAddr` is then the original client's, for
   * rules, logs and `getClientInfo`; the balancer's is `proxyAddr`. Off by default.
   */
  proxyProtocol?: ProxyProtocolOptions;
  /**
   * TCP and TLS listeners for browsers: every connection starts with an HTTP request. An upgrade at
   * `websocket.path` becomes a WebSocket connection (one WebSocket message one message, the keyword
   * handshake unchanged); any other request is a raw connection, its bytes intact (serve it with an
   * `HttpResponder`). With `proxyProtocol`, the PROXY header comes before the request. See
   * {@linkcode WebSocketListenerOptions}. Off by default.
   */
  websocket?: WebSocketListenerOptions;
};

/**
 * The PROXY protocol option of a listener.
 *
 * @example
 * ```ts
 * import type { ProxyProtocolOptions } from "@asockio/core";
 * const behindHaproxy: ProxyProtocolOptions = { trusted: ["127.0.0.1/32", "10.0.0.0/8"] };
 * ```
 */
export interface ProxyProtocolOptions {
  /** The balancers' addresses, as CIDR ranges; a connection from anywhere else is refused. */
  trusted: readonly string[];
}

/**
 * What the core knows of a new incoming connection when `rawConnection` is asked about it.
 *
 * @example
 * ```ts
 * import type { IncomingConnectionInfo } from "@asockio/core";
 * const rawOnHttp = (info: IncomingConnectionInfo) => info.listener.name === "http";
 * ```
 */
export interface IncomingConnectionInfo {
  /** The listener it came through. */
  readonly listener: ListenerInfo;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** The local address it was accepted on. */
  readonly localAddr: Addr;
  /** The balancer's address, behind a trusted PROXY protocol source (`remoteAddr` is the client's). */
  readonly proxyAddr?: Addr;
  /** True for a connection upgraded to WebSocket on a `websocket` listener. */
  readonly websocket: boolean;
}

/**
 * Where the core reports what happens. Each method is optional.
 *
 * @example
 * ```ts
 * import type { Logger } from "@asockio/core";
 * const logger: Logger = { error: (message, ...details) => console.error(message, ...details) };
 * ```
 */
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

/**
 * Options for `IoCore`. `new IoCore` checks every name and value, in the nested objects too
 * (listeners, limits): an unknown name throws a `TypeError` that suggests the nearest known one.
 *
 * @example
 * ```ts
 * import type { IoCoreOptions } from "@asockio/core";
 * const options: IoCoreOptions = { listeners: [{ transport: "tcp", port: 0 }], unknownClients: "allow" };
 * ```
 */
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
   * connection becomes an unknown client (if `unknownClients` is `"allow"`). Not asked for UDP
   * listeners, whose clients are always raw.
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
   * A connection announcing a keyword nobody registered: `true` holds it until `addClient` registers
   * the keyword; `"adopt"` registers it at once, as if `addClient({ keyword })` had been called (it is
   * reported in `newlyConnectedExpectedClients`, and removed again when its connection ends, after
   * its unread messages are read); `false` refuses it.
   * @default {true}
   */
  acceptUnexpectedKeywords?: boolean | "adopt";
  /**
   * What to do when a keyword that is already connected is announced again (in this core).
   * @default {"refuse"}
   */
  duplicateKeyword?: "refuse" | "replace";
  /**
   * The cluster this core joins (see `natsCluster` in `@asockio/core/cluster`): its named clients
   * become reachable by keyword from every node, and `sendMessagesToKeyword` reaches theirs.
   * One bus per core. Without it, sends by keyword reach this core's clients only.
   */
  cluster?: ClusterBus;
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
  /**
   * A framed message declaring more than this many bytes is delivered as a stream while it
   * arrives (`takeMessageStream`, `clientsHaveMessageStream`), with at most about 1 MiB of it held,
   * and capped by `limits.maxStreamedMessageBytes` instead of `maxMessageBytes`. Also per client in
   * `addClient`. Clients with a processor always get whole messages. Unset: every message is whole.
   * @default {undefined}
   */
  streamThresholdBytes?: number;
  /** Aborting it closes the core, as `Deno.serve({ signal })` does. */
  signal?: AbortSignal;
}

/**
 * Options for `IoCore.messages`.
 *
 * @example
 * ```ts
 * import type { MessagesOptions } from "@asockio/core";
 * const options: MessagesOptions = { highWaterMarkBytes: 256 * 1024, signal: AbortSignal.timeout(60_000) };
 * ```
 */
export interface MessagesOptions {
  /** Aborting it ends the iteration with the signal's reason; the client stays. */
  signal?: AbortSignal;
  /**
   * While more than this many bytes wait unread, reading from the client's connection pauses.
   * @default {1048576} (1 MiB)
   */
  highWaterMarkBytes?: number;
}

/**
 * Options for `IoCore.shutdown`.
 *
 * @example
 * ```ts
 * import type { ShutdownOptions } from "@asockio/core";
 * const options: ShutdownOptions = { timeoutMs: 5000 };
 * ```
 */
export interface ShutdownOptions {
  /**
   * After this long, connections still open are closed at once.
   * @default {10000}
   */
  timeoutMs?: number;
}

/**
 * Options for `IoCore.ioIteration`.
 *
 * @example
 * ```ts
 * import type { IoIterationOptions } from "@asockio/core";
 * const options: IoIterationOptions = { signal: AbortSignal.timeout(5000) };
 * ```
 */
export interface IoIterationOptions {
  /** Aborting it rejects that call with the signal's reason; the core stays open. */
  signal?: AbortSignal;
}

/**
 * Options for `IoCore.addClient`.
 *
 * @example
 * ```ts
 * import type { AddClientOptions } from "@asockio/core";
 * const worker: AddClientOptions = { keyword: "worker-7", connect: { transport: "tcp", port: 25000 } };
 * ```
 */
export interface AddClientOptions {
  /** The keyword the client announces (or, with `connect`, that this core announces). */
  keyword: Keyword;
  /**
   * Connect out to this address and announce `keyword` there, acting as a client. With
   * `transport: "udp"` there is no handshake: the keyword only names the client here, its messages
   * are datagrams to that address (an IP literal), and only datagrams from it are received; it is
   * always raw, takes no `secret`, and `reconnect` binds a new socket after the socket fails.
   */
  connect?: ConnectOptions | UdpConnectOptions;
  /**
   * Switch the connection to raw mode right after the handshake (not a WebSocket connection: each of
   * its messages is one message already).
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
  /**
   * Outgoing clients: reconnect after a lost connection or a failed connect, with backoff; `false`
   * turns it off. A refused handshake, or a close this side asked for, stops the retries until
   * `reconnectClient`.
   * @default {on, with the defaults of ReconnectOptions}
   */
  reconnect?: ReconnectOptions | false;
  /**
   * This client's `IoCoreOptions.streamThresholdBytes`.
   * @default {the core's streamThresholdBytes}
   */
  streamThresholdBytes?: number;
}

/** Every limit, filled in with its default. Internal. */
export type ResolvedLimits = Required<IoCoreLimits>;
