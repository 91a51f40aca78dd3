/**
 * The application side of the robustness workloads: an `ioIteration` loop, an echo step, and a control
 * client that measures round trips through the core while a workload runs.
 *
 * @module
 */
import { type ClientId, ConnectionClosedError, type IoCore, type IoIterationResult } from "../mod.ts";
import { delay, HangError } from "./_helpers.ts";
import { text, type WirePeer } from "./_wire_peer.ts";
import { macrotask } from "./_settle.ts";
import type { CrashMonitor } from "./_monitors.ts";

/**
 * Runs the plain-code API loop (`ioIteration`) until stopped, handing every result to `onResult`.
 * Anything thrown by the core or by `onResult` is kept in `errors` instead of stopping the loop.
 *
 * @example
 * ```ts
 * const app = new AppLoop(core, (r) => {
 *   for (const id of r.clientsHaveDataToRead) core.sendMessagesToClient(id, core.getMessagesFromClient(id));
 * });
 * // ...
 * await app.stop();
 * ```
 */
export class AppLoop {
  /** What the core or the handler threw. */
  readonly errors: unknown[] = [];
  /** ioIteration calls made. */
  iterations = 0;
  #running = true;
  readonly #done: Promise<void>;

  /** Starts the loop; each `ioIteration` waits at most `waitMs`. */
  constructor(core: IoCore, onResult: (result: IoIterationResult) => void, waitMs = 20) {
    this.#done = this.#run(core, onResult, waitMs);
  }

  /** Stops after the current iteration. */
  stop(): Promise<void> {
    this.#running = false;
    return this.#done;
  }

  async #run(core: IoCore, onResult: (result: IoIterationResult) => void, waitMs: number): Promise<void> {
    while (this.#running) {
      let result: IoIterationResult;
      try {
        result = await core.ioIteration(waitMs);
      } catch (err) {
        this.errors.push(err);
        await delay(waitMs);
        continue;
      }
      this.iterations++;
      try {
        onResult(result);
      } catch (err) {
        this.errors.push(err);
      }
    }
  }
}

/**
 * Echoes every message of `id` back to it; a client that has just gone is not an error.
 *
 * @example
 * ```ts
 * const app = new AppLoop(core, (r) => {
 *   if (r.clientsHaveDataToRead.has(controlId)) echo(core, controlId);
 * });
 * ```
 */
export function echo(core: IoCore, id: ClientId): void {
  const messages = core.getMessagesFromClient(id);
  if (messages.length === 0) return;
  try {
    core.sendMessagesToClient(id, messages);
  } catch (err) {
    if (!(err instanceof ConnectionClosedError)) throw err;
  }
}

/**
 * The control client: sends `ping N`, waits for the echo, measures the latency, and goes on until
 * stopped. A round trip slower than `stallMs` counts as a stall (it keeps waiting for it).
 *
 * @example
 * ```ts
 * const pinger = new ControlPinger(controlPeer);
 * // ... the workload runs ...
 * await pinger.stop();
 * console.log(pinger.roundTrips, pinger.maxLatencyMs);
 * ```
 */
export class ControlPinger {
  /** Round trips completed. */
  roundTrips = 0;
  /** The slowest round trip, in milliseconds. */
  maxLatencyMs = 0;
  /** Round trips that took longer than `stallMs`. */
  stalls = 0;
  /** Wrong answers, or the control connection lost. */
  readonly failures: string[] = [];
  readonly #peer: WirePeer;
  readonly #stallMs: number;
  readonly #intervalMs: number;
  #running = true;
  readonly #done: Promise<void>;

  /** Starts pinging through `peer` (already past its handshake). */
  constructor(peer: WirePeer, options: { intervalMs?: number; stallMs?: number } = {}) {
    this.#peer = peer;
    this.#intervalMs = options.intervalMs ?? 2;
    this.#stallMs = options.stallMs ?? 5000;
    this.#done = this.#run();
  }

  /** Stops after the round trip in flight, which is still awaited (within `stallMs`). */
  stop(): Promise<void> {
    this.#running = false;
    return this.#done;
  }

  async #run(): Promise<void> {
    const peer = this.#peer;
    for (let n = 1; this.#running; n++) {
      const started = performance.now();
      if (!peer.send(`ping ${n}`)) {
        this.failures.push(`control: connection closed before ping ${n}`);
        return;
      }
      let stalled = false;
      for (;;) {
        try {
          await peer.until(() => peer.pending > 0 || peer.closed, this.#stallMs, `ping ${n}`);
        } catch (err) {
          if (!(err instanceof HangError)) throw err;
          if (!stalled) this.stalls++;
          stalled = true;
          if (!this.#running) {
            this.failures.push(`control: ping ${n} unanswered at stop`);
            return;
          }
          continue;
        }
        break;
      }
      const answer = peer.take();
      if (answer === undefined) {
        this.failures.push(`control: connection closed while waiting for ping ${n}`);
        return;
      }
      if (text(answer) !== `ping ${n}`) {
        this.failures.push(`control: expected "ping ${n}", got ${JSON.stringify(text(answer).slice(0, 40))}`);
      }
      const latency = performance.now() - started;
      this.roundTrips++;
      if (latency > this.maxLatencyMs) this.maxLatencyMs = latency;
      if (this.#intervalMs > 0) await delay(this.#intervalMs);
      else await macrotask();
    }
  }
}

/**
 * Stops a workload's application side, last started first: the control client's pinger, its
 * connection, the `ioIteration` loop, then the core. Any part may be missing (the run aborted early).
 */
export async function stopWorkload(
  core: IoCore,
  parts: { app?: AppLoop; pinger?: ControlPinger; control?: WirePeer },
): Promise<void> {
  await parts.pinger?.stop();
  parts.control?.close();
  await parts.app?.stop();
  await core.close();
}

/**
 * Reports through `fail` every crash `crashes` saw and every error the loops kept; returns how many
 * there were.
 */
export function reportCrashes(
  crashes: CrashMonitor,
  apps: readonly (AppLoop | undefined)[],
  fail: (message: string) => void,
): number {
  for (const sample of crashes.samples) fail(sample);
  let loopErrors = 0;
  for (const app of apps) {
    for (const err of app?.errors ?? []) {
      fail(`ioIteration loop: ${err instanceof Error ? err.stack : String(err)}`);
      loopErrors++;
    }
  }
  return crashes.total + loopErrors;
}
