/**
 * UDP on `Deno.listenDatagram`, the deno transport's `bindDatagram`. Deno has it only under
 * `--unstable-net`; without the flag binding fails with `UnsupportedError`.
 *
 * @module
 */
import { UnsupportedError } from "../core/errors.ts";
import { DEFAULT_HOSTNAME, formatAddr } from "./_addr.ts";
import { DatagramQueue, DatagramSocketBase, udpAddr } from "./_datagram.ts";
import type { DenoDatagramConn, DenoNamespace } from "./_deno_types.ts";
import { connectionError, listenError } from "./_errors.ts";
import {
  type DatagramBindOptions,
  type DatagramSocket,
  MAX_DATAGRAM_BYTES_IPV6,
  type UdpAddr,
} from "./types.ts";

class DenoDatagramSocket extends DatagramSocketBase {
  readonly #conn: DenoDatagramConn;
  readonly #queue = new DatagramQueue();
  #sending = false;
  readonly #denoErrorCode: (err: unknown) => string | undefined;

  constructor(conn: DenoDatagramConn, errorCode: (err: unknown) => string | undefined) {
    super(udpAddr(conn.addr.hostname, conn.addr.port));
    this.#conn = conn;
    this.#denoErrorCode = errorCode;
  }

  protected startReceiving(): void {
    this.#receiveLoop().catch((err) => this.#failed(err));
  }

  async #receiveLoop(): Promise<void> {
    // One reused buffer, one byte larger than any UDP payload: Deno silently truncates a datagram
    // to the buffer it is given, and each datagram is copied out at its own size.
    const buffer = new Uint8Array(MAX_DATAGRAM_BYTES_IPV6 + 1);
    while (!this.closed) {
      const [view, from] = await this.#conn.receive(buffer);
      this.received(view.slice(), udpAddr(from.hostname, from.port));
    }
  }

  protected transmit(data: Uint8Array, to: UdpAddr): void {
    this.#queue.push(data, to);
    if (!this.#sending) this.#sendLoop().catch((err) => this.#failed(err));
  }

  /** Deno's send is one promise per datagram: they are awaited one at a time, so order holds. */
  async #sendLoop(): Promise<void> {
    this.#sending = true;
    const queue = this.#queue;
    try {
      while (queue.length > 0 && !this.closed) {
        const data = queue.dataAt(0);
        const to = queue.toAt(0);
        try {
          await this.#conn.send(data, { transport: "udp", hostname: to.hostname, port: to.port });
        } catch {
          // One datagram the kernel refused (an unreachable address) is lost, as UDP loses datagrams;
          // the socket and its other peers go on.
          if (this.closed) return;
        }
        queue.shift();
        this.sent(data.length);
      }
    } finally {
      this.#sending = false;
    }
  }

  #failed(err: unknown): void {
    if (this.closed) return;
    this.closeWith(connectionError(err, formatAddr(this.addr), this.#denoErrorCode(err)));
  }

  protected closeNative(): void {
    this.#queue.clear();
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }
}

/**
 * Binds a UDP socket on `Deno.listenDatagram`; `UnsupportedError` without `--unstable-net`.
 */
export function bindDenoDatagram(
  ns: DenoNamespace,
  options: DatagramBindOptions,
  errorCode: (err: unknown) => string | undefined,
): Promise<DatagramSocket> {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const port = options.port ?? 0;
  if (typeof ns.listenDatagram !== "function") {
    return Promise.reject(
      new UnsupportedError(
        `Cannot bind ${formatAddr(udpAddr(hostname, port))}: Deno needs the --unstable-net flag for UDP`,
      ),
    );
  }
  try {
    const conn = ns.listenDatagram({ transport: "udp", hostname, port });
    return Promise.resolve(new DenoDatagramSocket(conn, errorCode));
  } catch (err) {
    return Promise.reject(listenError(err, udpAddr(hostname, port), errorCode(err)));
  }
}
