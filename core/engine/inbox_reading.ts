/**
 * {@linkcode InboxReading}: what the application reads from the clients' inboxes, one message, a
 * batch, all of them, or as an async iteration; and what reading frees (input bytes, a paused
 * connection, a finished unknown client).
 *
 * @module
 */
import type { ClientRecord } from "../clients/client_registry.ts";
import { FrameBatch, SMALL_COPIES_BEAT_VIEWS } from "../wire/frame_batch.ts";
import { webSocketOf } from "../connection/websocket_connection.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import { Pause, Phase, type Session } from "../connection/session.ts";

/** What a message or batch counts against the input cap while a processor has not taken it. */
const inputBytesOf = (item: Uint8Array | FrameBatch): number =>
  item instanceof FrameBatch ? item.byteLength : item.length;

/** A WebSocket client's messages under this size are copied, not viewed, where copies are cheaper. */
const WEBSOCKET_COPY_BELOW = 65;

/**
 * Below what size `record`'s messages are read as copies: a WebSocket copies every message it sends
 * into its frames, so a message echoed or forwarded gains nothing from being a view of the input.
 */
const copyBelowOf = (record: ClientRecord): number =>
  SMALL_COPIES_BEAT_VIEWS && record.session !== undefined && webSocketOf(record.session.conn) !== undefined
    ? WEBSOCKET_COPY_BELOW
    : 0;

/** What reading needs from the core around it. */
export interface InboxHost {
  /** True once the core is closed: iterations end. */
  isClosed(): boolean;
  /** True while `record` is registered: an iteration of a removed client ends. */
  isRegistered(record: ClientRecord): boolean;
  /** The client's inbox was read up to a streamed message, which is next now. */
  streamIsNext(record: ClientRecord): void;
  /** Forgets an unknown client whose connection is gone and whose inbox is read to the end. */
  forget(record: ClientRecord): void;
}

/** Takes messages out of the clients' inboxes, and releases what they counted against the input cap. */
export class InboxReading {
  readonly #budget: MemoryBudget;
  readonly #host: InboxHost;
  /** Clients whose inbox a `messages()` iteration reads. */
  readonly #readers = new Set<ClientRecord>();

  /** Released input goes back to `budget`. */
  constructor(budget: MemoryBudget, host: InboxHost) {
    this.#budget = budget;
    this.#host = host;
  }

  /** Removes the client's unread messages up to the first raw chunk, as a batch (see `IoCore.takeFrames`). */
  takeFrames(record: ClientRecord): FrameBatch | undefined {
    const before = record.inboxCost;
    const batch = record.takeFrames(this.#budget);
    if (batch !== undefined) this.#consumed(record, before - record.inboxCost);
    return batch;
  }

  /** Removes and returns the client's next unread message. */
  takeMessage(record: ClientRecord): Uint8Array | undefined {
    const before = record.inboxCost;
    const message = record.takeOne();
    if (message !== undefined) this.#consumed(record, before - record.inboxCost);
    return message;
  }

  /** Removes and returns every unread message of the client. */
  takeMessages(record: ClientRecord): Uint8Array[] {
    if (record.unread === 0) return [];
    const cost = record.inboxCost;
    const messages = record.takeAll(copyBelowOf(record));
    this.#consumed(record, cost);
    return messages;
  }

  #consumed(record: ClientRecord, cost: number): void {
    this.#budget.consumed(record.session, cost, record.inboxBytes);
    record.session?.inputRead();
    if (record.streamIsNext) this.#host.streamIsNext(record);
    if ((record.kind === "unknown" || record.adopted) && !record.session && record.unread === 0) {
      this.#host.forget(record);
    }
  }

  /**
   * Reads the client's inbox as an async iteration (see `IoCore.messages`). Reading from its
   * connection pauses while more than `highWaterMarkBytes` wait unread.
   */
  async *read(
    record: ClientRecord,
    highWaterMarkBytes: number,
    signal: AbortSignal | undefined,
  ): AsyncGenerator<Uint8Array, void, undefined> {
    if (record.reader) throw new TypeError(`Cannot read messages: client ${record.id} already has a reader`);
    let wake: (() => void) | undefined;
    const reader = {
      highWaterMarkBytes,
      wake: () => {
        const resolve = wake;
        wake = undefined;
        resolve?.();
      },
    };
    record.reader = reader;
    this.#readers.add(record);
    signal?.addEventListener("abort", reader.wake);
    try {
      for (;;) {
        signal?.throwIfAborted();
        const message = this.takeMessage(record);
        if (message !== undefined) {
          if (record.inboxBytes <= highWaterMarkBytes) record.session?.resumeReading(Pause.reader);
          yield message;
          continue;
        }
        if (this.#host.isClosed() || !this.#host.isRegistered(record)) return;
        await new Promise<void>((resolve) => wake = resolve);
      }
    } finally {
      signal?.removeEventListener("abort", reader.wake);
      if (record.reader === reader) record.reader = undefined;
      this.#readers.delete(record);
      record.session?.resumeReading(Pause.reader);
    }
  }

  /**
   * Hands what arrived before the client's processor existed to it, in order. The messages leave
   * the inbox once; their bytes stay counted as input until delivered (as new input's do), so only
   * the inbox's per-message overhead is released here, in one step.
   */
  handOver(record: ClientRecord, session: Session): void {
    if (record.unread === 0) return;
    const budget = this.#budget;
    const cost = record.inboxCost;
    let items: (Uint8Array | FrameBatch)[];
    if (!session.processing.takesFrames) items = record.takeAll();
    else {
      items = [];
      while (record.unread > 0) items.push(record.takeFrames(budget) ?? record.takeOne()!);
    }
    let bytes = 0;
    for (const item of items) bytes += inputBytesOf(item);
    budget.received(bytes);
    budget.released(cost);
    let i = 0;
    while (i < items.length && session.phase === Phase.open) session.toProcessor(items[i++]!);
    // The connection closed on the way: what was not delivered is gone with it.
    while (i < items.length) budget.released(inputBytesOf(items[i++]!));
    budget.consumed(session, 0, record.inboxBytes);
    session.inputRead();
  }

  /** Wakes every iteration, so it looks again (the core closes). */
  wakeAll(): void {
    for (const record of this.#readers) record.reader?.wake();
  }
}
