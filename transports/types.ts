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
 *   Unless `onData` returns a number: the receiver kept no reference (it copied what it needed), and
 *   the transport may read the next bytes into the same memory.
 * - Every buffer passed to {@linkcode Connection.write} belongs to the transport until written:
 *   the caller must not modify it afterwards.
 *
 * @module
 */

/** The kinds of socket a transport can listen on and connect to (`"udp"`: see {@linkcode DatagramSocket}). */
export type TransportKind = "tcp" | "unix" | "tls" | "udp";

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

/** A TLS endpoint: TCP underneath, so `hostname` and `port` mean the same as in {@linkcode TcpAddr}. */
export interface TlsAddr {
  /** Always `"tls"`. */
  transport: "tls";
  /** The IP address or host name. */
  hostname: string;
  /** The port number. */
  port: number;
}

/** A UDP endpoint: a datagram socket's own address, or the peer a datagram came from or goes to. */
export interface UdpAddr {
  /** Always `"udp"`. */
  transport: "udp";
  /** The IP address (an IP literal once bound or received: `127.0.0.1`, `::1`). */
  hostname: string;
  /** The port number. */
  port: number;
}

/** Any kind of socket address. */
export type Addr = TcpAddr | UnixAddr | TlsAddr | UdpAddr;

/**
 * PEM text: a string, or its bytes (UTF-8/ASCII). Several certificates may follow one another in
 * one PEM text.
 */
export type PemData = string | Uint8Array;

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
   * Lets several processes bind the same port (`SO_REUSEPORT`). Where the runtime cannot do it
   * (Deno's native TCP listener without `--unstable-net`, Node before 22.12), `listen` rejects with
   * `UnsupportedError` naming what is missing instead of ignoring it.
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
  /**
   * The socket file's permission bits, set right after binding (whoever may write it may connect).
   * Until then the process umask applies, so bind in a directory only the intended users can enter
   * when that brief window matters.
   * @default {0o600}
   */
  mode?: number;
}

/**
 * Options to listen on TLS over TCP.
 *
 * Every transport completes the TLS handshake before passing a connection on, so a peer that fails
 * it (no certificate, a bad one, not TLS at all) is dropped without reaching `onConnection`.
 */
export interface TlsListenOptions {
  /** Always `"tls"`. */
  transport: "tls";
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
   * Lets several processes bind the same port, as in {@linkcode TcpListenOptions.reusePort}.
   * @default {false}
   */
  reusePort?: boolean;
  /** The server's certificate chain in PEM, its own certificate first. */
  cert: PemData;
  /** The private key of `cert`, in PEM. */
  key: PemData;
  /** The CA certificates client certificates must chain to. Required with `requestClientCert`. */
  ca?: PemData | readonly PemData[];
  /**
   * Mutual TLS: ask every client for a certificate and drop those without one signed by `ca`.
   * @default {false}
   */
  requestClientCert?: boolean;
  /**
   * A peer that has not completed the TLS handshake after this long is dropped: its socket is closed.
   * (On Deno, TLS listeners run on `node:tls`: `Deno.listenTls` keeps such a socket open until the
   * handshake ends.)
   * @default {10000}
   */
  tlsHandshakeTimeoutMs?: number;
}

/** Options to listen on any kind of socket. */
export type ListenOptions = TcpListenOptions | UnixListenOptions | TlsListenOptions;

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

/**
 * Options to connect over TLS. The server's certificate is always verified, against `serverName`
 * (or `hostname`); `connect` resolves once the handshake is done.
 */
export interface TlsConnectOptions {
  /** Always `"tls"`. */
  transport: "tls";
  /**
   * The host to connect to.
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The port to connect to. */
  port: number;
  /**
   * CA certificates to trust for the server's certificate. Node and Bun then trust only these;
   * Deno trusts them on top of its built-in roots (`Deno.connectTls` cannot drop those).
   * @default {the runtime's built-in root CAs}
   */
  ca?: PemData | readonly PemData[];
  /** A client certificate chain in PEM, for servers that ask for one (mutual TLS). Needs `key`. */
  cert?: PemData;
  /** The private key of `cert`, in PEM. */
  key?: PemData;
  /**
   * The name to send (SNI) and to check the server's certificate against, when it is not `hostname`.
   * @default {hostname}
   */
  serverName?: string;
  /**
   * `connect` rejects with `TimeoutError` when the connection and its TLS handshake are not done
   * within this many milliseconds. (On Deno the socket itself then stays open until the server
   * answers or closes: Deno finishes a handshake before closing.)
   * @default {10000}
   */
  tlsHandshakeTimeoutMs?: number;
}

/** Options to connect to any kind of socket. */
export type ConnectOptions = TcpConnectOptions | UnixConnectOptions | TlsConnectOptions;

/** What a TLS connection knows of its peer once the handshake is done. */
export interface TlsConnectionInfo {
  /**
   * True when the peer's certificate was verified against the trusted CAs: always on the client
   * side (an unverified server fails `connect`), and on the server side only with
   * `requestClientCert` (a client that fails it is dropped), so false on a plain TLS listener.
   */
  readonly authorized: boolean;
  /**
   * The subject of the peer's certificate as `KEY=value` pairs joined by `, `, such as
   * `CN=worker-7, O=Example`, when the runtime exposes it (Deno's native TLS does not) and the
   * peer sent one.
   */
  readonly peerCertificateSubject?: string;
}

/**
 * Callbacks a connection reports to. Set with {@linkcode Connection.setHandler}; until a handler is
 * set, incoming data is held by the transport (reading is paused), so nothing is lost.
 *
 * A callback that throws (`onData`, `onDrain`, `onEnd`) closes its own connection, as
 * {@linkcode Connection.close} does, and `onClose` then reports a `CallbackError` naming the callback,
 * with what was thrown as its `cause`. Nothing reaches the process, and no other connection notices.
 * `onClose` itself must not throw: there is nothing left to report to, so its error is rethrown from
 * a microtask.
 */
export interface ConnectionHandler {
  /**
   * Bytes arrived. The chunk now belongs to the receiver (see the module doc). Returning a number
   * gives it back: nothing refers to it any more, so the transport may reuse its memory. The number
   * says how many of the bytes that follow the receiver will copy as well (the rest of a large
   * message it assembles), so the transport may read them into reused memory too; 0 for none.
   */
  onData(chunk: Uint8Array): number | void;
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

/**
 * Options to bind a UDP socket ({@linkcode Transport.bindDatagram}); the same object is a UDP
 * listener in `IoCoreOptions.listeners`.
 */
export interface DatagramBindOptions {
  /** Always `"udp"`. */
  transport: "udp";
  /**
   * The address to bind (an IP literal; `::1` or `::` binds IPv6).
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /**
   * The port; `0` picks a free one, reported in {@linkcode DatagramSocket.addr}.
   * @default {0}
   */
  port?: number;
}

/** Options for an outgoing datagram client: `addClient({ keyword, connect: { transport: "udp", port } })`. */
export interface UdpConnectOptions {
  /** Always `"udp"`. */
  transport: "udp";
  /**
   * The host to send to (an IP literal).
   * @default {"127.0.0.1"}
   */
  hostname?: string;
  /** The port to send to. */
  port: number;
}

/**
 * Callbacks a datagram socket reports to. Set with {@linkcode DatagramSocket.setHandler}. As with a
 * {@linkcode ConnectionHandler}, an `onMessage` or `onDrain` that throws closes the socket, and
 * `onClose` reports a `CallbackError` with what was thrown as `cause`; nothing reaches the process.
 */
export interface DatagramHandler {
  /**
   * One datagram arrived from `from` (possibly empty). `data` belongs to the receiver from then
   * on, sized to the datagram.
   */
  onMessage(data: Uint8Array, from: UdpAddr): void;
  /** Everything sent so far has been handed to the kernel ({@linkcode DatagramSocket.bufferedAmount} is 0). */
  onDrain(): void;
  /** The socket is closed. Called exactly once; `error` is set when a failure closed it. */
  onClose(error?: Error): void;
}

/**
 * One bound UDP socket. It keeps datagram boundaries: one `send` is one datagram, one `onMessage`
 * is one datagram. Nothing pushes back on a sender: datagrams the kernel cannot take on the
 * receiving side are lost, as UDP loses them.
 */
export interface DatagramSocket {
  /** The bound address, with `port: 0` resolved. */
  readonly addr: UdpAddr;
  /** Bytes accepted by {@linkcode send} and not yet handed to the kernel. */
  readonly bufferedAmount: number;
  /** True once the socket is closed. */
  readonly closed: boolean;
  /**
   * Sets the callbacks and starts receiving. Call once; datagrams that arrive before it are left
   * to the kernel's receive buffer.
   */
  setHandler(handler: DatagramHandler): void;
  /**
   * Queues `data` as one datagram to `to`, and never drops it: what the runtime cannot take now is
   * sent on its next drain, in order. Returns `true` while {@linkcode bufferedAmount} is below the
   * high-water mark. Throws `MessageTooLargeError` (nothing sent) for more than
   * 65,507 bytes to an IPv4 address (65,527 to IPv6), and
   * `ConnectionClosedError` once closed.
   */
  send(data: Uint8Array, to: UdpAddr): boolean;
  /** Closes now, discarding unsent datagrams. `onClose` follows. Safe to call twice. */
  close(): void;
}

/** One open byte stream. */
export interface Connection {
  /** This side's address. */
  readonly localAddr: Addr;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /**
   * Bytes accepted by {@linkcode write} and not yet handed to the kernel. At 0 the transport holds
   * no reference to any bytes it was given: their memory may be reused.
   */
  readonly bufferedAmount: number;
  /** True once the connection is closed (by either side). */
  readonly closed: boolean;
  /**
   * Bytes accepted by {@linkcode write} that the close discarded before they reached the kernel:
   * 0 while open, then fixed once closed (read it in `onClose`). A transport that cannot tell
   * exactly reports a lower bound, so resending that many bytes' messages never sends one twice.
   */
  readonly discardedBytes: number;
  /** Set on TLS connections (and only there): what the handshake established. */
  readonly tls?: TlsConnectionInfo;
  /**
   * `true` when the transport reads into memory it may reuse once a chunk is given back (see
   * {@linkcode ConnectionHandler.onData}): the receiver then also gives back a chunk it read to its
   * end without keeping a view of it. Unset elsewhere, where giving such chunks back gains nothing.
   */
  readonly reusesReadMemory?: boolean;
  /** Sets the callbacks and starts reading. Call once. */
  setHandler(handler: ConnectionHandler): void;
  /**
   * Queues bytes for writing and never drops them. Writes made in the same tick are coalesced
   * into one native write. Returns `true` when the transport's buffer is below its high-water mark,
   * `false` when the caller should wait for `onDrain` before writing much more. Writing to a
   * closed connection throws `ConnectionClosedError`.
   */
  write(data: Uint8Array): boolean;
  /**
   * Queues `chunks` as {@linkcode write} would, one after the other, and starts writing at once
   * instead of at the end of the tick: for a caller that has gathered its writes itself (as the core
   * does once per connection and tick). They go out as one native write where the runtime allows.
   * Returns what `write` returns. `onDrain` still comes asynchronously, never from inside this call.
   */
  writeBatch(chunks: readonly Uint8Array[]): boolean;
  /** Stops delivering `onData` until {@linkcode resumeReading}; the kernel then pushes back on the peer. */
  pauseReading(): void;
  /** Resumes delivering `onData`. */
  resumeReading(): void;
  /** Half-closes: sends FIN after everything queued is written. Reading goes on. */
  closeWrite(): void;
  /** Closes now, discarding unwritten bytes. `onClose` follows. Safe to call twice. */
  close(): void;
  /** Enables or disables Nagle's algorithm (TCP and TLS; a no-op on UNIX sockets). */
  setNoDelay(noDelay: boolean): void;
  /** Enables or disables TCP keepalive (TCP and TLS; a no-op on UNIX sockets). */
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
   * address is taken, and with a `TypeError` for unusable options (TLS without `cert` and `key`).
   * An `onConnection` that throws has that connection closed, and its error is rethrown from a
   * microtask (a bug in the caller, which the transport has no one else to report to).
   */
  listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener>;
  /**
   * Connects. Rejects with `ConnectionRefusedError` when nothing listens there, and with a
   * `TransportError` naming the reason when a TLS handshake fails (such as an untrusted certificate).
   */
  connect(options: ConnectOptions): Promise<Connection>;
  /**
   * Binds a UDP socket on the runtime's own datagram API. Rejects with `AddressInUseError` when the
   * address is taken, and with `UnsupportedError` where the runtime offers none (Deno without
   * `--unstable-net`).
   */
  bindDatagram(options: DatagramBindOptions): Promise<DatagramSocket>;
}

/** The largest UDP payload to an IPv4 address: 65,535 less the 8-byte UDP and 20-byte IPv4 headers. */
export const MAX_DATAGRAM_BYTES_IPV4 = 65_507;
/** The largest UDP payload to an IPv6 address (without jumbograms): 65,535 less the UDP header. */
export const MAX_DATAGRAM_BYTES_IPV6 = 65_527;

/**
 * The largest payload one datagram to `hostname` can carry.
 *
 * @example
 * ```ts
 * maxDatagramBytes("::1"); // 65527
 * ```
 */
export function maxDatagramBytes(hostname: string): number {
  return hostname.includes(":") ? MAX_DATAGRAM_BYTES_IPV6 : MAX_DATAGRAM_BYTES_IPV4;
}
