/**
 * The processor contract: what the core calls on a per-connection processor, and what it gives the
 * processor to act on its connection. `processors/inline_processor.ts` implements it; the core
 * never imports that file.
 *
 * @module
 */
import type { Addr } from "../transports/types.ts";
import type { ListenerInfo, MessageStream } from "./types.ts";
import type { MessageStreamSource } from "./connection/message_stream_send.ts";
import type { FrameBatch } from "./wire/frame_batch.ts";

/**
 * What a processor knows of its connection. Set by the core before `onConnected`.
 *
 * @example
 * ```ts
 * import type { ProcessorContext } from "@asockio/core";
 * const where = (c: ProcessorContext) => c.listener?.name ?? "outgoing";
 * ```
 */
export interface ProcessorContext {
  /** The client this connection belongs to. */
  readonly clientId: number;
  /** The client's keyword (generated for unknown clients). */
  readonly keyword: Uint8Array;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** The listener it came through, or `undefined` for an outgoing connection. */
  readonly listener: ListenerInfo | undefined;
}

/** The hooks the core installs in a processor. Internal: not exported from `mod.ts`. */
export interface ProcessorControl {
  /** Switches the connection's mode. */
  setRaw(raw: boolean): void;
  /** Closes after the current callback; its output is discarded. */
  closeNow(): void;
  /** Closes once everything queued is written, the current callback's output included. */
  closeWhenFlushed(): void;
  /** The connection's current mode. */
  isRaw(): boolean;
  /** Sends a batch on this connection, after what `outputMessages` holds. */
  sendFrames(batch: FrameBatch): void;
  /** Sends a message stream on this connection, after what `outputMessages` holds. */
  sendMessageStream(source: MessageStreamSource, byteLength: number): Promise<void>;
  /**
   * The processor holds `delta` more bytes of its input (fewer when negative), counted as input in
   * `limits.inputBytes`; returns what it holds now. A connection's holding is released when it closes.
   */
  holdInput(delta: number): number;
}

/**
 * What the core calls on a processor instance, one per connection. `InlineProcessor` implements it;
 * subclass that rather than implementing this yourself.
 *
 * @example
 * ```ts
 * import type { Processor } from "@asockio/core";
 * const count = (p: Processor) => p.outputMessages.length;
 * ```
 */
export interface Processor {
  /**
   * Messages to send (a `string` goes out as UTF-8); the core empties it after each callback. Any
   * other item is a processor error: what came before it is sent, a `CallbackError` is logged,
   * and the connection closes.
   */
  readonly outputMessages: Array<Uint8Array | string>;
  /** The connection is ready; a returned Promise holds the connection's input until it settles. */
  onConnected(): void | Promise<void>;
  /** One whole message, or one raw chunk in raw mode; a returned Promise holds the next ones. */
  onDataReceived(data: Uint8Array): void | Promise<void>;
  /**
   * When defined: every whole message of one read, as a batch, instead of `onDataReceived` per
   * message (raw chunks still go to `onDataReceived`); a returned Promise holds the next ones.
   */
  onFramesReceived?(batch: FrameBatch): void | Promise<void>;
  /**
   * When defined: a message over `streamThresholdBytes`, as a stream while it arrives; the next
   * messages wait until it is read to its end or cancelled. Without it, messages stay whole.
   */
  onMessageStream?(stream: MessageStream): void | Promise<void>;
  /** Everything queued has been written. */
  onOutputBuffersAreEmpty(): void;
  /** The connection has closed. */
  onConnectionLost(): void;
}

/** What the core attached to a processor. Internal. */
export interface ProcessorAttachment {
  readonly context: ProcessorContext;
  readonly control: ProcessorControl;
}

// Kept beside the processor rather than on it, so no internal hook shows in the public API.
const attachments = new WeakMap<Processor, ProcessorAttachment>();

/** Attaches the core to a processor instance, once, before any callback. Internal. */
export function attachProcessor(processor: Processor, attachment: ProcessorAttachment): void {
  attachments.set(processor, attachment);
}

/** What the core attached to `processor`, or `undefined` before it was attached. Internal. */
export function processorAttachment(processor: Processor): ProcessorAttachment | undefined {
  return attachments.get(processor);
}

/**
 * A processor class the core can instantiate, one instance per connection.
 *
 * @example
 * ```ts
 * import { InlineProcessor, type InlineProcessorClass } from "@asockio/core";
 * class Echo extends InlineProcessor {}
 * const processorClass: InlineProcessorClass = Echo;
 * ```
 */
export type InlineProcessorClass = new () => Processor;
