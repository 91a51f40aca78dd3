/**
 * The class-inheritance API: subclass {@linkcode InlineProcessor} and let the core call you.
 *
 * @module
 */
import type { Addr } from "../transports/types.ts";

/** A listener as the core reports it to rules, processors and `getClientInfo`. */
export interface ListenerInfo {
  /** The listener's index in `IoCoreOptions.listeners`, stable for the core's life. */
  readonly id: number;
  /** The name given in the listener options, or `"tcp:<host>:<port>"` / `"unix:<path>"`. */
  readonly name: string;
  /** The bound address, with `port: 0` resolved. */
  readonly addr: Addr;
}

/** What a processor knows of its connection. Set by the core before `onConnected`. */
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

/** The hooks the core installs in a processor (exported for the core; not for applications). */
export interface ProcessorControl {
  /** Switches the connection's mode. */
  setRaw(raw: boolean): void;
  /** Closes after the current callback. */
  closeNow(): void;
  /** Closes once everything queued is written. */
  closeWhenFlushed(): void;
  /** The connection's current mode. */
  isRaw(): boolean;
}

/** Symbol under which the core attaches itself to a processor instance. */
export const attachProcessor: unique symbol = Symbol("asockio.attachProcessor");

/** A processor class the core can instantiate, one instance per connection. */
export type InlineProcessorClass = new () => InlineProcessor;

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
export class InlineProcessor {
  /** Messages (or raw chunks in raw mode) to send; the core empties it after each callback. */
  readonly outputMessages: Array<Uint8Array | string> = [];
  #context: ProcessorContext | undefined;
  #control: ProcessorControl | undefined;

  /** Called by the core once, before any other callback. Not for application use. */
  [attachProcessor](context: ProcessorContext, control: ProcessorControl): void {
    this.#context = context;
    this.#control = control;
  }

  #ctx(): ProcessorContext {
    if (!this.#context) {
      throw new TypeError("Cannot read processor context: the processor is not attached yet");
    }
    return this.#context;
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
    return this.#control?.isRaw() ?? false;
  }

  /**
   * Switches between framed and raw mode. Bytes not yet delivered are interpreted under the new
   * mode, starting with the next unread byte.
   */
  setIsInRawMode(raw: boolean): void {
    this.#control?.setRaw(raw);
  }

  /** Closes the connection as soon as the current callback returns; unsent output is discarded. */
  markSocketAsShouldBeClosedImmediately(): void {
    this.#control?.closeNow();
  }

  /** Closes the connection once everything queued (including `outputMessages`) has been written. */
  markSocketAsReadyToBeClosed(): void {
    this.#control?.closeWhenFlushed();
  }

  /** Called once when the connection is ready, before any data. Override to set up state. */
  onConnected(): void {}

  /** Called with each whole message, or each raw chunk in raw mode. The buffer is yours to keep. */
  onDataReceived(_data: Uint8Array): void {}

  /** Called when everything queued for this connection has been written. */
  onOutputBuffersAreEmpty(): void {}

  /** Called once after the connection has closed, whatever the reason. */
  onConnectionLost(): void {}
}
