/**
 * The transport on Bun's native sockets (`Bun.listen` / `Bun.connect`), TLS included.
 *
 * Bun calls one set of handlers for every socket and keeps per-socket state in `socket.data`: those
 * handlers and the connections are in `_bun_connection.ts`; listening and connecting are here. Every
 * socket is opened with allowHalfOpen: without it Bun closes our side on the peer's FIN.
 *
 * @module
 */
import { DEFAULT_HOSTNAME, formatAddr, WILDCARD_HOSTS } from "./_addr.ts";
import { bindBunDatagram } from "./_bun_datagram.ts";
import { AcceptContext } from "./_bun_accept.ts";
import { BunConnection, type SocketData } from "./_bun_connection.ts";
import { bunGlobal, type BunSocket, type BunTcpListener, type BunTlsOptions } from "./_bun_types.ts";
import { connectError, listenError, unknownTransportError } from "./_errors.ts";
import { checkTlsConnect, checkTlsListen } from "./_tls.ts";
import { raceTlsDeadline } from "./_tls_deadline.ts";
import { listenUnixSocket, removeUnixSocketFile } from "./_unix_path.ts";
import type { Addr, Connection, ConnectOptions, Listener, ListenOptions, Transport } from "./types.ts";

class BunListener implements Listener {
  readonly #listener: BunTcpListener;
  readonly #addr: Addr;
  readonly #context: AcceptContext;
  #closing: Promise<void> | undefined;

  constructor(listener: BunTcpListener, addr: Addr, context: AcceptContext) {
    this.#listener = listener;
    this.#addr = addr;
    this.#context = context;
  }

  get addr(): Addr {
    return this.#addr;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // stop(false) stops accepting and leaves accepted sockets open.
    this.#listener.stop(false);
    // TLS sockets still in their handshake were never passed on: they go with the listener.
    this.#context.closed = true;
    for (const pending of [...this.#context.handshaking]) pending.drop();
    if (this.#addr.transport === "unix") await removeUnixSocketFile(this.#addr.path);
  }
}

async function listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
  const bun = bunGlobal();
  const handlers = BunConnection.handlers;
  if (options.transport === "unix") {
    const path = options.path;
    const context = new AcceptContext(onConnection, path);
    const listener = await listenUnixSocket(options, bunTransport.connect, () => {
      try {
        return bun.listen<SocketData>({ unix: path, allowHalfOpen: true, data: context, socket: handlers });
      } catch (err) {
        throw listenError(err, { transport: "unix", path });
      }
    }, (bound) => bound.stop(true));
    return new BunListener(listener, { transport: "unix", path }, context);
  }
  let hostname: string;
  let port: number;
  let reusePort: boolean;
  let context: AcceptContext;
  let tls: BunTlsOptions | undefined;
  if (options.transport === "tls") {
    const checked = checkTlsListen(options);
    ({ hostname, port, reusePort } = checked);
    context = new AcceptContext(onConnection, undefined, checked);
    tls = checked.requestClientCert
      ? { cert: checked.cert, key: checked.key, ca: checked.ca, requestCert: true, rejectUnauthorized: true }
      : { cert: checked.cert, key: checked.key };
  } else if (options.transport === "tcp") {
    hostname = options.hostname ?? DEFAULT_HOSTNAME;
    port = options.port ?? 0;
    reusePort = options.reusePort === true;
    context = new AcceptContext(onConnection, undefined);
  } else {
    throw unknownTransportError("listen", options);
  }
  const kind = options.transport;
  let listener: BunTcpListener;
  try {
    listener = bun.listen<SocketData>({
      hostname,
      port,
      reusePort,
      allowHalfOpen: true,
      data: context,
      socket: handlers,
      ...(tls === undefined ? {} : { tls }),
    });
  } catch (err) {
    throw listenError(err, { transport: kind, hostname, port });
  }
  // getsockname resolves a host name such as "localhost" to the IP actually bound.
  const bound: { address?: string; port?: number } = {};
  listener.getsockname?.(bound);
  const addr = {
    transport: kind,
    hostname: bound.address ?? listener.hostname ?? hostname,
    port: bound.port ?? listener.port ?? port,
  };
  // A wildcard listener's sockets each have their own local address (the interface they came in on).
  if (!WILDCARD_HOSTS.has(addr.hostname)) context.local = addr;
  return new BunListener(listener, addr, context);
}

async function connect(options: ConnectOptions): Promise<Connection> {
  const bun = bunGlobal();
  const handlers = BunConnection.handlers;
  let target: Addr;
  let conn: BunConnection;
  let tls: BunTlsOptions | undefined;
  let tlsTimeoutMs = 0;
  if (options.transport === "unix") {
    target = { transport: "unix", path: options.path };
    conn = new BunConnection("unix", options.path);
  } else if (options.transport === "tcp") {
    target = { transport: "tcp", hostname: options.hostname ?? DEFAULT_HOSTNAME, port: options.port };
    conn = new BunConnection("tcp", undefined);
  } else if (options.transport === "tls") {
    const checked = checkTlsConnect(options);
    target = { transport: "tls", hostname: checked.hostname, port: checked.port };
    conn = new BunConnection("tls", undefined);
    tlsTimeoutMs = checked.timeoutMs;
    // rejectUnauthorized is always given: Bun takes an empty tls object for no TLS at all.
    tls = { rejectUnauthorized: true };
    if (checked.ca !== undefined) tls.ca = checked.ca;
    if (checked.cert !== undefined) Object.assign(tls, { cert: checked.cert, key: checked.key });
    if (checked.serverName !== undefined) tls.serverName = checked.serverName;
  } else {
    throw unknownTransportError("connect", options);
  }
  let pending: Promise<BunSocket<SocketData>>;
  try {
    pending = target.transport === "unix"
      ? bun.connect<SocketData>({ unix: target.path, allowHalfOpen: true, data: conn, socket: handlers })
      : bun.connect<SocketData>({
        hostname: target.hostname,
        port: target.port,
        allowHalfOpen: true,
        data: conn,
        socket: handlers,
        ...(tls === undefined ? {} : { tls }),
      });
  } catch (err) {
    // Bad options (Bun's RangeError for a port out of range) pass as they are: the caller's to fix.
    throw connectError(err, target);
  }
  if (target.transport !== "tls") {
    try {
      await pending;
    } catch (err) {
      throw connectError(err, target);
    }
    return conn;
  }
  // Bun.connect resolves once TCP is connected; the TLS handshake ends later, in `handshake`. One
  // clock bounds both.
  let opened: BunSocket<SocketData> | undefined;
  let expired = false;
  const secured = pending.then((socket) => {
    opened = socket;
    // Opened past the deadline: nobody waits for it, and its handshake then fails.
    if (expired) socket.terminate();
    return BunConnection.secured(conn, target);
  }, (err) => {
    throw connectError(err, target);
  });
  await raceTlsDeadline(secured, tlsTimeoutMs, `Cannot connect to ${formatAddr(target)}`, {
    onTimeout: () => {
      expired = true;
      opened?.terminate();
    },
    onLate: () => conn.close(),
  });
  return conn;
}

/**
 * The transport on Bun's own `Bun.listen` / `Bun.connect`. Bun's `write` takes only what the kernel
 * accepts now, so this transport queues the rest, coalesces the writes of one tick into one native
 * write, and sends what remains on `drain`.
 *
 * @example Echo server on Bun
 * ```ts
 * import { bunTransport } from "@asockio/core/transports";
 * const listener = await bunTransport.listen({ transport: "tcp", port: 0 }, (conn) => {
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
export const bunTransport: Transport = {
  name: "bun",
  listen,
  connect,
  bindDatagram: bindBunDatagram,
};
