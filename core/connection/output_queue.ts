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
import { ConnectionClosedError } from "../errors.ts";
import { WebSocketConnection } from "./websocket_connection.ts";

/** The queue of every connection with nothing queued: shared and never written (see `#writable`). */
const NOTHING_QUEUED: never[] = [];

/** Output queued while a message stream is written, or a stream waiting for its turn. */
type Held = { kind: OutputKind; payloads: Uint8Array[]; bytes: number } | StreamTurn;

/** While a message stream is written: what was queued after it, in order, and a sender waiting for the drain. */
interface Streaming {
  held: Held[];
  /** The bytes of what is held. */
  bytes: number;
  drainWaiter: { resolve(): void; reject(error: Error): void } | undefined;
}

/** A message stream waiting for the one before it: `start` when it may write, `abort` if it never will. */
export interface StreamTurn {
  start(): void;
  abort(error: Error): void;
}

/**
 * A connection's queued and in-flight output. The `push` methods return the bytes they added, as
 * counted on the wire (a frame header per framed payload).
 *
 * @example
 * ```ts
 * import { OutputQueue } from "./output_queue.ts";
 * import { OutputKind } from "./output.ts";
 * declare const conn: import("../../transports/types.ts").Connection;
 * const output = new OutputQueue(conn, false, { close: (err) => console.error(err) });
 * output.push(new Uint8Array(3), OutputKind.framed); // 11
 * output.write(); // hands one buffer to conn.writeBatch
 * ```
 */
export class OutputQueue {
  #queue: Uint8Array[] = NOTHING_QUEUED;
  #kind: OutputKind = OutputKind.framed;
  #queuedBytes = 0;
  #inflightBytes = 0;
  /** The connection written to. */
  readonly conn: Connection;
  /** A reconnecting client's output since the last drain, for what a lost connection left unwritten. */
  readonly #inFlight: InFlightMessages | undefined;
  /** Closed with the error when the transport refuses a write (the session: no closure per connection). */
  readonly #owner: { close(error: Error): void };
  /** While a message stream is written: what waits behind it, replayed when it ends (one field, not three). */
  #streaming: Streaming | undefined = undefined;

  /**
   * The output of `conn`; `keepInFlight` for a client that resends what a lost connection left
   * unwritten. A write the transport refuses closes `owner` with its error.
   */
  constructor(conn: Connection, keepInFlight: boolean, owner: { close(error: Error): void }) {
    this.conn = conn;
    this.#inFlight = keepInFlight ? new InFlightMessages() : undefined;
    this.#owner = owner;
  }

  /** The queue to append to: an idle connection shares {@linkcode NOTHING_QUEUED} until it queues. */
  #writable(): Uint8Array[] {
    const queue = this.#queue;
    return queue !== NOTHING_QUEUED ? queue : (this.#queue = []);
  }

  /** Bytes queued and not yet handed to the transport (held behind a message stream included). */
  get queuedBytes(): number {
    return this.#queuedBytes + (this.#streaming?.bytes ?? 0);
  }

  /** Bytes handed to the transport and not yet drained. */
  get inflightBytes(): number {
    return this.#inflightBytes;
  }

  /** From now on (the connection is open), a reconnecting client's written output is kept until it drains. */
  track(): void {
    if (this.#inFlight !== undefined) this.#inFlight.tracking = true;
  }

  /** Queues one payload of `kind`; returns its bytes. */
  push(payload: Uint8Array, kind: OutputKind): number {
    if (this.#streaming !== undefined) return this.#hold(kind, [payload]);
    this.#switchTo(kind);
    this.#writable().push(payload);
    const bytes = kind === OutputKind.framed ? payload.length + FRAME_HEADER_BYTES : payload.length;
    this.#queuedBytes += bytes;
    return bytes;
  }

  /** Queues runs of whole frames as received (a `FrameBatch`'s), `byteLength` in all; returns it. */
  pushRuns(runs: readonly Uint8Array[], byteLength: number): number {
    if (this.#streaming !== undefined) return this.#hold(OutputKind.frames, runs.slice(), byteLength);
    this.#switchTo(OutputKind.frames);
    const queue = this.#writable();
    for (let i = 0; i < runs.length; i++) queue.push(runs[i]!);
    this.#queuedBytes += byteLength;
    return byteLength;
  }

  /**
   * {@linkcode OutputQueue.push} for several payloads, framed or raw, in order; returns their bytes.
   * Every item is checked first, in the pass that counts their bytes: at the first that is neither
   * bytes nor text, nothing is queued and `-1 - index` is returned.
   */
  pushMany(messages: readonly unknown[], framed: boolean): number {
    const count = messages.length;
    let bytes = framed ? count * FRAME_HEADER_BYTES : 0;
    let text = false;
    for (let i = 0; i < count; i++) {
      const message = messages[i];
      if (message instanceof Uint8Array) bytes += message.length;
      else if (typeof message === "string") text = true;
      else return -1 - i;
    }
    const list = messages as readonly (Uint8Array | string)[];
    if (this.#streaming !== undefined) {
      return this.#hold(framed ? OutputKind.framed : OutputKind.raw, list.map(toBytes));
    }
    this.#switchTo(framed ? OutputKind.framed : OutputKind.raw);
    if (!text && this.#queue.length === 0) this.#queue = list.slice() as Uint8Array[];
    else {
      const into = this.#writable();
      for (let i = 0; i < count; i++) {
        const message = list[i]!;
        if (typeof message !== "string") into.push(message);
        else {
          const payload = toBytes(message);
          into.push(payload);
          bytes += payload.length;
        }
      }
    }
    this.#queuedBytes += bytes;
    return bytes;
  }

  /** True while a message stream is being written: other output waits behind it. */
  get streaming(): boolean {
    return this.#streaming !== undefined;
  }

  /**
   * A message stream wants the connection: it gets it now (`turn.start()` is called at once), or
   * after the streams before it; output queued meanwhile waits behind it, in order.
   */
  streamTurn(turn: StreamTurn): void {
    if (this.#streaming !== undefined) return void this.#streaming.held.push(turn);
    this.#streaming = { held: [], bytes: 0, drainWaiter: undefined };
    turn.start();
  }

  /** Queues bytes of the message stream being written (its header, then its payload); returns them. */
  pushStreamBytes(bytes: Uint8Array): number {
    this.#switchTo(OutputKind.raw);
    this.#writable().push(bytes);
    this.#queuedBytes += bytes.length;
    return bytes.length;
  }

  /** The message stream ended: what waited behind it is queued, up to the next stream's turn. */
  streamEnded(): void {
    const held = this.#streaming?.held ?? [];
    this.#streaming?.drainWaiter?.resolve(); // its sender is done
    this.#streaming = undefined;
    for (let i = 0; i < held.length; i++) {
      const item = held[i]!;
      if ("start" in item) {
        this.#streaming = { held: [], bytes: 0, drainWaiter: undefined };
        for (let k = i + 1; k < held.length; k++) this.#requeue(held[k]!);
        return item.start();
      }
      this.#switchTo(item.kind);
      for (const payload of item.payloads) this.#writable().push(payload);
      this.#queuedBytes += item.bytes;
    }
  }

  /**
   * Resolves once the output in flight has drained; rejects when the connection closes first. For the
   * sender of the message stream being written (resolved at once when none is).
   */
  whenDrained(): Promise<void> {
    const streaming = this.#streaming;
    if (streaming === undefined) return Promise.resolve();
    return new Promise((resolve, reject) => streaming.drainWaiter = { resolve, reject });
  }

  #hold(kind: OutputKind, payloads: Uint8Array[], byteLength?: number): number {
    let bytes = byteLength ?? 0;
    if (byteLength === undefined) {
      for (const payload of payloads) {
        bytes += payload.length + (kind === OutputKind.framed ? FRAME_HEADER_BYTES : 0);
      }
    }
    this.#requeue({ kind, payloads, bytes });
    return bytes;
  }

  #requeue(item: Held): void {
    const streaming = this.#streaming!;
    streaming.held.push(item);
    if (!("start" in item)) streaming.bytes += item.bytes;
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
    this.#queue = NOTHING_QUEUED;
    this.#inflightBytes += bytes;
    this.#queuedBytes = 0;
    // A message stream's bytes are never resent: its sender rejects instead.
    const inFlight = this.#inFlight;
    if (inFlight !== undefined && inFlight.tracking && this.#streaming === undefined) {
      inFlight.add(queue, kind, bytes);
    }
    try {
      // This is the connection's one batch for the tick, so the transport starts writing it at once.
      const conn = this.conn;
      if (kind !== OutputKind.framed) conn.writeBatch(queue);
      // A WebSocket frames each message itself: the session's 8-byte headers are never written.
      else if (conn instanceof WebSocketConnection) conn.writeMessages(queue);
      else conn.writeBatch(framedPieces(queue));
    } catch (err) {
      this.#owner.close(err as Error);
    }
  }

  /** Everything handed to the transport reached the kernel; returns those bytes. */
  drained(): number {
    const bytes = this.#inflightBytes;
    this.#inflightBytes = 0;
    this.#inFlight?.clear();
    const streaming = this.#streaming;
    if (streaming?.drainWaiter !== undefined) {
      const waiter = streaming.drainWaiter;
      streaming.drainWaiter = undefined;
      waiter.resolve();
    }
    return bytes;
  }

  /**
   * The connection closed with `discardedBytes` (the transport's count) never handed to the kernel.
   * Empties the queue; returns the bytes it held with those in flight, and, once the connection was
   * open, the payloads never written whole: what never fully reached the kernel first, then what
   * was never handed to the transport.
   */
  discard(discardedBytes: number): { bytes: number; unsent: Uint8Array[] } {
    const streaming = this.#streaming;
    const bytes = this.#queuedBytes + this.#inflightBytes + (streaming?.bytes ?? 0);
    const tracking = this.#inFlight?.tracking === true;
    const unwritten = this.#inFlight?.unwritten(discardedBytes) ?? [];
    // A message stream's bytes cannot be resent (its source is consumed): its sender rejects.
    let queued = streaming !== undefined
      ? []
      : this.#kind === OutputKind.frames
      ? payloadViews(this.#queue)
      : this.#queue.slice();
    const closed = new ConnectionClosedError("Cannot send message stream: the connection closed");
    for (const item of streaming?.held ?? []) {
      if ("start" in item) item.abort(closed);
      else if (item.kind !== OutputKind.raw) {
        queued = queued.concat(item.kind === OutputKind.frames ? payloadViews(item.payloads) : item.payloads);
      }
    }
    this.#streaming = undefined;
    streaming?.drainWaiter?.reject(closed);
    // Only a reconnecting client resends what a lost connection left unsent (see `sessionClosed`).
    const unsent = !tracking ? [] : unwritten.length ? unwritten.concat(queued) : queued;
    this.#queue = NOTHING_QUEUED;
    this.#queuedBytes = 0;
    this.#inflightBytes = 0;
    return { bytes, unsent };
  }
}
