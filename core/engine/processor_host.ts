/**
 * {@linkcode ProcessorHost}: attaches a processor to a connection, calls it, and guards every call.
 * What a callback pushed is queued after it returns, also when it threw; a callback that throws
 * closes its own connection only, once that output is written.
 *
 * @module
 */
import { toBytes } from "../wire/bytes.ts";
import { CallbackError } from "../errors.ts";
import type { Logger } from "../options.ts";
import { attachProcessor, type Processor } from "../processor.ts";
import type { Session } from "../connection/session.ts";
import { Pause } from "../connection/session_phase.ts";
import type { ClientRecord } from "../clients/client_registry.ts";
import { FrameBatch } from "../wire/frame_batch.ts";
import { NO_PROCESSOR, ProcessorClose, ProcessorState } from "./processor_state.ts";
import type { MemoryBudget } from "./memory_budget.ts";
import { startMessageStream } from "../connection/message_stream_send.ts";
import { InboundStream } from "../connection/message_stream.ts";

type Callback =
  | "onConnected"
  | "onDataReceived"
  | "onFramesReceived"
  | "onMessageStream"
  | "onOutputBuffersAreEmpty";

/**
 * The one place the core calls processors.
 */
export class ProcessorHost {
  readonly #logger: Logger;
  readonly #budget: MemoryBudget;

  /** Reports throwing callbacks to `logger.error`; message streams sent count against `budget`. */
  constructor(logger: Logger, budget: MemoryBudget) {
    this.#logger = logger;
    this.#budget = budget;
  }

  /** Creates the client's processor for this connection and calls `onConnected`. */
  attach(session: Session, record: ClientRecord): void {
    let processor: Processor;
    try {
      processor = new record.processorClass!();
    } catch (err) {
      // Like a throwing callback: this connection closes, nothing reaches the runtime's event loop.
      const error = new CallbackError(`InlineProcessor constructor threw for client ${record.id}`, {
        cause: err,
      });
      this.#logger.error?.(`${error.message}; its connection is closed`, err);
      return session.drainAndClose(error);
    }
    if (session.processing === NO_PROCESSOR) session.processing = new ProcessorState();
    const state = session.processing;
    state.processor = processor;
    state.takesFrames = typeof processor.onFramesReceived === "function";
    state.takesStreams = typeof processor.onMessageStream === "function";
    attachProcessor(processor, {
      context: {
        clientId: record.id,
        keyword: record.keyword,
        remoteAddr: session.remoteAddr,
        listener: session.listener,
      },
      control: {
        setRaw: (raw) => session.setRaw(raw),
        closeNow: () => {
          if (state.inCallback) state.close = ProcessorClose.now;
          else session.close();
        },
        closeWhenFlushed: () => {
          // Inside a callback its own output is not queued yet: close after it, not before.
          if (state.inCallback) state.close ||= ProcessorClose.whenFlushed;
          else {
            // Outside a callback (a processor's own timer), what it pushed would otherwise wait for the next one.
            if (state.processor && !session.closed) this.#queueOutput(session);
            session.closeWhenFlushed();
          }
        },
        isRaw: () => session.raw,
        sendFrames: (batch) => {
          // After what the callback pushed so far, so its output keeps the order it was made in.
          if (state.inCallback) this.#queueOutput(session);
          session.sendFrames(batch);
        },
        sendMessageStream: (source, byteLength) => {
          if (state.inCallback) this.#queueOutput(session);
          return startMessageStream(record, this.#budget, source, byteLength, record.id);
        },
        holdInput: (delta) => {
          const held = this.#budget.heldBy(session);
          if (session.closed) return held;
          if (held + delta < 0) {
            throw new RangeError(`Cannot release ${-delta} input bytes: the processor holds ${held}`);
          }
          return this.#budget.processorHeld(session, delta);
        },
      },
    });
    state.inCallback = true;
    let pending: void | Promise<void>;
    try {
      pending = processor.onConnected();
    } catch (err) {
      return this.#failed(session, "onConnected", err);
    }
    if (pending !== undefined) return this.#await(session, "onConnected", pending);
    this.#after(session);
  }

  /** Hands one message (or raw chunk) or a batch to the connection's processor. */
  deliver(session: Session, message: Uint8Array | FrameBatch | InboundStream): void {
    const state = session.processing;
    state.inCallback = true;
    const processor = state.processor!;
    const batch = state.takesFrames && message instanceof FrameBatch;
    const stream = state.takesStreams && message instanceof InboundStream;
    const callback = batch ? "onFramesReceived" : stream ? "onMessageStream" : "onDataReceived";
    let pending: void | Promise<void>;
    try {
      pending = batch
        ? processor.onFramesReceived!(message)
        : stream
        ? processor.onMessageStream!(message)
        : processor.onDataReceived(message as Uint8Array);
    } catch (err) {
      return this.#failed(session, callback, err);
    }
    // A synchronous callback returns undefined: no Promise is allocated or awaited on this path.
    if (pending !== undefined) return this.#await(session, callback, pending);
    this.#after(session);
  }

  /**
   * A callback returned a Promise: its input waits (and reading pauses) until it settles. What it
   * pushes after an `await` is written as it is pushed; a rejection closes that connection only.
   */
  #await(session: Session, callback: Callback, pending: Promise<void>): void {
    if (typeof (pending as { then?: unknown }).then !== "function") return this.#after(session);
    // The handlers first: a rejection must never go unhandled, even once the connection is gone.
    pending.then(
      () => {
        if (session.closed) return;
        this.#after(session);
        session.processing.awaiting = false;
        session.callbackSettled();
      },
      (err: unknown) => {
        if (!session.closed) {
          session.processing.awaiting = false;
          return this.#failed(session, callback, err);
        }
        const id = session.client?.id;
        this.#logger.error?.(
          `InlineProcessor.${callback} rejected for client ${id} after its connection closed`,
          err,
        );
      },
    );
    this.#after(session);
    if (session.closed) return;
    session.processing.awaiting = true;
    // The stream's bytes must keep coming while onMessageStream reads it (what follows waits anyway).
    if (callback !== "onMessageStream") session.pauseReading(Pause.callback);
    this.#flushAsPushed(session);
  }

  /** Makes `outputMessages.push` queue at once: after an `await` no callback end comes to flush it. */
  #flushAsPushed(session: Session): void {
    const output = session.processor!.outputMessages;
    if (Object.hasOwn(output, "push")) return;
    const push = Array.prototype.push;
    Object.defineProperty(output, "push", {
      value: (...items: Array<Uint8Array | string>): number => {
        const length = push.apply(output, items);
        if (!session.processing.inCallback) this.#after(session);
        return length;
      },
    });
  }

  /** Everything queued was written. */
  drained(session: Session): void {
    session.processing.inCallback = true;
    try {
      session.processor!.onOutputBuffersAreEmpty();
    } catch (err) {
      return this.#failed(session, "onOutputBuffersAreEmpty", err);
    }
    this.#after(session);
  }

  /** The connection closed: the processor is detached and gets its last callback, whose output has nowhere to go. */
  lost(session: Session, clientId: number): void {
    const processor = session.processor;
    if (processor === undefined) return;
    session.processing.processor = undefined;
    try {
      processor.onConnectionLost();
    } catch (err) {
      this.#logger.error?.(`InlineProcessor.onConnectionLost threw for client ${clientId}`, err);
    }
  }

  /** Queues what the callback pushed, then acts on the close it asked for. */
  #after(session: Session): void {
    const state = session.processing;
    state.inCallback = false;
    const close = state.close;
    state.close = ProcessorClose.none;
    const processor = state.processor;
    if (!processor || session.closed) return;
    if (close === ProcessorClose.now) return session.close();
    this.#queueOutput(session);
    if (close === ProcessorClose.whenFlushed) session.closeWhenFlushed();
  }

  /**
   * Queues what the processor pushed to `outputMessages`, and empties it. An item that is not a
   * message is a processor error: what came before it is queued, then the connection closes.
   */
  #queueOutput(session: Session): void {
    const output = session.processor!.outputMessages;
    if (output.length) {
      for (let i = 0; i < output.length; i++) {
        const item: unknown = output[i];
        if (item instanceof Uint8Array) session.queueOutput(item);
        else if (typeof item === "string") session.queueOutput(toBytes(item));
        else {
          output.length = 0;
          return this.#badOutput(session, item);
        }
      }
      output.length = 0;
    }
  }

  #badOutput(session: Session, item: unknown): void {
    const what = item === null
      ? "null"
      : typeof item === "object"
      ? `a ${(item as object).constructor?.name ?? "null-prototype object"}`
      : `a ${typeof item}`;
    const error = new CallbackError(
      `InlineProcessor pushed ${what} to outputMessages for client ${session.client?.id}; a message is a Uint8Array or a string`,
    );
    this.#logger.error?.(`${error.message}; its connection is closed`);
    session.drainAndClose(error);
  }

  #failed(session: Session, callback: Callback, err: unknown): void {
    const id = session.client?.id;
    this.#logger.error?.(`InlineProcessor.${callback} threw for client ${id}; its connection is closed`, err);
    const error = err instanceof Error
      ? err
      : new CallbackError(`InlineProcessor.${callback} threw`, { cause: err });
    // What it pushed before throwing (an error answer, say) is still written; nothing more is read.
    this.#after(session);
    session.drainAndClose(error);
  }
}
