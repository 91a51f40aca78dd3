/**
 * {@linkcode HalfOpen}: the rule for an accepted connection whose peer ended its side (half-close).
 * It stays writable, so a slow application can still answer, until everything that arrived has been
 * read, nothing is queued, and `limits.halfOpenTimeoutMs` has passed; then it closes.
 *
 * @module
 */
import type { Deadline } from "./session_phase.ts";

/** What the half-open rule needs of its session. */
export interface HalfOpenSession {
  /** True when everything that arrived was read and everything queued was written. */
  readonly quiet: boolean;
  /** Closes once what is queued is written. */
  closeWhenFlushed(): void;
  /** Runs `step`; an exception closes the session, as an internal error. */
  guarded(step: () => void): void;
}

/**
 * The half-open time of one session, from the peer's end on.
 */
export class HalfOpen {
  readonly #session: HalfOpenSession;
  readonly #deadline: Deadline;
  /** The time is up: the session closes as soon as it is quiet. */
  #due = false;

  /** The rule for `session`, timed by the session's own `deadline`. */
  constructor(session: HalfOpenSession, deadline: Deadline) {
    this.#session = session;
    this.#deadline = deadline;
  }

  /**
   * The peer ended its side: the time starts. With `now` (a processor, which answers in its
   * callbacks) there is no time to wait for.
   */
  start(ms: number, now: boolean): void {
    if (now) {
      this.#due = true;
      return this.check();
    }
    this.#deadline.set(ms, () => {
      this.#due = true;
      this.#session.guarded(() => this.check());
    });
  }

  /** Closes the session once its time is up and it is quiet. */
  check(): void {
    if (this.#due && this.#session.quiet) this.#session.closeWhenFlushed();
  }

  /** The application read input: checked after the current task, so an answer sent right after still goes out. */
  read(): void {
    if (this.#due) queueMicrotask(() => this.#session.guarded(() => this.check()));
  }
}
