/**
 * UDP on `node:dgram`, the node transport's `bindDatagram`.
 *
 * @module
 */
import { createSocket, type RemoteInfo, type Socket } from "node:dgram";
import { DEFAULT_HOSTNAME, formatAddr } from "./_addr.ts";
import { DatagramQueue, DatagramSocketBase, udpAddr } from "./_datagram.ts";
import { connectionError, listenError } from "./_errors.ts";
import type { DatagramBindOptions, DatagramSocket, UdpAddr } from "./types.ts";

class NodeDatagramSocket extends DatagramSocketBase {
  readonly #socket: Socket;
  /** The lengths of the datagrams handed to `socket.send`, whose callbacks come back in order. */
  #lengths: number[] = [];
  #lengthsHead = 0;
  readonly #onSent = (): void => {
    const length = this.#lengths[this.#lengthsHead++]!;
    if (this.#lengthsHead === this.#lengths.length) {
      this.#lengths = [];
      this.#lengthsHead = 0;
    }
    if (this.#waiting !== undefined) this.#sendNextWaiting();
    this.sent(length);
  };
  /**
   * Deno's node:dgram sends datagrams handed over in one go in reverse order: there, each one
   * waits here until the one before it is sent. Undefined on Node and Bun, which keep order.
   */
  readonly #waiting: DatagramQueue | undefined;

  constructor(socket: Socket, addr: UdpAddr) {
    super(addr);
    this.#socket = socket;
    this.#waiting = "Deno" in globalThis ? new DatagramQueue() : undefined;
    socket.on("error", (err) => this.closeWith(connectionError(err, formatAddr(addr))));
  }

  protected startReceiving(): void {
    this.#socket.on("message", (message: Uint8Array, from: RemoteInfo) => {
      this.received(
        new Uint8Array(message.buffer, message.byteOffset, message.byteLength),
        udpAddr(from.address, from.port),
      );
    });
  }

  protected transmit(data: Uint8Array, to: UdpAddr): void {
    const waiting = this.#waiting;
    if (waiting !== undefined) {
      waiting.push(data, to);
      if (waiting.length === 1 && this.#lengths.length === this.#lengthsHead) this.#sendNextWaiting();
      return;
    }
    this.#lengths.push(data.length);
    // node:dgram queues in libuv while the kernel's send buffer is full: it never drops a datagram.
    this.#socket.send(data, to.port, to.hostname, this.#onSent);
  }

  #sendNextWaiting(): void {
    const waiting = this.#waiting!;
    if (waiting.length === 0 || this.closed) return;
    const data = waiting.dataAt(0);
    const to = waiting.toAt(0);
    waiting.shift();
    this.#lengths.push(data.length);
    this.#socket.send(data, to.port, to.hostname, this.#onSent);
  }

  protected closeNative(): void {
    this.#waiting?.clear();
    this.#lengths = [];
    this.#lengthsHead = 0;
    try {
      this.#socket.close();
    } catch {
      // Already closed by an error.
    }
  }
}

/**
 * Binds a UDP socket on `node:dgram` (`udp6` for an IPv6 host).
 */
export function bindNodeDatagram(options: DatagramBindOptions): Promise<DatagramSocket> {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const port = options.port ?? 0;
  const target = udpAddr(hostname, port);
  return new Promise((resolve, reject) => {
    const socket = createSocket({ type: hostname.includes(":") ? "udp6" : "udp4" });
    const onError = (err: Error) => {
      socket.close();
      reject(listenError(err, target));
    };
    socket.once("error", onError);
    socket.once("listening", () => {
      socket.off("error", onError);
      const bound = socket.address();
      resolve(new NodeDatagramSocket(socket, udpAddr(bound.address, bound.port)));
    });
    try {
      socket.bind(port, hostname);
    } catch (err) {
      reject(listenError(err, target));
    }
  });
}
