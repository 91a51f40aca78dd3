/**
 * Progress lines for the long runs (`bench/run.ts`, `scripts/fuzz.ts`, `flood.ts`, `soak.ts`, `churn.ts`):
 * one line per step with the elapsed time and the estimated time left, printed only to a terminal.
 *
 * @module
 */
import process from "node:process";

/** Options of {@linkcode Progress}. */
export interface ProgressOptions {
  /**
   * Whether lines are printed at all. Progress is for a person watching: redirected to a file or a pipe
   * (CI, `npm test`), the run stays quiet and prints only its report.
   * @default process.stdout.isTTY === true
   */
  enabled?: boolean;
  /**
   * Where the lines go.
   * @default console.log
   */
  write?: (line: string) => void;
  /**
   * The clock, in milliseconds.
   * @default performance.now
   */
  now?: () => number;
}

/**
 * Formats a duration for a progress line: `42s`, `3m05s`, `1h02m`.
 *
 * @example
 * ```ts
 * formatElapsed(185_000); // "3m05s"
 * ```
 */
export function formatElapsed(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, "0")}m`;
}

/**
 * Tells how far a run of `total` units (cases, bytes, messages, benchmark steps) is: each `step` prints
 * `[1m02s elapsed, ~3m10s left, 25%] message`, the time left extrapolated from the pace so far.
 *
 * @example
 * ```ts
 * const progress = new Progress(1_000_000);
 * progress.step(250_000, "250000 cases"); // [1m02s elapsed, ~3m06s left, 25%] 250000 cases
 * ```
 */
export class Progress {
  readonly #total: number;
  readonly #enabled: boolean;
  readonly #write: (line: string) => void;
  readonly #now: () => number;
  readonly #started: number;

  /** Starts the clock for a run of `total` units. */
  constructor(total: number, options: ProgressOptions = {}) {
    this.#total = total;
    this.#enabled = options.enabled ?? process.stdout.isTTY === true;
    this.#write = options.write ?? ((line) => console.log(line));
    this.#now = options.now ?? (() => performance.now());
    this.#started = this.#now();
  }

  /** Whether lines are printed. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** Milliseconds since the run started. */
  get elapsedMs(): number {
    return this.#now() - this.#started;
  }

  /** The line for `done` units so far: elapsed time, time left (once anything is done), share done. */
  line(done: number, message: string): string {
    const elapsed = this.elapsedMs;
    const share = this.#total > 0 ? Math.min(1, done / this.#total) : 0;
    const left = share > 0 ? `~${formatElapsed((elapsed * (1 - share)) / share)} left` : "estimating";
    return `[${formatElapsed(elapsed)} elapsed, ${left}, ${Math.floor(share * 100)}%] ${message}`;
  }

  /** Prints {@linkcode Progress.line} when enabled. */
  step(done: number, message: string): void {
    if (this.#enabled) this.#write(this.line(done, message));
  }

  /** Prints `[elapsed] message` when enabled: a detail inside a step. */
  note(message: string): void {
    if (this.#enabled) this.#write(`[${formatElapsed(this.elapsedMs)}] ${message}`);
  }
}
