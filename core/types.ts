/**
 * The values the core hands to applications: client ids, keywords, listener descriptions, the
 * events of one {@linkcode IoIterationResult}, client snapshots and counters.
 *
 * @module
 */
import type { ClusterStats } from "./clients/cluster_bus.ts";
import type { Addr } from "../transports/types.ts";

/**
 * A client's id: a small positive integer, never reused during a core's life.
 *
 * @example
 * ```ts
 * import type { ClientId } from "@asockio/core";
 * const ids: ClientId[] = [1, 2, 3];
 * ```
 */
export type ClientId = number;

/**
 * A keyword: compared as bytes; strings are UTF-8.
 *
 * @example
 * ```ts
 * import type { Keyword } from "@asockio/core";
 * const keyword: Keyword = "manager client";
 * ```
 */
export type Keyword = string | Uint8Array;

/**
 * A listener as the core reports it to rules, processors and `getClientInfo`.
 *
 * @example
 * ```ts
 * import type { ListenerInfo } from "@asockio/core";
 * const describe = (l: ListenerInfo) => `${l.id} ${l.name}`;
 * ```
 */
export interface ListenerInfo {
  /** The listener's index in `IoCoreOptions.listeners`, stable for the core's life. */
  readonly id: number;
  /** The name given in the listener options, or `"tcp:<host>:<port>"` / `"unix:<path>"`. */
  readonly name: string;
  /** The bound address, with `port: 0` resolved. */
  readonly addr: Addr;
}

/**
 * The events gathered by one `IoCore.ioIteration` call.
 *
 * @example
 * ```ts
 * import type { IoIterationResult } from "@asockio/core";
 * const busy = (r: IoIterationResult) => r.clientsHaveDataToRead.size > 0;
 * ```
 */
export interface IoIterationResult {
  /** Expected (named) clients whose connection completed its handshake. */
  readonly newlyConnectedExpectedClients: ReadonlySet<ClientId>;
  /** Unknown (raw) clients just admitted. */
  readonly newlyConnectedUnknownClients: ReadonlySet<ClientId>;
  /** Clients whose connection closed (or, for outgoing ones, failed to connect or was refused). */
  readonly clientsWithDisconnectedConnection: ReadonlySet<ClientId>;
  /** Clients that received new messages (or raw chunks) since the last call, not yet all read. */
  readonly clientsHaveDataToRead: ReadonlySet<ClientId>;
  /**
   * Clients whose next unread item is a streamed message (see `IoCoreOptions.streamThresholdBytes`):
   * take it with `takeMessageStream`. While a stream is next, the client is not in
   * `clientsHaveDataToRead`.
   */
  readonly clientsHaveMessageStream: ReadonlySet<ClientId>;
  /** Clients whose queued output has just been fully written. */
  readonly clientsWithEmptyOutputFifo: ReadonlySet<ClientId>;
}

/**
 * The state of a client's connection, as `getClientInfo` reports it.
 *
 * @example
 * ```ts
 * import type { ClientConnectionState } from "@asockio/core";
 * const up = (s: ClientConnectionState) => s === "connected";
 * ```
 */
export type ClientConnectionState =
  | "connecting"
  | "handshake"
  | "connected"
  | "closing"
  | "reconnecting"
  | "disconnected";

/**
 * A snapshot of one client, from `IoCore.getClientInfo`.
 *
 * @example
 * ```ts
 * import type { ClientInfo } from "@asockio/core";
 * const line = (c: ClientInfo) => `${c.keywordText}: ${c.state}`;
 * ```
 */
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
  /** The peer's address, while connected (or the last one); behind a balancer, the original client's. */
  readonly remoteAddr: Addr | undefined;
  /** The balancer's address, when the connection came through a trusted PROXY protocol source. */
  readonly proxyAddr: Addr | undefined;
  /** The listener of the current (or last) incoming connection. */
  readonly listener: ListenerInfo | undefined;
  /** True when the connection carries raw bytes. */
  readonly raw: boolean;
  /** True while the client's connection is a WebSocket (on a `websocket` listener). */
  readonly websocket: boolean;
  /**
   * True once the peer of an accepted connection has ended its side (half-close, FIN): nothing more
   * arrives, but answers are still delivered until the connection closes (see
   * `limits.halfOpenTimeoutMs`). False while disconnected.
   */
  readonly peerEnded: boolean;
  /** Messages (or raw chunks) received and not yet read. */
  readonly unreadMessages: number;
  /** Bytes of those unread messages. */
  readonly unreadBytes: number;
  /** Output bytes queued for the current connection and not yet handed to the kernel. */
  readonly queuedOutputBytes: number;
  /** Why the last connection ended or failed, when it was an error. */
  readonly lastError: Error | undefined;
  /** Outgoing clients: consecutive failed connection attempts since the last success. */
  readonly reconnectAttempts: number;
  /** Outgoing clients: milliseconds until the next attempt, while one is scheduled. */
  readonly nextAttemptInMs: number | undefined;
}

/**
 * Counters from `IoCore.stats`.
 *
 * @example
 * ```ts
 * import type { IoCoreStats } from "@asockio/core";
 * const pressured = (s: IoCoreStats) => s.readingPaused;
 * ```
 */
export interface IoCoreStats {
  /** Unread input bytes held across all clients (including partial frames and a fixed cost per unread message). */
  readonly inputBytes: number;
  /** Output bytes queued and not yet handed to the kernel. */
  readonly outputBytes: number;
  /** Open connections, including those still in their handshake. */
  readonly connections: number;
  /** Registered clients (expected and unknown). */
  readonly clients: number;
  /** Connections holding an unexpected keyword, waiting for `addClient`. */
  readonly heldConnections: number;
  /**
   * Accepted connections waiting unread for a slot (`maxConnections`, a listener's own cap, or the
   * input cap); they are not in {@linkcode connections}.
   */
  readonly parkedConnections: number;
  /**
   * Accepted connections closed unread since the core started: parked while `maxParkedConnections`
   * already waited, or parked longer than `handshakeTimeoutMs`.
   */
  readonly droppedConnections: number;
  /** True while a memory cap has paused reading from some connection (or accepting). */
  readonly readingPaused: boolean;
  /** Remote addresses tracked now over the UDP sockets (incoming UDP clients and outgoing ones). */
  readonly udpClients: number;
  /**
   * Datagrams received and dropped since the core started, since UDP cannot push back: from new
   * addresses past `limits.maxUdpClients`, larger than `maxMessageBytes`, from anyone but an outgoing
   * UDP client's server, or past the 1 MiB that may wait while a client's reading is paused.
   */
  readonly droppedUdpDatagrams: number;
  /** The cluster's counters, when the core has one (`IoCoreOptions.cluster`). */
  readonly cluster?: ClusterStats;
}

/**
 * A message delivered while it arrives, because its frame declared more than
 * `streamThresholdBytes`. `readable` is a byte stream: `for await` works on it, and so does a BYOB
 * reader where the runtime has one. Reading it to its end, or cancelling it (`break` in
 * `for await`, `reader.cancel()`), lets the client's next messages through; a cancel discards the
 * rest of the message as it arrives. If the connection ends before the last byte, reading fails with
 * a `ConnectionClosedError` or `ConnectionResetError`.
 *
 * @example Save a large message to disk as it arrives
 * ```ts ignore
 * const stream = core.takeMessageStream(id);
 * if (stream) {
 *   let bytes = 0;
 *   for await (const chunk of stream.readable) bytes += chunk.length;
 *   console.log(bytes === stream.byteLength); // true
 * }
 * ```
 */
export interface MessageStream {
  /** The payload length its frame header declared. */
  readonly byteLength: number;
  /** The payload, as it arrives. */
  readonly readable: ReadableStream<Uint8Array>;
}
