/**
 * {@linkcode IdleSweep}: closes connections that have neither received nor sent anything for
 * `limits.idleTimeoutMs`, with a `TimeoutError`.
 *
 * @module
 */
import { TimeoutError } from "../errors.ts";
import { describeAddr } from "../wire/ip.ts";
import type { Session } from "../connection/session.ts";
import { unrefTimer } from "../timer.ts";

/** A timer that runs while there are connections, and fails the idle ones. */
export class IdleSweep {
  readonly #idleMs: number;
  readonly #sessions: Iterable<Session>;
  #timer: ReturnType<typeof setInterval> | undefined = undefined;

  /** Sweeps `sessions` (a live collection) for silence longer than `idleMs`. */
  constructor(idleMs: number, sessions: Iterable<Session>) {
    this.#idleMs = idleMs;
    this.#sessions = sessions;
  }

  /** Starts sweeping, if not already (a connection opened). */
  start(): void {
    if (this.#timer !== undefined) return;
    const idle = this.#idleMs;
    this.#timer = setInterval(() => {
      const now = Date.now();
      for (const session of this.#sessions) {
        // Silence the core caused (a memory cap paused reading, output still in flight) is not idleness.
        if (now - session.lastActivity < idle || session.output.inflightBytes > 0 || session.readingPaused) {
          continue;
        }
        session.fail(
          new TimeoutError(
            `Closing idle connection from ${describeAddr(session.remoteAddr)} after ${idle} ms`,
          ),
        );
      }
    }, Math.max(10, Math.min(idle / 4, 1000)));
    unrefTimer(this.#timer);
  }

  /** Stops sweeping (no connection left, or the core closes). */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
