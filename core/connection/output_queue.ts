/**
 * {@linkcode OutputQueue}: one connection's output on its way to the transport: what was queued this
 * tick (of one {@linkcode OutputKind} at a time), and what was handed to the transport and has not
 * drained yet. Split from `Session`, which counts the bytes against the memory budget.
 *
 * @module
 */
import type { Connection } from "../../transports/types.ts";
import { toBytes } from "../wire/bytes.ts";
import { FRAME_HEADER_BYTES } from "../wire/codec.ts";
import { payloadViews } from "../wire/frame_batch.ts";
import { InFlightMessages } from "./in_flight.ts";
import { framedPieces, OutputKind } from "./output.ts";

/**
 * A connection's queued and in-flight output. The `push` methods return the bytes they added, as
 * counted on the wire (a frame header per framed payload).
 *
 * @example
 * ```ts
 * import { OutputQueue } from "./output_queue.ts";
 * import { OutputKind } from "./output.ts";
 * declare const conn: import("../../transports/types.ts").Connection;
 * const output = new OutputQueue(conn, false, (err) => console.error(err));
 * output.push(new Uint8Array(3), OutputKind.framed); // 11
 * output.write(); // hands one buffer to conn.writeBatch
 * ```
 */
export class OutputQueue {
  #queue: Uint8Array[] = [];
  #kind: OutputKind = OutputKind.framed;
  #queuedBytes = 0;
  #inflightBytes = 0;
  /** Once the connection is open, a reconnecting client's output is kept until it drains. */
  #tracking = false;
  readonly #conn: Connection;
  /** A reconnecting client's output since the last drain, for what a lost connection left unwritten. */
  readonly #inFlight: InFlightMessages | undefined;
  readonly #onWriteError: (error: Error) => void;

  /**
   * The output of `conn`; `keepInFlight` for a client that resends what a lost connection left
   * unwritten. A write the transport refuses is reported to `onWriteError`.
   */
  constructor(conn: Connection, keepInFlight: boolean, onWriteError: (error: Error) => void) {
    this.#conn = conn;
    this.#inFlight = keepInFlight ? new InFlightMessages() : undefined;
    this.#onWriteError = onWriteError;
  }

  /** Bytes queued and not yet handed to the transport. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** Bytes handed to the transport and not yet drained. */
  get inflightBytes(): number {
    return this.#inflightBytes;
  }

  /** From now on (the connection is open), written output is kept until it drains. */
  track(): void {
    this.#tracking = true;
  }

  /** Queues one payload of `kind`; returns its bytes. */
  push(payload: Uint8Array, kind: OutputKind): number {
    this.#switchTo(kind);
    this.#queue.push(payload);
    const bytes = kind === OutputKind.framed ? payload.length + FRAME_HEADER_BYTES : payload.length;
    this.#queuedBytes += bytes;
    return bytes;
  }

  /** Queues runs of whole frames as received (a `FrameBatch`'s), `byteLength` in all; returns it. */
  pushRuns(runs: readonly Uint8Array[], byteLength: number): number {
    this.#switchTo(OutputKind.frames);
    const queue = this.#queue;
    for (let i = 0; i < runs.length; i++) queue.push(runs[i]!);
    this.#queuedBytes += byteLength;
    return byteLength;
  }

  /** {@linkcode OutputQueue.push} for several payloads, framed or raw, in order; returns their bytes. */
  pushMany(messages: readonly (Uint8Array | string)[], framed: boolean): number {
    this.#switchTo(framed ? OutputKind.framed : OutputKind.raw);
    const queue = this.#queue;
    const count = messages.length;
    let bytes = framed ? count * FRAME_HEADER_BYTES : 0;
    let i = 0;
    for (; i < count; i++) {
      const message = messages[i];
      if (typeof message === "string") break;
      bytes += message.length;
    }
    if (i === count && queue.length === 0) this.#queue = messages.slice() as Uint8Array[];
    else {
      for (let k = 0; k < i; k++) queue.push(messages[k] as Uint8Array);
      for (; i < count; i++) {
        const payload = toBytes(messages[i]!);
        queue.push(payload);
        bytes += payload.length;
      }
    }
    this.#queuedBytes += bytes;
    return bytes;
  }

  /** Writes what is queued first when it is of another kind than `kind`. */
  #switchTo(kind: OutputKind): void {
    if (this.#queue.length && this.#kind !== kind) this.write();
    this.#kind = kind;
  }

  /** Hands what is queued to the transport, as this tick's one batch for the connection. */
  write(): void {
    const queue = this.#queue;
    if (!queue.length) return;
    const kind = this.#kind;
    const bytes = this.#queuedBytes;
    this.#queue = [];
    this.#inflightBytes += bytes;
    this.#queuedBytes = 0;
    if (this.#tracking) this.#inFlight?.add(queue, kind, bytes);
    try {
      // This is the connection's one batch for the tick, so the transport starts writing it at once.
      this.#conn.writeBatch(kind === OutputKind.framed ? framedPieces(queue) : queue);
    } catch (err) {
      this.#onWriteError(err as Error);
    }
  }

  /** Everything handed to the transport reached the kernel; returns those bytes. */
  drained(): number {
    const bytes = this.#inflightBytes;
    this.#inflightBytes = 0;
    this.#inFlight?.clear();
    return bytes;
  }

  /**
   * The connection closed with `discardedBytes` (the transport's count) never handed to the kernel.
   * Empties the queue; returns the bytes it held with those in flight, and, once the connection was
   * open, the payloads never written whole: what never fully reached the kernel first, then what
   * was never handed to the transport.
   */
  discard(discardedBytes: number): { bytes: number; unsent: Uint8Array[] } {
    const bytes = this.#queuedBytes + this.#inflightBytes;
    const unwritten = this.#inFlight?.unwritten(discardedBytes) ?? [];
    const queued = this.#kind === OutputKind.frames ? payloadViews(this.#queue) : this.#queue;
    const unsent = !this.#tracking ? [] : unwritten.length ? unwritten.concat(queued) : queued;
    this.#queue = [];
    this.#queuedBytes = 0;
    this.#inflightBytes = 0;
    return { bytes, unsent };
  }
}
