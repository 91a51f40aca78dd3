/**
 * {@linkcode RecordExtras}: the part of a `ClientRecord` that most clients never need, made when first
 * written, so an idle connection's record stays small.
 *
 * @module
 */
import type { Addr } from "../../transports/types.ts";
import type { ListenerInfo, MessageStream } from "../types.ts";
import type { InlineProcessorClass } from "../processor.ts";

/**
 * What a client needs only at times: an outgoing client's attempts, sends kept while away, its last error,
 * a PROXY balancer's address, a streamed message not taken yet, a processor class set later, whether it was
 * removed, and its last connection's addresses once that closed.
 *
 * @example
 * ```ts
 * import { RecordExtras } from "./record_extras.ts";
 * const extras = new RecordExtras();
 * extras.failures++;
 * console.log(extras.failures, extras.outbox); // 1 undefined
 * ```
 */
export class RecordExtras {
  /** An outgoing client's connect is under way (before its handshake). */
  connecting = false;
  /** Consecutive failed connection attempts. */
  failures = 0;
  /** True when no attempt is to be made until `reconnectClient`: closed by this side, refused, or given up. */
  reconnectHeld = false;
  /** Messages accepted while not connected, sent right after the next handshake. */
  outbox: Uint8Array[] | undefined = undefined;
  /** Their bytes, as counted against `outputBytes` (with a frame header each). */
  outboxBytes = 0;
  /** Why the client's last connection or attempt ended, if it was an error. */
  lastError: Error | undefined = undefined;
  /** The balancer's address, when the connection came through a trusted PROXY protocol source. */
  proxyAddr: Addr | undefined = undefined;
  /** The streamed message after the unread ones, until the application takes it. */
  stream: MessageStream | undefined = undefined;
  /** A processor class set after registering (`processorChanged`), instead of the registered one. */
  processorClass: InlineProcessorClass | undefined = undefined;
  /** Set once the client was removed. */
  removed = false;
  /** The listener and peer of the client's last connection, kept when it closes (read from it till then). */
  listener: ListenerInfo | undefined = undefined;
  remoteAddr: Addr | undefined = undefined;
}
