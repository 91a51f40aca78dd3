/**
 * {@linkcode ListenerSet}: the bound listeners, how many connections each has open against its
 * cap, and the connections parked (accepted, unread) until a slot frees.
 *
 * @module
 */
import type { Addr, Connection, Listener, ListenOptions, Transport } from "../../transports/types.ts";
import { DatagramPeers, type DatagramPeersOptions } from "../udp/datagram_peers.ts";
import { type CidrRange, describeAddr, ipInRange, parseCidr, parseIp } from "../wire/ip.ts";
import type { IoCoreListenerOptions } from "../options.ts";
import type { ListenerInfo } from "../types.ts";

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

/**
 * The listeners of one core, their per-listener connection counts and caps, and the parked queue.
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
  #parked: Array<{ conn: Connection; listener: ListenerInfo }> = [];
  /** Per listener: who may send a PROXY header, or `undefined` when the listener takes none. */
  readonly #trusted: Array<((addr: Addr) => boolean) | undefined>;

  /** Checks the listener options; nothing is bound yet. */
  constructor(options: readonly IoCoreListenerOptions[]) {
    this.#options = [...options];
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
        const { name, maxConnections, proxyProtocol: _, ...listenOptions } = options;
        // Connections accepted before listen() resolves wait for the listener's info.
        const slot: { info?: ListenerInfo; early: Connection[] } = { early: [] };
        const onConnection = (conn: Connection) => {
          if (slot.info) onAccept(conn, slot.info);
          else slot.early.push(conn);
        };
        const listener = listenOptions.transport === "udp"
          ? new DatagramPeers(await transport.bindDatagram(listenOptions), datagrams, onConnection)
          : await transport.listen(listenOptions as ListenOptions, onConnection);
        const info: ListenerInfo = { id, name: name ?? describeAddr(listener.addr), addr: listener.addr };
        slot.info = info;
        this.#listeners.push(listener);
        this.infos.push(info);
        this.#open.push(0);
        this.#max.push(maxConnections ?? Infinity);
        for (const conn of slot.early.splice(0)) onAccept(conn, info);
      }
    } catch (err) {
      await this.close();
      throw err;
    }
    return this.infos.map((info) => info.addr);
  }

  /** Who may send this listener a PROXY header, or `undefined` when it takes none. */
  trustedProxies(listener: ListenerInfo): ((addr: Addr) => boolean) | undefined {
    return this.#trusted[listener.id];
  }

  /** True when `listener` is under its own cap and nobody is parked ahead. */
  hasRoom(listener: ListenerInfo): boolean {
    return this.#open[listener.id]! < this.#max[listener.id]!;
  }

  /** Parks an accepted connection: it waits unread (the transport reads nothing before `setHandler`). */
  park(conn: Connection, listener: ListenerInfo): void {
    this.#parked.push({ conn, listener });
  }

  /** Admits parked connections in order while `canAdmit` says there is room. */
  unpark(
    canAdmit: (listener: ListenerInfo) => boolean,
    admit: (conn: Connection, listener: ListenerInfo) => void,
  ): void {
    while (this.#parked.length) {
      const { conn, listener } = this.#parked[0]!;
      if (!conn.closed && !canAdmit(listener)) return;
      this.#parked.shift();
      if (!conn.closed) admit(conn, listener);
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
    for (const { conn } of this.#parked.splice(0)) conn.close();
  }

  /** Closes every listener (removing UNIX socket files). */
  async close(): Promise<void> {
    const listeners = this.#listeners;
    this.#listeners = [];
    await Promise.allSettled(listeners.map((listener) => listener.close()));
  }
}
