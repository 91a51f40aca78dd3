/**
 * A UDP peer for the core tests, on `node:dgram` (so on every runtime the far end is code the
 * transports under test did not write). Loopback only.
 *
 * @module
 */
import { createSocket, type Socket } from "node:dgram";
import { HangError } from "./_helpers.ts";

/** Where a peer sends: a host and a port. */
export interface UdpTarget {
  readonly hostname: string;
  readonly port: number;
}

/**
 * One `node:dgram` socket bound on loopback, recording what it receives.
 *
 * @example
 * ```ts
 * const peer = await UdpPeer.open();
 * await peer.send(new TextEncoder().encode("hi"), { hostname: "127.0.0.1", port: 5000 });
 * await peer.waitFor(1);
 * peer.close();
 * ```
 */
export class UdpPeer {
  readonly #socket: Socket;
  /** Every datagram received, in order of arrival. */
  readonly received: Uint8Array[] = [];
  /** Each received datagram's sender port. */
  readonly senders: number[] = [];
  #waiter: { count: number; resolve: () => void } | undefined = undefined;
  #closed = false;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("message", (message: Uint8Array, from: { port: number }) => {
      this.received.push(new Uint8Array(message));
      this.senders.push(from.port);
      const waiter = this.#waiter;
      if (waiter && this.received.length >= waiter.count) {
        this.#waiter = undefined;
        waiter.resolve();
      }
    });
  }

  /** Binds a peer on `hostname` (any 127.x.y.z works on Linux loopback), port 0. */
  static open(hostname = "127.0.0.1"): Promise<UdpPeer> {
    return new Promise((resolve, reject) => {
      const socket = createSocket(hostname.includes(":") ? "udp6" : "udp4");
      socket.once("error", reject);
      socket.bind(0, hostname, () => {
        socket.off("error", reject);
        resolve(new UdpPeer(socket));
      });
    });
  }

  /** The bound port. */
  get port(): number {
    return this.#socket.address().port;
  }

  /** The bound host. */
  get hostname(): string {
    return this.#socket.address().address;
  }

  /**
   * Sends one datagram and resolves once `node:dgram` has handed it to the kernel. Awaiting each send
   * keeps order on Deno too, whose `node:dgram` reorders datagrams handed over in one go.
   */
  send(data: Uint8Array | string, to: UdpTarget): Promise<void> {
    const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
    return new Promise((resolve, reject) => {
      this.#socket.send(bytes, to.port, to.hostname, (err) => err ? reject(err) : resolve());
    });
  }

  /** Resolves once `count` datagrams in all have arrived; throws `HangError` after `ms`. */
  waitFor(count: number, ms = 5000): Promise<void> {
    if (this.received.length >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        reject(new HangError(`UDP peer got ${this.received.length} of ${count} datagrams in ${ms} ms`));
      }, ms);
      this.#waiter = {
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      };
    });
  }

  /** Waits up to `ms` for `count` datagrams in all; returns how many are missing (0: none). */
  async missingAfter(count: number, ms: number): Promise<number> {
    try {
      await this.waitFor(count, ms);
    } catch (err) {
      if (!(err instanceof HangError)) throw err;
    }
    return Math.max(0, count - this.received.length);
  }

  /** Closes the socket. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.close();
  }
}
