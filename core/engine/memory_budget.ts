/**
 * {@linkcode MemoryBudget}: the one place that counts input and output bytes against the caps, and
 * pauses, resumes and relieves connections. Nothing is ever dropped: over a cap, the producers of
 * the excess stop being read until the application or the peers have taken enough.
 *
 * @module
 */
import { Pause, type Session } from "../connection/session.ts";

/**
 * Input and output byte counts, the caps, and the connections a cap has paused.
 *
 * @example
 * ```ts
 * import { MemoryBudget } from "./memory_budget.ts";
 * const budget = new MemoryBudget(1024, 1024, () => {});
 * budget.inputBytes += 2048;
 * console.log(budget.overInput); // true
 * ```
 */
export class MemoryBudget {
  /** Unread input held: partial frames, unread messages and their fixed cost. */
  inputBytes = 0;
  /** Output queued or handed to the transport and not yet written. */
  outputBytes = 0;
  /**
   * The connection whose input the application handled last (a processor callback, or the client
   * it read messages from): output queued now is attributed to it for the output cap.
   */
  producer: Session | undefined = undefined;
  readonly inputCap: number;
  readonly outputCap: number;
  readonly #paused = new Set<Session>();
  readonly #onRelief: () => void;

  /**
   * @param inputCap `limits.inputBytes`.
   * @param outputCap `limits.outputBytes`.
   * @param onRelief Called whenever input may have room again (parked connections can be admitted).
   */
  constructor(inputCap: number, outputCap: number, onRelief: () => void) {
    this.inputCap = inputCap;
    this.outputCap = outputCap;
    this.#onRelief = onRelief;
  }

  /** True while unread input exceeds its cap. */
  get overInput(): boolean {
    return this.inputBytes > this.inputCap;
  }

  /** True while a cap has paused some connection, or input is over its cap. */
  get readingPaused(): boolean {
    return this.#paused.size > 0 || this.inputBytes > this.inputCap;
  }

  /**
   * After a connection delivered data while a cap is exceeded: stop reading from it if it is a
   * producer. Over the input cap, that is a connection whose client holds unread messages (a held
   * unexpected keyword, which the application cannot read, is closed instead: it would pin the cap
   * for good). Over the output cap, it is a connection whose own output is congested (an echo-like
   * peer that does not read). Connections whose data is read promptly, and whose answers drain,
   * keep working.
   */
  pressure(session: Session): void {
    if (session.pausedFor(Pause.budget) || session.closed) return;
    if (this.inputBytes > this.inputCap) {
      if (session.held && session.held.inboxBytes > 0) {
        session.failHeldOverCap();
        return;
      }
      if ((session.client?.inboxBytes ?? 0) > 0) return this.#pause(session);
    }
    if (this.outputBytes > this.outputCap && this.#congested(session)) this.#pause(session);
  }

  /** Output was queued for `target` over the output cap: pause the producer if `target` is congested. */
  outputPressure(target: Session): void {
    const producer = this.producer;
    if (producer && !producer.closed && !producer.pausedFor(Pause.budget) && this.#congested(target)) {
      this.#pause(producer);
    }
  }

  /** A client's unread input was read: resume its connection when it holds none any more. */
  consumed(session: Session | undefined, inboxBytesLeft: number): void {
    if (session?.pausedFor(Pause.budget) && inboxBytesLeft === 0 && this.outputBytes <= this.outputCap) {
      // This client's unread input is gone: it may read again even while others keep the cap exceeded.
      this.#resume(session);
    }
    this.relieve();
  }

  /** A connection closed: it is paused no more. */
  forget(session: Session): void {
    this.#paused.delete(session);
    this.relieve();
  }

  /** Under both caps again: resume every paused connection, and let parked ones in. */
  relieve(): void {
    if (this.#paused.size && this.inputBytes <= this.inputCap && this.outputBytes <= this.outputCap) {
      for (const session of this.#paused) this.#resume(session);
    }
    this.#onRelief();
  }

  /** Output queued for this connection beyond its fair share of the output cap. */
  #congested(session: Session): boolean {
    return session.queuedOutputBytes > Math.max(64 * 1024, this.outputCap / 16);
  }

  #pause(session: Session): void {
    this.#paused.add(session);
    session.pauseReading(Pause.budget);
  }

  #resume(session: Session): void {
    this.#paused.delete(session);
    session.resumeReading(Pause.budget);
  }
}
