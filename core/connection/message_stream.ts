/**
 * Streamed messages on the receiving side: {@linkcode InboundStream}, the `MessageStream` an
 * application reads, and {@linkcode StreamReceiver}, which feeds it from a session's decoder with
 * backpressure and keeps the messages after it waiting until it is read or cancelled.
 *
 * @module
 */
import { FRAME_HEADER_BYTES, type FrameDecoder } from "../wire/codec.ts";
import type { ClientRecord } from "../clients/client_registry.ts";
import { ConnectionClosedError, ConnectionResetError, UnsupportedError } from "../errors.ts";
import type { MessageStream } from "../types.ts";
import type { Session } from "./session.ts";
import type { SessionHost } from "./session_host.ts";
import { Pause } from "./session_phase.ts";

/** Above this many queued bytes of a stream, its connection stops reading. */
export const STREAM_HIGH_WATER_MARK_BYTES = 1024 * 1024;
/** The size of a stream's own buffers, into which it copies pieces when no read is waiting. */
const COPY_BUFFER_BYTES = 256 * 1024;

/** What an {@linkcode InboundStream} tells its receiver. */
interface StreamHooks {
  /** `bytes` left the stream's queue (read, or discarded by a cancel or a failure). */
  released(bytes: number): void;
  /** The stream is done: every byte arrived, and it was read to its end or cancelled. */
  finished(): void;
}

/**
 * A message whose payload is delivered as a byte stream while it arrives. Its queue holds views of
 * the connection's read chunks ({@linkcode push}) or copies of them in buffers it reuses
 * ({@linkcode pushCopy}); a read copies out of them (a byte stream's `enqueue` would transfer a buffer
 * that other messages still view).
 *
 * @example
 * ```ts
 * import { InboundStream } from "./message_stream.ts";
 * const stream = new InboundStream(3, { released() {}, finished() {} });
 * stream.push(new Uint8Array([1, 2, 3]));
 * for await (const chunk of stream.readable) console.log(chunk); // Uint8Array(3) [ 1, 2, 3 ]
 * ```
 */
export class InboundStream implements MessageStream {
  readonly byteLength: number;
  /** What it counts as input while it waits for a processor: nothing (its queue counts itself). */
  readonly length = 0;
  readonly readable: ReadableStream<Uint8Array>;
  readonly #hooks: StreamHooks;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #received = 0;
  #cancelled = false;
  #failed = false;
  #finished = false;
  #wake: (() => void) | undefined = undefined;
  #controller: ReadableByteStreamController | undefined = undefined;
  /** A waiting BYOB read was answered by `pushCopy`: the pull that waited returns. */
  #answered = false;
  /** `pushCopy`'s buffers: the one it fills, how far, and those read to their end. */
  #tail: Uint8Array | undefined = undefined;
  #tailFill = 0;
  #spare: Uint8Array[] = [];

  /** A stream of `byteLength` bytes, still to arrive. */
  constructor(byteLength: number, hooks: StreamHooks) {
    this.byteLength = byteLength;
    this.#hooks = hooks;
    this.readable = new ReadableStream({
      type: "bytes",
      pull: (controller) => this.#pull(controller),
      cancel: () => this.#cancel(),
    }, { highWaterMark: 0 });
  }

  /** Bytes arrived and not read yet. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /** True once every byte of the message arrived. */
  get complete(): boolean {
    return this.#received === this.byteLength;
  }

  /** True once read to its end or cancelled, with every byte arrived. */
  get finished(): boolean {
    return this.#finished;
  }

  /**
   * The next `piece` of the payload arrived (kept as a view until read); after a cancel it is
   * discarded at once. A BYOB read waiting for it gets it at once, copied into its buffer.
   */
  push(piece: Uint8Array): void {
    if (this.#cancelled || this.#failed) {
      this.#received += piece.length;
      this.#hooks.released(piece.length);
      if (this.#cancelled && this.complete) this.#finish();
      return;
    }
    const at = this.#answerWaitingRead(piece);
    if (at < piece.length) {
      this.#queue.push(at === 0 ? piece : piece.subarray(at));
      this.#queuedBytes += piece.length - at;
    }
    this.#wakeReader();
  }

  /**
   * As {@linkcode push}, but keeps no reference to `piece` (its memory is reused at once): what a
   * waiting BYOB read does not take is copied into the stream's own buffers, reused once read.
   */
  pushCopy(piece: Uint8Array): void {
    if (this.#cancelled || this.#failed) return this.push(piece);
    let at = this.#answerWaitingRead(piece);
    const queue = this.#queue;
    while (at < piece.length) {
      let tail = this.#tail;
      if (tail === undefined || this.#tailFill === tail.length) {
        tail = this.#tail = this.#spare.pop() ?? new Uint8Array(COPY_BUFFER_BYTES);
        this.#tailFill = 0;
      }
      const fill = this.#tailFill;
      const n = Math.min(piece.length - at, tail.length - fill);
      tail.set(piece.subarray(at, at + n), fill);
      const last = queue[queue.length - 1];
      // Contiguous with the last queued piece: one longer view, so a read takes all of it at once.
      if (last !== undefined && last.buffer === tail.buffer && last.byteOffset + last.length === fill) {
        queue[queue.length - 1] = new Uint8Array(tail.buffer, last.byteOffset, last.length + n);
      } else queue.push(tail.subarray(fill, fill + n));
      this.#tailFill = fill + n;
      this.#queuedBytes += n;
      at += n;
    }
    this.#wakeReader();
  }

  /**
   * Counts `piece` as received and, when a BYOB read waits with nothing queued before it, copies
   * what fits into the read's buffer and answers it (no promise turn through the pull); returns how
   * much it took.
   */
  #answerWaitingRead(piece: Uint8Array): number {
    this.#received += piece.length;
    // A read may wait before its pull runs (the pull of the read before it is still settling): it
    // is answered all the same, which spares a copy through the queue.
    if (this.#queue.length > 0) return 0;
    const request = this.#controller?.byobRequest;
    const view = request?.view;
    if (!request || !view) return 0;
    const n = Math.min(piece.length, view.byteLength);
    new Uint8Array(view.buffer, view.byteOffset, n).set(n === piece.length ? piece : piece.subarray(0, n));
    request.respond(n);
    if (this.#wake !== undefined) this.#answered = true;
    this.#hooks.released(n);
    return n;
  }

  /** The connection ended before the last byte: the reader errors with `error`. */
  fail(error: Error | undefined): void {
    if (this.complete || this.#failed || this.#cancelled) return;
    this.#failed = true;
    this.#error = error instanceof ConnectionClosedError || error instanceof ConnectionResetError
      ? error
      : new ConnectionClosedError(
        `Cannot read message stream: the connection closed after ${this.#received} of ${this.byteLength} bytes`,
        { cause: error },
      );
    this.#discardQueue();
    this.#wakeReader();
  }

  #error: Error | undefined = undefined;

  async #pull(controller: ReadableByteStreamController): Promise<void> {
    this.#controller = controller;
    for (;;) {
      if (this.#answered) { // answered by #answerWaitingRead while this pull waited
        this.#answered = false;
        return;
      }
      if (this.#failed) return controller.error(this.#error);
      const piece = this.#queue[0];
      if (piece !== undefined) return this.#deliver(controller, piece);
      if (this.complete) {
        controller.close();
        // A BYOB reader's pending request is answered with an empty view once closed.
        controller.byobRequest?.respond(0);
        return this.#finish();
      }
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
  }

  /** Answers the pending read; a BYOB read's buffer is filled from as many queued pieces as fit. */
  #deliver(controller: ReadableByteStreamController, first: Uint8Array): void {
    const request = controller.byobRequest;
    const view = request?.view;
    let filled = first.length;
    if (request && view) {
      const into = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
      filled = 0;
      for (let piece: Uint8Array | undefined = first; piece !== undefined && filled < into.length;) {
        const n = Math.min(piece.length, into.length - filled);
        into.set(n === piece.length ? piece : piece.subarray(0, n), filled);
        filled += n;
        this.#taken(piece, n);
        piece = this.#queue[0];
      }
      request.respond(filled);
    } else {
      controller.enqueue(first.slice());
      this.#taken(first, filled);
    }
    this.#queuedBytes -= filled;
    this.#hooks.released(filled);
  }

  /** `n` bytes of `piece`, the queue's first, were read. */
  #taken(piece: Uint8Array, n: number): void {
    if (n < piece.length) this.#queue[0] = piece.subarray(n);
    else {
      this.#queue.shift();
      const tail = this.#tail;
      if (tail !== undefined) this.#recycle(piece, tail);
    }
  }

  /** `piece`, a view of one of `pushCopy`'s buffers, was read to its end: that buffer may be reused. */
  #recycle(piece: Uint8Array, tail: Uint8Array): void {
    if (piece.buffer !== tail.buffer) this.#spare.push(new Uint8Array(piece.buffer));
    else if (this.#queue.length === 0) this.#tailFill = 0; // the one being filled is empty again
  }

  #cancel(): void {
    if (this.#cancelled || this.#failed) return;
    this.#cancelled = true;
    this.#discardQueue();
    if (this.complete) this.#finish();
  }

  #discardQueue(): void {
    const bytes = this.#queuedBytes;
    this.#queue = [];
    this.#queuedBytes = 0;
    if (bytes > 0) this.#hooks.released(bytes);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#hooks.finished();
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}

/**
 * The stream threshold of `record`'s connections: its `streamThresholdBytes`, unless its processor
 * has no `onMessageStream` (then every message is whole).
 *
 * @example
 * ```ts
 * import { streamThresholdOf } from "./message_stream.ts";
 * console.log(streamThresholdOf(undefined)); // undefined
 * ```
 */
export function streamThresholdOf(record: ClientRecord | undefined): number | undefined {
  const processorClass = record?.processorClass;
  if (processorClass !== undefined && typeof processorClass.prototype.onMessageStream !== "function") {
    return undefined;
  }
  return record?.streamThresholdBytes;
}

/**
 * A session's streamed messages: one at a time, fed from the decoder; while one is not finished,
 * nothing after it is decoded and, once it has fully arrived or its queue is full, the connection
 * stops reading.
 *
 * @example
 * ```ts
 * import { StreamReceiver } from "./message_stream.ts";
 * // Session creates one when streamThresholdBytes applies: new StreamReceiver(session, host);
 * // its decode loop calls pump(decoder) before decoding anything.
 * ```
 */
export class StreamReceiver {
  readonly #session: Session;
  readonly #host: SessionHost;
  #current: InboundStream | undefined = undefined;
  #record: ClientRecord | undefined = undefined;
  /** The stream threshold the session's decoder gets (see `Session.streamThreshold`). */
  threshold: number | undefined = undefined;

  /** The streams of `session`, whose core is `host`. */
  constructor(session: Session, host: SessionHost) {
    this.#session = session;
    this.#host = host;
  }

  /**
   * Moves what arrived of the streamed message from `decoder` into its stream (starting one when
   * the decoder has just begun streaming). Returns true when no stream holds decoding back.
   */
  pump(decoder: FrameDecoder): boolean {
    let stream = this.#current;
    if (stream === undefined) {
      if (decoder.streamRemainingBytes === 0) return true;
      stream = this.#begin(decoder.streamByteLength);
    }
    // Where the transport reuses its read memory, a view would pin it: copy, and give the chunk back.
    if (this.#session.conn.reusesReadMemory) {
      for (let piece = decoder.takeStreamBytes(false); piece; piece = decoder.takeStreamBytes(false)) {
        stream.pushCopy(piece);
      }
    } else {
      for (let piece = decoder.takeStreamBytes(); piece !== undefined; piece = decoder.takeStreamBytes()) {
        stream.push(piece);
      }
    }
    if (stream.finished) {
      this.#current = undefined;
      return true;
    }
    if (stream.complete || stream.queuedBytes > STREAM_HIGH_WATER_MARK_BYTES) {
      this.#session.pauseReading(Pause.stream);
    }
    return false;
  }

  /** The stream being received and not yet read to its end or cancelled, if any. */
  get pending(): InboundStream | undefined {
    const stream = this.#current;
    return stream === undefined || stream.finished ? undefined : stream;
  }

  /** The connection closed or stopped reading: a stream cut short errors; returns its queued bytes. */
  close(error: Error | undefined): void {
    this.#current?.fail(error);
  }

  #begin(byteLength: number): InboundStream {
    const session = this.#session;
    const host = this.#host;
    const stream: InboundStream = new InboundStream(byteLength, {
      released: (bytes) => {
        host.budget.released(bytes);
        if (stream.queuedBytes <= STREAM_HIGH_WATER_MARK_BYTES && !stream.complete) {
          session.resumeReading(Pause.stream);
        }
        host.budget.relieve();
      },
      finished: () => {
        this.#record?.streamFinished(stream);
        // Not from inside the reader's pull: decode the messages after it on the next microtask.
        queueMicrotask(() => {
          // onMessageStream still running: what follows waits for it, without reading ahead.
          if (session.processing.awaiting) session.pauseReading(Pause.callback);
          session.resumeReading(Pause.stream);
          session.guarded(() => session.decodeNow());
          const record = this.#record;
          if (record?.reader !== undefined) record.reader.wake();
        });
      },
    });
    this.#current = stream;
    host.budget.released(FRAME_HEADER_BYTES); // the header was consumed
    if (session.processing.takesStreams) {
      session.toProcessor(stream); // in order, after what waits for a pending callback
      return stream;
    }
    const record = session.client;
    this.#record = record;
    if (record !== undefined) {
      record.streamArrived(stream);
      if (record.unread === 0) host.board.emit(host.board.events.clientsHaveMessageStream, record.id);
    }
    return stream;
  }
}

/**
 * Refuses to switch a connection to raw mode (`raw`) while a message stream is received on it
 * (`receiving`, until read to its end or cancelled) or sent on it (`sending`): the stream's framing
 * would be cut. Throws an `UnsupportedError`; switch once the stream has ended.
 *
 * @example
 * ```ts
 * import { refuseRawMidStream } from "./message_stream.ts";
 * refuseRawMidStream(true, undefined, false, "tcp:127.0.0.1:4000"); // no stream: nothing happens
 * ```
 */
export function refuseRawMidStream(
  raw: boolean,
  receiving: InboundStream | undefined,
  sending: boolean,
  from: string,
): void {
  if (!raw || (receiving === undefined && !sending)) return;
  const what = receiving !== undefined
    ? `a ${receiving.byteLength}-byte message stream is being received (read it to its end or cancel it first)`
    : "a message stream is being sent (wait for sendMessageStream to settle first)";
  throw new UnsupportedError(`Cannot switch the connection from ${from} to raw mode: ${what}`);
}
