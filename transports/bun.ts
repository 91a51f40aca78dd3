/**
 * The transport on Bun's native sockets (`Bun.listen` / `Bun.connect`), TLS included.
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
  TimeoutError,
  TransportError,
} from "../core/errors.ts";
import {
  bunGlobal,
  type BunSocket,
  type BunSocketHandler,
  type BunTcpListener,
  type BunTlsOptions,
} from "./_bun_types.ts";
import { checkTlsConnect, checkTlsListen, formatSubject, tlsFailureReason } from "./_tls.ts";
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

/** From this many queued bytes on, `write` returns `false` (the caller should wait for `onDrain`). */
const HIGH_WATER_MARK = 1024 * 1024;

const DEFAULT_HOSTNAME = "127.0.0.1";

// Every socket is opened with allowHalfOpen: without it Bun closes our side on the peer's FIN.

/**
 * What `socket.data` holds: the listener's context until `open` swaps in the connection, or, for an
 * accepted TLS socket, its pending handshake until the `handshake` handler does.
 */
type SocketData = BunConnection | AcceptContext | PendingHandshake;

/** What a TLS listener needs to judge a finished handshake. */
interface TlsAcceptOptions {
  readonly requestClientCert: boolean;
  readonly timeoutMs: number;
}

/** The `socket.data` a listener gives each accepted socket before it becomes a connection. */
class AcceptContext {
  readonly onConnection: (conn: Connection) => void;
  /** The listener's path, which names the local side of accepted UNIX sockets. */
  readonly unixPath: string | undefined;
  /** Set on a TLS listener. */
  readonly tls: TlsAcceptOptions | undefined;
  /** Accepted TLS sockets still in their handshake. */
  readonly handshaking = new Set<PendingHandshake>();
  closed = false;
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
class PendingHandshake {
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

/** Writes of one tick are merged into one buffer up to this total; beyond it each goes as it is (no copy). */
const MERGE_MAX_BYTES = 256 * 1024;

/**
 * The buffer merged writes are copied into, shared by every connection: Bun's `write` copies into the
 * kernel before it returns, so the buffer is free again at once (a short write's rest is copied out).
 */
let mergeScratch = new Uint8Array(64 * 1024);

/** Copies `chunks` into the shared merge buffer; the view is valid until the next merge. */
function concat(chunks: Uint8Array[], total: number): Uint8Array {
  if (mergeScratch.length < total) {
    let size = mergeScratch.length * 2;
    while (size < total) size *= 2;
    mergeScratch = new Uint8Array(size);
  }
  const out = mergeScratch.subarray(0, total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * While the receiver assembles large messages (it gives chunks back), a longer chunk is handed on in
 * pieces of at most this size, each cut where the message being assembled ends. Bun reads up to
 * 512 KiB at once, and a whole chunk kept for one message inside it also kept the bytes of the
 * messages around it, which the receiver had copied: a flood of 300 KB frames held 1.4x its input.
 * Cut at message ends, every piece is either copied (and let go) or the start of what is kept.
 */
const PIECE_BYTES = 64 * 1024;
/**
 * The chunks cut into pieces are garbage once copied, but JavaScriptCore counts them against its
 * heap lazily. Every this many given-back bytes, a collection runs (1 to 7 ms on a heap holding
 * 256 MiB of messages): a mere request (`Bun.gc(false)`) left 1 GiB floods of 300 KB frames at
 * +283 to +340 MiB RSS over an input cap of 256 MiB, a run every 32 MiB at +277 to +295 MiB.
 */
const GC_AFTER_GIVEN_BACK_BYTES = 32 * 1024 * 1024;
let givenBackBytes = 0;

class BunConnection implements Connection {
  /** One handler set for every socket, accepted or connected; state comes from `socket.data`. */
  static readonly handlers: BunSocketHandler<SocketData> = {
    // Plain Uint8Arrays: a Buffer's `.buffer`, needed to rewrap it, is slow to materialize on JSC.
    binaryType: "uint8array",
    open(socket) {
      const data = socket.data;
      // A paused TLS socket never completes its handshake: TLS sockets wait for `handshake` instead.
      if (data instanceof BunConnection) {
        if (data.#kind === "tls") return;
        // Bun delivers data as soon as the socket opens: hold it in the kernel until setHandler.
        socket.pause();
        data.#attach(socket, undefined);
        return;
      }
      if (!(data instanceof AcceptContext)) return;
      if (data.tls !== undefined) {
        if (data.closed) socket.terminate();
        else socket.data = new PendingHandshake(data, socket, data.tls.timeoutMs);
        return;
      }
      socket.pause();
      const conn = new BunConnection(data.unixPath === undefined ? "tcp" : "unix", undefined);
      socket.data = conn;
      conn.#attach(socket, data.unixPath);
      BunConnection.#handOver(conn, data);
    },
    handshake(socket, success, authorizationError) {
      const data = socket.data;
      if (data instanceof BunConnection) {
        data.#clientHandshake(socket, success, authorizationError);
        return;
      }
      if (!(data instanceof PendingHandshake)) return;
      data.settle();
      const context = data.context;
      const requireCert = context.tls!.requestClientCert;
      // Bun reports a client certificate that fails verification as a successful handshake with an
      // authorizationError: with requestClientCert, that client is dropped here.
      if (!success || context.closed || (requireCert && (authorizationError || socket.authorized !== true))) {
        socket.terminate();
        return;
      }
      socket.pause();
      const conn = new BunConnection("tls", undefined);
      socket.data = conn;
      conn.#attach(socket, undefined);
      conn.#tls = tlsInfo(socket, requireCert);
      BunConnection.#handOver(conn, context);
    },
    data(socket, chunk) {
      const data = socket.data;
      if (data instanceof BunConnection) data.#receive(chunk);
    },
    drain(socket) {
      const data = socket.data;
      if (data instanceof BunConnection) data.#writable();
    },
    end(socket) {
      const data = socket.data;
      if (data instanceof BunConnection) data.#peerEnded();
    },
    error(socket, error) {
      if (socket.data instanceof BunConnection) socket.data.#socketError ??= error;
    },
    close(socket, error) {
      const data = socket.data;
      if (data instanceof BunConnection) data.#socketClosed(error);
      else if (data instanceof PendingHandshake) data.settle();
    },
  };

  static #handOver(conn: BunConnection, context: AcceptContext): void {
    try {
      context.onConnection(conn);
    } catch (err) {
      conn.close();
      rethrowLater(err);
    }
  }

  /**
   * Resolves once a connecting TLS socket's handshake is done and the server verified; rejects with
   * the reason otherwise, or once `deadline` (a `Date.now()` time) passes.
   */
  static secured(
    conn: BunConnection,
    socket: BunSocket<SocketData>,
    where: string,
    deadline: number,
    timeoutMs: number,
  ): Promise<void> {
    if (conn.#attached) return Promise.resolve();
    if (conn.#socketGone) return Promise.reject(conn.#handshakeError(where));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.#handshakeWaiter = undefined;
        socket.terminate();
        reject(new TimeoutError(`Cannot connect to ${where}: TLS handshake not done within ${timeoutMs} ms`));
      }, Math.max(1, deadline - Date.now()));
      conn.#handshakeWaiter = (ok) => {
        clearTimeout(timer);
        conn.#handshakeWaiter = undefined;
        if (ok) resolve();
        else reject(conn.#handshakeError(where));
      };
    });
  }

  #socket!: BunSocket<SocketData>;
  #kind: "tcp" | "unix" | "tls";
  #attached = false;
  #tls: TlsConnectionInfo | undefined;
  /** A connecting TLS socket: told how its handshake ended. */
  #handshakeWaiter: ((ok: boolean) => void) | undefined;
  #handshakeFailure: Error | undefined;
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
  /** The queue's head lies in the shared merge buffer. */
  #headIsMerged = false;
  #awaitingDrain = false;
  readonly #flushTask = () => {
    if (this.#flushScheduled) this.#flush();
  };

  #userPaused = false;
  #socketPaused = true;
  /** Chunks that arrived while they could not be delivered (Bun may deliver once after a pause). */
  #held: Uint8Array[] = [];
  /**
   * What the receiver said it will copy next (see `ConnectionHandler.onData`) while it assembles
   * large messages; -1 when it kept the last chunk.
   */
  #wanted = -1;
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

  constructor(kind: "tcp" | "unix" | "tls", connectPath: string | undefined) {
    this.#kind = kind;
    this.#connectPath = connectPath;
  }

  #clientHandshake(socket: BunSocket<SocketData>, success: boolean, authorizationError: Error | null): void {
    if (this.#attached) return;
    if (!success || authorizationError) {
      this.#handshakeFailure = authorizationError ?? this.#socketError;
      socket.terminate();
      // terminate() runs the close handler, which tells the waiter; this covers a runtime that does not.
      this.#handshakeWaiter?.(false);
      return;
    }
    socket.pause();
    this.#attach(socket, undefined);
    // A client reaches this point only with a verified server (rejectUnauthorized is always on).
    this.#tls = tlsInfo(socket, true);
    this.#handshakeWaiter?.(true);
  }

  #handshakeError(where: string): Error {
    const cause = this.#handshakeFailure ?? this.#socketError;
    const reason = tlsFailureReason(cause);
    if (reason !== undefined) return new TransportError(`Cannot connect to ${where}: ${reason}`, { cause });
    return new ConnectionResetError(`Cannot connect to ${where}: closed during the TLS handshake`, { cause });
  }

  #attach(socket: BunSocket<SocketData>, listenPath: string | undefined): void {
    this.#socket = socket;
    this.#attached = true;
    if (this.#kind === "unix") {
      // Bun reports no addresses on UNIX sockets: the accepted side is named by its listener.
      this.#localAddr = { transport: "unix", path: listenPath ?? "" };
      this.#remoteAddr = { transport: "unix", path: this.#connectPath ?? "" };
    } else {
      this.#localAddr = {
        transport: this.#kind,
        hostname: socket.localAddress ?? "",
        port: socket.localPort ?? 0,
      };
      this.#remoteAddr = {
        transport: this.#kind,
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort ?? 0,
      };
    }
  }

  get tls(): TlsConnectionInfo | undefined {
    return this.#tls;
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
    this.#assertWritable();
    this.#enqueue(data);
    if (!this.#flushScheduled && !this.#awaitingDrain && this.#queue.length) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushTask);
    }
    return this.#buffered < HIGH_WATER_MARK;
  }

  writeBatch(chunks: readonly Uint8Array[]): boolean {
    this.#assertWritable();
    for (let i = 0; i < chunks.length; i++) this.#enqueue(chunks[i]!);
    if (this.#queue.length === 0 || this.#awaitingDrain) return this.#buffered < HIGH_WATER_MARK;
    // Written now; the drain is reported by the microtask, never from inside this call.
    if (this.#writeQueue() && !this.#flushScheduled) {
      this.#flushScheduled = true;
      queueMicrotask(this.#flushTask);
    }
    return this.#buffered < HIGH_WATER_MARK;
  }

  #assertWritable(): void {
    if (this.#closed) throw new ConnectionClosedError("Cannot write: connection is closed");
    if (this.#finPending || this.#writeDone) {
      throw new ConnectionClosedError("Cannot write: connection is closed for writing");
    }
  }

  #enqueue(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    this.#queue.push(data);
    this.#buffered += data.byteLength;
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
    if (this.#kind !== "unix" && !this.#closed) this.#socket.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    if (this.#kind !== "unix" && !this.#closed) this.#socket.setKeepAlive(keepAlive);
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
    if (!this.#writeQueue()) return;
    if (this.#finPending) this.#sendFin();
    if (this.#handler !== undefined && !this.#closed) {
      try {
        this.#handler.onDrain();
      } catch (err) {
        this.#fail(err);
      }
    }
  }

  /** Hands the queue to the kernel; returns false when it took only part (or the socket is gone). */
  #writeQueue(): boolean {
    const queue = this.#queue;
    while (queue.length > 0) {
      // The rest of a short write goes alone, so no byte is copied twice; new writes merge into one.
      if (queue.length > 1 && !this.#headIsRemainder && this.#buffered <= MERGE_MAX_BYTES) {
        const merged = concat(queue, this.#buffered);
        queue.length = 1;
        queue[0] = merged;
        this.#headIsMerged = true;
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
        return false;
      }
      this.#buffered -= written;
      if (written < chunk.byteLength) {
        // Bun's write buffers nothing: the rest stays ours until the drain handler (copied out of the
        // shared merge buffer, which the next merge of any connection overwrites).
        queue[0] = this.#headIsMerged ? chunk.slice(written) : chunk.subarray(written);
        this.#headIsMerged = false;
        this.#headIsRemainder = true;
        this.#awaitingDrain = true;
        return false;
      }
      queue.shift();
      this.#headIsRemainder = false;
      this.#headIsMerged = false;
    }
    return true;
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
    // Bun allocates a fresh chunk for every data call (never reused), so it is passed on uncopied. It is
    // a plain Uint8Array (binaryType), as receivers rely on Uint8Array#slice copying (Buffer#slice does not).
    if (this.#handler === undefined || this.#userPaused || this.#held.length > 0) {
      this.#held.push(chunk);
      this.#syncPause();
      return;
    }
    try {
      this.#handOn(chunk);
    } catch (err) {
      this.#fail(err);
    }
  }

  /**
   * Passes `chunk` to onData: whole, or while the receiver assembles large messages, in pieces cut
   * where each one ends (see PIECE_BYTES). On a pause the rest goes back to the front of #held.
   */
  #handOn(chunk: Uint8Array): void {
    const handler = this.#handler!;
    const total = chunk.byteLength;
    if (this.#wanted < 0 || total <= PIECE_BYTES) {
      const wanted = handler.onData(chunk);
      this.#wanted = typeof wanted === "number" ? wanted : -1;
      return;
    }
    let gaveBack = false;
    for (let at = 0; at < total;) {
      if (this.#closed && this.#localClose) return;
      if (this.#userPaused) {
        this.#held.unshift(chunk.subarray(at));
        return;
      }
      const wanted = this.#wanted;
      const size = Math.min(total - at, wanted > 0 ? wanted : PIECE_BYTES);
      const given = handler.onData(chunk.subarray(at, at + size));
      at += size;
      if (typeof given === "number") {
        gaveBack = true;
        givenBackBytes += size;
        this.#wanted = given;
      } else this.#wanted = 0;
    }
    if (givenBackBytes >= GC_AFTER_GIVEN_BACK_BYTES) {
      givenBackBytes = 0;
      bunGlobal().gc(true);
    }
    // A chunk of which nothing was given back: no large message is being assembled any more.
    if (!gaveBack) this.#wanted = -1;
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
    if (!this.#attached) {
      // A connecting TLS socket closed before its handshake was done: connect() rejects.
      this.#closed = true;
      this.#handshakeFailure ??= error;
      this.#handshakeWaiter?.(false);
      return;
    }
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
        this.#handOn(this.#held.shift()!);
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

function tlsInfo(socket: BunSocket<SocketData>, authorized: boolean): TlsConnectionInfo {
  const subject = formatSubject(socket.getPeerCertificate?.()?.subject);
  return subject === undefined ? { authorized } : { authorized, peerCertificateSubject: subject };
}

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
    const mode = unixSocketMode(options);
    await prepareUnixSocketPath(path, bunTransport.connect);
    let listener: BunTcpListener;
    const context = new AcceptContext(onConnection, path);
    try {
      listener = bun.listen<SocketData>({ unix: path, allowHalfOpen: true, data: context, socket: handlers });
    } catch (err) {
      throw listenError(err, path);
    }
    try {
      await applyUnixSocketMode(path, mode);
    } catch (err) {
      listener.stop(true);
      await removeUnixSocketFile(path).catch(() => {});
      throw err;
    }
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
    throw new TypeError(
      `Cannot listen: unknown transport ${JSON.stringify((options as { transport: unknown }).transport)}`,
    );
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
    throw listenError(err, formatAddr({ transport: kind, hostname, port }));
  }
  // getsockname resolves a host name such as "localhost" to the IP actually bound.
  const bound: { address?: string; port?: number } = {};
  listener.getsockname?.(bound);
  return new BunListener(listener, {
    transport: kind,
    hostname: bound.address ?? listener.hostname ?? hostname,
    port: bound.port ?? listener.port ?? port,
  }, context);
}

/** `pending`, or a `TimeoutError` after `ms`; a socket that opens too late is closed. */
function withDeadline(
  pending: Promise<BunSocket<SocketData>>,
  ms: number,
  where: string,
): Promise<BunSocket<SocketData>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  let late = false;
  pending.then((socket) => late && socket.terminate(), () => {});
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      late = true;
      reject(new TimeoutError(`Cannot connect to ${where}: TLS handshake not done within ${ms} ms`));
    }, ms);
  });
  return Promise.race([pending, timeout]).finally(() => clearTimeout(timer));
}

async function connect(options: ConnectOptions): Promise<Connection> {
  const bun = bunGlobal();
  let target: Addr;
  let conn: BunConnection;
  let pending: Promise<BunSocket<SocketData>>;
  let tlsDeadline = 0;
  let tlsTimeoutMs = 0;
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
    } else if (options.transport === "tls") {
      const checked = checkTlsConnect(options);
      target = { transport: "tls", hostname: checked.hostname, port: checked.port };
      conn = new BunConnection("tls", undefined);
      tlsTimeoutMs = checked.timeoutMs;
      tlsDeadline = Date.now() + tlsTimeoutMs;
      // rejectUnauthorized is always given: Bun takes an empty tls object for no TLS at all.
      const tls: BunTlsOptions = { rejectUnauthorized: true };
      if (checked.ca !== undefined) tls.ca = checked.ca;
      if (checked.cert !== undefined) Object.assign(tls, { cert: checked.cert, key: checked.key });
      if (checked.serverName !== undefined) tls.serverName = checked.serverName;
      pending = withDeadline(
        bun.connect<SocketData>({
          hostname: target.hostname,
          port: target.port,
          allowHalfOpen: true,
          data: conn,
          socket: BunConnection.handlers,
          tls,
        }),
        checked.timeoutMs,
        checked.where,
      );
    } else {
      throw new TypeError(
        `Cannot connect: unknown transport ${JSON.stringify((options as { transport: unknown }).transport)}`,
      );
    }
  } catch (err) {
    // Bad options (Bun's RangeError for a port out of range) are the caller's to fix, not a network failure.
    if (err instanceof TypeError || err instanceof RangeError) throw err;
    throw new TransportError(`Cannot connect: ${describe(err)}`, { cause: err });
  }
  let socket: BunSocket<SocketData>;
  try {
    socket = await pending;
  } catch (err) {
    if (err instanceof TimeoutError) throw err;
    const code = errorCode(err);
    // A UNIX path with no socket file means nothing listens there, like a closed TCP port.
    if (code === "ECONNREFUSED" || (code === "ENOENT" && target.transport === "unix")) {
      throw new ConnectionRefusedError(`Cannot connect to ${formatAddr(target)}: connection refused`, {
        cause: err,
      });
    }
    const reason = tlsFailureReason(err) ?? describe(err);
    throw new TransportError(`Cannot connect to ${formatAddr(target)}: ${reason}`, { cause: err });
  }
  if (target.transport === "tls") {
    // Bun.connect resolves once TCP is connected; the TLS handshake ends later, in `handshake`.
    await BunConnection.secured(conn, socket, formatAddr(target), tlsDeadline, tlsTimeoutMs);
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
