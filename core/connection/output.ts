/**
 * Output: how a batch of framed messages becomes the buffers to write ({@linkcode framedPieces}),
 * and {@linkcode FlushScheduler}, which writes every connection's batch once per tick.
 *
 * @module
 */
import { FRAME_HEADER_BYTES, framedRunBytes, framedRunEnd, writeFrameHeader } from "../wire/codec.ts";
import { encodeFramesUnchecked, framedLengthUnchecked, writeFramesUnchecked } from "../wire/encode.ts";

/** What an output queue holds: payloads to frame, raw bytes, or frames as received (a `FrameBatch`'s). */
export const OutputKind = { framed: 0, raw: 1, frames: 2 } as const;
/** One of {@linkcode OutputKind}'s values. */
export type OutputKind = typeof OutputKind[keyof typeof OutputKind];

/** Payloads from this size on are written as they are, without a copy. */
const LARGE_PAYLOAD_BYTES = 64 * 1024;
/** Received messages sent on in runs at least this long are written from the received chunk. */
const MIN_FORWARDED_RUN = 4;

/**
 * A batch of framed messages as the buffers to write. Small payloads are encoded together into one
 * buffer; large ones go as they are, after a buffer that holds their header; and runs of messages
 * that still lie in a received chunk with their headers (echo, forwarding) go back as they came.
 * Only small payloads are ever copied.
 *
 * @example
 * ```ts
 * import { framedPieces } from "./output.ts";
 * const pieces = framedPieces([new Uint8Array([1]), new Uint8Array([2, 3])]);
 * console.log(pieces.length); // 1: both small frames encoded into one buffer
 * ```
 */
export function framedPieces(queue: Uint8Array[]): Uint8Array[] {
  const count = queue.length;
  const pieces: Uint8Array[] = [];
  let encodeFrom = 0;
  for (let i = 0; i < count;) {
    const end = framedRunEnd(queue, i);
    const payload = queue[i]!;
    if (end - i >= MIN_FORWARDED_RUN || (end > i && payload.length >= LARGE_PAYLOAD_BYTES)) {
      if (encodeFrom < i) pieces.push(encodeFramesUnchecked(queue.slice(encodeFrom, i)));
      pieces.push(framedRunBytes(queue, i, end));
      encodeFrom = i = end;
    } else if (payload.length >= LARGE_PAYLOAD_BYTES) {
      const small = queue.slice(encodeFrom, i);
      const head = new Uint8Array(framedLengthUnchecked(small) + FRAME_HEADER_BYTES);
      writeFrameHeader(head, writeFramesUnchecked(head, 0, small), payload.length);
      pieces.push(head, payload);
      encodeFrom = i = i + 1;
    } else i++;
  }
  if (encodeFrom < count) {
    pieces.push(encodeFramesUnchecked(encodeFrom === 0 ? queue : queue.slice(encodeFrom)));
  }
  return pieces;
}

/** A connection with output to write at the end of the tick. */
export interface Flushable {
  /** True while output is queued and not yet handed to the transport. */
  dirty: boolean;
  /** Hands the queued output to the transport. */
  flushNow(): void;
}

/**
 * Collects the connections that queued output during a tick, and writes each one's batch in one
 * microtask. The connection whose incoming chunk is being handled is flushed by its reader instead,
 * at the end of that chunk, as one write with no microtask.
 *
 * @example
 * ```ts
 * import { FlushScheduler } from "./output.ts";
 * const flusher = new FlushScheduler();
 * const conn = { dirty: false, flushNow() { this.dirty = false; console.log("written"); } };
 * flusher.markDirty(conn); // "written" once the current task ends
 * ```
 */
export class FlushScheduler {
  /** The connection whose incoming chunk is being handled, if it flushes itself at the end. */
  reading: Flushable | undefined = undefined;
  #dirty: Flushable[] = [];
  #scheduled = false;

  /** Marks `conn` as having output; it is written at the end of the tick. */
  markDirty(conn: Flushable): void {
    if (conn.dirty) return;
    conn.dirty = true;
    if (conn === this.reading) return;
    this.#dirty.push(conn);
    if (!this.#scheduled) {
      this.#scheduled = true;
      queueMicrotask(this.#flushAll);
    }
  }

  #flushAll = (): void => {
    this.#scheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (let i = 0; i < dirty.length; i++) {
      const conn = dirty[i]!;
      if (conn.dirty) conn.flushNow();
    }
  };
}
