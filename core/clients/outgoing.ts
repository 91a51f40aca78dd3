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
import { unrefTimer } from "../timer.ts";

/** What the outgoing clients need from the core around them. */
export interface OutgoingHost {
  /** True once the core is closed. */
  isClosed(): boolean;
  /** Starts a connection attempt for the client. */
  connect(record: ClientRecord): void;
  /** A connection attempt still in its TCP connect was given up (the client was closed, the core shuts down). */
  abandoned(record: ClientRecord): void;
}

/** A pending connection attempt: the TCP connect, then the keyword exchange. */
interface Attempt {
  readonly timer: ReturnType<typeof setTimeout> | undefined;
}

/**
 * The send buffers and retry timers of outgoing clients.
 */
export class OutgoingClients {
  readonly #budget: MemoryBudget;
  readonly #logger: Logger;
  readonly #host: OutgoingHost;
  /** Clients with a retry scheduled: its timer, and when it fires. */
  readonly #retries = new Map<ClientRecord, { timer: ReturnType<typeof setTimeout>; at: number }>();
  /** Clients with a connection attempt under way (connecting, or in the handshake). */
  readonly #attempts = new Map<ClientRecord, Attempt>();

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
    record.keepWhileAway(payloads, bytes, first);
    this.#budget.queued(bytes);
  }

  /** Sends what waited in the send buffer, right after the handshake and before anything newer. */
  flushOutbox(record: ClientRecord, session: Session): void {
    if (record.outboxBytes === 0) return;
    this.#budget.written(record.outboxBytes);
    session.queueOutputs(record.takeOutbox());
  }

  /** Forgets the client's send buffer (a removed client). */
  dropOutbox(record: ClientRecord): void {
    this.#budget.written(record.outboxBytes);
    record.takeOutbox();
  }

  /**
   * A connection was lost, or an attempt failed: schedule the next attempt with backoff, unless
   * reconnecting is off or held, the server refused the handshake with a reason (retrying cannot
   * change its answer), or `maxAttempts` consecutive attempts have failed.
   */
  retryLater(record: ClientRecord, error: Error | undefined, wasEstablished: boolean): void {
    const policy = record.reconnect;
    if (
      !policy || record.removed || this.#host.isClosed() || record.reconnectHeld || this.#retries.has(record)
    ) {
      return;
    }
    if (error instanceof HandshakeRejectedError && error.reason !== "") return record.reconnectsHeld();
    if (!wasEstablished) record.attemptFailed();
    if (record.failures >= policy.maxAttempts) {
      record.reconnectsHeld();
      this.#logger.warn?.(`Giving up on client ${record.id} after ${record.failures} failed attempts`);
      return;
    }
    const delay = backoffDelay(policy, record.failures);
    const timer = setTimeout(() => {
      this.#retries.delete(record);
      if (!this.#host.isClosed() && !record.removed && !record.session && !record.connecting) {
        this.#host.connect(record);
      }
    }, delay);
    // No retry keeps a process alive.
    unrefTimer(timer);
    this.#retries.set(record, { timer, at: Date.now() + delay });
  }

  /**
   * A connection attempt begins; `onTimeout` runs if it has not ended within `timeoutMs` (`0`:
   * never). Returns the attempt, for {@linkcode isCurrent}.
   */
  attemptStarted(record: ClientRecord, timeoutMs: number, onTimeout: () => void): object {
    this.attemptEnded(record);
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (timeoutMs > 0) {
      timer = setTimeout(() => {
        if (this.#attempts.get(record) !== attempt) return;
        this.#attempts.delete(record);
        onTimeout();
      }, timeoutMs);
      unrefTimer(timer);
    }
    const attempt: Attempt = { timer };
    this.#attempts.set(record, attempt);
    return attempt;
  }

  /** True while `attempt` is the client's attempt under way (not timed out, abandoned or ended). */
  isCurrent(record: ClientRecord, attempt: object): boolean {
    return this.#attempts.get(record) === attempt;
  }

  /** The client's attempt ended: connected, failed, or its connection closed. */
  attemptEnded(record: ClientRecord): void {
    const attempt = this.#attempts.get(record);
    if (attempt === undefined) return;
    if (attempt.timer !== undefined) clearTimeout(attempt.timer);
    this.#attempts.delete(record);
  }

  /** When the client's next attempt starts (`Date.now()` time), or `undefined` if none is scheduled. */
  nextAttemptAt(record: ClientRecord): number | undefined {
    return this.#retries.get(record)?.at;
  }

  /** Cancels the client's pending retry, if any. */
  cancelRetry(record: ClientRecord): void {
    const retry = this.#retries.get(record);
    if (retry === undefined) return;
    clearTimeout(retry.timer);
    this.#retries.delete(record);
  }

  /** Cancels every pending retry and attempt timer (the core closes). */
  cancelAll(): void {
    for (const record of [...this.#retries.keys()]) this.cancelRetry(record);
    for (const record of [...this.#attempts.keys()]) this.attemptEnded(record);
  }

  /**
   * This side closes the client's connection: no retry until `reconnectClient`. An attempt still in
   * its TCP connect is given up now (the connection is closed when it arrives); one in its handshake
   * ends when the caller closes its session.
   */
  hold(record: ClientRecord): void {
    record.reconnectsHeld();
    this.cancelRetry(record);
    if (record.connecting && this.#attempts.has(record)) {
      this.attemptEnded(record);
      this.#host.abandoned(record);
    }
  }

  /** Holds every client with a retry or a connection attempt pending (the core shuts down). */
  holdAll(): void {
    for (const record of [...this.#retries.keys(), ...this.#attempts.keys()]) this.hold(record);
  }

  /** The client is removed: no retry, no attempt, no send buffer. */
  removed(record: ClientRecord): void {
    this.cancelRetry(record);
    this.attemptEnded(record);
    this.dropOutbox(record);
  }

  /** Connects the client again now, whatever the backoff, with a fresh attempt count. */
  reconnectNow(record: ClientRecord): void {
    record.reconnectsResumed();
    this.cancelRetry(record);
    if (!record.session && !record.connecting) this.#host.connect(record);
  }
}
