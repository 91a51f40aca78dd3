/**
 * The transport on Bun's native sockets (`Bun.listen` / `Bun.connect`).
 *
 * Bun calls one set of handlers for every socket and keeps per-socket state in `socket.data`, so
 * each connection's state lives there and the handlers are defined once for the whole module.
 *
 * @module
 */
import {
  AddressInUseError,
  ConnectionClosedError,
  ConnectionRefusedError,
  ConnectionResetError,
  TransportError,
} from "../core/errors.ts";
import { bunGlobal, type BunSocket, type BunSocketHandler, type BunTcpListener } from "./_bun_types.ts";
import { prepareUnixSocketPath, removeUnixSocketFile } from "./_unix_path.ts";
import type {
  Addr,
  Connection,
  ConnectionHandler,
  ConnectOptions,
  Listener,
  ListenOptions,
  Transport,
} from "./types.ts";

/** From this many queued bytes on, `write` returns `false` (the caller should wait for `onDrain`). */
const HIGH_WATER_MARK = 1024 * 1024;

const DEFAULT_HOSTNAME = "127.0.0.1";

// Every socket is opened with allowHalfOpen: without it Bun closes our side on the peer's FIN.

/** What `socket.data` holds: the listener's context until `open` swaps in the connection. */
type SocketData = BunConnection | AcceptContext;

/** The `socket.data` a listener gives each accepted socket before it becomes a connection. */
class AcceptContext {
  readonly onConnection: (conn: Connection) => void;
  /** The listener's path, which names the local side of accepted UNIX sockets. */
  readonly unixPath: string | undefined;
  constructor(onConnection: (conn: Connection) => void, unixPath: string | undefined) {
    this.onConnection = onConnection;
    this.unixPath = unixPath;
  }
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function describe(err: unknown): string {
  return errorCode(err) ?? (err instanceof Error ? err.message : String(err));
}

function formatAddr(addr: Addr): string {
  if (addr.transport === "unix") return addr.path;
  return addr.hostname.includes(":") ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
}

/** Maps the error Bun closed a connection with onto the asockio classes. */
function connectionError(err: unknown): Error {
  const code = errorCode(err);
  if (code === "ECONNRESET" || code === "EPIPE") {
    return new ConnectionResetError("Connection reset by peer", { cause: err });
  }
  return new TransportError(`Connection failed: ${describe(err)}`, { cause: err });
}

/** Reports an error thrown by a user callback that has no connection left to close. */
function rethrowLater(err: unknown): void {
  queueMicrotask(() => {
    throw err;
  });
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

class BunConnection implements Connection {
  /** One handler set for every socket, accepted or connected; state comes from `socket.data`. */
  static readonly handlers: BunSocketHandler<SocketData> = {
    open(socket) {
      // Bun delivers data as soon as the socket opens: hold it in the kernel until setHandler.
      socket.pause();
      const data = socket.data;
      if (data instanceof BunConnection) {
        data.#attach(socket, undefined);
        return;
      }
      const conn = new BunConnection(data.unixPath === undefined ? "tcp" : "unix", undefined);
      socket.data = conn;
      conn.#attach(socket, data.unixPath);
      try {
        data.onConnection(conn);
      } catch (err) {
        conn.close();
        rethrowLater(err);
      }
    },
    data(socket, chunk) {
      (socket.data as BunConnection).#receive(chunk);
    },
    drain(socket) {
      (socket.data as BunConnection).#writable();
    },
    end(socket) {
      (socket.data as BunConnection).#peerEnded();
    },
    error(socket, error) {
      if (socket.data instanceof BunConnection) socket.data.#socketError ??= error;
    },
    close(socket, error) {
      if (socket.data instanceof BunConnection) socket.data.#socketClosed(error);
    },
  };

  #socket!: BunSocket<SocketData>;
  #kind: "tcp" | "unix";
  /** The path a client connected to (UNIX only). */
  #connectPath: string | undefined;
  #localAddr!: Addr;
  #remoteAddr!: Addr;
  #handler: ConnectionHandler | undefined;

  /** Written but not yet taken by the kernel; the head may be the rest of a short native write. */
  #queue: Uint8Array[] = [];
  #buffered = 0;
  #headIsRemainder = false;
  #flushScheduled = false;
  #awaitingDrain = false;
  readonly #flushTask = () => this.#flush();

  #userPaused = false;
  #socketPaused = true;
  /** Chunks that arrived while they could not be delivered (Bun may deliver once after a pause). */
  #held: Uint8Array[] = [];
  #deliveryScheduled = false;
  readonly #deliverTask = () => this.#deliver();

  #readDone = false;
  #endPending = false;
  #finPending = false;
  #writeDone = false;

  #closed = false;
  #localClose = false;
  #socketGone = false;
  #closePending = false;
  #closeDelivered = false;
  #closeError: Error | undefined;
  #socketError: Error | undefined;

  constructor(kind: "tcp" | "unix", connectPath: string | undefined) {
    this.#kind = kind;
    this.#connectPath = connectPath;
  }

  #attach(socket: BunSocket<SocketData>, listenPath: string | undefined): void {
    this.#socket = socket;
    if (this.#kind === "unix") {
      // Bun reports no addresses on UNIX sockets: the accepted side is named by its listener.
      this.#localAddr = { transport: "unix", path: listenPath ?? "" };
      this.#remoteAddr = { transport: "unix", path: this.#connectPath ?? "" };
    } else {
      this.#localAddr = {
        transport: "tcp",
        hostname: socket.localAddress ?? "",
        port: socket.localPort ?? 0,
      };
      this.#remoteAddr = {
        transport: "tcp",
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort ?? 0,
      };
    }
  }

  get localAddr(): Addr {
    return this.#localAddr;
  }

  get remoteAddr(): Addr {
    return this.#remoteAddr;
  }

  get bufferedAmount(): number {
    return this.#buffered;
  }

  get closed(): boolean {
    return this.#closed;
  }

  setHandler(handler: ConnectionHandler): void {
    if (this.#handler !== undefined) throw new TypeError("Cannot set the connection handler twice");
    this.#handler = handler;
    if (this.#held.length > 0 || this.#endPending || this.#closePending) this.#scheduleDelivery();
    else this.#syncPause();
  }

  write(data: Uint8Array): boolean {
    if (this.#closed) throw new ConnectionClosedError("Cannot write: connection is closed");
    if (this.#finPending || this.#writeDone) {
      throw new ConnectionClosedError("Cannot write: connection is closed for writing");
    }
    if (data.byteLength === 0) return this.#buffered < HIGH_WATER_MARK;
    this.#queue.push(data);
    this.#buffered += data.byteLength;
    if (!this.#flushScheduled && !this.#awaitingDrain) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushTask);
    }
    return this.#buffered < HIGH_WATER_MARK;
  }

  pauseReading(): void {
    this.#userPaused = true;
    this.#syncPause();
  }

  resumeReading(): void {
    if (!this.#userPaused) return;
    this.#userPaused = false;
    if (this.#held.length > 0 || this.#endPending || this.#closePending) this.#scheduleDelivery();
    else this.#syncPause();
  }

  closeWrite(): void {
    if (this.#closed || this.#finPending || this.#writeDone) return;
    this.#finPending = true;
    if (this.#queue.length === 0) this.#sendFin();
  }

  close(): void {
    if (this.#closed) return;
    this.#closeNow(undefined);
  }

  setNoDelay(noDelay: boolean): void {
    if (this.#kind === "tcp" && !this.#closed) this.#socket.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    if (this.#kind === "tcp" && !this.#closed) this.#socket.setKeepAlive(keepAlive);
  }

  /** Closes at once, dropping what is queued or held; `error` (a user callback's throw) goes to onClose. */
  #closeNow(error: Error | undefined): void {
    this.#closed = true;
    this.#localClose = true;
    this.#closeError ??= error;
    this.#queue.length = 0;
    this.#buffered = 0;
    this.#held.length = 0;
    this.#endPending = false;
    // end() sends FIN like Node's destroy() and Deno's close(); terminate() would send RST.
    if (!this.#socketGone) this.#socket.end();
    // Bun runs the close handler inside end(); this covers a runtime that does not.
    this.#socketClosed(undefined);
  }

  #flush(): void {
    this.#flushScheduled = false;
    if (this.#closed || this.#awaitingDrain) return;
    const queue = this.#queue;
    while (queue.length > 0) {
      // The rest of a short write goes alone, so no byte is copied twice; new writes merge into one.
      if (queue.length > 1 && !this.#headIsRemainder) {
        const merged = concat(queue, this.#buffered);
        queue.length = 1;
        queue[0] = merged;
      }
      const chunk = queue[0];
      const written = this.#socket.write(chunk);
      if (written < 0) {
        // Bun returns -1 once the socket is closed; its close handler reports why.
        if (!this.#closed) {
          const cause = this.#socketError;
          this.#closeNow(
            new ConnectionResetError("Cannot write: connection is closed by the peer", { cause }),
          );
        }
        return;
      }
      this.#buffered -= written;
      if (written < chunk.byteLength) {
        // Bun's write buffers nothing: the rest stays ours until the drain handler.
        queue[0] = chunk.subarray(written);
        this.#headIsRemainder = true;
        this.#awaitingDrain = true;
        return;
      }
      queue.shift();
      this.#headIsRemainder = false;
    }
    if (this.#finPending) this.#sendFin();
    if (this.#handler !== undefined && !this.#closed) {
      try {
        this.#handler.onDrain();
      } catch (err) {
        this.#fail(err);
      }
    }
  }

  #writable(): void {
    if (!this.#awaitingDrain) return;
    this.#awaitingDrain = false;
    this.#flush();
  }

  #sendFin(): void {
    this.#finPending = false;
    this.#writeDone = true;
    // Bun 1.4: shutdown() sends FIN and keeps reading; shutdown(true) would shut the read side.
    this.#socket.shutdown();
    if (this.#readDone) this.#finishBothDone();
  }

  /** Both directions have ended: release the socket, keeping what is still to be delivered. */
  #finishBothDone(): void {
    if (this.#socketGone) return;
    this.#closed = true;
    this.#socket.end();
  }

  #receive(chunk: Uint8Array): void {
    if (this.#closed && this.#localClose) return;
    // Bun allocates a fresh Buffer for every data call (never reused), so the chunk is passed on uncopied.
    if (this.#handler === undefined || this.#userPaused || this.#held.length > 0) {
      this.#held.push(chunk);
      this.#syncPause();
      return;
    }
    try {
      this.#handler.onData(chunk);
    } catch (err) {
      this.#fail(err);
    }
  }

  #peerEnded(): void {
    if (this.#readDone) return;
    this.#readDone = true;
    this.#endPending = true;
    if (this.#handler !== undefined && !this.#userPaused && this.#held.length === 0) this.#deliverEnd();
    if (this.#writeDone) this.#finishBothDone();
  }

  #deliverEnd(): void {
    this.#endPending = false;
    try {
      this.#handler!.onEnd();
    } catch (err) {
      this.#fail(err);
    }
  }

  #socketClosed(error: Error | undefined): void {
    if (this.#socketGone) return;
    this.#socketGone = true;
    this.#closed = true;
    this.#queue.length = 0;
    this.#buffered = 0;
    this.#awaitingDrain = false;
    const cause = error ?? this.#socketError;
    if (cause !== undefined && !this.#localClose) this.#closeError ??= connectionError(cause);
    // Bun skips the end handler when the peer's FIN arrives after ours: its clean close is that EOF.
    if (cause === undefined && !this.#localClose && !this.#readDone) {
      this.#readDone = true;
      this.#endPending = true;
    }
    if (this.#closeError !== undefined) {
      this.#held.length = 0;
      this.#endPending = false;
    }
    this.#closePending = true;
    if (this.#handler !== undefined) this.#scheduleDelivery();
  }

  #scheduleDelivery(): void {
    if (this.#deliveryScheduled) return;
    this.#deliveryScheduled = true;
    queueMicrotask(this.#deliverTask);
  }

  /** Delivers what waited for a handler or for resumeReading, then onClose; runs as a microtask. */
  #deliver(): void {
    this.#deliveryScheduled = false;
    const handler = this.#handler;
    if (handler === undefined) return;
    while (this.#held.length > 0 && !this.#userPaused && !(this.#closed && this.#localClose)) {
      try {
        handler.onData(this.#held.shift()!);
      } catch (err) {
        this.#fail(err);
      }
    }
    if (this.#held.length === 0 && !this.#userPaused && this.#endPending) this.#deliverEnd();
    const waiting = this.#held.length > 0 || this.#endPending;
    if (this.#closePending && !this.#closeDelivered && !waiting) {
      this.#closeDelivered = true;
      try {
        handler.onClose(this.#closeError);
      } catch (err) {
        rethrowLater(err);
      }
      return;
    }
    this.#syncPause();
  }

  /** A user callback threw: close this connection only, reporting the error to onClose. */
  #fail(err: unknown): void {
    const error = err instanceof Error
      ? err
      : new TransportError("Connection handler failed", { cause: err });
    if (this.#closed && this.#localClose) return;
    if (this.#socketGone) {
      this.#closeError ??= error;
      this.#held.length = 0;
      this.#endPending = false;
      return;
    }
    this.#closeNow(error);
  }

  /** Reads from the socket only while a handler takes the data. */
  #syncPause(): void {
    if (this.#socketGone) return;
    const read = this.#handler !== undefined && !this.#userPaused && this.#held.length === 0;
    if (read && this.#socketPaused) {
      this.#socketPaused = false;
      this.#socket.resume();
    } else if (!read && !this.#socketPaused) {
      this.#socketPaused = true;
      this.#socket.pause();
    }
  }
}

class BunListener implements Listener {
  readonly #listener: BunTcpListener;
  readonly #addr: Addr;
  #closing: Promise<void> | undefined;

  constructor(listener: BunTcpListener, addr: Addr) {
    this.#listener = listener;
    this.#addr = addr;
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
    if (this.#addr.transport === "unix") await removeUnixSocketFile(this.#addr.path);
  }
}

function listenError(err: unknown, target: string): Error {
  if (err instanceof TypeError || err instanceof RangeError) return err;
  if (errorCode(err) === "EADDRINUSE") {
    return new AddressInUseError(`Cannot listen on ${target}: address in use`, { cause: err });
  }
  return new TransportError(`Cannot listen on ${target}: ${describe(err)}`, { cause: err });
}

async function listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
  const bun = bunGlobal();
  const handlers = BunConnection.handlers;
  if (options.transport === "unix") {
    const path = options.path;
    await prepareUnixSocketPath(path, bunTransport.connect);
    let listener: BunTcpListener;
    try {
      listener = bun.listen<SocketData>({
        unix: path,
        allowHalfOpen: true,
        data: new AcceptContext(onConnection, path),
        socket: handlers,
      });
    } catch (err) {
      throw listenError(err, path);
    }
    return new BunListener(listener, { transport: "unix", path });
  }
  if (options.transport !== "tcp") {
    throw new TypeError(
      `Cannot listen: unknown transport ${JSON.stringify((options as ListenOptions).transport)}`,
    );
  }
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const port = options.port ?? 0;
  let listener: BunTcpListener;
  try {
    listener = bun.listen<SocketData>({
      hostname,
      port,
      reusePort: options.reusePort === true,
      allowHalfOpen: true,
      data: new AcceptContext(onConnection, undefined),
      socket: handlers,
    });
  } catch (err) {
    throw listenError(err, formatAddr({ transport: "tcp", hostname, port }));
  }
  // getsockname resolves a host name such as "localhost" to the IP actually bound.
  const bound: { address?: string; port?: number } = {};
  listener.getsockname?.(bound);
  return new BunListener(listener, {
    transport: "tcp",
    hostname: bound.address ?? listener.hostname ?? hostname,
    port: bound.port ?? listener.port ?? port,
  });
}

async function connect(options: ConnectOptions): Promise<Connection> {
  const bun = bunGlobal();
  let target: Addr;
  let conn: BunConnection;
  let pending: Promise<BunSocket<SocketData>>;
  try {
    if (options.transport === "unix") {
      target = { transport: "unix", path: options.path };
      conn = new BunConnection("unix", options.path);
      pending = bun.connect<SocketData>({
        unix: options.path,
        allowHalfOpen: true,
        data: conn,
        socket: BunConnection.handlers,
      });
    } else if (options.transport === "tcp") {
      target = { transport: "tcp", hostname: options.hostname ?? DEFAULT_HOSTNAME, port: options.port };
      conn = new BunConnection("tcp", undefined);
      pending = bun.connect<SocketData>({
        hostname: target.hostname,
        port: target.port,
        allowHalfOpen: true,
        data: conn,
        socket: BunConnection.handlers,
      });
    } else {
      throw new TypeError(
        `Cannot connect: unknown transport ${JSON.stringify((options as ConnectOptions).transport)}`,
      );
    }
  } catch (err) {
    // Bad options (Bun's RangeError for a port out of range) are the caller's to fix, not a network failure.
    if (err instanceof TypeError || err instanceof RangeError) throw err;
    throw new TransportError(`Cannot connect: ${describe(err)}`, { cause: err });
  }
  try {
    await pending;
  } catch (err) {
    const code = errorCode(err);
    // A UNIX path with no socket file means nothing listens there, like a closed TCP port.
    if (code === "ECONNREFUSED" || (code === "ENOENT" && target.transport === "unix")) {
      throw new ConnectionRefusedError(`Cannot connect to ${formatAddr(target)}: connection refused`, {
        cause: err,
      });
    }
    throw new TransportError(`Cannot connect to ${formatAddr(target)}: ${describe(err)}`, { cause: err });
  }
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
};
