/**
 * Process monitors for the robustness workloads: crashes (uncaught errors), RSS and open descriptors.
 *
 * @module
 */
import process from "node:process";
import { readdirSync } from "node:fs";

/**
 * Counts `uncaughtException` and `unhandledRejection` events (through `node:process`, which Deno,
 * Bun and Node all support) while installed. Installing a listener also keeps the process alive,
 * which is what a crash counter needs.
 *
 * @example
 * ```ts
 * const crashes = CrashMonitor.install();
 * // ... run the workload ...
 * crashes.dispose();
 * console.log(crashes.total, crashes.samples);
 * ```
 */
export class CrashMonitor {
  /** Uncaught exceptions seen. */
  uncaught = 0;
  /** Unhandled promise rejections seen. */
  unhandled = 0;
  /** The first few errors, for the report. */
  readonly samples: string[] = [];
  readonly #onUncaught = (err: unknown): void => {
    this.uncaught++;
    this.#keep("uncaughtException", err);
  };
  readonly #onUnhandled = (err: unknown): void => {
    this.unhandled++;
    this.#keep("unhandledRejection", err);
  };

  /** Starts counting. */
  static install(): CrashMonitor {
    const monitor = new CrashMonitor();
    process.on("uncaughtException", monitor.#onUncaught);
    process.on("unhandledRejection", monitor.#onUnhandled);
    return monitor;
  }

  /** Both counts together. */
  get total(): number {
    return this.uncaught + this.unhandled;
  }

  /** Stops counting. Safe to call twice. */
  dispose(): void {
    process.off("uncaughtException", this.#onUncaught);
    process.off("unhandledRejection", this.#onUnhandled);
  }

  #keep(kind: string, err: unknown): void {
    if (this.samples.length >= 5) return;
    const text = err instanceof Error ? `${err.name}: ${err.message}\n${err.stack ?? ""}` : String(err);
    this.samples.push(`${kind}: ${text}`);
  }
}

/**
 * Samples `process.memoryUsage().rss` every `intervalMs` and keeps the peak.
 *
 * @example
 * ```ts
 * const rss = new RssSampler(50);
 * // ... run the workload ...
 * rss.stop();
 * console.log(rss.peak - rss.baseline);
 * ```
 */
export class RssSampler {
  /** RSS when the sampler started. */
  readonly baseline: number;
  /** The largest RSS sampled. */
  peak: number;
  readonly #timer: ReturnType<typeof setInterval>;

  /** Starts sampling. */
  constructor(intervalMs = 50) {
    this.baseline = this.peak = process.memoryUsage().rss;
    this.#timer = setInterval(() => this.sample(), intervalMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /** Takes one sample now and returns it. */
  sample(): number {
    const rss = process.memoryUsage().rss;
    if (rss > this.peak) this.peak = rss;
    return rss;
  }

  /** Stops sampling (after a last sample). */
  stop(): void {
    this.sample();
    clearInterval(this.#timer);
  }
}

/**
 * The number of descriptors this process has open (`/proc/self/fd`), or -1 where there is no /proc.
 *
 * @example
 * ```ts
 * const before = openFdCount();
 * // ... open and close connections ...
 * console.log(openFdCount() - before); // 0 when nothing leaked
 * ```
 */
export function openFdCount(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return -1;
  }
}
