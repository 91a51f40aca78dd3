/**
 * What the Bun transport keeps in an accepted socket's `socket.data` before it becomes a connection:
 * its listener's context, and for TLS the pending handshake, bounded by `tlsHandshakeTimeoutMs`.
 *
 * @module
 */
import type { SocketData } from "./_bun_connection.ts";
import type { BunSocket } from "./_bun_types.ts";
import type { Addr, Connection } from "./types.ts";

/** What a TLS listener needs to judge a finished handshake. */
export interface TlsAcceptOptions {
  readonly requestClientCert: boolean;
  readonly timeoutMs: number;
}

/** The `socket.data` a listener gives each accepted socket before it becomes a connection. */
export class AcceptContext {
  readonly onConnection: (conn: Connection) => void;
  /** The listener's path, which names the local side of accepted UNIX sockets. */
  readonly unixPath: string | undefined;
  /** Set on a TLS listener. */
  readonly tls: TlsAcceptOptions | undefined;
  /** Accepted TLS sockets still in their handshake. */
  readonly handshaking = new Set<PendingHandshake>();
  closed = false;
  /**
   * The local address of every accepted socket, when the listener is bound to one address (not a
   * wildcard): read once, where asking each socket would keep a string on it (about 25 B).
   */
  local: Addr | undefined = undefined;
  constructor(
    onConnection: (conn: Connection) => void,
    unixPath: string | undefined,
    tls: TlsAcceptOptions | undefined = undefined,
  ) {
    this.onConnection = onConnection;
    this.unixPath = unixPath;
    this.tls = tls;
  }
}

/** An accepted TLS socket until its handshake is over: bounded in time, and dropped on failure. */
export class PendingHandshake {
  readonly context: AcceptContext;
  readonly #socket: BunSocket<SocketData>;
  readonly #timer: ReturnType<typeof setTimeout>;

  constructor(context: AcceptContext, socket: BunSocket<SocketData>, timeoutMs: number) {
    this.context = context;
    this.#socket = socket;
    this.#timer = setTimeout(() => this.drop(), timeoutMs);
    context.handshaking.add(this);
  }

  /** The handshake is over (or the socket closed): stop the clock. */
  settle(): void {
    clearTimeout(this.#timer);
    this.context.handshaking.delete(this);
  }

  /** Gives up on this socket: too slow, or its listener closed. */
  drop(): void {
    this.settle();
    this.#socket.terminate();
  }
}
