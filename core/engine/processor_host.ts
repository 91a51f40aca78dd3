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

/** What a processor asked for during a callback; acted on when the callback returns. */
export const ProcessorClose = { none: 0, now: 1, whenFlushed: 2 } as const;
/** One of {@linkcode ProcessorClose}'s values. */
export type ProcessorClose = typeof ProcessorClose[keyof typeof ProcessorClose];

type Callback = "onConnected" | "onDataReceived" | "onFramesReceived" | "onOutputBuffersAreEmpty";

/**
 * The one place the core calls processors.
 *
 * @example
 * ```ts
 * import { ProcessorHost } from "./processor_host.ts";
 * const host = new ProcessorHost({ error: console.error });
 * // host.attach(session, record); host.deliver(session, message);
 * ```
 */
export class ProcessorHost {
  readonly #logger: Logger;

  /** Reports throwing callbacks to `logger.error`. */
  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Creates the client's processor for this connection and calls `onConnected`. */
  attach(session: Session, record: ClientRecord): void {
    const processor: Processor = new record.processorClass!();
    session.processor = processor;
    session.takesFrames = typeof processor.onFramesReceived === "function";
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
          if (session.inCallback) session.processorClose = ProcessorClose.now;
          else session.close();
        },
        closeWhenFlushed: () => {
          // Inside a callback its own output is not queued yet: close after it, not before.
          if (session.inCallback) session.processorClose ||= ProcessorClose.whenFlushed;
          else session.closeWhenFlushed();
        },
        isRaw: () => session.raw,
        sendFrames: (batch) => {
          // After what the callback pushed so far, so its output keeps the order it was made in.
          if (session.inCallback) this.#queueOutput(session);
          session.sendFrames(batch);
        },
      },
    });
    session.inCallback = true;
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
  deliver(session: Session, message: Uint8Array | FrameBatch): void {
    session.inCallback = true;
    const processor = session.processor!;
    const batch = session.takesFrames && message instanceof FrameBatch;
    const callback = batch ? "onFramesReceived" : "onDataReceived";
    let pending: void | Promise<void>;
    try {
      pending = batch
        ? processor.onFramesReceived!(message)
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
        session.callbackSettled();
      },
      (err: unknown) => {
        if (!session.closed) {
          session.awaitingCallback = false;
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
    session.awaitingCallback = true;
    session.pauseReading(Pause.callback);
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
        if (!session.inCallback) this.#after(session);
        return length;
      },
    });
  }

  /** Everything queued was written. */
  drained(session: Session): void {
    session.inCallback = true;
    try {
      session.processor!.onOutputBuffersAreEmpty();
    } catch (err) {
      return this.#failed(session, "onOutputBuffersAreEmpty", err);
    }
    this.#after(session);
  }

  /** The connection closed: the last callback, whose output has nowhere to go. */
  lost(processor: Processor, clientId: number): void {
    try {
      processor.onConnectionLost();
    } catch (err) {
      this.#logger.error?.(`InlineProcessor.onConnectionLost threw for client ${clientId}`, err);
    }
  }

  /** Queues what the callback pushed, then acts on the close it asked for. */
  #after(session: Session): void {
    session.inCallback = false;
    const close = session.processorClose;
    session.processorClose = ProcessorClose.none;
    const processor = session.processor;
    if (!processor || session.closed) return;
    if (close === ProcessorClose.now) return session.close();
    this.#queueOutput(session);
    if (close === ProcessorClose.whenFlushed) session.closeWhenFlushed();
  }

  /** Queues what the processor pushed to `outputMessages`, and empties it. */
  #queueOutput(session: Session): void {
    const output = session.processor!.outputMessages;
    if (output.length) {
      for (let i = 0; i < output.length; i++) session.queueOutput(toBytes(output[i]!));
      output.length = 0;
    }
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
