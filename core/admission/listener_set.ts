/**
 * {@linkcode ListenerSet}: the bound listeners, how many connections each has open against its
 * cap, and the connections parked (accepted, unread) until a slot frees.
 *
 * @module
 */
import type {
  Addr,
  Connection,
  ConnectionHandler,
  Listener,
  ListenOptions,
  Transport,
} from "../../transports/types.ts";
import { DatagramPeers, type DatagramPeersOptions } from "../udp/datagram_peers.ts";
import { type CidrRange, describeAddr, ipInRange, parseCidr, parseIp } from "../wire/ip.ts";
import type { IoCoreListenerOptions, Logger } from "../options.ts";
import type { ListenerInfo } from "../types.ts";
import { WebSocketConnection } from "../connection/websocket_connection.ts";
import { unrefTimer } from "../timer.ts";

/** The limits a `websocket` listener's connections need (from `IoCoreLimits`). */
export interface WebSocketLimits {
  /** The largest message (`limits.maxMessageBytes`). */
  readonly maxMessageBytes: number;
  /** How long a peer has to close after our close frame (`limits.closeTimeoutMs`). */
  readonly closeTimeoutMs: number;
  /** Told how the bytes of partly received WebSocket messages change (counted in `inputBytes`). */
  readonly heldInput?: (delta: number, handler: ConnectionHandler | undefined) => void;
}

/** Checks a listener's `websocket` option beyond the option tables. */
function checkWebSocket(listener: IoCoreListenerOptions, id: number): void {
  const option = listener.websocket;
  if (option === undefined) return;
  const at = `Cannot create IoCore: listener ${id}`;
  if (listener.transport !== "tcp" && listener.transport !== "tls") {
    throw new TypeError(`${at} is ${listener.transport}; websocket needs tcp or tls`);
  }
  if (!option.path.startsWith("/")) {
    throw new TypeError(`${at} websocket.path must start with "/", got ${JSON.stringify(option.path)}`);
  }
  for (const origin of option.allowedOrigins ?? []) {
    if (origin === "null" || !/^[a-z][a-z0-9+.-]*:\/\/[^/?#\s]+$/.test(origin)) {
      throw new TypeError(
        `${at} websocket.allowedOrigins must be origins such as "http://127.0.0.1:8080" (never "null"), got ${
          JSON.stringify(origin)
        }`,
      );
    }
  }
}

/** Compiles a listener's `proxyProtocol.trusted` ranges into a check; throws for a bad option. */
function trustCheck(listener: IoCoreListenerOptions, id: number): ((addr: Addr) => boolean) | undefined {
  const option = listener.proxyProtocol;
  if (option === undefined) return undefined;
  if (listener.transport !== "tcp" && listener.transport !== "tls") {
    throw new TypeError(
      `Cannot create IoCore: listener ${id} is ${listener.transport}; proxyProtocol needs tcp or tls`,
    );
  }
  if (!Array.isArray(option?.trusted)) {
    throw new TypeError(
      `Cannot create IoCore: listener ${id} proxyProtocol.trusted must be a list of CIDR ranges`,
    );
  }
  const ranges: CidrRange[] = option.trusted.map((cidr) => parseCidr(cidr));
  return (addr) => {
    if (addr.transport === "unix") return false;
    const ip = parseIp(addr.hostname);
    return ip !== undefined && ranges.some((range) => ipInRange(ip, range));
  };
}

/** How long and how many connections may wait parked. */
export interface ParkingOptions {
  /** The most connections parked at once, across listeners (`limits.maxParkedConnections`). */
  readonly max: number;
  /** A connection parked this long is closed, `0`: no limit (`limits.handshakeTimeoutMs`). */
  readonly timeoutMs: number;
  /** Where each connection closed unread is reported, as a warning. */
  readonly logger: Logger;
}

/** A connection waiting for a slot. */
interface Parked {
  readonly conn: Connection;
  readonly listener: ListenerInfo;
  timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * The listeners of one core, their per-listener connection counts and caps, and the parked
 * connections: each waits for a slot on its own listener (and the core's), in order of arrival.
 *
 * @example
 * ```ts
 * import { ListenerSet } from "./listener_set.ts";
 * const listeners = new ListenerSet([{ transport: "tcp", port: 0, maxConnections: 10 }]);
 * console.log(listeners.infos.length); // 0 until bind()
 * ```
 */
export class ListenerSet {
  readonly #options: IoCoreListenerOptions[];
  #listeners: Listener[] = [];
  /** The bound listeners, in the order given in the options. */
  readonly infos: ListenerInfo[] = [];
  readonly #open: number[] = [];
  readonly #max: number[] = [];
  /** Parked connections, oldest first. */
  #parked: Parked[] = [];
  /** Per listener: how many of {@linkcode #parked} are its. */
  readonly #parkedOn: number[] = [];
  readonly #parking: ParkingOptions;
  #unparking = false;
  #droppedCount = 0;
  #unparkAgain = false;
  /** Per listener: who may send a PROXY header, or `undefined` when the listener takes none. */
  readonly #trusted: Array<((addr: Addr) => boolean) | undefined>;

  readonly #webSocketLimits: WebSocketLimits;
  /** Connections of `websocket` listeners still reading their request head (or upgrading). */
  readonly #upgrading = new Set<WebSocketConnection>();

  /** Checks the listener options; nothing is bound yet. */
  constructor(
    options: readonly IoCoreListenerOptions[],
    parking: ParkingOptions = { max: Infinity, timeoutMs: 0, logger: {} },
    webSocketLimits: WebSocketLimits = { maxMessageBytes: 64 * 1024 * 1024, closeTimeoutMs: 10_000 },
  ) {
    this.#options = [...options];
    this.#parking = parking;
    this.#webSocketLimits = webSocketLimits;
    this.#options.forEach(checkWebSocket);
    this.#trusted = this.#options.map((listener, id) => trustCheck(listener, id));
    for (const listener of this.#options) {
      const max = listener.maxConnections;
      if (max !== undefined && (!Number.isSafeInteger(max) || max < 1)) {
        throw new RangeError(
          `Cannot create IoCore: listener maxConnections must be a positive integer, got ${max}`,
        );
      }
    }
  }

  /** True once {@linkcode bind} has bound something. */
  get bound(): boolean {
    return this.#listeners.length > 0;
  }

  /** Connections waiting for a slot. */
  get parkedCount(): number {
    return this.#parked.length;
  }

  /**
   * Binds every listener; `onAccept` gets each accepted connection with its listener (for a UDP
   * listener, each new remote address, through `DatagramPeers` with `datagrams`). If one fails,
   * those already bound are closed again and the error is thrown.
   */
  async bind(
    transport: Transport,
    onAccept: (conn: Connection, listener: ListenerInfo) => void,
    datagrams: DatagramPeersOptions,
  ): Promise<Addr[]> {
    try {
      for (const [id, options] of this.#options.entries()) {
        const { name, maxConnections, proxyProtocol: _, websocket, ...listenOptions } = options;
        // Connections accepted before listen() resolves wait for the listener's info.
        const slot: { info?: ListenerInfo; early: Connection[] } = { early: [] };
        const accepted = (conn: Connection) => {
          if (slot.info) onAccept(conn, slot.info);
          else slot.early.push(conn);
        };
        const trusted = this.#trusted[id];
        const onConnection = websocket === undefined ? accepted : (conn: Connection) => {
          // Not a trusted balancer on a PROXY listener: the core refuses it, as on any PROXY listener.
          if (trusted !== undefined && !trusted(conn.remoteAddr)) return accepted(conn);
          this.#upgrading.add(
            new WebSocketConnection(conn, {
              path: websocket.path,
              allowedOrigins: websocket.allowedOrigins,
              pingIntervalMs: websocket.pingIntervalMs ?? 30_000,
              maxMessageBytes: this.#webSocketLimits.maxMessageBytes,
              headTimeoutMs: this.#parking.timeoutMs,
              closeTimeoutMs: this.#webSocketLimits.closeTimeoutMs,
              heldInput: this.#webSocketLimits.heldInput,
              proxyHeader: trusted !== undefined,
              ready: (ws) => {
                this.#upgrading.delete(ws);
                accepted(ws);
              },
              refused: (ws, why) => {
                this.#upgrading.delete(ws);
                this.#parking.logger.debug?.(
                  `Request from ${describeAddr(conn.remoteAddr)} not upgraded: ${why}`,
                );
              },
            }),
          );
        };
        const listener = listenOptions.transport === "udp"
          ? new DatagramPeers(await transport.bindDatagram(listenOptions), datagrams, onConnection)
          : await transport.listen(listenOptions as ListenOptions, onConnection);
        const info: ListenerInfo = { id, name: name ?? describeAddr(listener.addr), addr: listener.addr };
        slot.info = info;
        this.#listeners.push(listener);
        this.infos.push(info);
        this.#open.push(0);
        this.#parkedOn.push(0);
        this.#max.push(maxConnections ?? Infinity);
        for (const conn of slot.early.splice(0)) onAccept(conn, info);
      }
    } catch (err) {
      await this.close();
      // Nothing is bound: a later bind starts afresh.
      for (const list of [this.infos, this.#open, this.#parkedOn, this.#max]) list.length = 0;
      throw err;
    }
    return this.infos.map((info) => info.addr);
  }

  /** Who may send this listener a PROXY header, or `undefined` when it takes none. */
  trustedProxies(listener: ListenerInfo): ((addr: Addr) => boolean) | undefined {
    return this.#trusted[listener.id];
  }

  /** True when `listener` is under its own cap. */
  hasRoom(listener: ListenerInfo): boolean {
    return this.#open[listener.id]! < this.#max[listener.id]!;
  }

  /** True when a connection of `listener` is parked (a new one waits behind it). */
  hasParked(listener: ListenerInfo): boolean {
    return this.#parkedOn[listener.id]! > 0;
  }

  /**
   * Parks an accepted connection: it waits unread (the transport reads nothing before
   * `setHandler`). At the cap it is closed at once instead, and reported as dropped.
   */
  park(conn: Connection, listener: ListenerInfo): void {
    const parking = this.#parking;
    if (this.#parked.length >= parking.max) {
      conn.close();
      return this.#dropped(conn, listener, `${parking.max} connections already wait (maxParkedConnections)`);
    }
    const parked: Parked = { conn, listener, timer: undefined };
    if (parking.timeoutMs > 0) {
      parked.timer = setTimeout(() => {
        const at = this.#parked.indexOf(parked);
        if (at < 0) return;
        this.#unparkAt(at);
        conn.close();
        this.#dropped(conn, listener, `it waited longer than handshakeTimeoutMs ${parking.timeoutMs}`);
      }, parking.timeoutMs);
      unrefTimer(parked.timer);
    }
    this.#parked.push(parked);
    this.#parkedOn[listener.id]!++;
  }

  /** Accepted connections closed unread: parked at the cap, or parked too long. */
  get droppedCount(): number {
    return this.#droppedCount;
  }

  #dropped(conn: Connection, listener: ListenerInfo, why: string): void {
    this.#droppedCount++;
    this.#parking.logger.warn?.(
      `Closed connection from ${describeAddr(conn.remoteAddr)} on ${listener.name} unread: ${why} for a slot`,
    );
  }

  /** Takes the parked entry at `at` out of the queue. */
  #unparkAt(at: number): void {
    const [{ listener, timer }] = this.#parked.splice(at, 1) as [Parked];
    if (timer !== undefined) clearTimeout(timer);
    this.#parkedOn[listener.id]!--;
  }

  /**
   * Admits parked connections, oldest first, each when its own listener has room, while
   * `coreHasRoom` says the core has; one listener at its cap holds back only its own.
   */
  unpark(coreHasRoom: () => boolean, admit: (conn: Connection, listener: ListenerInfo) => void): void {
    // An admission can close a session, which calls back here: that pass runs after this one.
    if (this.#unparking) {
      this.#unparkAgain = true;
      return;
    }
    this.#unparking = true;
    try {
      do {
        this.#unparkAgain = false;
        let i = 0;
        while (i < this.#parked.length) {
          const { conn, listener } = this.#parked[i]!;
          if (!conn.closed) {
            if (!coreHasRoom()) break;
            if (!this.hasRoom(listener)) {
              i++;
              continue;
            }
          }
          this.#unparkAt(i);
          if (!conn.closed) admit(conn, listener);
        }
      } while (this.#unparkAgain);
    } finally {
      this.#unparking = false;
    }
  }

  /** A connection through `listener` opened. */
  opened(listener: ListenerInfo): void {
    this.#open[listener.id]!++;
  }

  /** A connection through `listener` closed. */
  closed(listener: ListenerInfo): void {
    this.#open[listener.id]!--;
  }

  /** Closes the parked connections. */
  closeParked(): void {
    for (const conn of this.#upgrading) conn.close();
    this.#upgrading.clear();
    while (this.#parked.length) {
      const { conn } = this.#parked[0]!;
      this.#unparkAt(0);
      conn.close();
    }
  }

  /** Closes every listener (removing UNIX socket files). */
  async close(): Promise<void> {
    const listeners = this.#listeners;
    this.#listeners = [];
    await Promise.allSettled(listeners.map((listener) => listener.close()));
  }
}
