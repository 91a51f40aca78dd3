/**
 * The deno transport's connections: one `Deno.Conn` (TCP, UNIX, or TLS from `Deno.connectTls`) behind
 * the {@linkcode Connection} contract. Listening is in `_deno_listener.ts`, TLS clients in
 * `_deno_tls.ts`, and the transport object in `deno.ts`.
 *
 * Reads land in a per-connection slab: each large read fills the slab's free tail and the filled
 * part is handed on as a view, so no chunk is ever overwritten and large reads allocate nothing;
 * small reads are copied out at their exact size, so they never pin a slab. Writes made in one
 * tick are gathered by a single microtask into one native write.
 *
 * @module
 */
import { peerName } from "./_addr.ts";
import { handlerError } from "./_callbacks.ts";
import { type DenoAddr, type DenoConn, denoErrorCode } from "./_deno_types.ts";
import { connectionError } from "./_errors.ts";
import { DueList } from "./_due_list.ts";
import { assertWritable, copyChunks, WRITE_HIGH_WATER_MARK, WriteQueue } from "./_write_queue.ts";
import type { Addr, Connection, ConnectionHandler, TlsConnectionInfo } from "./types.ts";

/** Queued chunks are copied together into native writes of at most this size; bigger ones go as is. */
const WRITE_COALESCE_BYTES = 256 * 1024;
/**
 * Read slab size, as Node's 64 KiB reads. Each read that fills what it was given doubles the next
 * slab, up to {@linkcode READ_SLAB_MAX_BYTES}; a short read sets it back. The decoder copies a large
 * frame out of a large slab and gives back a chunk it read to its end, so that slab is read into
 * again: with 256 KiB slabs the 4 GiB flood grew by 271 MiB (bound 320 MiB, 278 MiB with 64 KiB).
 */
const READ_SLAB_BYTES = 64 * 1024;
/**
 * The largest read slab. 256 KiB reads took a quarter of the reads in a deep pipeline (64 blocks of
 * 1,024 frames), but cost more CPU per round trip at both ends (server 112-120 ns against 102-106 ns,
 * 6 interleaved runs on a loaded 2-core machine), so slabs do not grow for now.
 */
const READ_SLAB_MAX_BYTES = 64 * 1024;
/**
 * A connection starts with a slab this small, so an idle connection's pending read costs 4 KiB
 * (not 64 KiB: 10k idle connections took 600 MB); the first read that fills it switches to full slabs.
 */
const READ_SLAB_FIRST_BYTES = 4 * 1024;
/**
 * Reads smaller than this are copied out of the slab (which is then reused) instead of handed on as
 * views: a small view kept by the receiver would pin the whole slab (3,000 connections each holding
 * one 16-byte message cost 205 MiB before this).
 */
const READ_COPY_BELOW_BYTES = 8 * 1024;
/**
 * While the receiver gives chunks back and will copy at least this much more (the rest of a large
 * message), reads go into one reused buffer of this size: fewer, larger reads, no slab per read.
 */
const BULK_READ_BYTES = 256 * 1024;
const BULK_READ_MIN_BYTES = 64 * 1024;
/** A fresh slab is taken when less than this (or a quarter of the slab) is left in the current one. */
const READ_MIN_FREE_BYTES = 16 * 1024;
/**
 * After each this many bytes read, the read loop sleeps on a zero timer if another connection waits in
 * a read and it has not slept for {@linkcode READ_YIELD_MS}. Deno's read resolves at once while the
 * kernel holds data, and the event loop polls other sockets' readiness only when it sleeps: a busy loop,
 * even with `setImmediate` or `MessageChannel` turns between reads, kept every other connection's read
 * waiting until it drained (another client's GET waited 1.5–3.7 s during 64 MiB uploads on a loaded
 * machine; issue 25). A timer makes the loop sleep, for about a millisecond (2–3 ms under load).
 */
const READ_YIELD_BYTES = 1024 * 1024;
/** At most one sleep per this many ms of reading, so that it costs a bulk transfer about a tenth at most. */
const READ_YIELD_MS = 10;
/** Reads pending on all Deno connections: a busy one yields (see above) only when another waits. */
let pendingReads = 0;
/** Resolves after a zero timer: the event loop polls every socket's readiness on the way. */
function sleepOnce(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
/**
 * An address as asockio names it, from what Deno reports (`tls` for a TLS socket's TCP address).
 */
export function toAddr(addr: DenoAddr, tls = false): Addr {
  if (addr.transport === "unix") return { transport: "unix", path: addr.path ?? "" };
  return { transport: tls ? "tls" : "tcp", hostname: addr.hostname, port: addr.port };
}

/** `DenoConnection`'s states, a bit each in one field. */
const Flag = {
  tcp: 1,
  closed: 2,
  paused: 4,
  /** A flush is scheduled or running. */
  flushing: 8,
  /** The flush loop is running (it has started its first native write). */
  flushRunning: 16,
  finRequested: 32,
  finSent: 64,
  finDone: 128,
  peerEnded: 256,
} as const;

/** One Deno stream socket behind the {@linkcode Connection} contract, connected or accepted. */
export class DenoConnection implements Connection {
  readonly localAddr: Addr;
  readonly remoteAddr: Addr;
  /** Set on TLS connections only (`declare`: a TCP connection has no field for it). */
  declare readonly tls?: TlsConnectionInfo;
  readonly #conn: DenoConn;
  #handler: ConnectionHandler | null = null;
  /** A bit per {@linkcode Flag}: one field, not nine booleans (8 B each on an idle connection). */
  #flags = 0;
  #closeError: Error | undefined = undefined;

  // Reading.
  #wake: (() => void) | null = null;

  // Writing: `write` appends to #writes; the flush takes them out and drains them.
  readonly #writes = new WriteQueue();
  /** Bytes the flush took out of #writes and has not yet written. */
  #inFlight = 0;
  #scratch: Uint8Array | null = null;
  #gathered = 0;

  /** Flushes due at the end of the tick: one microtask for all connections, no closure per connection. */
  static readonly #flushes = new DueList<DenoConnection>((c) => {
    if ((c.#flags & (Flag.flushRunning | Flag.flushing)) === Flag.flushing) void c.#flush();
  });

  /** `tls` is set for a `Deno.TlsConn` whose handshake is done. */
  constructor(conn: DenoConn, tls?: TlsConnectionInfo) {
    this.#conn = conn;
    this.localAddr = toAddr(conn.localAddr, tls !== undefined);
    this.remoteAddr = toAddr(conn.remoteAddr, tls !== undefined);
    if (tls !== undefined) this.tls = tls;
    if (this.localAddr.transport !== "unix") this.#flags = Flag.tcp;
  }

  /** Its read slabs are read into again when a chunk is given back. */
  get reusesReadMemory(): boolean {
    return true;
  }

  get bufferedAmount(): number {
    return this.#writes.bytes + this.#inFlight;
  }

  get closed(): boolean {
    return (this.#flags & Flag.closed) !== 0;
  }

  get discardedBytes(): number {
    return this.#writes.discarded;
  }

  setHandler(handler: ConnectionHandler): void {
    if (this.#handler !== null) throw new TypeError("Cannot set handler: a handler is already set");
    this.#handler = handler;
    if ((this.#flags & Flag.closed) !== 0) {
      queueMicrotask(() => this.#handler!.onClose(this.#closeError));
      return;
    }
    void this.#readLoop(); // it never rejects: no `catch` reaction (and its promise) is kept per connection
  }

  write(data: Uint8Array): boolean {
    assertWritable((this.#flags & Flag.closed) !== 0, (this.#flags & Flag.finRequested) !== 0);
    const writes = this.#writes;
    writes.push(data);
    if ((this.#flags & Flag.flushing) === 0 && writes.chunks.length) {
      this.#flags |= Flag.flushing;
      DenoConnection.#flushes.add(this);
    }
    return writes.bytes + this.#inFlight < WRITE_HIGH_WATER_MARK;
  }

  writeBatch(chunks: readonly Uint8Array[]): boolean {
    assertWritable((this.#flags & Flag.closed) !== 0, (this.#flags & Flag.finRequested) !== 0);
    const writes = this.#writes;
    writes.pushAll(chunks);
    // A microtask scheduled by an earlier write then finds the loop running (or done) and does nothing.
    if (writes.chunks.length && (this.#flags & Flag.flushRunning) === 0) {
      this.#flags |= Flag.flushing;
      void this.#flush();
    }
    return writes.bytes + this.#inFlight < WRITE_HIGH_WATER_MARK;
  }

  pauseReading(): void {
    this.#flags |= Flag.paused;
  }

  resumeReading(): void {
    if ((this.#flags & Flag.paused) === 0) return;
    this.#flags &= ~Flag.paused;
    this.#wakeReader();
  }

  closeWrite(): void {
    if ((this.#flags & (Flag.closed | Flag.finRequested)) !== 0) return;
    this.#flags |= Flag.finRequested;
    if ((this.#flags & Flag.flushing) === 0) void this.#sendFin();
  }

  close(): void {
    this.#shutdown(undefined);
  }

  setNoDelay(noDelay: boolean): void {
    if ((this.#flags & (Flag.tcp | Flag.closed)) === Flag.tcp) this.#conn.setNoDelay?.(noDelay);
  }

  setKeepAlive(keepAlive: boolean): void {
    if ((this.#flags & (Flag.tcp | Flag.closed)) === Flag.tcp) this.#conn.setKeepAlive?.(keepAlive);
  }

  #shutdown(error: Error | undefined): void {
    if ((this.#flags & Flag.closed) !== 0) return;
    this.#flags |= Flag.closed;
    this.#closeError = error;
    try {
      this.#conn.close();
    } catch {
      // Already closed underneath; nothing left to release.
    }
    // What the flush took out and had not written yet was discarded too.
    this.#writes.discarded += this.#inFlight;
    this.#writes.clear();
    this.#inFlight = 0;
    this.#scratch = null;
    this.#wakeReader();
    if (this.#handler !== null) queueMicrotask(() => this.#handler!.onClose(this.#closeError));
  }

  /** A handler callback threw: this connection closes, and onClose reports what was thrown. */
  #handlerFailed(callback: string, thrown: unknown): void {
    const error = handlerError(callback, peerName(this.localAddr, this.remoteAddr), thrown);
    // Closed by the callback itself before it threw: onClose, still to come, reports the throw.
    if ((this.#flags & Flag.closed) !== 0) this.#closeError ??= error;
    else this.#shutdown(error);
  }

  #fail(err: unknown): void {
    // Deno rejects pending reads and writes with Interrupted or BadResource after our own close.
    if ((this.#flags & Flag.closed) !== 0) return;
    this.#shutdown(connectionError(err, peerName(this.localAddr, this.remoteAddr), denoErrorCode(err)));
  }

  #wakeReader(): void {
    const wake = this.#wake;
    if (wake === null) return;
    this.#wake = null;
    wake();
  }

  #waitForResume(): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
    });
  }

  async #readLoop(): Promise<void> {
    // Never rejects: whatever escapes the loop closes the connection here.
    try {
      const conn = this.#conn;
      let slab = new Uint8Array(READ_SLAB_FIRST_BYTES);
      let offset = 0;
      /** The size of the next full slab: doubled by each read that fills its target, reset by a short one. */
      let slabBytes = READ_SLAB_BYTES;
      /** The reused read buffer while the receiver gives chunks back; `null` otherwise. */
      let bulk: Uint8Array | null = null;
      /** How many bytes the receiver will copy next: bulk reads never go past them. */
      let bulkWanted = 0;
      /** Bytes read since the loop last looked at the clock, and when it last slept (see READ_YIELD_BYTES). */
      let unyielded = 0;
      let sleptAt = 0; // not `performance.now()`: a double kept per idle connection (16 B), for no use
      for (;;) {
        // Not reading while paused leaves the bytes in the kernel, whose window then stops the peer.
        while ((this.#flags & (Flag.paused | Flag.closed)) === Flag.paused) await this.#waitForResume();
        if ((this.#flags & Flag.closed) !== 0) return;
        const free = slab.length - offset;
        if (offset > 0 && (free < READ_MIN_FREE_BYTES || free < slab.length >> 2)) {
          slab = new Uint8Array(slabBytes);
          offset = 0;
        }
        let n: number | null;
        let target: Uint8Array;
        try {
          target = bulk === null
            ? (offset === 0 ? slab : slab.subarray(offset))
            : (bulkWanted < bulk.length ? bulk.subarray(0, bulkWanted) : bulk);
          pendingReads++;
          n = await conn.read(target);
        } catch (err) {
          this.#fail(err);
          return;
        } finally {
          pendingReads--;
        }
        if ((this.#flags & Flag.closed) !== 0) return;
        if (n === null) {
          this.#onPeerEnd();
          return;
        }
        let chunk: Uint8Array;
        const viewed = bulk !== null || n >= READ_COPY_BELOW_BYTES;
        if (bulk !== null) chunk = bulk.subarray(0, n);
        else if (!viewed) {
          chunk = slab.slice(offset, offset + n);
          // The small first slab was filled: this peer sends in bulk, so read into full slabs now.
          if (n === slab.length) slab = new Uint8Array(READ_SLAB_BYTES);
          else if (slab.length > READ_SLAB_BYTES) {
            // A burst ended: an idle connection's pending read keeps no large slab.
            slab = new Uint8Array(READ_SLAB_BYTES);
            offset = 0;
          }
          slabBytes = READ_SLAB_BYTES;
        } else {
          chunk = slab.subarray(offset, offset + n);
          offset += n;
          // The kernel had at least this much: more is probably waiting, so read more at a time.
          if (n === target.length && slabBytes < READ_SLAB_MAX_BYTES) slabBytes *= 2;
        }
        // pauseReading() may have come while the read was pending: hold the chunk until resumed.
        while ((this.#flags & (Flag.paused | Flag.closed)) === Flag.paused) await this.#waitForResume();
        if ((this.#flags & Flag.closed) !== 0) return;
        let givenBack: number | void;
        try {
          givenBack = this.#handler!.onData(chunk);
        } catch (err) {
          this.#handlerFailed("onData", err);
          return;
        }
        if (typeof givenBack !== "number") {
          // Kept: a bulk buffer is the receiver's now, and reading goes back to slabs.
          bulk = null;
        } else {
          // Copied into a large message: this memory may be read into again.
          if (bulk === null && viewed) offset -= n;
          if (givenBack >= BULK_READ_MIN_BYTES) {
            bulk ??= new Uint8Array(BULK_READ_BYTES);
            bulkWanted = givenBack;
          } else bulk = null;
        }
        // After the chunk is delivered, so what it makes the receiver do is not held up by the timer.
        if ((unyielded += n) >= READ_YIELD_BYTES) {
          unyielded = 0;
          if (pendingReads > 0 && performance.now() - sleptAt >= READ_YIELD_MS) {
            await sleepOnce();
            sleptAt = performance.now();
          }
        }
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  #onPeerEnd(): void {
    this.#flags |= Flag.peerEnded;
    try {
      this.#handler!.onEnd();
    } catch (err) {
      this.#handlerFailed("onEnd", err);
      return;
    }
    if ((this.#flags & Flag.finDone) !== 0) this.#shutdown(undefined);
  }

  /** Writes what is queued, then reports the drain; never rejects (a failure closes the connection). */
  async #flush(): Promise<void> {
    try {
      const conn = this.#conn;
      this.#flags |= Flag.flushRunning;
      try {
        const writes = this.#writes;
        while (writes.chunks.length > 0) {
          this.#inFlight += writes.bytes;
          const batch = writes.take();
          let i = 0;
          while (i < batch.length) {
            let data = batch[i++];
            if (i < batch.length && data.length + batch[i].length <= WRITE_COALESCE_BYTES) {
              i = this.#gather(batch, i - 1);
              data = this.#scratch!.subarray(0, this.#gathered);
            }
            let written = 0;
            while (written < data.length) {
              // Deno's write may take only part of the buffer.
              const n = await conn.write(written === 0 ? data : data.subarray(written));
              if ((this.#flags & Flag.closed) !== 0) return;
              written += n;
              this.#inFlight -= n;
            }
          }
          batch.length = 0;
        }
      } catch (err) {
        this.#fail(err);
        return;
      } finally {
        this.#flags &= ~(Flag.flushing | Flag.flushRunning);
      }
      if ((this.#flags & Flag.closed) !== 0) return;
      try {
        this.#handler?.onDrain();
      } catch (err) {
        this.#handlerFailed("onDrain", err);
        return;
      }
      if ((this.#flags & (Flag.finRequested | Flag.flushing | Flag.closed)) === Flag.finRequested) {
        await this.#sendFin();
      }
    } catch (err) {
      this.#fail(err);
    }
  }

  /** Copies `batch[from..]` into the scratch buffer up to its size; returns the next index. */
  #gather(batch: Uint8Array[], from: number): number {
    let total = 0;
    let end = from;
    while (end < batch.length && total + batch[end].length <= WRITE_COALESCE_BYTES) {
      total += batch[end++].length;
    }
    let scratch = this.#scratch;
    if (scratch === null || scratch.length < total) {
      // Grown by doubling and kept: reusable because each native write completes before the next.
      let size = scratch === null ? 16 * 1024 : scratch.length * 2;
      while (size < total) size *= 2;
      scratch = this.#scratch = new Uint8Array(Math.min(size, WRITE_COALESCE_BYTES));
    }
    copyChunks(scratch, batch, from, end);
    this.#gathered = total;
    return end;
  }

  async #sendFin(): Promise<void> {
    if ((this.#flags & Flag.finSent) !== 0) return;
    this.#flags |= Flag.finSent;
    try {
      await this.#conn.closeWrite();
    } catch (err) {
      this.#fail(err);
      return;
    }
    if ((this.#flags & Flag.closed) !== 0) return;
    this.#flags |= Flag.finDone;
    if ((this.#flags & Flag.peerEnded) !== 0) this.#shutdown(undefined);
  }
}

/**
 * Closes a Deno socket or listener that may be closed already.
 */
export function closeQuietly(conn: { close(): void } | undefined): void {
  try {
    conn?.close();
  } catch {
    // Already closed.
  }
}
