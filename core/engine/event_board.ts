/**
 * {@linkcode EventBoard}: the event sets gathered between two `ioIteration` calls, and the one
 * waiter that such a call leaves.
 *
 * @module
 */
import type { ClientId, IoIterationResult } from "../types.ts";

/** The mutable sets behind one {@linkcode IoIterationResult}. */
export type EventSets = { [K in keyof IoIterationResult]: Set<ClientId> };

function newEventSets(): EventSets {
  return {
    newlyConnectedExpectedClients: new Set(),
    newlyConnectedUnknownClients: new Set(),
    clientsWithDisconnectedConnection: new Set(),
    clientsHaveDataToRead: new Set(),
    clientsHaveMessageStream: new Set(),
    clientsWithEmptyOutputFifo: new Set(),
  };
}

/**
 * Collects client ids per kind of event, and wakes the pending `ioIteration` once the current I/O
 * callback has finished, so that its events arrive together.
 *
 * @example
 * ```ts
 * import { EventBoard } from "./event_board.ts";
 * const board = new EventBoard(() => true);
 * board.emit(board.events.newlyConnectedExpectedClients, 1);
 * const result = await board.wait(100);
 * console.log(result.newlyConnectedExpectedClients.has(1)); // true
 * ```
 */
export class EventBoard {
  /** The sets being filled; replaced by a fresh set of sets when taken. */
  events: EventSets = newEventSets();
  #count = 0;
  #waiter: ((result: IoIterationResult) => void) | undefined = undefined;
  #cancelTimer: (() => void) | undefined = undefined;
  #wakeScheduled = false;
  readonly #hasUnread: (id: ClientId) => boolean;
  readonly #streamIsNext: (id: ClientId) => boolean;

  /**
   * @param hasUnread Whether a client still has unread data when the events are taken: one
   *   reported as having data must still have some when the result is read.
   * @param streamIsNext Whether a client's next unread item is still a stream not taken.
   */
  constructor(hasUnread: (id: ClientId) => boolean, streamIsNext: (id: ClientId) => boolean = () => false) {
    this.#hasUnread = hasUnread;
    this.#streamIsNext = streamIsNext;
  }

  /** True while an `ioIteration` call is waiting. */
  get waiting(): boolean {
    return this.#waiter !== undefined;
  }

  /** Adds `id` to `set` (one of {@linkcode events}), and wakes the waiter soon. */
  emit(set: Set<ClientId>, id: ClientId): void {
    if (set.has(id)) return;
    set.add(id);
    this.#count++;
    if (this.#waiter && !this.#wakeScheduled) {
      this.#wakeScheduled = true;
      queueMicrotask(this.#wake);
    }
  }

  #wake = (): void => {
    this.#wakeScheduled = false;
    this.resolve();
  };

  /** Forgets every event of a client the application never heard of. */
  forgetUnseen(id: ClientId): void {
    const events = this.events;
    if (!events.newlyConnectedUnknownClients.has(id)) return;
    for (const set of Object.values(events) as Set<ClientId>[]) {
      if (set.delete(id)) this.#count--;
    }
  }

  /**
   * Resolves with the pending events at once if there are some; otherwise as soon as one arrives,
   * or after `timeoutMs` (`Infinity`: no timeout; `0`: after one turn of the event loop, so a tight
   * loop cannot starve I/O). An aborted `signal` rejects with its reason. One waiter at a time.
   */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<IoIterationResult> {
    if (this.#waiter) throw new TypeError("Cannot wait in ioIteration: another call is already waiting");
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.#count > 0) return Promise.resolve(this.take());
    return new Promise((resolve, reject) => {
      this.#waiter = resolve;
      let cancelTimer: (() => void) | undefined;
      if (timeoutMs === Infinity) cancelTimer = undefined;
      else if (timeoutMs > 0) {
        const timer = setTimeout(() => this.resolve(), timeoutMs);
        cancelTimer = () => clearTimeout(timer);
      } else {
        const immediate = setImmediate(() => this.resolve());
        cancelTimer = () => clearImmediate(immediate);
      }
      if (!signal) {
        this.#cancelTimer = cancelTimer;
        return;
      }
      const onAbort = () => {
        this.#waiter = undefined;
        this.#cancelTimer?.();
        this.#cancelTimer = undefined;
        reject(signal.reason);
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.#cancelTimer = () => {
        cancelTimer?.();
        signal.removeEventListener("abort", onAbort);
      };
    });
  }

  /** Hands the pending events (possibly none) to the waiter, if there is one. */
  resolve(): void {
    const waiter = this.#waiter;
    if (!waiter) return;
    this.#waiter = undefined;
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
    waiter(this.take());
  }

  /** Takes the pending events and starts a fresh set of sets. */
  take(): IoIterationResult {
    const events = this.events;
    this.events = newEventSets();
    this.#count = 0;
    for (const id of events.clientsHaveDataToRead) {
      if (!this.#hasUnread(id)) events.clientsHaveDataToRead.delete(id);
    }
    for (const id of events.clientsHaveMessageStream) {
      if (!this.#streamIsNext(id)) events.clientsHaveMessageStream.delete(id);
    }
    return events;
  }
}
