/**
 * The few members of the `Bun` global that `bun.ts` touches, declared by hand so the file
 * type-checks under `tsc` with Node types only. Reached through `globalThis`, never `bun-types`.
 *
 * @module
 */
import type { TlsConnectionInfo } from "./types.ts";

/** A connected `Bun.Socket`; `Data` is whatever `socket.data` holds. */
export interface BunSocket<Data> {
  /** Per-socket state, set from the `data` option and writable afterwards. */
  data: Data;
  /** Undefined on UNIX sockets. */
  readonly localAddress?: string;
  /** Undefined on UNIX sockets. */
  readonly localPort?: number;
  /** Undefined on UNIX sockets. */
  readonly remoteAddress?: string;
  /** Undefined on UNIX sockets. */
  readonly remotePort?: number;
  /** Writes what the kernel takes now and returns that count (`-1` once closed); buffers nothing. */
  write(data: Uint8Array): number;
  /** Closes the socket gracefully (FIN); the `close` handler runs synchronously. */
  end(): void;
  /** Closes the socket at once, without a graceful shutdown. */
  terminate(): void;
  /** TLS only: whether the peer's certificate was verified. */
  readonly authorized?: boolean;
  /** TLS only: the peer's certificate, with `subject` as `{ CN: "..." }`; empty or undefined without one. */
  getPeerCertificate?(): { subject?: unknown } | undefined;
  /** Without an argument sends FIN and keeps reading; `true` would shut the read side instead. */
  shutdown(halfClose?: boolean): void;
  /** Stops polling the socket for reads. */
  pause(): void;
  /** Polls the socket for reads again. */
  resume(): void;
  /** Sets `TCP_NODELAY`. */
  setNoDelay(noDelay?: boolean): boolean;
  /** Sets `SO_KEEPALIVE`. */
  setKeepAlive(enable?: boolean, initialDelay?: number): boolean;
}

/** The callbacks of `Bun.listen` and `Bun.connect`, shared by every socket they create. */
export interface BunSocketHandler<Data> {
  /** What `data` receives; `"uint8array"` gives plain `Uint8Array`s instead of `Buffer`s. */
  binaryType?: "buffer" | "uint8array" | "arraybuffer";
  /** The socket is connected (accepted, or connected by `Bun.connect`). */
  open(socket: BunSocket<Data>): void;
  /** Bytes arrived, in a buffer Bun allocates for this call (see `binaryType`). */
  data(socket: BunSocket<Data>, chunk: Uint8Array): void;
  /** The kernel takes writes again after a short `write`. */
  drain(socket: BunSocket<Data>): void;
  /** The peer sent FIN. */
  end(socket: BunSocket<Data>): void;
  /** The socket is closed; `error` is set when a failure closed it. */
  close(socket: BunSocket<Data>, error?: Error): void;
  /** A socket error, reported before `close`. */
  error(socket: BunSocket<Data>, error: Error): void;
  /**
   * TLS only: the handshake is over. `success` false means it failed; `authorizationError` is set
   * when the peer's certificate did not verify (even with `success` true).
   */
  handshake?(socket: BunSocket<Data>, success: boolean, authorizationError: Error | null): void;
}

/** The `tls` option of `Bun.listen` / `Bun.connect`; PEM as strings. */
export interface BunTlsOptions {
  cert?: string;
  key?: string;
  ca?: string[];
  /** Listen only: ask clients for a certificate. */
  requestCert?: boolean;
  /** Drop a peer whose certificate does not verify. */
  rejectUnauthorized?: boolean;
  /** Connect only: the name for SNI and for checking the certificate. */
  serverName?: string;
}

/** Options shared by every `Bun.listen` and `Bun.connect` call. */
export interface BunSocketOptions<Data> {
  /** Keeps our side open after the peer's FIN instead of closing both. */
  allowHalfOpen?: boolean;
  /** The initial `socket.data` of every socket. */
  data?: Data;
  /** The callbacks. */
  socket: BunSocketHandler<Data>;
}

/** `Bun.listen` / `Bun.connect` options for TCP. */
export interface BunTcpSocketOptions<Data> extends BunSocketOptions<Data> {
  hostname: string;
  port: number;
  /** `SO_REUSEPORT` (listen only). */
  reusePort?: boolean;
  /** TLS over this TCP socket. */
  tls?: BunTlsOptions;
}

/** `Bun.listen` / `Bun.connect` options for UNIX sockets. */
export interface BunUnixSocketOptions<Data> extends BunSocketOptions<Data> {
  unix: string;
}

/** The address `getsockname` fills in. */
export interface BunSockName {
  address?: string;
  port?: number;
  family?: string;
}

/** What `Bun.listen` returns. */
export interface BunTcpListener {
  readonly hostname?: string;
  readonly port?: number;
  /** Fills `out` with the bound address, resolving a host name to its IP. */
  getsockname?(out: BunSockName): void;
  /** Stops accepting; `true` would also close every accepted socket. */
  stop(closeActiveConnections?: boolean): void;
}

/** A bound `Bun.udpSocket`. */
export interface BunUdpSocket {
  /** The bound host and port (`address.address` is the IP actually bound). */
  readonly address: { address: string; port: number };
  readonly closed: boolean;
  /** Sends one datagram; `false` means it was not sent (backpressure): retry on `drain`. */
  send(data: Uint8Array, port: number, address: string): boolean;
  /**
   * Sends several datagrams given as `[data, port, address, …]`; returns how many were sent, in
   * order, before backpressure stopped it.
   */
  sendMany(packets: readonly (Uint8Array | number | string)[]): number;
  close(): void;
}

/** The options of `Bun.udpSocket`. */
export interface BunUdpSocketOptions {
  hostname: string;
  port: number;
  /** `"uint8array"` gives plain `Uint8Array`s instead of `Buffer`s. */
  binaryType: "uint8array";
  socket: {
    /** One datagram arrived, in a buffer of its own. */
    data(socket: BunUdpSocket, data: Uint8Array, port: number, address: string): void;
    /** The socket takes datagrams again after a refused `send`. */
    drain(socket: BunUdpSocket): void;
    /** A socket error. */
    error?(socket: BunUdpSocket, error: Error): void;
  };
}

/** The `Bun` global members used by the transport. */
export interface BunGlobal {
  /** Binds a UDP socket. */
  udpSocket(options: BunUdpSocketOptions): Promise<BunUdpSocket>;
  listen<Data>(options: BunTcpSocketOptions<Data> | BunUnixSocketOptions<Data>): BunTcpListener;
  connect<Data>(options: BunTcpSocketOptions<Data> | BunUnixSocketOptions<Data>): Promise<BunSocket<Data>>;
  /** Runs JavaScriptCore's collector: `true` waits for it, `false` only asks for it. */
  gc(force: boolean): void;
}

/**
 * The `Bun` global, or a `TypeError` when this is not Bun.
 */
export function bunGlobal(): BunGlobal {
  const bun = (globalThis as { Bun?: BunGlobal }).Bun;
  if (bun === undefined) throw new TypeError("Cannot use the bun transport outside Bun");
  return bun;
}

/** A Bun TLS connection's own state, kept apart so that a TCP connection has one field for it, not three. */
export interface BunTlsState {
  /** The certificate details, once the handshake is done. */
  info?: TlsConnectionInfo;
  /** A connecting client's: told how its handshake ended. */
  waiter?: ((ok: boolean) => void) | undefined;
  failure?: Error | undefined;
}
