/**
 * UDP on `Bun.udpSocket`, the bun transport's `bindDatagram`.
 *
 * @module
 */
import { DEFAULT_HOSTNAME, formatAddr } from "./_addr.ts";
import { bunGlobal, type BunUdpSocket } from "./_bun_types.ts";
import { DatagramQueue, DatagramSocketBase, udpAddr } from "./_datagram.ts";
import { connectionError, listenError } from "./_errors.ts";
import type { DatagramBindOptions, DatagramSocket, UdpAddr } from "./types.ts";

/** Datagrams handed to one `sendMany` call at most, after a drain. */
const SEND_MANY_MAX = 64;

class BunDatagramSocket extends DatagramSocketBase {
  #socket: BunUdpSocket | undefined = undefined;
  #receiving = false;
  /** Datagrams Bun refused under backpressure, and everything sent after them, in order. */
  readonly #queue = new DatagramQueue();
  /** Bytes sent since the last report to `sent`: reported once per microtask, never from `send`. */
  #sentBytes = 0;
  #reportScheduled = false;
  readonly #reportSent = (): void => {
    const bytes = this.#sentBytes;
    this.#sentBytes = 0;
    this.#reportScheduled = false;
    this.sent(bytes);
  };

  /** Set once `Bun.udpSocket` resolves: its callbacks already point here. */
  attach(socket: BunUdpSocket): void {
    this.#socket = socket;
  }

  /** Bun's `data` callback. */
  onData(data: Uint8Array, port: number, address: string): void {
    if (this.#receiving) this.received(data, udpAddr(address, port));
  }

  /** Bun's `drain` callback: send what waited, as far as Bun takes it. */
  onDrain(): void {
    const socket = this.#socket;
    const queue = this.#queue;
    if (!socket || this.closed) return;
    while (queue.length > 0) {
      const count = Math.min(queue.length, SEND_MANY_MAX);
      const packets: (Uint8Array | number | string)[] = [];
      for (let i = 0; i < count; i++) {
        const to = queue.toAt(i);
        packets.push(queue.dataAt(i), to.port, to.hostname);
      }
      const sent = socket.sendMany(packets);
      let bytes = 0;
      for (let i = 0; i < sent; i++) bytes += queue.dataAt(i).length;
      queue.shift(sent);
      this.sent(bytes);
      if (sent < count || this.closed) return;
    }
  }

  /** Bun's `error` callback. */
  onError(error: Error): void {
    this.closeWith(connectionError(error, formatAddr(this.addr)));
  }

  protected startReceiving(): void {
    this.#receiving = true;
  }

  protected transmit(data: Uint8Array, to: UdpAddr): void {
    // Bun's send does not queue: false means the datagram was not sent, and drain comes later.
    if (this.#queue.length > 0 || !this.#socket!.send(data, to.port, to.hostname)) {
      this.#queue.push(data, to);
      return;
    }
    this.#sentBytes += data.length;
    if (!this.#reportScheduled) {
      this.#reportScheduled = true;
      queueMicrotask(this.#reportSent);
    }
  }

  protected closeNative(): void {
    this.#queue.clear();
    this.#socket?.close();
  }
}

/**
 * Binds a UDP socket on `Bun.udpSocket`.
 */
export async function bindBunDatagram(options: DatagramBindOptions): Promise<DatagramSocket> {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const port = options.port ?? 0;
  // Bun's callbacks are given before the socket exists; they reach it through this holder.
  const bound: { socket?: BunDatagramSocket } = {};
  let native: BunUdpSocket;
  try {
    native = await bunGlobal().udpSocket({
      hostname,
      port,
      binaryType: "uint8array",
      socket: {
        data: (_socket, data, fromPort, fromAddress) => bound.socket?.onData(data, fromPort, fromAddress),
        drain: () => bound.socket?.onDrain(),
        error: (_socket, error) => bound.socket?.onError(error),
      },
    });
  } catch (err) {
    throw listenError(err, udpAddr(hostname, port));
  }
  const socket = new BunDatagramSocket(udpAddr(native.address.address, native.address.port));
  socket.attach(native);
  bound.socket = socket;
  return socket;
}
