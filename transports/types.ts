/**
 * The transport contract: the one seam between asockio and a runtime's socket API.
 *
 * A transport only moves bytes. It knows nothing of frames, keywords or clients. Each runtime has
 * one implementation in its own file (`deno.ts`, `bun.ts`, `node.ts`); `mod.ts` in this folder picks
 * the native one.
 *
 * Ownership rules that keep the hot path free of copies:
 * - Every chunk passed to {@linkcode ConnectionHandler.onData} belongs to the receiver from then on:
 *   the transport never writes into it again, so it may be kept (queued, sliced) without copying.
 * - Every buffer passed to {@linkcode Connection.write} belongs to the transport until written:
 *   the caller must not modify it afterwards.
 *
 * @module
 */

/** The kinds of socket a transport can listen on and connect to. */
export type TransportKind = "tcp" | "unix";

/** A TCP endpoint. `hostname` is an IP literal once resolved (`127.0.0.1`, `::1`). */
export interface TcpAddr {
  /** Always `"tcp"`. */
  transport: "tcp";
  /** The IP address or host name. */
  hostname: string;
  /** The port number. */
  port: number;
}

/** A UNIX domain socket endpoint. `path` is empty for an unnamed (client) socket. */
export interface UnixAddr {
  /** Always `"unix"`. */
  transport: "unix";
  /** The socket file path. */
  path: string;
}

/** Either kind of socket address. */
export type Addr = TcpAddr | UnixAddr;

/** Options to listen on TCP. */
export interface TcpListenOptions {
  /** Always `"tcp"`. */
  transport: "tcp";
  /**
   * The address to bind.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * The port; `0` picks a free one, reported in {@linkcode Listener.addr}.
   * @default {0}
   */
  port?: number;
  /**
   * Lets several processes bind the same port (`SO_REUSEPORT`). Transports that cannot do it
   * on this runtime throw a `TypeError` instead of ignoring it.
   * @default {false}
   */
  reusePort?: boolean;
}

/** Options to listen on a UNIX socket. */
export interface UnixListenOptions {
  /** Always `"unix"`. */
  transport: "unix";
  /**
   * The socket file path. A stale socket file left by a dead process is replaced; a live socket
   * or any other file there makes listening fail with `AddressInUseError`.
   */
  path: string;
}

/** Options to listen on either kind of socket. */
export type ListenOptions = TcpListenOptions | UnixListenOptions;

/** Options to connect over TCP. */
export interface TcpConnectOptions {
  /** Always `"tcp"`. */
  transport: "tcp";
  /**
   * The host to connect to.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The port to connect to. */
  port: number;
}

/** Options to connect to a UNIX socket. */
export interface UnixConnectOptions {
  /** Always `"unix"`. */
  transport: "unix";
  /** The socket file path. */
  path: string;
}

/** Options to connect to either kind of socket. */
export type ConnectOptions = TcpConnectOptions | UnixConnectOptions;

/**
 * Callbacks a connection reports to. Set with {@linkcode Connection.setHandler}; until a handler is
 * set, incoming data is held by the transport (reading is paused), so nothing is lost.
 */
export interface ConnectionHandler {
  /** Bytes arrived. The chunk now belongs to the receiver (see the module doc). */
  onData(chunk: Uint8Array): void;
  /** Everything written so far has been handed to the kernel ({@linkcode Connection.bufferedAmount} is 0). */
  onDrain(): void;
  /** The peer half-closed: it will send nothing more. Writing may go on. */
  onEnd(): void;
  /**
   * The connection is closed and its resources released. Called exactly once. `error` is set when
   * it closed because of a failure (a typed asockio error with the runtime's error as `cause`).
   */
  onClose(error?: Error): void;
}

/** One open byte stream. */
export interface Connection {
  /** This side's address. */
  readonly localAddr: Addr;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** Bytes accepted by {@linkcode write} and not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /** True once the connection is closed (by either side). */
  readonly closed: boolean;
  /** Sets the callbacks and starts reading. Call once. */
  setHandler(handler: ConnectionHandler): void;
  /**
   * Queues bytes for writing and never drops them. Writes made in the same tick are coalesced
   * into one native write. Returns `true` when the transport's buffer is below its high-water mark,
   * `false` when the caller should wait for `onDrain` before writing much more. Writing to a
   * closed connection throws `ConnectionClosedError`.
   */
  write(data: Uint8Array): boolean;
  /** Stops delivering `onData` until {@linkcode resumeReading}; the kernel then pushes back on the peer. */
  pauseReading(): void;
  /** Resumes delivering `onData`. */
  resumeReading(): void;
  /** Half-closes: sends FIN after everything queued is written. Reading goes on. */
  closeWrite(): void;
  /** Closes now, discarding unwritten bytes. `onClose` follows. Safe to call twice. */
  close(): void;
  /** Enables or disables Nagle's algorithm (TCP only; a no-op on UNIX sockets). */
  setNoDelay(noDelay: boolean): void;
  /** Enables or disables TCP keepalive (TCP only; a no-op on UNIX sockets). */
  setKeepAlive(keepAlive: boolean): void;
}

/** A listening socket. */
export interface Listener {
  /** The bound address, with `port: 0` resolved. */
  readonly addr: Addr;
  /** Stops accepting. Connections already accepted stay open. Removes a UNIX socket file. */
  close(): Promise<void>;
}

/** The names of the built-in transports. */
export type TransportName = "deno" | "bun" | "node";

/**
 * One runtime's sockets behind a common shape.
 *
 * @example Echo server on whatever runtime this is
 * ```ts
 * import { nativeTransport } from "@asockio/core/transports";
 * const transport = nativeTransport();
 * const listener = await transport.listen({ transport: "tcp", port: 0 }, (conn) => {
 *   conn.setHandler({
 *     onData: (chunk) => conn.write(chunk),
 *     onDrain: () => {},
 *     onEnd: () => conn.closeWrite(),
 *     onClose: () => {},
 *   });
 * });
 * console.log(listener.addr);
 * await listener.close();
 * ```
 */
export interface Transport {
  /** Which implementation this is. */
  readonly name: TransportName;
  /**
   * Binds and starts accepting. Each accepted connection is passed to `onConnection`, which must
   * call `setHandler` (now or later) to start reading. Rejects with `AddressInUseError` when the
   * address is taken.
   */
  listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener>;
  /** Connects. Rejects with `ConnectionRefusedError` when nothing listens there. */
  connect(options: ConnectOptions): Promise<Connection>;
}
