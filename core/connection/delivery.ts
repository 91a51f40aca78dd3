/**
 * {@linkcode Delivery}: where one session's decoded input goes: its processor (in order, waiting
 * while an asynchronous callback is pending), or its client's inbox (waking a `messages()` reader).
 * Split from `Session`, whose decode loop hands it each message, raw chunk or batch.
 *
 * @module
 */
import type { ClientRecord } from "../clients/client_registry.ts";
import { FRAME_HEADER_BYTES, type FrameDecoder } from "../wire/codec.ts";
import { createFrameBatch, FrameBatch } from "../wire/frame_batch.ts";
import type { Session } from "./session.ts";
import type { SessionHost } from "./session_host.ts";
import type { InboundStream } from "./message_stream.ts";
import { Pause, Phase } from "./session_phase.ts";

/**
 * The input side of one session, after decoding. Every message it is handed is already counted as
 * input in the memory budget; it releases or restates that count where the message goes.
 */
export class Delivery {
  readonly #session: Session;
  readonly #host: SessionHost;
  /** Messages, batches or raw chunks that arrived while a callback was pending, counted as input. */
  #waiting: (Uint8Array | FrameBatch | InboundStream)[] | undefined = undefined;

  /** The delivery of `session`, whose core is `host`. */
  constructor(session: Session, host: SessionHost) {
    this.#session = session;
    this.#host = host;
  }

  /** True when no input waits for a processor callback to settle. */
  get idle(): boolean {
    return !this.#session.processing.awaiting && (this.#waiting?.length ?? 0) === 0;
  }

  /** Delivers one message or raw chunk to the processor or the inbox. */
  message(message: Uint8Array, raw: boolean): void {
    const session = this.#session;
    const host = this.#host;
    if (session.processor) return this.toProcessor(message);
    const record = session.client ?? session.held;
    if (!record) {
      host.budget.released(message.length);
      return;
    }
    host.budget.stored(message.length, record.push(message, raw));
    if (!session.client) return;
    host.board.emit(host.board.events.clientsHaveDataToRead, record.id);
    if (record.reader !== undefined) this.notifyReader(record);
  }

  /** A `messages()` reader waits on this client: wake it, and pause above its high-water mark. */
  notifyReader(record: ClientRecord): void {
    const reader = record.reader!;
    reader.wake();
    if (record.inboxBytes > reader.highWaterMarkBytes) this.#session.pauseReading(Pause.reader);
  }

  /**
   * Decodes every whole frame buffered in `decoder` into one batch for the processor's
   * `onFramesReceived`; a malformed frame after them fails the session.
   */
  batch(decoder: FrameDecoder): void {
    const runs: Uint8Array[] = [];
    let count = 0;
    let byteLength = 0;
    let error: Error | undefined;
    for (;;) {
      const frames = decoder.takeWholeFrames();
      if (frames !== undefined) {
        runs.push(frames);
        count += decoder.takenFrameCount;
        byteLength += frames.length;
      }
      let message: Uint8Array | undefined;
      try {
        message = decoder.next();
      } catch (err) {
        error = err as Error;
        break;
      }
      if (message === undefined) break;
      // `next` leaves the header in front of the message, so the frame is kept whole.
      runs.push(
        new Uint8Array(
          message.buffer,
          message.byteOffset - FRAME_HEADER_BYTES,
          message.length + FRAME_HEADER_BYTES,
        ),
      );
      count++;
      byteLength += FRAME_HEADER_BYTES + message.length;
    }
    if (count > 0) this.toProcessor(createFrameBatch(this.#host.budget, runs, count, byteLength));
    if (error !== undefined) this.#session.fail(error);
  }

  /**
   * Hands one message or batch to the processor; while an asynchronous callback is pending it
   * waits, in order.
   */
  toProcessor(message: Uint8Array | FrameBatch | InboundStream): void {
    const session = this.#session;
    if (session.processing.awaiting) {
      (this.#waiting ??= []).push(message);
      return;
    }
    const budget = this.#host.budget;
    // Only a processor that takes batches gets them: the others skip the type check per message.
    const batch = session.processing.takesFrames && message instanceof FrameBatch;
    budget.released(batch ? message.byteLength : (message as Uint8Array).length);
    budget.handling(session);
    this.#host.processors.deliver(session, message);
  }

  /**
   * The pending callback settled (`awaitingCallback` is false again): delivers what waited, until
   * one goes asynchronous again; returns true when nothing waits any more.
   */
  settled(): boolean {
    const session = this.#session;
    const waiting = this.#waiting;
    if (waiting === undefined) return !session.processing.awaiting;
    let i = 0;
    while (
      i < waiting.length && !session.processing.awaiting && session.processor && session.phase === Phase.open
    ) {
      this.toProcessor(waiting[i++]!);
    }
    waiting.splice(0, i);
    return !session.processing.awaiting;
  }

  /** The session closed: drops what waited; returns its bytes. */
  discard(): number {
    let bytes = 0;
    for (const item of this.#waiting ?? []) {
      bytes += item instanceof FrameBatch ? item.byteLength : item.length;
    }
    this.#waiting = undefined;
    return bytes;
  }
}
