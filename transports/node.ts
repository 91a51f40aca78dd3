/**
 * The transport on `node:net` and `node:tls`: native on Node, and selectable on Deno and Bun (through
 * their `node:net` compatibility) to compare against their own socket APIs. Deno's transport also
 * borrows its TLS parts where `Deno.listenTls` / `Deno.connectTls` fall short.
 *
 * @module
 */
import {
  connect as netConnect,
  createServer,
  type ListenOptions as NetListenOptions,
  type Server,
  type Socket,
} from "node:net";
import { Buffer } from "node:buffer";
import process from "node:process";
import {
  connect as tlsConnect,
  type ConnectionOptions,
  createServer as createTlsServer,
  type TLSSocket,
} from "node:tls";
import {
  AddressInUseError,
  ConnectionClosedError,
  ConnectionRefusedError,
  ConnectionResetError,
  TimeoutError,
  TransportError,
} from "../core/errors.ts";
import {
  type CheckedTlsConnect,
  type CheckedTlsListen,
  checkTlsConnect,
  checkTlsListen,
  formatSubject,
  tlsFailureReason,
} from "./_tls.ts";
import {
  applyUnixSocketMode,
  prepareUnixSocketPath,
  removeUnixSocketFile,
  unixSocketMode,
} from "./_unix_path.ts";
import type {
  Addr,
  Connection,
  ConnectionHandler,
  ConnectOptions,
  Listener,
  ListenOptions,
  TlsConnectionInfo,
  Transport,
} from "./types.ts";

/** Above this many buffered bytes, `write` returns `false` to ask the caller to wait for `onDrain`. */
const HIGH_WATER_MARK = 1024 * 1024;

/**
 * A batch whose chunks average below this size is copied into one buffer; one of larger chunks goes out
 * corked, as one `writev`. Measured on 100k 30-byte writes (copying: 2-4x faster on Node, Deno and Bun),
 * on 64 KiB writes (corking: up to 2x faster, no copy) and on HTTP responses of a small head and a
 * 10 KiB body (corking: about 15% less CPU per response than copying).
 */
const CORK_MIN_AVERAGE_CHUNK = 4 * 1024;

/** Readable words for the codes a socket user is likely to meet; others are shown as the bare code. */
const ERROR_WORDS: Record<string, string> = {
  EACCES: "permission denied",
  EADDRNOTAVAIL: "address not available",
  EHOSTUNREACH: "host unreachable",
  EMFILE: "too many open files",
  ENETUNREACH: "network unreachable",
  ENOENT: "no such file or directory",
  ENOTFOUND: "host not found",
  ETIMEDOUT: "timed out",
};

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function describeAddr(addr: Addr): string {
  if (addr.transport === "unix") return addr.path;
  return addr.hostname.includes(":") ? `[${addr.hostname}]:${addr.port}` : `${addr.hostname}:${addr.port}`;
}

/** Maps a `node:net` failure onto the typed asockio errors, keeping it as `cause`. */
function mapError(err: unknown, action: string, connecting = false): Error {
  const code = errorCode(err);
  switch (code) {
    case "ECONNREFUSED":
      return new ConnectionRefusedError(`${action}: connection refused`, { cause: err });
    case "ECONNRESET":
    case "EPIPE":
      return new ConnectionResetError(`${action}: connection reset by peer`, { cause: err });
    case "EADDRINUSE":
      return new AddressInUseError(`${action}: address in use`, { cause: err });
  }
  // Connecting to a UNIX socket path with no file behind it fails with ENOENT: a refusal all the same.
  if (code === "ENOENT" && connecting) {
    return new ConnectionRefusedError(`${action}: connection refused`, { cause: err });
  }
  const tlsReason = tlsFailureReason(err);
  if (tlsReason !== undefined) return new TransportError(`${action}: ${tlsReason}`, { cause: err });
  const words = code === undefined ? undefined : ERROR_WORDS[code];
  const reason = words ? `${words} (${code})` : code ?? (err instanceof Error ? err.message : String(err));
  return new TransportError(`${action}: ${reason}`, { cause: err });
}

function tcpAddr(address: string | undefined, port: number | undefined, kind: "tcp" | "tls" = "tcp"): Addr {
  return { transport: kind, hostname: address ?? "", port: port ?? 0 };
}

/**
 * `reusePort` reached `server.listen` in Node 22.12 and 23.1; older Node ignores it silently. Deno's and
 * Bun's `node:net` report a recent Node version and do pass it on (checked: two listeners share a port).
 */
function supportsReusePort(): boolean {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
  return major > 22 || (major === 22 && minor >= 12);
}

class NodeConnection implements Connection {
  readonly localAddr: Addr;
  readonly remoteAddr: Addr;
  readonly tls?: TlsConnectionInfo;
  #socket: Socket;
  #isTcp: boolean;
  #handler: ConnectionHandler | undefined;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #flushScheduled = false;
  #pendingWrites = 0;
  #readPaused = false;
  #writeClosed = false;
  #closed = false;
  #closeReported = false;
  #endReported = false;
  #error: Error | undefined;

  constructor(socket: Socket, localAddr: Addr, remoteAddr: Addr, tls?: TlsConnectionInfo) {
    this.#socket = socket;
    this.localAddr = localAddr;
    this.remoteAddr = remoteAddr;
    if (tls !== undefined) this.tls = tls;
    this.#isTcp = localAddr.transport !== "unix";
    socket.on("error", (err: Error) => {
      this.#error ??= mapError(err, `Connection with ${this.#peerName()} failed`);
    });
    socket.on("close", () => {
      this.#closed = true;
      this.#queue = [];
      this.#queuedBytes = 0;
      if (this.#handler) this.#reportClose();
    });
  }

  get bufferedAmount(): number {
    return this.#queuedBytes + this.#socket.writableLength;
  }

  get closed(): boolean {
    return this.#closed || this.#socket.destroyed;
  }

  setHandler(handler: ConnectionHandler): void {
    if (this.#handler) throw new TypeError("Cannot set the connection handler twice");
    this.#handler = handler;
    const socket = this.#socket;
    if (this.#closed) {
      queueMicrotask(() => this.#reportClose());
      return;
    }
    socket.on("data", (chunk: Uint8Array) => {
      // A plain view, so `slice` copies as on every other transport (Buffer#slice does not).
      handler.onData(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    });
    socket.on("end", () => {
      if (this.#endReported) return;
      this.#endReported = true;
      handler.onEnd();
    });
    if (!this.#readPaused) socket.resume();
  }

  write(data: Uint8Array): boolean {
    this.#assertWritable();
    this.#enqueue(data);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flush);
    }
    return this.#queuedBytes + this.#socket.writableLength < HIGH_WATER_MARK;
  }

  writeBatch(chunks: readonly Uint8Array[]): boolean {
    this.#assertWritable();
    for (let i = 0; i < chunks.length; i++) if (chunks[i]!.byteLength) this.#enqueue(chunks[i]!);
    // A microtask scheduled by an earlier write then finds the queue empty and does nothing.
    if (this.#queue.length) this.#flush();
    return this.#queuedBytes + this.#socket.writableLength < HIGH_WATER_MARK;
  }

  #assertWritable(): void {
    if (this.closed) throw new ConnectionClosedError("Cannot write: connection is closed");
    if (this.#writeClosed) throw new ConnectionClosedError("Cannot write: write side is closed");
  }

  #enqueue(data: Uint8Array): void {
    this.#queue.push(data);
    this.#queuedBytes += data.byteLength;
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
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#socket.destroy();
  }

  setNoDelay(noDelay: boolean): void {
    if (this.#isTcp && !this.closed) this.#socket.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    if (this.#isTcp && !this.closed) this.#socket.setKeepAlive(keepAlive);
  }

  #flush = (): void => {
    this.#flushScheduled = false;
    const queue = this.#queue;
    const socket = this.#socket;
    if (this.closed || queue.length === 0) return;
    const total = this.#queuedBytes;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#pendingWrites++;
    if (queue.length === 1) {
      socket.write(queue[0], this.#onWritten);
    } else if (total < queue.length * CORK_MIN_AVERAGE_CHUNK) {
      // Not zero-filled (every byte is written next), and small joins come from Node's pool.
      const joined = Buffer.allocUnsafe(total);
      let offset = 0;
      for (const chunk of queue) {
        joined.set(chunk, offset);
        offset += chunk.byteLength;
      }
      socket.write(joined, this.#onWritten);
    } else {
      // Corked writes leave as one writev; only the last one needs the callback.
      socket.cork();
      const last = queue.length - 1;
      for (let i = 0; i < last; i++) socket.write(queue[i]);
      socket.write(queue[last], this.#onWritten);
      socket.uncork();
    }
    if (this.#writeClosed) socket.end();
  };

  #onWritten = (err?: Error | null): void => {
    this.#pendingWrites--;
    if (err || this.closed) return;
    if (this.#pendingWrites === 0 && !this.#flushScheduled) this.#handler?.onDrain();
  };

  #peerName(): string {
    const { localAddr, remoteAddr } = this;
    if (remoteAddr.transport === "unix" && remoteAddr.path === "" && localAddr.transport === "unix") {
      return localAddr.path;
    }
    return describeAddr(remoteAddr);
  }

  #reportClose(): void {
    if (this.#closeReported) return;
    this.#closeReported = true;
    this.#handler?.onClose(this.#error);
  }
}

function socketConnection(socket: Socket, unixPath: string | undefined, accepted: boolean): NodeConnection {
  if (unixPath !== undefined) {
    // Node reports no addresses for UNIX sockets: the listener's path is the only name there is.
    const named: Addr = { transport: "unix", path: unixPath };
    const unnamed: Addr = { transport: "unix", path: "" };
    return accepted ? new NodeConnection(socket, named, unnamed) : new NodeConnection(socket, unnamed, named);
  }
  return new NodeConnection(
    socket,
    tcpAddr(socket.localAddress, socket.localPort),
    tcpAddr(socket.remoteAddress, socket.remotePort),
  );
}

/**
 * Wraps a TLS socket whose handshake is done. `authorized` is what this side knows for sure: a client
 * reaches secureConnect only with a verified server, and a server verifies clients only on request
 * (Deno's node:tls reports `authorized` true even for a client it never asked for a certificate).
 */
function tlsConnection(socket: TLSSocket, authorized: boolean): NodeConnection {
  const peer = socket.getPeerCertificate();
  const subject = formatSubject(peer?.subject);
  const info: TlsConnectionInfo = subject === undefined
    ? { authorized }
    : { authorized, peerCertificateSubject: subject };
  return new NodeConnection(
    socket,
    tcpAddr(socket.localAddress, socket.localPort, "tls"),
    tcpAddr(socket.remoteAddress, socket.remotePort, "tls"),
    info,
  );
}

class NodeListener implements Listener {
  readonly addr: Addr;
  #server: Server;
  #closing: Promise<void> | undefined;

  #onClose: (() => void) | undefined;

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

function listenServer(server: Server, options: NetListenOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(options, () => {
      server.off("error", onError);
      resolve();
    });
  });
}

/**
 * The transport on `node:net`. Native on Node; on Deno and Bun it runs on their `node:net` compatibility,
 * which makes it a baseline to compare their own transports with.
 *
 * @example Echo server and client on node:net
 * ```ts
 * import { nodeTransport } from "@asockio/core/transports";
 * const listener = await nodeTransport.listen({ transport: "tcp" }, (conn) => {
 *   conn.setHandler({
 *     onData: (chunk) => conn.write(chunk),
 *     onDrain: () => {},
 *     onEnd: () => conn.closeWrite(),
 *     onClose: () => {},
 *   });
 * });
 * const client = await nodeTransport.connect({ transport: "tcp", port: (listener.addr as { port: number }).port });
 * client.setHandler({
 *   onData: (chunk) => console.log(new TextDecoder().decode(chunk)),
 *   onDrain: () => {},
 *   onEnd: () => client.close(),
 *   onClose: () => listener.close(),
 * });
 * client.write(new TextEncoder().encode("hello"));
 * client.closeWrite();
 * ```
 */
export const nodeTransport: Transport = {
  name: "node",

  async listen(options: ListenOptions, onConnection: (conn: Connection) => void): Promise<Listener> {
    let unixPath: string | undefined;
    let unixMode = 0;
    let listenOptions: NetListenOptions;
    let where: string;
    if (options.transport === "tls") return listenNodeTls(checkTlsListen(options), onConnection);
    if (options.transport === "unix") {
      unixPath = options.path;
      where = unixPath;
      unixMode = unixSocketMode(options);
      await prepareUnixSocketPath(unixPath, nodeTransport.connect);
      listenOptions = { path: unixPath };
    } else if (options.transport === "tcp") {
      const host = options.hostname ?? "127.0.0.1";
      const port = options.port ?? 0;
      where = describeAddr({ transport: "tcp", hostname: host, port });
      listenOptions = { host, port };
      if (options.reusePort) {
        if (!supportsReusePort()) {
          throw new TypeError(
            `Cannot listen on ${where} with reusePort: node:net supports it from Node 22.12, this is ${process.version}`,
          );
        }
        listenOptions = { host, port, reusePort: true };
      }
    } else {
      throw new TypeError(
        `Cannot listen: unknown transport ${JSON.stringify((options as { transport: unknown }).transport)}`,
      );
    }
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true }, (socket) => {
      // Belt and braces: reading must not start before setHandler, whatever pauseOnConnect does.
      socket.pause();
      onConnection(socketConnection(socket, unixPath, true));
    });
    try {
      await listenServer(server, listenOptions);
    } catch (err) {
      server.close();
      throw mapError(err, `Cannot listen on ${where}`);
    }
    // Accept failures (EMFILE and the like) are reported on the server; the next accept may succeed.
    server.on("error", () => {});
    let addr: Addr;
    if (unixPath !== undefined) {
      try {
        await applyUnixSocketMode(unixPath, unixMode);
      } catch (err) {
        server.close();
        await removeUnixSocketFile(unixPath).catch(() => {});
        throw err;
      }
      addr = { transport: "unix", path: unixPath };
    } else {
      const bound = server.address();
      addr = typeof bound === "object" && bound !== null
        ? tcpAddr(bound.address, bound.port)
        : tcpAddr(undefined, undefined);
    }
    return new NodeListener(server, undefined, addr);
  },

  connect(options: ConnectOptions): Promise<Connection> {
    if (options.transport === "tls") {
      try {
        return connectNodeTls(checkTlsConnect(options));
      } catch (err) {
        return Promise.reject(err);
      }
    }
    return new Promise((resolve, reject) => {
      let socket: Socket;
      let unixPath: string | undefined;
      let where: string;
      if (options.transport === "unix") {
        unixPath = options.path;
        where = unixPath;
        socket = netConnect({ path: unixPath, allowHalfOpen: true });
      } else if (options.transport === "tcp") {
        const host = options.hostname ?? "127.0.0.1";
        where = describeAddr({ transport: "tcp", hostname: host, port: options.port });
        socket = netConnect({ host, port: options.port, allowHalfOpen: true });
      } else {
        throw new TypeError(
          `Cannot connect: unknown transport ${
            JSON.stringify((options as { transport: unknown }).transport)
          }`,
        );
      }
      // Paused explicitly so that adding the data listener in setHandler does not start the flow.
      socket.pause();
      const onError = (err: Error) => {
        socket.destroy();
        reject(mapError(err, `Cannot connect to ${where}`, true));
      };
      socket.once("error", onError);
      socket.once("connect", () => {
        socket.off("error", onError);
        resolve(socketConnection(socket, unixPath, false));
      });
    });
  },
};

/**
 * Listens for TLS on `node:tls`; the connections it passes on have completed the handshake. Used by
 * {@linkcode nodeTransport}, and by the Deno transport for mutual TLS, which `Deno.listenTls` lacks.
 *
 * @example
 * ```ts
 * const listener = await listenNodeTls(checkTlsListen({ transport: "tls", cert, key }), (conn) => conn.close());
 * await listener.close();
 * ```
 */
export async function listenNodeTls(
  options: CheckedTlsListen,
  onConnection: (conn: Connection) => void,
): Promise<Listener> {
  const { hostname, port, requestClientCert } = options;
  const where = describeAddr({ transport: "tls", hostname, port });
  let listenOptions: NetListenOptions = { host: hostname, port };
  if (options.reusePort) {
    if (!supportsReusePort()) {
      throw new TypeError(
        `Cannot listen on ${where} with reusePort: node:net supports it from Node 22.12, this is ${process.version}`,
      );
    }
    listenOptions = { host: hostname, port, reusePort: true };
  }
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
    onConnection(tlsConnection(socket, requestClientCert));
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
  try {
    await listenServer(server, listenOptions);
  } catch (err) {
    server.close();
    throw mapError(err, `Cannot listen on ${where}`);
  }
  server.on("error", () => {});
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
 * Used by {@linkcode nodeTransport}, and by the Deno transport for a client certificate together
 * with `serverName`, which Deno's own API cannot combine.
 *
 * @example
 * ```ts
 * const conn = await connectNodeTls(checkTlsConnect({ transport: "tls", port: 8443, ca }));
 * conn.close();
 * ```
 */
export function connectNodeTls(options: CheckedTlsConnect): Promise<Connection> {
  const { where } = options;
  return new Promise((resolve, reject) => {
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
    const socket = tlsConnect(tlsOptions);
    socket.pause();
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    // Counted from the start: a TCP connect that hangs is bounded by the same timer.
    const timer = setTimeout(() => {
      fail(
        new TimeoutError(`Cannot connect to ${where}: TLS handshake not done within ${options.timeoutMs} ms`),
      );
    }, options.timeoutMs);
    const onError = (err: Error) => fail(mapError(err, `Cannot connect to ${where}`, true));
    const onClose = () =>
      fail(new ConnectionResetError(`Cannot connect to ${where}: closed during the TLS handshake`));
    socket.once("error", onError);
    socket.once("close", onClose);
    socket.once("secureConnect", () => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off("error", onError);
      socket.off("close", onClose);
      resolve(tlsConnection(socket, true));
    });
  });
}
