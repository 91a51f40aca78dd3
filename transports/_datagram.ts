/**
 * The part of a UDP socket every transport shares: the size check, the byte count that `send`
 * reports against, the handler and the close lifecycle. How a datagram reaches the kernel stays
 * with each runtime's subclass.
 *
 * @module
 */
import { ConnectionClosedError, MessageTooLargeError } from "../core/errors.ts";
import { formatAddr } from "./_addr.ts";
import { handlerError } from "./_callbacks.ts";
import { WRITE_HIGH_WATER_MARK } from "./_write_queue.ts";
import { type DatagramHandler, type DatagramSocket, maxDatagramBytes, type UdpAddr } from "./types.ts";

/**
 * A UDP socket less its runtime: subclasses hand datagrams to the kernel in {@linkcode transmit},
 * report them sent with {@linkcode sent}, and pass what arrives to {@linkcode received}.
 */
export abstract class DatagramSocketBase implements DatagramSocket {
  readonly addr: UdpAddr;
  #buffered = 0;
  #closed = false;
  #handler: DatagramHandler | undefined = undefined;

  /** A socket bound at `addr`. */
  constructor(addr: UdpAddr) {
    this.addr = addr;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  get closed(): boolean {
    return this.#closed;
  }

  setHandler(handler: DatagramHandler): void {
    if (this.#handler) throw new TypeError("Cannot set datagram handler: it is already set");
    this.#handler = handler;
    this.startReceiving();
  }

  send(data: Uint8Array, to: UdpAddr): boolean {
    if (this.#closed) throw new ConnectionClosedError("Cannot send datagram: socket is closed");
    const max = maxDatagramBytes(to.hostname);
    if (data.length > max) {
      throw new MessageTooLargeError(BigInt(data.length), max, {
        message: `Cannot send datagram: ${data.length} bytes is more than the UDP maximum ${max}`,
      });
    }
    this.#buffered += data.length;
    this.transmit(data, to);
    return this.#buffered < WRITE_HIGH_WATER_MARK;
  }

  close(): void {
    this.closeWith(undefined);
  }

  /** Closes with `error` as the reason `onClose` reports. */
  protected closeWith(error: Error | undefined): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#buffered = 0;
    this.closeNative();
    const handler = this.#handler;
    if (handler) queueMicrotask(() => handler.onClose(error));
  }

  /** A datagram arrived: hand it on. A handler that throws closes the socket (see `DatagramHandler`). */
  protected received(data: Uint8Array, from: UdpAddr): void {
    if (this.#closed) return;
    try {
      this.#handler!.onMessage(data, from);
    } catch (err) {
      this.closeWith(handlerError("onMessage", formatAddr(this.addr), err));
    }
  }

  /** `bytes` of what `send` accepted reached the kernel (or failed there, and are lost). */
  protected sent(bytes: number): void {
    if (this.#closed) return;
    this.#buffered -= bytes;
    if (this.#buffered !== 0) return;
    try {
      this.#handler?.onDrain();
    } catch (err) {
      this.closeWith(handlerError("onDrain", formatAddr(this.addr), err));
    }
  }

  /** Starts passing arriving datagrams to {@linkcode received}. */
  protected abstract startReceiving(): void;
  /** Hands one datagram to the runtime; {@linkcode sent} must follow, asynchronously. */
  protected abstract transmit(data: Uint8Array, to: UdpAddr): void;
  /** Releases the native socket. */
  protected abstract closeNative(): void;
}

/**
 * Datagrams accepted by `send` that the runtime has not taken yet, in order: for runtimes whose
 * native send can refuse (Bun) or is one promise at a time (Deno).
 */
export class DatagramQueue {
  #data: Uint8Array[] = [];
  #to: UdpAddr[] = [];
  #head = 0;

  /** Datagrams waiting. */
  get length(): number {
    return this.#data.length - this.#head;
  }

  /** Appends one datagram. */
  push(data: Uint8Array, to: UdpAddr): void {
    this.#data.push(data);
    this.#to.push(to);
  }

  /** The payload of the `index`th oldest datagram (0: the oldest). */
  dataAt(index: number): Uint8Array {
    return this.#data[this.#head + index]!;
  }

  /** The destination of the `index`th oldest datagram. */
  toAt(index: number): UdpAddr {
    return this.#to[this.#head + index]!;
  }

  /** Drops the `count` oldest datagrams. */
  shift(count = 1): void {
    this.#head += count;
    if (this.#head === this.#data.length) {
      this.#data = [];
      this.#to = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#data.length) {
      this.#data = this.#data.slice(this.#head);
      this.#to = this.#to.slice(this.#head);
      this.#head = 0;
    }
  }

  /** Forgets everything. */
  clear(): void {
    this.#data = [];
    this.#to = [];
    this.#head = 0;
  }
}

/**
 * A UDP address from a host and port as runtimes report them; IPv4-mapped IPv6 hosts stay as given.
 */
export function udpAddr(hostname: string, port: number): UdpAddr {
  return { transport: "udp", hostname, port };
}
