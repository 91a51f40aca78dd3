/**
 * {@linkcode OutgoingClients}: what the core does for clients it connects out to, between their
 * connections: the send buffer while they are away, and the retries with backoff.
 *
 * @module
 */
import type { ClientRecord } from "./client_registry.ts";
import { FRAME_HEADER_BYTES } from "../wire/codec.ts";
import { ConnectionClosedError, HandshakeRejectedError, SendBufferFullError } from "../errors.ts";
import type { MemoryBudget } from "../engine/memory_budget.ts";
import type { Logger } from "../options.ts";
import { backoffDelay } from "./reconnect.ts";
import type { Session } from "../connection/session.ts";
import type { ClientId } from "../types.ts";

/** What the outgoing clients need from the core around them. */
export interface OutgoingHost {
  /** True once the core is closed. */
  isClosed(): boolean;
  /** Starts a connection attempt for the client. */
  connect(record: ClientRecord): void;
}

/**
 * The send buffers and retry timers of outgoing clients.
 *
 * @example
 * ```ts
 * import { OutgoingClients } from "./outgoing.ts";
 * // new OutgoingClients(budget, logger, { isClosed: () => false, connect: (record) => {} })
 * ```
 */
export class OutgoingClients {
  readonly #budget: MemoryBudget;
  readonly #logger: Logger;
  readonly #host: OutgoingHost;
  /** Clients with a retry scheduled. */
  readonly #retrying = new Set<ClientRecord>();

  /** Buffered bytes count as queued output in `budget`; give-ups are reported to `logger.warn`. */
  constructor(budget: MemoryBudget, logger: Logger, host: OutgoingHost) {
    this.#budget = budget;
    this.#logger = logger;
    this.#host = host;
  }

  /**
   * Keeps whole messages for a client that is on its way back, up to its `bufferBytes`; throws
   * `SendBufferFullError` past that (nothing of the call is kept), and `ConnectionClosedError` for a
   * client that will not reconnect by itself.
   */
  sendWhileAway(
    id: ClientId,
    record: ClientRecord | undefined,
    payloads: Uint8Array[],
    action: string,
  ): void {
    if (!record?.reconnect || record.removed || record.reconnectHeld) {
      throw new ConnectionClosedError(`Cannot ${action}: client ${id} has no open connection`);
    }
    let bytes = 0;
    for (const payload of payloads) bytes += payload.length + FRAME_HEADER_BYTES;
    const room = record.reconnect.bufferBytes - record.outboxBytes;
    if (bytes > room) {
      throw new SendBufferFullError(
        `Cannot ${action}: client ${id} is not connected, and its send buffer has ${room} bytes left for ${bytes}`,
      );
    }
    this.toOutbox(record, payloads, false);
  }

  /** Adds messages to the client's send buffer (at its head for the unsent rest of a lost connection). */
  toOutbox(record: ClientRecord, payloads: Uint8Array[], first: boolean): void {
    let bytes = 0;
    for (const payload of payloads) bytes += payload.length + FRAME_HEADER_BYTES;
    record.outbox = first ? payloads.concat(record.outbox) : record.outbox.concat(payloads);
    record.outboxBytes += bytes;
    this.#budget.queued(bytes);
  }

  /** Sends what waited in the send buffer, right after the handshake and before anything newer. */
  flushOutbox(record: ClientRecord, session: Session): void {
    if (!record.outbox.length) return;
    const outbox = record.outbox;
    this.dropOutbox(record);
    session.queueOutputs(outbox);
  }

  /** Forgets the client's send buffer (a removed client). */
  dropOutbox(record: ClientRecord): void {
    this.#budget.written(record.outboxBytes);
    record.outbox = [];
    record.outboxBytes = 0;
  }

  /**
   * A connection was lost, or an attempt failed: schedule the next attempt with backoff, unless
   * reconnecting is off or held, the server refused the handshake with a reason (retrying cannot
   * change its answer), or `maxAttempts` consecutive attempts have failed.
   */
  retryLater(record: ClientRecord, error: Error | undefined, wasEstablished: boolean): void {
    const policy = record.reconnect;
    if (!policy || record.removed || this.#host.isClosed() || record.reconnectHeld || record.retryTimer) {
      return;
    }
    if (error instanceof HandshakeRejectedError && error.reason !== "") {
      record.reconnectHeld = true;
      return;
    }
    if (!wasEstablished) record.failures++;
    if (record.failures >= policy.maxAttempts) {
      record.reconnectHeld = true;
      this.#logger.warn?.(`Giving up on client ${record.id} after ${record.failures} failed attempts`);
      return;
    }
    const delay = backoffDelay(policy, record.failures);
    record.retryAt = Date.now() + delay;
    record.retryTimer = setTimeout(() => {
      record.retryTimer = undefined;
      this.#retrying.delete(record);
      if (!this.#host.isClosed() && !record.removed && !record.session && !record.connecting) {
        this.#host.connect(record);
      }
    }, delay);
    // No retry keeps a process alive.
    (record.retryTimer as { unref?: () => void }).unref?.();
    this.#retrying.add(record);
  }

  /** Cancels the client's pending retry, if any. */
  cancelRetry(record: ClientRecord): void {
    if (record.retryTimer !== undefined) clearTimeout(record.retryTimer);
    record.retryTimer = undefined;
    this.#retrying.delete(record);
  }

  /** Cancels every pending retry (the core closes). */
  cancelAll(): void {
    for (const record of [...this.#retrying]) this.cancelRetry(record);
  }

  /** This side closes the client's connection: no retry until `reconnectClient`. */
  hold(record: ClientRecord): void {
    record.reconnectHeld = true;
    this.cancelRetry(record);
  }

  /** Holds every client with a retry pending (the core shuts down). */
  holdAll(): void {
    for (const record of [...this.#retrying]) this.hold(record);
  }

  /** Connects the client again now, whatever the backoff, with a fresh attempt count. */
  reconnectNow(record: ClientRecord): void {
    record.reconnectHeld = false;
    record.failures = 0;
    this.cancelRetry(record);
    if (!record.session && !record.connecting) this.#host.connect(record);
  }
}
