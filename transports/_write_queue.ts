/**
 * The write side every transport shares: the queue that `write` appends to, the check that a
 * connection may still be written to, and the high-water mark that `write` reports against. How the
 * queue reaches the socket stays with each transport, since each runtime writes differently.
 *
 * @module
 */
import { ConnectionClosedError } from "../core/errors.ts";

/** `write` returns false once this many bytes wait for the kernel: the caller should wait for `onDrain`. */
export const WRITE_HIGH_WATER_MARK = 1024 * 1024;

/**
 * Throws the `ConnectionClosedError` for a write that comes too late: after `close` (or the peer's
 * reset), or after `closeWrite`.
 *
 * @example
 * ```ts
 * assertWritable(false, true); // throws: Cannot write: connection is closed for writing
 * ```
 */
export function assertWritable(closed: boolean, writeClosed: boolean): void {
  if (closed) throw new ConnectionClosedError("Cannot write: connection is closed");
  if (writeClosed) throw new ConnectionClosedError("Cannot write: connection is closed for writing");
}

/**
 * Copies `chunks[from..end)` one after the other into `target`, which must be large enough.
 *
 * @example
 * ```ts
 * const target = new Uint8Array(3);
 * copyChunks(target, [new Uint8Array([1]), new Uint8Array([2, 3])]); // target: 1, 2, 3
 * ```
 */
export function copyChunks(
  target: Uint8Array,
  chunks: readonly Uint8Array[],
  from = 0,
  end: number = chunks.length,
): void {
  let at = 0;
  for (let i = from; i < end; i++) {
    target.set(chunks[i], at);
    at += chunks[i].byteLength;
  }
}

/**
 * An empty array that every idle connection shares instead of one of its own: never written (a queue
 * replaces it with a fresh array at its first push).
 */
export const NO_CHUNKS: never[] = [];

/**
 * The bytes accepted by `write` and not yet handed to the runtime, in order. Fields, not accessors:
 * the transports' write paths read them on every call.
 *
 * @example
 * ```ts
 * const queue = new WriteQueue();
 * queue.push(new Uint8Array(10));
 * const batch = queue.take(); // one chunk; queue.bytes is 0 again
 * batch.length = 0; // written: let go of the chunks before the next take reuses the array
 * ```
 */
export class WriteQueue {
  /**
   * The chunks, oldest first. A transport may replace its head (the rest of a short write). Until the
   * first write it is one shared empty array, never written, so an idle connection keeps no array.
   */
  chunks: Uint8Array[] = NO_CHUNKS;
  /** Their total length. */
  bytes = 0;
  #spare: Uint8Array[] = NO_CHUNKS;

  /** Appends `data`; an empty chunk has nothing to write and is skipped. */
  push(data: Uint8Array): void {
    if (data.byteLength === 0) return;
    const chunks = this.chunks;
    (chunks !== NO_CHUNKS ? chunks : (this.chunks = [])).push(data);
    this.bytes += data.byteLength;
  }

  /** Appends each of `chunks` in order. */
  pushAll(chunks: readonly Uint8Array[]): void {
    for (let i = 0; i < chunks.length; i++) this.push(chunks[i]!);
  }

  /**
   * Empties the queue and returns what it held. The array comes back as the queue of the take
   * after this one: empty it (`length = 0`) once written, before then.
   */
  take(): Uint8Array[] {
    const taken = this.chunks;
    this.chunks = this.#spare;
    this.#spare = taken;
    this.bytes = 0;
    return taken;
  }

  /** What {@linkcode clear} dropped, in bytes. */
  discarded = 0;

  /** Drops everything queued (the connection closed), counting it in {@linkcode discarded}. */
  clear(): void {
    this.discarded += this.bytes;
    this.chunks.length = 0;
    this.#spare.length = 0;
    this.bytes = 0;
  }
}
