/**
 * {@linkcode DatagramPeers}: one UDP socket seen as connections, one per remote address, so the
 * scheduler admits, binds and closes UDP clients through the same paths as stream connections.
 *
 * Each remote address (host and port) is a {@linkcode Connection} whose `onData` is one datagram
 * and whose `writeBatch` sends one datagram per chunk. UDP cannot push back: a new address past
 * `maxPeers`, a datagram over `maxMessageBytes`, and datagrams beyond what may wait while a peer's
 * reading is paused are dropped and counted in {@linkcode DatagramCounters.dropped}. A peer that
 * sends nothing for `idleTimeoutMs` expires: its connection closes with a `TimeoutError`.
 *
 * @module
 */
import { ConnectionClosedError, MessageTooLargeError, TimeoutError, UnsupportedError } from "../errors.ts";
import { toBytes } from "../wire/bytes.ts";
import type { ClientRecord } from "../clients/client_registry.ts";
import { describeAddr } from "../wire/ip.ts";
import {
  type Connection,
  type ConnectionHandler,
  type DatagramSocket,
  type Listener,
  maxDatagramBytes,
  type Transport,
  type UdpAddr,
  type UdpConnectOptions,
} from "../../transports/types.ts";
import { unrefTimer } from "../timer.ts";

/**
 * Throws `MessageTooLargeError` when `length` bytes do not fit one datagram to `to`, or exceed
 * `maxMessageBytes`.
 *
 * @example
 * ```ts
 * checkDatagramSize(70_000, { transport: "udp", hostname: "127.0.0.1", port: 9 }); // throws
 * ```
 */
export function checkDatagramSize(length: number, to: UdpAddr, maxMessageBytes = Infinity): void {
  const udpMax = maxDatagramBytes(to.hostname);
  if (length <= udpMax && length <= maxMessageBytes) return;
  const limit = Math.min(udpMax, maxMessageBytes);
  const which = limit === udpMax ? "the UDP maximum" : "maxMessageBytes";
  throw new MessageTooLargeError(BigInt(length), limit, {
    message: `Cannot send datagram: ${length} bytes is more than ${which} ${limit}`,
  });
}

/**
 * Where a UDP client's datagrams go: the address it sends from, or the one it was added to send to;
 * `undefined` for a stream client.
 */
export function udpTarget(record: ClientRecord | undefined): UdpAddr | undefined {
  const remote = record?.remoteAddr;
  if (remote?.transport === "udp") return remote;
  const to = record?.connect;
  if (to?.transport !== "udp") return undefined;
  return { transport: "udp", hostname: to.hostname ?? "127.0.0.1", port: to.port };
}

/**
 * Throws `MessageTooLargeError` when one of `payloads` does not fit one datagram to `to` (or
 * `maxMessageBytes`), so that nothing of the call is sent.
 *
 * @example
 * ```ts
 * const to = { transport: "udp" as const, hostname: "127.0.0.1", port: 9000 };
 * checkDatagramSizes(to, [new Uint8Array(70_000)], 64 * 1024 * 1024); // throws MessageTooLargeError
 * ```
 */
export function checkDatagramSizes(
  to: UdpAddr,
  payloads: readonly (Uint8Array | string)[],
  maxMessageBytes: number,
): void {
  for (const payload of payloads) {
    const length = typeof payload === "string" ? toBytes(payload).length : payload.length;
    checkDatagramSize(length, to, maxMessageBytes);
  }
}

/** Datagrams from all peers of a core that may wait while their peer's reading is paused, in bytes. */
const HELD_BYTES_PER_CORE = 64 * 1024 * 1024;
/** ...and per peer. */
const HELD_BYTES_PER_PEER = 1024 * 1024;

/**
 * The UDP counters of one core, shared by all its sockets.
 */
export class DatagramCounters {
  /** Remote addresses tracked now, over every UDP socket of the core. */
  peers = 0;
  /** Datagrams received and dropped (see the module doc), since the core started. */
  dropped = 0;
  /** Bytes of datagrams waiting for paused peers. */
  heldBytes = 0;
}

/** Options of {@linkcode DatagramPeers}. */
export interface DatagramPeersOptions {
  /** The core's counters. */
  readonly counters: DatagramCounters;
  /** New incoming addresses are dropped while the core tracks this many. */
  readonly maxPeers: number;
  /** A peer silent for this long expires; `0` never. */
  readonly idleTimeoutMs: number;
  /** Datagrams larger than this are dropped when they arrive, and refused when sent. */
  readonly maxMessageBytes: number;
}

/**
 * A UDP socket's remote addresses as connections. As a `Listener`, `close()` stops taking new
 * addresses; the socket itself closes once its last peer has.
 */
export class DatagramPeers implements Listener {
  readonly socket: DatagramSocket;
  readonly options: DatagramPeersOptions;
  readonly #onPeer: ((conn: Connection) => void) | undefined;
  readonly #peers = new Map<string, DatagramPeer>();
  /** Peers that sent since the socket last drained. */
  #awaitingDrain = new Set<DatagramPeer>();
  #accepting: boolean;
  #sweep: ReturnType<typeof setInterval> | undefined = undefined;

  /**
   * Takes over `socket`. Each new remote address becomes a connection passed to `onPeer`; without
   * `onPeer` (an outgoing client's socket) only the peers made with {@linkcode peer} are heard.
   */
  constructor(socket: DatagramSocket, options: DatagramPeersOptions, onPeer?: (conn: Connection) => void) {
    this.socket = socket;
    this.options = options;
    this.#onPeer = onPeer;
    this.#accepting = onPeer !== undefined;
    socket.setHandler({
      onMessage: (data, from) => this.#received(data, from),
      onDrain: () => {
        const drained = this.#awaitingDrain;
        this.#awaitingDrain = new Set();
        for (const peer of drained) peer.drained();
      },
      onClose: (error) => {
        const reason = error ??
          new ConnectionClosedError(`UDP socket ${describeAddr(socket.addr)} closed`);
        for (const peer of [...this.#peers.values()]) peer.lost(reason);
      },
    });
  }

  /** The socket's bound address. */
  get addr(): UdpAddr {
    return this.socket.addr;
  }

  /** The connection to `addr`, made now if there is none. */
  peer(addr: UdpAddr): DatagramPeer {
    const key = `${addr.hostname} ${addr.port}`;
    return this.#peers.get(key) ??
      this.#add(key, { transport: "udp", hostname: addr.hostname, port: addr.port });
  }

  /** Takes no new addresses; the socket closes once its last peer has (now, when it has none). */
  close(): Promise<void> {
    this.#accepting = false;
    if (this.#peers.size === 0) this.socket.close();
    return Promise.resolve();
  }

  #add(key: string, addr: UdpAddr): DatagramPeer {
    const peer = new DatagramPeer(this, addr, key);
    this.#peers.set(key, peer);
    this.options.counters.peers++;
    if (this.options.idleTimeoutMs > 0 && this.#sweep === undefined) this.#startSweep();
    return peer;
  }

  #received(data: Uint8Array, from: UdpAddr): void {
    const counters = this.options.counters;
    if (data.length > this.options.maxMessageBytes) {
      counters.dropped++;
      return;
    }
    const key = `${from.hostname} ${from.port}`;
    const known = this.#peers.get(key);
    if (known !== undefined) return known.received(data);
    if (!this.#accepting || counters.peers >= this.options.maxPeers) {
      counters.dropped++;
      return;
    }
    const peer = this.#add(key, from);
    peer.received(data);
    this.#onPeer!(peer);
  }

  /** A peer sent: it drains with the socket. */
  awaitDrain(peer: DatagramPeer): void {
    this.#awaitingDrain.add(peer);
  }

  /** A peer closed: its address is forgotten. */
  forget(peer: DatagramPeer): void {
    if (this.#peers.get(peer.key) !== peer) return;
    this.#peers.delete(peer.key);
    this.#awaitingDrain.delete(peer);
    this.options.counters.peers--;
    if (this.#peers.size > 0) return;
    if (this.#sweep !== undefined) clearInterval(this.#sweep);
    this.#sweep = undefined;
    if (!this.#accepting) this.socket.close();
  }

  #startSweep(): void {
    const idle = this.options.idleTimeoutMs;
    this.#sweep = setInterval(() => {
      const now = Date.now();
      for (const peer of [...this.#peers.values()]) {
        if (now - peer.lastReceived < idle) continue;
        peer.lost(
          new TimeoutError(`UDP client ${describeAddr(peer.remoteAddr)} expired: no datagram for ${idle} ms`),
        );
      }
    }, Math.max(10, Math.min(idle / 4, 1000)));
    unrefTimer(this.#sweep);
  }
}

/**
 * One remote address of a UDP socket, as a connection: `onData` is one datagram, each chunk written
 * is one datagram.
 */
export class DatagramPeer implements Connection {
  readonly remoteAddr: UdpAddr;
  readonly key: string;
  /** When the last datagram came (`Date.now()`). */
  lastReceived = Date.now();
  readonly #peers: DatagramPeers;
  #handler: ConnectionHandler | undefined = undefined;
  #closed = false;
  #paused = false;
  #awaitingDrain = false;
  /** Datagrams that arrived before the handler, while paused, or before those were delivered. */
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  #flushScheduled = false;
  readonly #flushHeld = (): void => {
    this.#flushScheduled = false;
    const held = this.#held;
    let i = 0;
    while (i < held.length && !this.#paused && !this.#closed) {
      const data = held[i++]!;
      this.#release(data.length);
      this.#handler!.onData(data);
    }
    held.splice(0, i);
  };

  /** The peer `remoteAddr` of `peers`' socket; `key` identifies it there. */
  constructor(peers: DatagramPeers, remoteAddr: UdpAddr, key: string) {
    this.#peers = peers;
    this.remoteAddr = remoteAddr;
    this.key = key;
  }

  get localAddr(): UdpAddr {
    return this.#peers.socket.addr;
  }

  get bufferedAmount(): number {
    return this.#awaitingDrain ? this.#peers.socket.bufferedAmount : 0;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Datagrams are handed to the socket whole: a close discards none of them. */
  get discardedBytes(): number {
    return 0;
  }

  setHandler(handler: ConnectionHandler): void {
    this.#handler = handler;
    if (this.#held.length > 0) this.#scheduleFlush();
  }

  /** One datagram from this peer arrived. */
  received(data: Uint8Array): void {
    if (this.#closed) return;
    this.lastReceived = Date.now();
    if (this.#handler !== undefined && !this.#paused && this.#held.length === 0) {
      this.#handler.onData(data);
      return;
    }
    const counters = this.#peers.options.counters;
    if (
      this.#heldBytes + data.length > HELD_BYTES_PER_PEER ||
      counters.heldBytes + data.length > HELD_BYTES_PER_CORE
    ) {
      counters.dropped++;
      return;
    }
    this.#held.push(data);
    this.#heldBytes += data.length;
    counters.heldBytes += data.length;
    if (this.#handler !== undefined && !this.#paused) this.#scheduleFlush();
  }

  write(data: Uint8Array): boolean {
    return this.writeBatch([data]);
  }

  writeBatch(chunks: readonly Uint8Array[]): boolean {
    if (this.#closed) throw new ConnectionClosedError("Cannot write: connection is closed");
    const socket = this.#peers.socket;
    const max = this.#peers.options.maxMessageBytes;
    for (const chunk of chunks) checkDatagramSize(chunk.length, this.remoteAddr, max);
    let below = true;
    for (const chunk of chunks) below = socket.send(chunk, this.remoteAddr);
    if (!this.#awaitingDrain) {
      this.#awaitingDrain = true;
      this.#peers.awaitDrain(this);
    }
    return below;
  }

  /** The socket drained. */
  drained(): void {
    this.#awaitingDrain = false;
    if (!this.#closed) this.#handler?.onDrain();
  }

  /** UDP cannot make a peer wait: datagrams that come meanwhile are held, up to a bound, then dropped. */
  pauseReading(): void {
    this.#paused = true;
  }

  resumeReading(): void {
    this.#paused = false;
    if (this.#held.length > 0 && this.#handler !== undefined) this.#scheduleFlush();
  }

  /** UDP has no half close: the same as {@linkcode close}. */
  closeWrite(): void {
    this.close();
  }

  close(): void {
    if (this.#closed) return;
    this.#end();
    const handler = this.#handler;
    if (handler !== undefined) queueMicrotask(() => handler.onClose());
  }

  /** Closes for `error` (expiry, the socket's failure), telling the handler now. */
  lost(error: Error): void {
    if (this.#closed) return;
    this.#end();
    this.#handler?.onClose(error);
  }

  setNoDelay(_noDelay: boolean): void {}

  setKeepAlive(_keepAlive: boolean): void {}

  #end(): void {
    this.#closed = true;
    this.#release(this.#heldBytes);
    this.#held = [];
    this.#peers.forget(this);
  }

  #release(bytes: number): void {
    this.#heldBytes -= bytes;
    this.#peers.options.counters.heldBytes -= bytes;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    queueMicrotask(this.#flushHeld);
  }
}

/**
 * An outgoing UDP client's connection: a fresh socket on an ephemeral port (of the target's address
 * family, on every interface), which hears only the target.
 */
export async function bindDatagramClient(
  transport: Transport,
  target: UdpConnectOptions,
  options: DatagramPeersOptions,
): Promise<Connection> {
  const hostname = target.hostname ?? "127.0.0.1";
  const socket = await transport.bindDatagram({
    transport: "udp",
    hostname: hostname.includes(":") ? "::" : "0.0.0.0",
    port: 0,
  });
  return new DatagramPeers(socket, { ...options, idleTimeoutMs: 0 }).peer({
    transport: "udp",
    hostname,
    port: target.port,
  });
}

/**
 * Throws `UnsupportedError` for a UDP connection: a datagram is always one whole message, so a UDP
 * client cannot switch to framed mode.
 */
export function refuseFramedDatagrams(conn: Connection): void {
  if (conn.remoteAddr.transport !== "udp") return;
  throw new UnsupportedError(
    `Cannot switch UDP client ${describeAddr(conn.remoteAddr)} to framed mode: each datagram is one message`,
  );
}
