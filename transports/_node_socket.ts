/**
 * Connections and listeners on `node:net` and `node:tls`: what the node transport is made of, and what
 * the Deno transport runs its TLS listeners on (`Deno.listenTls` cannot drop a client that never
 * completes its handshake, nor ask for a client certificate) and the TLS clients `Deno.startTls`
 * cannot make (a client certificate together with a `serverName`).
 *
 * @module
 */
import type { ListenOptions as NetListenOptions, Server, Socket } from "node:net";
import { Buffer } from "node:buffer";
import process from "node:process";
import {
  connect as tlsConnect,
  type ConnectionOptions,
  createServer as createTlsServer,
  type TLSSocket,
} from "node:tls";
import { UnsupportedError } from "../core/errors.ts";
import { formatAddr, peerName } from "./_addr.ts";
import { handlerError, handOver } from "./_callbacks.ts";
import { connectError, connectionError, listenError, tlsConnectError } from "./_errors.ts";
import { type CheckedTlsConnect, type CheckedTlsListen, tlsConnectionInfo } from "./_tls.ts";
import { raceTlsDeadline } from "./_tls_deadline.ts";
import { removeUnixSocketFile } from "./_unix_path.ts";
import { assertWritable, copyChunks, WRITE_HIGH_WATER_MARK, WriteQueue } from "./_write_queue.ts";
import { BULK_READ_MIN_BYTES, canReadIntoOwnMemory, NodeOwnReads } from "./_node_read_memory.ts";
import type {
  Addr,
  Connection,
  ConnectionHandler,
  Listener,
  TcpAddr,
  TlsAddr,
  TlsConnectionInfo,
} from "./types.ts";

/**
 * A batch whose chunks average below this size is copied into one buffer; one of larger chunks goes out
 * corked, as one `writev`. Measured on 100k 30-byte writes (copying: 2-4x faster on Node, Deno and Bun),
 * on 64 KiB writes (corking: up to 2x faster, no copy) and on HTTP responses of a small head and a
 * 10 KiB body (corking: about 15% less CPU per response than copying).
 */
const CORK_MIN_AVERAGE_CHUNK = 4 * 1024;
/**
 * A TLS batch larger than this is written chunk by chunk instead of corked: node:tls encrypts a corked
 * batch far more slowly. A 100-byte head and a 1 MiB body, in server CPU per response: corked 6.8 ms
 * against 0.6 ms on Deno, 1.3 against 0.6 ms on Bun, 0.47 against 0.35 ms on Node; at 10 and 64 KiB
 * corking was as fast or faster.
 */
const TLS_CORK_MAX_BYTES = 64 * 1024;

/**
 * A TCP or TLS address from what `node:net` reports (nothing, for a socket already closed).
 */
export function tcpAddr(
  address: string | undefined,
  port: number | undefined,
  kind: "tcp" | "tls" = "tcp",
): Addr {
  return { transport: kind, hostname: address ?? "", port: port ?? 0 };
}

/**
 * `server.listen` options for a TCP host and port, with `reusePort` where `node:net` honours it and an
 * `UnsupportedError` where it would ignore it. `reusePort` reached `server.listen` in Node 22.12 and 23.1;
 * Deno's and Bun's `node:net` report a recent Node version and do pass it on (checked: two listeners
 * share a port).
 *
 * @example
 * ```ts
 * netListenOptions({ transport: "tcp", hostname: "127.0.0.1", port: 0 }, false); // { host: "127.0.0.1", port: 0 }
 * ```
 */
export function netListenOptions(target: TcpAddr | TlsAddr, reusePort: boolean): NetListenOptions {
  const { hostname: host, port } = target;
  if (!reusePort) return { host, port };
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  if (major < 22 || (major === 22 && minor < 12)) {
    throw new UnsupportedError(
      `Cannot listen on ${
        formatAddr(target)
      } with reusePort: node:net supports it from Node 22.12, this is ${process.version}`,
    );
  }
  return { host, port, reusePort: true };
}

/** The parts of node:net's internals that say how much of its writes never reached the kernel. */
interface NodeWriteInternals {
  _writableState?: { length?: number; writing?: boolean; writelen?: number };
  _handle?: { writeQueueSize?: number } | null;
}

/**
 * Bytes `socket` holds that never reached the kernel, as it is destroyed: those its stream still
 * buffers, plus what libuv kept of the write in progress. On TLS, or where the internals are not
 * there, that write counts as written, which keeps the count a lower bound.
 */
export function unwrittenByNode(socket: Socket, tls: boolean): number {
  const { _writableState: state, _handle: handle } = socket as unknown as NodeWriteInternals;
  if (typeof state?.length !== "number") return 0;
  const inProgress = state.writing ? state.writelen ?? state.length : 0;
  const heldByLibuv = tls ? 0 : handle?.writeQueueSize ?? 0;
  return Math.max(0, state.length - inProgress) + heldByLibuv;
}

/** Where a socket keeps its connection, for the listeners every connection shares. */
const CONNECTION = Symbol("asockio connection");
type OwnedSocket = Socket & { [CONNECTION]: NodeConnection };

/**
 * One `node:net` or `node:tls` socket behind the {@linkcode Connection} contract. Its socket listeners
 * are shared by every connection (they find it on the socket), and its write callbacks are made at the
 * first write, so an idle connection keeps no closure of its own.
 */
export class NodeConnection implements Connection {
  #localAddr: Addr | undefined;
  readonly remoteAddr: Addr;
  readonly tls?: TlsConnectionInfo;
  #socket: Socket;
  #isTcp: boolean;
  #isTls: boolean;
  #handler: ConnectionHandler | undefined;
  readonly #writes = new WriteQueue();
  #flushScheduled = false;
  #pendingWrites = 0;
  #readPaused = false;
  /** Reads can go into reused memory (see `_node_read_memory.ts`); `#ownReads` once they do. */
  readonly #reusable: boolean;
  #ownReads: NodeOwnReads | undefined = undefined;
  #writeClosed = false;
  #closed = false;
  #closeReported = false;
  #endReported = false;
  #error: Error | undefined;

  /**
   * Wraps `socket`, connected or accepted; `tls` is set once its TLS handshake is done. `localAddr` may be
   * just its kind (`"tcp"`, `"tls"`): it is then read from the socket when first asked for.
   */
  constructor(socket: Socket, localAddr: Addr | "tcp" | "tls", remoteAddr: Addr, tls?: TlsConnectionInfo) {
    const kind = typeof localAddr === "string" ? localAddr : localAddr.transport;
    this.#socket = socket;
    this.#localAddr = typeof localAddr === "string" ? undefined : localAddr;
    this.remoteAddr = remoteAddr;
    if (tls !== undefined) this.tls = tls;
    this.#isTcp = kind !== "unix";
    this.#isTls = kind === "tls";
    this.#reusable = !this.#isTls && canReadIntoOwnMemory(socket);
    (socket as OwnedSocket)[CONNECTION] = this;
    socket.on("error", NodeConnection.#onError);
    // `_destroy` is the stream's own extension point, called while node:net still holds its writes.
    socket._destroy = NodeConnection.#onDestroy;
    socket.on("close", NodeConnection.#onClose);
  }

  static #onError(this: Socket, err: Error): void {
    const conn = (this as OwnedSocket)[CONNECTION];
    conn.#error ??= connectionError(err, peerName(conn.localAddr, conn.remoteAddr));
  }

  static #onDestroy(this: Socket, err: Error | null, callback: (err?: Error | null) => void): void {
    const conn = (this as OwnedSocket)[CONNECTION];
    conn.#writes.discarded += unwrittenByNode(this, conn.#isTls);
    // The socket's own `_destroy`, from its class (this one shadows it on the socket).
    Object.getPrototypeOf(this)._destroy.call(this, err, callback);
  }

  static #onClose(this: Socket): void {
    const conn = (this as OwnedSocket)[CONNECTION];
    conn.#closed = true;
    conn.#writes.clear();
    if (conn.#handler) conn.#reportClose();
  }

  static #onData(this: Socket, chunk: Uint8Array): void {
    const conn = (this as OwnedSocket)[CONNECTION];
    // A plain view, so `slice` copies as on every other transport (Buffer#slice does not).
    const wanted = conn.#deliver(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    // The receiver copies a large message or stream: read the rest into reused memory, once nothing
    // waits in the socket's stream (it would come after what the new reads deliver).
    if (
      typeof wanted === "number" && wanted >= BULK_READ_MIN_BYTES && conn.#reusable && !conn.#readPaused &&
      conn.#ownReads === undefined && this.readableLength === 0 && !conn.closed
    ) {
      conn.#ownReads = NodeOwnReads.start(
        this,
        wanted,
        conn.#deliverTask ??= (chunk) => conn.#deliver(chunk),
      );
    }
  }

  #deliverTask: ((chunk: Uint8Array) => number | void) | undefined = undefined;

  #deliver(chunk: Uint8Array): number | void {
    try {
      return this.#handler!.onData(chunk);
    } catch (err) {
      this.#handlerFailed("onData", err);
    }
  }

  static #onEnd(this: Socket): void {
    const conn = (this as OwnedSocket)[CONNECTION];
    if (conn.#endReported) return;
    conn.#endReported = true;
    try {
      conn.#handler!.onEnd();
    } catch (err) {
      conn.#handlerFailed("onEnd", err);
    }
  }

  /** This side's address; a TCP one is read when first asked for (node:net keeps it from then on). */
  get localAddr(): Addr {
    const socket = this.#socket;
    return this.#localAddr ??= tcpAddr(socket.localAddress, socket.localPort, this.#isTls ? "tls" : "tcp");
  }

  get bufferedAmount(): number {
    return this.#writes.bytes + this.#socket.writableLength;
  }

  /** On Node, plain TCP and UNIX sockets read a large message's rest into reused memory. */
  get reusesReadMemory(): boolean {
    return this.#reusable;
  }

  get closed(): boolean {
    return this.#closed || this.#socket.destroyed;
  }

  get discardedBytes(): number {
    return this.#writes.discarded;
  }

  setHandler(handler: ConnectionHandler): void {
    if (this.#handler) throw new TypeError("Cannot set the connection handler twice");
    this.#handler = handler;
    const socket = this.#socket;
    if (this.#closed) {
      queueMicrotask(() => this.#reportClose());
      return;
    }
    socket.on("data", NodeConnection.#onData);
    socket.on("end", NodeConnection.#onEnd);
    if (!this.#readPaused) socket.resume();
  }

  write(data: Uint8Array): boolean {
    assertWritable(this.closed, this.#writeClosed);
    const writes = this.#writes;
    writes.push(data);
    // An empty write queues nothing: a flush for it would find nothing, and skip the FIN after it.
    if (!this.#flushScheduled && writes.chunks.length) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushTask ??= () => this.#flush());
    }
    return writes.bytes + this.#socket.writableLength < WRITE_HIGH_WATER_MARK;
  }

  writeBatch(chunks: readonly Uint8Array[]): boolean {
    assertWritable(this.closed, this.#writeClosed);
    this.#writes.pushAll(chunks);
    // A microtask scheduled by an earlier write then finds the queue empty and does nothing.
    if (this.#writes.chunks.length) this.#flush();
    return this.#writes.bytes + this.#socket.writableLength < WRITE_HIGH_WATER_MARK;
  }

  pauseReading(): void {
    this.#readPaused = true;
    if (this.#handler) this.#socket.pause();
  }

  resumeReading(): void {
    this.#readPaused = false;
    if (this.#handler && !this.#closed) this.#socket.resume();
  }

  closeWrite(): void {
    if (this.#writeClosed || this.closed) return;
    this.#writeClosed = true;
    // With a batch queued, the flush sends FIN right after it.
    if (!this.#flushScheduled) this.#socket.end();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writes.clear();
    this.#socket.destroy();
  }

  setNoDelay(noDelay: boolean): void {
    if (this.#isTcp && !this.closed) this.#socket.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    if (this.#isTcp && !this.closed) this.#socket.setKeepAlive(keepAlive);
  }

  /** `#flush` and `#onWritten` as callbacks, made at the first write. */
  #flushTask: (() => void) | undefined = undefined;
  #writtenTask: ((err?: Error | null) => void) | undefined = undefined;

  #flush(): void {
    this.#flushScheduled = false;
    const writes = this.#writes;
    const socket = this.#socket;
    if (this.closed || writes.chunks.length === 0) return;
    const total = writes.bytes;
    const queue = writes.take();
    const onWritten = this.#writtenTask ??= (err) => this.#onWritten(err);
    this.#pendingWrites++;
    if (queue.length === 1) {
      socket.write(queue[0], onWritten);
    } else if (total < queue.length * CORK_MIN_AVERAGE_CHUNK) {
      // Not zero-filled (every byte is written next), and small joins come from Node's pool.
      const joined = Buffer.allocUnsafe(total);
      copyChunks(joined, queue);
      socket.write(joined, onWritten);
    } else {
      // Corked writes leave as one writev; only the last one needs the callback (they complete in order).
      const corked = !this.#isTls || total <= TLS_CORK_MAX_BYTES;
      if (corked) socket.cork();
      const last = queue.length - 1;
      for (let i = 0; i < last; i++) socket.write(queue[i]);
      socket.write(queue[last], onWritten);
      if (corked) socket.uncork();
    }
    // Written: node:net holds what it still needs, and the array is the next take's queue.
    queue.length = 0;
    if (this.#writeClosed) socket.end();
  }

  #onWritten(err?: Error | null): void {
    this.#pendingWrites--;
    if (err || this.closed) return;
    if (this.#pendingWrites === 0 && !this.#flushScheduled) {
      try {
        this.#handler?.onDrain();
      } catch (err) {
        this.#handlerFailed("onDrain", err);
      }
    }
  }

  /** A handler callback threw: this connection closes, and onClose reports what was thrown. */
  #handlerFailed(callback: string, thrown: unknown): void {
    if (this.#closeReported) return;
    this.#error ??= handlerError(callback, peerName(this.localAddr, this.remoteAddr), thrown);
    this.close();
  }

  #reportClose(): void {
    if (this.#closeReported) return;
    this.#closeReported = true;
    this.#handler?.onClose(this.#error);
  }
}

/**
 * Wraps a `node:net` socket, connected (`accepted` false) or accepted by a listener on `unixPath`
 * (or on TCP when `unixPath` is undefined).
 */
export function socketConnection(
  socket: Socket,
  unixPath: string | undefined,
  accepted: boolean,
): NodeConnection {
  if (unixPath !== undefined) {
    // Node reports no addresses for UNIX sockets: the listener's path is the only name there is.
    const named: Addr = { transport: "unix", path: unixPath };
    const unnamed: Addr = { transport: "unix", path: "" };
    return accepted ? new NodeConnection(socket, named, unnamed) : new NodeConnection(socket, unnamed, named);
  }
  const remote = tcpAddr(socket.remoteAddress, socket.remotePort);
  // node:net caches what it read as `_peername` (56 B); the connection keeps its own copy in `remote`.
  (socket as unknown as { _peername?: unknown })._peername = undefined;
  return new NodeConnection(socket, "tcp", remote);
}

/**
 * Wraps a TLS socket whose handshake is done. `authorized` is what this side knows for sure: a client
 * reaches secureConnect only with a verified server, and a server verifies clients only on request
 * (Deno's node:tls reports `authorized` true even for a client it never asked for a certificate).
 */
function tlsConnection(socket: TLSSocket, authorized: boolean): NodeConnection {
  return new NodeConnection(
    socket,
    tcpAddr(socket.localAddress, socket.localPort, "tls"),
    tcpAddr(socket.remoteAddress, socket.remotePort, "tls"),
    tlsConnectionInfo(authorized, socket.getPeerCertificate()?.subject),
  );
}

/** A `node:net` or `node:tls` server behind the {@linkcode Listener} contract. */
export class NodeListener implements Listener {
  readonly addr: Addr;
  #server: Server;
  #closing: Promise<void> | undefined;

  #onClose: (() => void) | undefined;

  /** Wraps a listening `server`; `onClose` also runs on `close`, after it stops accepting. */
  constructor(server: Server, onClose: (() => void) | undefined, addr: Addr) {
    this.#server = server;
    this.#onClose = onClose;
    this.addr = addr;
  }

  /** True once `close` was called. */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    // server.close() stops accepting at once; its callback waits for every accepted connection to end,
    // which a listener must not do, so it is not awaited.
    this.#server.close();
    this.#onClose?.();
    // Node (libuv) unlinks the socket file itself on close; Deno's and Bun's node:net may not.
    if (this.addr.transport === "unix") await removeUnixSocketFile(this.addr.path);
  }
}

/**
 * `server.listen(options)` as a promise. On failure the server is closed and the promise rejects
 * with the typed error for `target`.
 */
export function listenServer(server: Server, options: NetListenOptions, target: Addr): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => {
      server.close();
      reject(listenError(err, target));
    };
    server.once("error", onError);
    server.listen(options, () => {
      server.off("error", onError);
      // Accept failures (EMFILE and the like) are reported on the server; the next accept may succeed.
      server.on("error", () => {});
      resolve();
    });
  });
}

/**
 * Listens for TLS on `node:tls`; the connections it passes on have completed the handshake, and a peer
 * that does not complete it within `timeoutMs` has its socket closed. Used by the node transport, and
 * by the Deno transport for every TLS listener (see `deno.ts`).
 */
export async function listenNodeTls(
  options: CheckedTlsListen,
  onConnection: (conn: Connection) => void,
): Promise<Listener> {
  const { requestClientCert } = options;
  const target: TlsAddr = { transport: "tls", hostname: options.hostname, port: options.port };
  const listenOptions = netListenOptions(target, options.reusePort);
  // Set once listening; a handshake cannot finish before that.
  const made: { listener?: NodeListener } = {};
  // TCP sockets whose TLS handshake is under way, by peer address. Deno's node:tls ignores
  // handshakeTimeout and its TLS socket's destroy() waits for the handshake, so the timer ends the
  // TCP socket underneath, which every runtime honours.
  const handshaking = new Map<string, { raw: Socket; timer: ReturnType<typeof setTimeout> }>();
  const peerKey = (socket: Socket) => `${socket.remoteAddress} ${socket.remotePort}`;
  const settle = (key: string, raw?: Socket) => {
    const entry = handshaking.get(key);
    if (entry === undefined || (raw !== undefined && entry.raw !== raw)) return;
    clearTimeout(entry.timer);
    handshaking.delete(key);
  };
  const server = createTlsServer({
    cert: options.cert,
    key: options.key,
    ...(requestClientCert ? { ca: options.ca, requestCert: true, rejectUnauthorized: true } : {}),
    allowHalfOpen: true,
    handshakeTimeout: options.timeoutMs,
  }, (socket: TLSSocket) => {
    settle(peerKey(socket));
    // node:tls already drops unverified clients; checked again so no runtime's shim can let one by.
    if (made.listener?.closing || (requestClientCert && !socket.authorized)) {
      socket.destroy();
      return;
    }
    socket.pause();
    handOver(tlsConnection(socket, requestClientCert), onConnection);
  });
  server.on("connection", (raw: Socket) => {
    if (raw.remotePort === undefined) return;
    const key = peerKey(raw);
    const timer = setTimeout(() => {
      handshaking.delete(key);
      raw.destroy();
    }, options.timeoutMs);
    handshaking.set(key, { raw, timer });
    raw.once("close", () => settle(key, raw));
  });
  // A failed handshake is that one client's problem: node:tls destroys its socket, the server goes on.
  server.on("tlsClientError", () => {});
  await listenServer(server, listenOptions, target);
  const bound = server.address();
  made.listener = new NodeListener(
    server,
    // Handshakes still under way were never passed on: they go with the listener.
    () => {
      for (const { raw, timer } of handshaking.values()) {
        clearTimeout(timer);
        raw.destroy();
      }
      handshaking.clear();
    },
    typeof bound === "object" && bound !== null
      ? tcpAddr(bound.address, bound.port, "tls")
      : tcpAddr(undefined, undefined, "tls"),
  );
  return made.listener;
}

/**
 * Connects over TLS on `node:tls`, resolving once the handshake is done and the server verified.
 * Used by the node transport, and by the Deno transport for a client certificate together
 * with `serverName`, which Deno's own API cannot combine.
 */
export function connectNodeTls(options: CheckedTlsConnect): Promise<Connection> {
  const target: TlsAddr = { transport: "tls", hostname: options.hostname, port: options.port };
  let socket: TLSSocket | undefined;
  const attempt = new Promise<Connection>((resolve, reject) => {
    // node:tls passes allowHalfOpen on to its socket, though its types leave it out.
    const tlsOptions: ConnectionOptions & { allowHalfOpen: boolean } = {
      host: options.hostname,
      port: options.port,
      ...(options.serverName === undefined ? {} : { servername: options.serverName }),
      ...(options.ca === undefined ? {} : { ca: options.ca }),
      ...(options.cert === undefined ? {} : { cert: options.cert, key: options.key }),
      rejectUnauthorized: true,
      allowHalfOpen: true,
    };
    const tls = socket = tlsConnect(tlsOptions);
    tls.pause();
    const onError = (err: Error) => {
      tls.destroy();
      reject(connectError(err, target));
    };
    const onClose = () => reject(tlsConnectError(undefined, target));
    tls.once("error", onError);
    tls.once("close", onClose);
    tls.once("secureConnect", () => {
      tls.off("error", onError);
      tls.off("close", onClose);
      resolve(tlsConnection(tls, true));
    });
  });
  // Counted from the start: a TCP connect that hangs is bounded by the same clock.
  return raceTlsDeadline(attempt, options.timeoutMs, `Cannot connect to ${options.where}`, {
    onTimeout: () => socket?.destroy(),
    onLate: (conn) => conn.close(),
  });
}
