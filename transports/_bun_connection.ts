/**
 * The Bun transport's connections: one set of socket handlers for every socket, each socket's state
 * in `socket.data` (the listener's context, a pending TLS handshake, then the connection), and the
 * read and write paths. The first two are in `_bun_accept.ts`; listening and connecting in `bun.ts`.
 *
 * @module
 */
import { localAddrOf, peerName } from "./_addr.ts";
import { handlerError, handOver } from "./_callbacks.ts";
import { AcceptContext, PendingHandshake } from "./_bun_accept.ts";
import {
  bunGlobal,
  type BunSocket,
  type BunSocketHandler,
  type BunTlsState as TlsState,
} from "./_bun_types.ts";
import { connectionError, tlsConnectError } from "./_errors.ts";
import { tlsConnectionInfo } from "./_tls.ts";
import { assertWritable, copyChunks, NO_CHUNKS, WRITE_HIGH_WATER_MARK, WriteQueue } from "./_write_queue.ts";
import type { Addr, Connection, ConnectionHandler, TlsConnectionInfo } from "./types.ts";
import { DueList } from "./_due_list.ts";

/**
 * What `socket.data` holds: the listener's context until `open` swaps in the connection, or, for an
 * accepted TLS socket, its pending handshake until the `handshake` handler does.
 */
export type SocketData = BunConnection | AcceptContext | PendingHandshake;

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
  copyChunks(out, chunks);
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
 * Chunks given back, whole or in pieces, are garbage once copied, but JavaScriptCore counts them
 * against its heap lazily. Every this many given-back bytes, a collection runs (1 to 7 ms on a heap
 * holding 256 MiB of messages): a mere request (`Bun.gc(false)`) left 1 GiB floods of 300 KB frames
 * at +283 to +340 MiB RSS over an input cap of 256 MiB, a run every 32 MiB at +277 to +295 MiB.
 */
const GC_AFTER_GIVEN_BACK_BYTES = 32 * 1024 * 1024;
let givenBackBytes = 0;

function collectGivenBack(): void {
  givenBackBytes = 0;
  bunGlobal().gc(true);
}

/**
 * One Bun socket behind the {@linkcode Connection} contract, connected or accepted. Its static
 * `handlers` serve every socket of the transport.
 */
// The bits of `BunConnection`'s `#flags`.
const ATTACHED = 1, HEAD_IS_REMAINDER = 2, FLUSH_SCHEDULED = 4, HEAD_IS_MERGED = 8;
const AWAITING_DRAIN = 16, USER_PAUSED = 32, SOCKET_PAUSED = 64, DELIVERY_SCHEDULED = 128;
const READ_DONE = 256, END_PENDING = 512, FIN_PENDING = 1024, WRITE_DONE = 2048;
const CLOSED = 4096, LOCAL_CLOSE = 8192, SOCKET_GONE = 16384, CLOSE_PENDING = 32768, CLOSE_DELIVERED = 65536;

export class BunConnection implements Connection {
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
      conn.#attach(socket, data);
      handOver(conn, data.onConnection);
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
      conn.#attach(socket, context);
      conn.#tls = { info: tlsConnectionInfo(requireCert, socket.getPeerCertificate?.()?.subject) };
      handOver(conn, context.onConnection);
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

  /**
   * Resolves once a connecting TLS socket's handshake is done and the server verified; rejects with
   * the reason otherwise. The caller bounds the wait. (Static, so that connections show no more
   * than the contract.)
   */
  static secured(conn: BunConnection, target: Addr): Promise<void> {
    if ((conn.#flags & ATTACHED) !== 0) return Promise.resolve();
    if ((conn.#flags & SOCKET_GONE) !== 0) return Promise.reject(conn.#handshakeError(target));
    return new Promise((resolve, reject) => {
      conn.#tlsState().waiter = (ok) => {
        conn.#tlsState().waiter = undefined;
        if (ok) resolve();
        else reject(conn.#handshakeError(target));
      };
    });
  }

  /** Flushes and deliveries due at the end of the tick: one microtask each for all connections. */
  static readonly #flushes = new DueList<BunConnection>((c) =>
    (c.#flags & FLUSH_SCHEDULED) !== 0 && c.#flush()
  );
  static readonly #deliveries = new DueList<BunConnection>((c) => c.#deliver());

  #socket!: BunSocket<SocketData>;
  #kind: "tcp" | "unix" | "tls";
  /** State bits (`CLOSED`, `USER_PAUSED`, …; `HEAD_IS_MERGED`: the queue's head is in the merge buffer). */
  #flags = SOCKET_PAUSED;
  /** A TLS socket's: its certificate details, and while a client connects, how its handshake ends. */
  #tls: TlsState | undefined;
  #localAddr!: Addr;
  #remoteAddr!: Addr;
  #handler: ConnectionHandler | undefined;

  /** Written but not yet taken by the kernel; the head may be the rest of a short native write. */
  readonly #writes = new WriteQueue();

  /** Chunks that arrived while they could not be delivered (Bun may deliver once after a pause). */
  #held: Uint8Array[] = NO_CHUNKS;
  /**
   * What the receiver said it will copy next (see `ConnectionHandler.onData`) while it assembles
   * large messages; -1 when it kept the last chunk.
   */
  #wanted = -1;

  #closeError: Error | undefined;
  #socketError: Error | undefined;

  constructor(kind: "tcp" | "unix" | "tls", connectPath: string | undefined) {
    this.#kind = kind;
    // Bun reports no addresses on UNIX sockets: a client's peer is the path it connected to.
    if (kind === "unix") this.#remoteAddr = { transport: "unix", path: connectPath ?? "" };
  }

  #tlsState(): TlsState {
    return this.#tls ??= {};
  }

  #clientHandshake(socket: BunSocket<SocketData>, success: boolean, authorizationError: Error | null): void {
    if ((this.#flags & ATTACHED) !== 0) return;
    if (!success || authorizationError) {
      this.#tlsState().failure = authorizationError ?? this.#socketError;
      socket.terminate();
      // terminate() runs the close handler, which tells the waiter; this covers a runtime that does not.
      this.#tls?.waiter?.(false);
      return;
    }
    socket.pause();
    this.#attach(socket, undefined);
    // A client reaches this point only with a verified server (rejectUnauthorized is always on).
    this.#tlsState().info = tlsConnectionInfo(true, socket.getPeerCertificate?.()?.subject);
    this.#tls?.waiter?.(true);
  }

  #handshakeError(target: Addr): Error {
    return tlsConnectError(this.#tls?.failure ?? this.#socketError, target);
  }

  #attach(socket: BunSocket<SocketData>, context: AcceptContext | undefined): void {
    this.#socket = socket;
    this.#flags |= ATTACHED;
    if (this.#kind === "unix") this.#localAddr = { transport: "unix", path: context?.unixPath ?? "" };
    else {
      // Bun keeps each address string it reports on the socket: a listener's own address costs none.
      this.#localAddr = context?.local ??
        localAddrOf(this.#kind, socket.localAddress ?? "", socket.localPort ?? 0);
      this.#remoteAddr = {
        transport: this.#kind,
        hostname: socket.remoteAddress ?? "",
        port: socket.remotePort ?? 0,
      };
    }
  }

  get tls(): TlsConnectionInfo | undefined {
    return this.#tls?.info;
  }

  get localAddr(): Addr {
    return this.#localAddr;
  }

  get remoteAddr(): Addr {
    return this.#remoteAddr;
  }

  get bufferedAmount(): number {
    return this.#writes.bytes;
  }

  get closed(): boolean {
    return (this.#flags & CLOSED) !== 0;
  }

  get discardedBytes(): number {
    return this.#writes.discarded;
  }

  setHandler(handler: ConnectionHandler): void {
    if (this.#handler !== undefined) throw new TypeError("Cannot set the connection handler twice");
    this.#handler = handler;
    if (this.#held.length > 0 || (this.#flags & (END_PENDING | CLOSE_PENDING)) !== 0) {
      this.#scheduleDelivery();
    } else this.#syncPause();
  }

  write(data: Uint8Array): boolean {
    assertWritable((this.#flags & CLOSED) !== 0, (this.#flags & (FIN_PENDING | WRITE_DONE)) !== 0);
    const writes = this.#writes;
    writes.push(data);
    if ((this.#flags & (FLUSH_SCHEDULED | AWAITING_DRAIN)) === 0 && writes.chunks.length) {
      this.#flags |= FLUSH_SCHEDULED;
      BunConnection.#flushes.add(this);
    }
    return writes.bytes < WRITE_HIGH_WATER_MARK;
  }

  writeBatch(chunks: readonly Uint8Array[]): boolean {
    assertWritable((this.#flags & CLOSED) !== 0, (this.#flags & (FIN_PENDING | WRITE_DONE)) !== 0);
    const writes = this.#writes;
    writes.pushAll(chunks);
    if (writes.chunks.length === 0 || (this.#flags & AWAITING_DRAIN) !== 0) {
      return writes.bytes < WRITE_HIGH_WATER_MARK;
    }
    // Written now; the drain is reported by the microtask, never from inside this call.
    if (this.#writeQueue() && (this.#flags & FLUSH_SCHEDULED) === 0) {
      this.#flags |= FLUSH_SCHEDULED;
      BunConnection.#flushes.add(this);
    }
    return writes.bytes < WRITE_HIGH_WATER_MARK;
  }

  pauseReading(): void {
    this.#flags |= USER_PAUSED;
    this.#syncPause();
  }

  resumeReading(): void {
    if ((this.#flags & USER_PAUSED) === 0) return;
    this.#flags &= ~USER_PAUSED;
    if (this.#held.length > 0 || (this.#flags & (END_PENDING | CLOSE_PENDING)) !== 0) {
      this.#scheduleDelivery();
    } else this.#syncPause();
  }

  closeWrite(): void {
    if ((this.#flags & (CLOSED | FIN_PENDING | WRITE_DONE)) !== 0) return;
    this.#flags |= FIN_PENDING;
    if (this.#writes.chunks.length === 0) this.#sendFin();
  }

  close(): void {
    if ((this.#flags & CLOSED) !== 0) return;
    this.#closeNow(undefined);
  }

  setNoDelay(noDelay: boolean): void {
    if (this.#kind !== "unix" && (this.#flags & CLOSED) === 0) this.#socket.setNoDelay(noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    if (this.#kind !== "unix" && (this.#flags & CLOSED) === 0) this.#socket.setKeepAlive(keepAlive);
  }

  /** Closes at once, dropping what is queued or held; `error` (a user callback's throw) goes to onClose. */
  #closeNow(error: Error | undefined): void {
    this.#flags |= CLOSED | LOCAL_CLOSE;
    this.#closeError ??= error;
    this.#writes.clear();
    this.#held.length = 0;
    this.#flags &= ~END_PENDING;
    // end() sends FIN like Node's destroy() and Deno's close(); terminate() would send RST.
    if ((this.#flags & SOCKET_GONE) === 0) this.#socket.end();
    // Bun runs the close handler inside end(); this covers a runtime that does not.
    this.#socketClosed(undefined);
  }

  #flush(): void {
    this.#flags &= ~FLUSH_SCHEDULED;
    if ((this.#flags & (CLOSED | AWAITING_DRAIN)) !== 0) return;
    if (!this.#writeQueue()) return;
    if ((this.#flags & FIN_PENDING) !== 0) this.#sendFin();
    if (this.#handler !== undefined && (this.#flags & CLOSED) === 0) {
      try {
        this.#handler.onDrain();
      } catch (err) {
        this.#handlerFailed("onDrain", err);
      }
    }
  }

  /** Hands the queue to the kernel; returns false when it took only part (or the socket is gone). */
  #writeQueue(): boolean {
    const writes = this.#writes;
    const queue = writes.chunks;
    while (queue.length > 0) {
      // The rest of a short write goes alone, so no byte is copied twice; new writes merge into one.
      if (queue.length > 1 && (this.#flags & HEAD_IS_REMAINDER) === 0 && writes.bytes <= MERGE_MAX_BYTES) {
        const merged = concat(queue, writes.bytes);
        queue.length = 1;
        queue[0] = merged;
        this.#flags |= HEAD_IS_MERGED;
      }
      const chunk = queue[0];
      const written = this.#socket.write(chunk);
      if (written < 0) {
        // Bun returns -1 once the socket is closed; its close handler reports why.
        if ((this.#flags & CLOSED) === 0) {
          const cause = this.#socketError;
          this.#closeNow(connectionError(cause, peerName(this.#localAddr, this.#remoteAddr), "ECONNRESET"));
        }
        return false;
      }
      writes.bytes -= written;
      if (written < chunk.byteLength) {
        // Bun's write buffers nothing: the rest stays ours until the drain handler (copied out of the
        // shared merge buffer, which the next merge of any connection overwrites).
        queue[0] = (this.#flags & HEAD_IS_MERGED) !== 0 ? chunk.slice(written) : chunk.subarray(written);
        this.#flags &= ~HEAD_IS_MERGED;
        this.#flags |= HEAD_IS_REMAINDER | AWAITING_DRAIN;
        return false;
      }
      queue.shift();
      this.#flags &= ~(HEAD_IS_REMAINDER | HEAD_IS_MERGED);
    }
    return true;
  }

  #writable(): void {
    if ((this.#flags & AWAITING_DRAIN) === 0) return;
    this.#flags &= ~AWAITING_DRAIN;
    this.#flush();
  }

  #sendFin(): void {
    this.#flags &= ~FIN_PENDING;
    this.#flags |= WRITE_DONE;
    // Bun 1.4: shutdown() sends FIN and keeps reading; shutdown(true) would shut the read side.
    this.#socket.shutdown();
    if ((this.#flags & READ_DONE) !== 0) this.#finishBothDone();
  }

  /** Both directions have ended: release the socket, keeping what is still to be delivered. */
  #finishBothDone(): void {
    if ((this.#flags & SOCKET_GONE) !== 0) return;
    this.#flags |= CLOSED;
    this.#socket.end();
  }

  #receive(chunk: Uint8Array): void {
    if ((this.#flags & (CLOSED | LOCAL_CLOSE)) === (CLOSED | LOCAL_CLOSE)) return;
    // Bun allocates a fresh chunk for every data call (never reused), so it is passed on uncopied. It is
    // a plain Uint8Array (binaryType), as receivers rely on Uint8Array#slice copying (Buffer#slice does not).
    if (this.#handler === undefined || (this.#flags & USER_PAUSED) !== 0 || this.#held.length > 0) {
      this.#heldChunks().push(chunk);
      this.#syncPause();
      return;
    }
    try {
      this.#handOn(chunk);
    } catch (err) {
      this.#handlerFailed("onData", err);
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
      if (typeof wanted !== "number") {
        this.#wanted = -1;
        return;
      }
      this.#wanted = wanted;
      // Short reads (a slow sender) are given back whole: garbage too.
      givenBackBytes += total;
      if (givenBackBytes >= GC_AFTER_GIVEN_BACK_BYTES) collectGivenBack();
      return;
    }
    let gaveBack = false;
    for (let at = 0; at < total;) {
      if ((this.#flags & (CLOSED | LOCAL_CLOSE)) === (CLOSED | LOCAL_CLOSE)) return;
      if ((this.#flags & USER_PAUSED) !== 0) {
        this.#heldChunks().unshift(chunk.subarray(at));
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
    if (givenBackBytes >= GC_AFTER_GIVEN_BACK_BYTES) collectGivenBack();
    // A chunk of which nothing was given back: no large message is being assembled any more.
    if (!gaveBack) this.#wanted = -1;
  }

  #peerEnded(): void {
    if ((this.#flags & READ_DONE) !== 0) return;
    this.#flags |= READ_DONE | END_PENDING;
    if (this.#handler !== undefined && (this.#flags & USER_PAUSED) === 0 && this.#held.length === 0) {
      this.#deliverEnd();
    }
    if ((this.#flags & WRITE_DONE) !== 0) this.#finishBothDone();
  }

  #deliverEnd(): void {
    this.#flags &= ~END_PENDING;
    try {
      this.#handler!.onEnd();
    } catch (err) {
      this.#handlerFailed("onEnd", err);
    }
  }

  #socketClosed(error: Error | undefined): void {
    if ((this.#flags & SOCKET_GONE) !== 0) return;
    this.#flags |= SOCKET_GONE;
    if ((this.#flags & ATTACHED) === 0) {
      // A connecting TLS socket closed before its handshake was done: connect() rejects.
      this.#flags |= CLOSED;
      this.#tlsState().failure ??= error;
      this.#tls?.waiter?.(false);
      return;
    }
    this.#flags |= CLOSED;
    this.#writes.clear();
    this.#flags &= ~AWAITING_DRAIN;
    const cause = error ?? this.#socketError;
    if (cause !== undefined && (this.#flags & LOCAL_CLOSE) === 0) {
      this.#closeError ??= connectionError(cause, peerName(this.#localAddr, this.#remoteAddr));
    }
    // Bun skips the end handler when the peer's FIN arrives after ours: its clean close is that EOF.
    if (cause === undefined && (this.#flags & (LOCAL_CLOSE | READ_DONE)) === 0) {
      this.#flags |= READ_DONE | END_PENDING;
    }
    if (this.#closeError !== undefined) {
      this.#held.length = 0;
      this.#flags &= ~END_PENDING;
    }
    this.#flags |= CLOSE_PENDING;
    if (this.#handler !== undefined) this.#scheduleDelivery();
  }

  /** `#held` to add to: a connection that never held a chunk shares {@linkcode NO_CHUNKS}. */
  #heldChunks(): Uint8Array[] {
    return this.#held !== NO_CHUNKS ? this.#held : (this.#held = []);
  }

  #scheduleDelivery(): void {
    if ((this.#flags & DELIVERY_SCHEDULED) !== 0) return;
    this.#flags |= DELIVERY_SCHEDULED;
    BunConnection.#deliveries.add(this);
  }

  /** Delivers what waited for a handler or for resumeReading, then onClose; runs as a microtask. */
  #deliver(): void {
    this.#flags &= ~DELIVERY_SCHEDULED;
    const handler = this.#handler;
    if (handler === undefined) return;
    while (
      this.#held.length > 0 && (this.#flags & USER_PAUSED) === 0 &&
      (this.#flags & (CLOSED | LOCAL_CLOSE)) !== (CLOSED | LOCAL_CLOSE)
    ) {
      try {
        this.#handOn(this.#held.shift()!);
      } catch (err) {
        this.#handlerFailed("onData", err);
      }
    }
    if (this.#held.length === 0 && (this.#flags & USER_PAUSED) === 0 && (this.#flags & END_PENDING) !== 0) {
      this.#deliverEnd();
    }
    const waiting = this.#held.length > 0 || (this.#flags & END_PENDING) !== 0;
    if ((this.#flags & CLOSE_PENDING) !== 0 && (this.#flags & CLOSE_DELIVERED) === 0 && !waiting) {
      this.#flags |= CLOSE_DELIVERED;
      try {
        handler.onClose(this.#closeError);
      } catch (err) {
        // Nothing is left to report to: a throwing onClose surfaces, as the contract says.
        queueMicrotask(() => {
          throw err;
        });
      }
      return;
    }
    this.#syncPause();
  }

  /** A handler callback threw: close this connection only, reporting the error to onClose. */
  #handlerFailed(callback: string, thrown: unknown): void {
    const error = handlerError(callback, peerName(this.#localAddr, this.#remoteAddr), thrown);
    if ((this.#flags & (CLOSED | LOCAL_CLOSE)) === (CLOSED | LOCAL_CLOSE)) {
      // Closed by the callback itself before it threw: onClose, still to come, reports the throw.
      if ((this.#flags & CLOSE_DELIVERED) === 0) this.#closeError ??= error;
      return;
    }
    if ((this.#flags & SOCKET_GONE) !== 0) {
      this.#closeError ??= error;
      this.#held.length = 0;
      this.#flags &= ~END_PENDING;
      return;
    }
    this.#closeNow(error);
  }

  /** Reads from the socket only while a handler takes the data. */
  #syncPause(): void {
    if ((this.#flags & SOCKET_GONE) !== 0) return;
    const read = this.#handler !== undefined && (this.#flags & USER_PAUSED) === 0 && this.#held.length === 0;
    if (read && (this.#flags & SOCKET_PAUSED) !== 0) {
      this.#flags &= ~SOCKET_PAUSED;
      this.#socket.resume();
    } else if (!read && (this.#flags & SOCKET_PAUSED) === 0) {
      this.#flags |= SOCKET_PAUSED;
      this.#socket.pause();
    }
  }
}
