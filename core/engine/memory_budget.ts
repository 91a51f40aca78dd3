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
  /**
   * The one connection that goes on reading over the input cap while it is partway through a unit
   * that frees input once whole: a framed or WebSocket message being assembled, or a body its
   * processor holds. It bounds input at the cap plus one unit, and lets that unit complete.
   */
  #finishing: Session | undefined = undefined;
  /** Paused over the input cap partway through a unit, in arrival order: they finish one at a time. */
  readonly #waiting = new Set<Session>();
  /** The last to finish, while its whole unit waits unread: the next turn starts once it is read. */
  #finishedUnread: Session | undefined = undefined;
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
   * connection. Growing, it is pressure as for a TCP connection mid-frame (see
   * {@linkcode MemoryBudget.pressure}): over the input cap, one connection finishes its message and
   * the others partway through one wait their turn.
   */
  assembling(delta: number, session: Session | undefined): void {
    this.#inputBytes += delta;
    if (session !== undefined) this.#press(session, delta > 0);
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
   * for good). A connection partway through a unit that frees input once whole (`missingBytes` of a
   * framed message still to come, a WebSocket message, a body its processor holds) goes on only if
   * it is the one finishing: the others wait and take turns, so input stays within the cap plus one
   * unit. Over the output cap, it is a connection whose own output is congested (an echo-like peer
   * that does not read). Connections whose data is read promptly, and whose answers drain, keep
   * working.
   */
  pressure(session: Session, missingBytes = 0): void {
    this.#press(session, missingBytes > 0);
  }

  /** {@linkcode MemoryBudget.pressure}, where `midUnit` says a message being assembled is not whole yet. */
  #press(session: Session, midUnit: boolean): void {
    // A body its processor holds is a unit in progress too, whatever the reads carry.
    midUnit ||= this.#holders.has(session);
    if (session === this.#finishing && !midUnit) {
      // Its unit is whole: another may finish once it is read (a processor has read it already).
      this.#finishing = undefined;
      if ((session.client?.inboxBytes ?? 0) === 0) this.#promote();
      else this.#finishedUnread = session;
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
      if (midUnit) {
        if (this.#finishing === undefined && !this.#lastUnitUnread()) this.#finishing = session;
        if (session !== this.#finishing) {
          this.#waiting.add(session);
          return this.#pause(session);
        }
      }
    }
    if (this.#outputBytes > this.outputCap && this.#congested(session)) this.#pause(session);
  }

  /** The connection finishing a unit over the input cap, if any (see {@linkcode MemoryBudget.pressure}). */
  get finishing(): Session | undefined {
    return this.#finishing;
  }

  /** `session` delivered input, and misses `missingBytes` of a whole message it assembles: see `pressure`. */
  afterInput(session: Session, missingBytes = 0): void {
    if (this.overCap || this.#finishing === session) this.#press(session, missingBytes > 0);
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
   * as `HttpResponder` does with a body it assembles: they count as input, and the body is a unit in
   * progress until the processor holds nothing (see {@linkcode MemoryBudget.pressure}: over the input
   * cap one connection finishes its unit, the others wait). Returns what `session` holds.
   */
  processorHeld(session: Session, delta: number): number {
    const held = (this.#holders.get(session) ?? 0) + delta;
    if (held > 0) this.#holders.set(session, held);
    else this.#holders.delete(session);
    this.#inputBytes += delta;
    if (delta > 0) this.#press(session, true);
    else if (delta < 0) {
      if (held <= 0) this.#press(session, false);
      this.relieve();
    }
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
    if (this.#finishing === session) this.#finishing = undefined;
    if (this.#finishedUnread === session) this.#finishedUnread = undefined;
    this.#paused.delete(session);
    this.#waiting.delete(session);
    this.relieve();
  }

  /** Under both caps again: resume every paused connection, and let parked ones in. */
  relieve(): void {
    if (this.#paused.size && this.#inputBytes <= this.inputCap && this.#outputBytes <= this.outputCap) {
      for (const session of this.#paused) this.#resume(session);
    }
    this.#promote();
    this.#onRelief();
  }

  /**
   * Over the input cap: the connection finishing a unit goes on (resumed if only output congestion
   * paused it and that has cleared), or, with none, the longest waiting starts finishing its own.
   */
  #promote(): void {
    if (this.#inputBytes <= this.inputCap) return;
    const finishing = this.#finishing;
    if (finishing !== undefined) {
      if (
        finishing.pausedFor(Pause.budget) && !finishing.closed && this.#outputBytes <= this.outputCap &&
        (finishing.client?.inboxBytes ?? 0) === 0
      ) this.#resume(finishing);
      return;
    }
    if (this.#lastUnitUnread()) return;
    for (const session of this.#waiting) {
      this.#finishing = session;
      return this.#resume(session);
    }
  }

  /** True while the last unit finished over the cap waits unread: the next turn starts once it is read. */
  #lastUnitUnread(): boolean {
    const unread = this.#finishedUnread;
    if (unread === undefined) return false;
    if (!unread.closed && (unread.client?.inboxBytes ?? 0) > 0) return true;
    this.#finishedUnread = undefined;
    return false;
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
    this.#waiting.delete(session);
    session.resumeReading(Pause.budget);
  }
}
