/**
 * {@linkcode MemoryBudget}: the one place that counts input and output bytes against the caps, and
 * pauses, resumes and relieves connections. Nothing is ever dropped: over a cap, the producers of
 * the excess stop being read until the application or the peers have taken enough.
 *
 * @module
 */
import type { Session } from "../connection/session.ts";
import { ProtocolError } from "../errors.ts";
import { describeAddr } from "../wire/ip.ts";
import { Pause } from "../connection/session_phase.ts";

/**
 * Input and output byte counts, the caps, and the connections a cap has paused. The counts change
 * only through the methods that say what happened: {@linkcode MemoryBudget.received},
 * {@linkcode MemoryBudget.stored}, {@linkcode MemoryBudget.released}, {@linkcode MemoryBudget.queued}
 * and {@linkcode MemoryBudget.written}.
 *
 * @example
 * ```ts
 * import { MemoryBudget } from "./memory_budget.ts";
 * const budget = new MemoryBudget(1024, 1024, () => {});
 * budget.received(2048);
 * console.log(budget.overInput); // true
 * ```
 */
export class MemoryBudget {
  #inputBytes = 0;
  #outputBytes = 0;
  /**
   * The connection whose input the application handled last (a processor callback, or the client
   * it read messages from): output queued now is attributed to it for the output cap.
   */
  #producer: Session | undefined = undefined;
  readonly inputCap: number;
  readonly outputCap: number;
  readonly #paused = new Set<Session>();
  /** Connections whose processor holds input it was handed (a body it assembles), and how much. */
  readonly #holders = new Map<Session, number>();
  /** Paused over the input cap while assembling a whole message; resumed one at a time. */
  readonly #assembling = new Set<Session>();
  /**
   * The one connection left reading over the input cap while it assembles a whole message, so that
   * the message completes and can be read: it bounds input at the cap plus one message.
   */
  finishing: Session | undefined = undefined;
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

  /** Unread input held: partial frames, unread messages and their fixed cost. */
  get inputBytes(): number {
    return this.#inputBytes;
  }

  /** Output queued or handed to the transport and not yet written. */
  get outputBytes(): number {
    return this.#outputBytes;
  }

  /** True while unread input exceeds its cap. */
  get overInput(): boolean {
    return this.#inputBytes > this.inputCap;
  }

  /** True while either count exceeds its cap. */
  get overCap(): boolean {
    return this.#inputBytes > this.inputCap || this.#outputBytes > this.outputCap;
  }

  /** True while a cap has paused some connection, or input is over its cap. */
  get readingPaused(): boolean {
    return this.#paused.size > 0 || this.#inputBytes > this.inputCap;
  }

  /** `bytes` of input arrived and are held (in a decoder, a handshake buffer or an inbox). */
  received(bytes: number): void {
    this.#inputBytes += bytes;
  }

  /**
   * `delta` bytes more (or fewer) of a partly received WebSocket message are held for `session`'s
   * connection. Growing, it is pressure as for a TCP connection mid-frame: over the input cap, the
   * connection is paused while its client holds unread messages (see {@linkcode MemoryBudget.pressure}),
   * and resumes once they are read. A message alone over the cap goes on (it is bounded by
   * `maxMessageBytes`), so the client can always finish the message the application waits for.
   */
  assembling(delta: number, session: Session | undefined): void {
    this.#inputBytes += delta;
    if (delta > 0 && session !== undefined) this.pressure(session);
  }

  /** Input counted as `counted` bytes was stored where it costs `cost` (an inbox, with its overhead). */
  stored(counted: number, cost: number): void {
    this.#inputBytes += cost - counted;
  }

  /** `bytes` of input are held no more: read, handed to a processor, or discarded. */
  released(bytes: number): void {
    this.#inputBytes -= bytes;
  }

  /**
   * `bytes` of output were queued; for `target`'s connection, a producer is paused when that goes
   * over the output cap (see {@linkcode MemoryBudget.outputPressure}).
   */
  queued(bytes: number, target?: Session): void {
    this.#outputBytes += bytes;
    if (target !== undefined && this.#outputBytes > this.outputCap) this.outputPressure(target);
  }

  /** `bytes` of output are held no more: written to the kernel, or discarded with their connection. */
  written(bytes: number): void {
    this.#outputBytes -= bytes;
  }

  /** The application is handling `session`'s input now: output queued next is attributed to it. */
  handling(session: Session | undefined): void {
    this.#producer = session;
  }

  /**
   * After a connection delivered data while a cap is exceeded: stop reading from it if it is a
   * producer. Over the input cap, that is a connection whose client holds unread messages (a held
   * unexpected keyword, which the application cannot read, is closed instead: it would pin the cap
   * for good). Over the output cap, it is a connection whose own output is congested (an echo-like
   * peer that does not read). Connections whose data is read promptly, and whose answers drain,
   * keep working.
   */
  pressure(session: Session, missingBytes = 0): void {
    if (session === this.finishing && missingBytes === 0) {
      // Its message is whole: another may finish once it is read (a processor has read it already).
      this.finishing = undefined;
      if ((session.client?.inboxBytes ?? 0) === 0) this.#promote();
    }
    if (session.pausedFor(Pause.budget) || session.closed) return;
    if (this.#inputBytes > this.inputCap) {
      if (session.held && session.held.inboxBytes > 0) {
        // It cannot be read before its keyword is registered, and would pin the cap for good.
        const from = describeAddr(session.remoteAddr);
        const why = "its unread input filled the input cap before its keyword was registered";
        return session.fail(new ProtocolError(`Closing held connection from ${from}: ${why}`));
      }
      if ((session.client?.inboxBytes ?? 0) > 0) return this.#pause(session);
      if (missingBytes > 0) {
        // A whole message being assembled counts as it arrives; one such connection goes on.
        this.finishing ??= session;
        if (session !== this.finishing) {
          this.#assembling.add(session);
          return this.#pause(session);
        }
      }
    }
    if (this.#outputBytes > this.outputCap && this.#congested(session)) this.#pause(session);
  }

  /** `session` delivered input, and misses `missingBytes` of a whole message it assembles: see `pressure`. */
  afterInput(session: Session, missingBytes = 0): void {
    if (this.overCap || this.finishing === session) this.pressure(session, missingBytes);
  }

  /** Output was queued for `target` over the output cap: pause the producer if `target` is congested. */
  outputPressure(target: Session): void {
    const producer = this.#producer;
    if (producer && !producer.closed && !producer.pausedFor(Pause.budget) && this.#congested(target)) {
      this.#pause(producer);
    }
  }

  /**
   * The application read `bytes` of a client's unread input (`session` is its connection, if any):
   * output queued next is attributed to it, and it resumes when its client holds none any more.
   */
  consumed(session: Session | undefined, bytes: number, inboxBytesLeft: number): void {
    this.#producer = session;
    this.#inputBytes -= bytes;
    if (session?.pausedFor(Pause.budget) && inboxBytesLeft === 0 && this.#outputBytes <= this.outputCap) {
      // This client's unread input is gone: it may read again even while others keep the cap exceeded.
      this.#resume(session);
    }
    this.relieve();
  }

  /**
   * `session`'s processor holds `delta` more bytes of the input it was handed (fewer when negative),
   * as `HttpResponder` does with a body it assembles: they count as input. Over the input cap, one
   * holder keeps reading so that its request can complete and release its bytes; the others pause
   * until there is room again (or until they are the only one left). Returns what `session` holds.
   */
  processorHeld(session: Session, delta: number): number {
    const held = (this.#holders.get(session) ?? 0) + delta;
    if (held > 0) this.#holders.set(session, held);
    else this.#holders.delete(session);
    this.#inputBytes += delta;
    if (delta > 0) {
      if (
        this.#inputBytes > this.inputCap && !session.pausedFor(Pause.budget) && this.#holderReading(session)
      ) {
        this.#pause(session);
      }
    } else if (delta < 0) this.relieve();
    return held;
  }

  /** What `session`'s processor holds (see {@linkcode MemoryBudget.processorHeld}). */
  heldBy(session: Session): number {
    return this.#holders.get(session) ?? 0;
  }

  /** A connection closed: it is paused no more, nor a producer, and what its processor held is released. */
  forget(session: Session): void {
    if (this.#producer === session) this.#producer = undefined;
    const held = this.#holders.get(session);
    if (held !== undefined) {
      this.#holders.delete(session);
      this.#inputBytes -= held;
    }
    if (this.finishing === session) this.finishing = undefined;
    this.#paused.delete(session);
    this.#assembling.delete(session);
    this.relieve();
  }

  /** Under both caps again: resume every paused connection, and let parked ones in. */
  relieve(): void {
    if (this.#paused.size && this.#inputBytes <= this.inputCap && this.#outputBytes <= this.outputCap) {
      for (const session of this.#paused) this.#resume(session);
    } else if (this.#holders.size && !this.#holderReading(undefined)) {
      // Still over a cap, every holder paused: the oldest goes on, or none would ever release.
      for (const session of this.#holders.keys()) {
        if (!session.closed && this.#paused.has(session)) {
          this.#resume(session);
          break;
        }
      }
    }
    this.#promote();
    this.#onRelief();
  }

  /** True when a connection whose processor holds input, other than `except`, is reading. */
  #holderReading(except: Session | undefined): boolean {
    for (const session of this.#holders.keys()) {
      if (session !== except && !session.closed && !session.pausedFor(Pause.budget)) return true;
    }
    return false;
  }

  /** Over the input cap with no connection finishing a whole message: let one paused assembler go on. */
  #promote(): void {
    if (this.finishing !== undefined || this.#inputBytes <= this.inputCap) return;
    for (const session of this.#assembling) {
      this.finishing = session;
      return this.#resume(session);
    }
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
    this.#assembling.delete(session);
    session.resumeReading(Pause.budget);
  }
}
