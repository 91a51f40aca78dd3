/**
 * The class-inheritance API: subclass {@linkcode InlineProcessor} and let the core call you.
 *
 * @module
 */
import type { Addr } from "../transports/types.ts";
import { type Processor, processorAttachment, type ProcessorContext } from "../core/processor.ts";
import type { ListenerInfo, MessageStream } from "../core/types.ts";
import type { FrameBatch } from "../core/wire/frame_batch.ts";
import type { MessageStreamSource } from "../core/connection/message_stream_send.ts";

/**
 * Base class for per-connection processors: one instance is created for each connection of the
 * client it is set for, and its callbacks run inside the core's I/O handling.
 *
 * Everything pushed to {@linkcode outputMessages} inside any callback is written after the callback
 * returns, batched into one write. Strings are sent as UTF-8. An exception thrown by a callback
 * closes that connection only; the core reports it through its logger and runs on.
 *
 * @example Echo every message back
 * ```ts
 * import { InlineProcessor } from "@asockio/core";
 *
 * class Echo extends InlineProcessor {
 *   override onDataReceived(data: Uint8Array): void {
 *     this.outputMessages.push(data);
 *   }
 * }
 * // core.setInlineProcessorForClient(clientId, Echo);
 * ```
 */
export class InlineProcessor implements Processor {
  /** Messages (or raw chunks in raw mode) to send; the core empties it after each callback. */
  readonly outputMessages: Array<Uint8Array | string> = [];

  #ctx(): ProcessorContext {
    const attachment = processorAttachment(this);
    if (!attachment) throw new TypeError("Cannot read processor context: the processor is not attached yet");
    return attachment.context;
  }

  /** The id of the client this connection belongs to. */
  get clientId(): number {
    return this.#ctx().clientId;
  }

  /** The client's keyword as bytes (generated for unknown clients). */
  get keyword(): Uint8Array {
    return this.#ctx().keyword;
  }

  /** The peer's address. */
  get remoteAddr(): Addr {
    return this.#ctx().remoteAddr;
  }

  /** The listener the connection came through, or `undefined` for an outgoing connection. */
  get listener(): ListenerInfo | undefined {
    return this.#ctx().listener;
  }

  /** True when the connection carries raw bytes instead of framed messages. */
  get isInRawMode(): boolean {
    return processorAttachment(this)?.control.isRaw() ?? false;
  }

  /**
   * Switches between framed and raw mode. Bytes not yet delivered are interpreted under the new
   * mode, starting with the next unread byte.
   */
  setIsInRawMode(raw: boolean): void {
    processorAttachment(this)?.control.setRaw(raw);
  }

  /** Closes the connection as soon as the current callback returns; unsent output is discarded. */
  markSocketAsShouldBeClosedImmediately(): void {
    processorAttachment(this)?.control.closeNow();
  }

  /** Closes the connection once everything queued (including `outputMessages`) has been written. */
  markSocketAsReadyToBeClosed(): void {
    processorAttachment(this)?.control.closeWhenFlushed();
  }

  /** Called once when the connection is ready, before any data. Override to set up state. */
  onConnected(): void {}

  /** Called with each whole message, or each raw chunk in raw mode. The buffer is yours to keep. */
  onDataReceived(_data: Uint8Array): void {}

  /**
   * Define it to take each read's whole messages as one batch, with no view per message, instead
   * of `onDataReceived` per message; raw chunks still come to `onDataReceived`. Answer with
   * {@linkcode sendFrames} or `outputMessages`. Keeping the batch pins its read buffers.
   *
   * @example Echo each read's frames as they came
   * ```ts
   * import { type FrameBatch, InlineProcessor } from "@asockio/core";
   * class BatchEcho extends InlineProcessor {
   *   override onFramesReceived(batch: FrameBatch): void {
   *     this.sendFrames(batch);
   *   }
   * }
   * ```
   */
  onFramesReceived?(batch: FrameBatch): void | Promise<void>;

  /**
   * When defined, a message whose frame declares more than `streamThresholdBytes` arrives here as a
   * stream while it arrives, instead of whole to `onDataReceived` (without it, the threshold does not
   * apply to this processor's client). The next messages wait until the stream is read to its end or
   * cancelled; a returned Promise holds them too. See `IoCore.takeMessageStream`.
   *
   * @example Count a large upload without holding it
   * ```ts
   * import { InlineProcessor, type MessageStream } from "@asockio/core";
   * class Upload extends InlineProcessor {
   *   override async onMessageStream(stream: MessageStream): Promise<void> {
   *     let bytes = 0;
   *     for await (const chunk of stream.readable) bytes += chunk.length;
   *     this.outputMessages.push(`received ${bytes} bytes`);
   *   }
   * }
   * ```
   */
  onMessageStream?(stream: MessageStream): void | Promise<void>;

  /**
   * Sends a batch this core made (from `onFramesReceived` or `IoCore.takeFrames`) on this
   * connection as its bytes, after what `outputMessages` holds so far; see `IoCore.sendFrames`.
   *
   * @throws {TypeError} For a batch this core did not make, or one already sent.
   */
  sendFrames(batch: FrameBatch): void {
    const control = processorAttachment(this)?.control;
    if (!control) throw new TypeError("Cannot send frames: the processor is not attached yet");
    control.sendFrames(batch);
  }

  /**
   * Sends a message whose payload comes from `source` on this connection, after what
   * `outputMessages` holds so far; what is sent later follows it. See `IoCore.sendMessageStream`.
   *
   * @returns Resolves once the last byte was handed to the transport; rejects as
   *   `IoCore.sendMessageStream` does (`StreamLengthError`, the connection's error, ...).
   *
   * @example Answer a request with a large generated reply
   * ```ts
   * import { InlineProcessor } from "@asockio/core";
   * class Dump extends InlineProcessor {
   *   override onDataReceived(): void {
   *     const rows = (async function* () {
   *       for (let i = 0; i < 1024; i++) yield new Uint8Array(1024).fill(i);
   *     })();
   *     this.sendMessageStream(rows, 1024 * 1024).catch(() => {}); // the connection closes on failure
   *   }
   * }
   * ```
   */
  sendMessageStream(source: MessageStreamSource, byteLength: number): Promise<void> {
    const control = processorAttachment(this)?.control;
    if (!control) {
      return Promise.reject(new TypeError("Cannot send message stream: the processor is not attached yet"));
    }
    return control.sendMessageStream(source, byteLength);
  }

  /**
   * Counts `bytes` of the input this processor was handed and keeps (a request body it assembles,
   * say) in the core's `limits.inputBytes`, like unread messages. Over that cap, one such connection
   * keeps reading so that it can finish and release, and the others pause until there is room. Call
   * {@linkcode releaseInputBytes} once the bytes are handed on or dropped; whatever is still held
   * when the connection closes is released then. Does nothing before the processor is attached.
   *
   * @throws {RangeError} For a `bytes` that is not a non-negative safe integer.
   *
   * @example Keep a message's pieces until its end marker, counted
   * ```ts
   * import { InlineProcessor } from "@asockio/core";
   * class Collect extends InlineProcessor {
   *   #pieces: Uint8Array[] = [];
   *   #held = 0;
   *   override onDataReceived(data: Uint8Array): void {
   *     this.#pieces.push(data);
   *     this.holdInputBytes(data.length);
   *     this.#held += data.length;
   *     if (data.at(-1) !== 0x0a) return;
   *     this.outputMessages.push(`received ${this.#held} bytes\n`);
   *     this.releaseInputBytes(this.#held);
   *     this.#pieces = [];
   *     this.#held = 0;
   *   }
   * }
   * ```
   */
  holdInputBytes(bytes: number): void {
    processorAttachment(this)?.control.holdInput(checkedByteCount("hold", bytes));
  }

  /**
   * Stops counting `bytes` that {@linkcode holdInputBytes} counted: the processor no longer keeps
   * them. Connections paused by the input cap resume once there is room.
   *
   * @throws {RangeError} For a `bytes` that is not a non-negative safe integer, or more than is held.
   */
  releaseInputBytes(bytes: number): void {
    processorAttachment(this)?.control.holdInput(-checkedByteCount("release", bytes));
  }

  /** Called when everything queued for this connection has been written. */
  onOutputBuffersAreEmpty(): void {}

  /** Called once after the connection has closed, whatever the reason. */
  onConnectionLost(): void {}
}

function checkedByteCount(action: string, bytes: number): number {
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new RangeError(`Cannot ${action} input bytes: ${bytes} is not a non-negative safe integer`);
  }
  return bytes;
}
