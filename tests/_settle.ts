/**
 * Bounded waits and accounting checks for the robustness workloads: wait for a condition, wait for a
 * core to settle, and report what its stats hold beyond an idle core.
 *
 * @module
 */
import type { IoCore, IoCoreStats } from "../mod.ts";
import { delay, HangError } from "./_helpers.ts";

/**
 * Resolves on the next macrotask, so writes made before it leave as their own native write.
 *
 * @example
 * ```ts
 * peer.write(frame.subarray(0, 3));
 * await macrotask(); // the first 3 bytes go out alone
 * peer.write(frame.subarray(3));
 * ```
 */
export function macrotask(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * Resolves when the function handed to `register` is called, or after `ms`: the pause of a loop that
 * re-checks its condition after every event, with polling as the fallback.
 */
export function wakeOrTimeout(ms: number, register: (wake: () => void) => void): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(wake, ms);
    function wake(): void {
      clearTimeout(timer);
      resolve();
    }
    register(wake);
  });
}

/**
 * Polls `condition` every few milliseconds until it holds; throws {@linkcode HangError} after
 * `timeoutMs`.
 */
export async function waitFor(condition: () => boolean, timeoutMs: number, label: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new HangError(`Timed out after ${timeoutMs} ms waiting for ${label}`);
    await delay(5);
  }
}

/**
 * Waits (up to `timeoutMs`) for the core to hold no connection and no byte, then reports through
 * `fail` anything left over (beyond `clients` registered clients) and returns the final stats.
 */
export async function settledStats(
  core: IoCore,
  clients: number,
  timeoutMs: number,
  fail: (message: string) => void,
): Promise<IoCoreStats> {
  try {
    await waitFor(() => core.stats().connections === 0, timeoutMs, "every connection to close");
    await waitFor(
      () => core.stats().inputBytes === 0 && core.stats().outputBytes === 0,
      timeoutMs,
      "accounting back to 0",
    );
  } catch {
    // Reported below with the numbers.
  }
  const stats = core.stats();
  for (const problem of accountingProblems(stats, { connections: 0, clients })) fail(`leak: ${problem}`);
  return stats;
}

/**
 * Checks that a core is idle and its accounting is back to zero; returns what is off.
 */
export function accountingProblems(
  stats: IoCoreStats,
  expect: { connections: number; clients: number },
): string[] {
  const problems: string[] = [];
  if (stats.connections !== expect.connections) {
    problems.push(`connections ${stats.connections}, expected ${expect.connections}`);
  }
  if (stats.clients !== expect.clients) problems.push(`clients ${stats.clients}, expected ${expect.clients}`);
  if (stats.heldConnections !== 0) problems.push(`heldConnections ${stats.heldConnections}, expected 0`);
  if (stats.inputBytes !== 0) problems.push(`inputBytes ${stats.inputBytes}, expected 0`);
  if (stats.outputBytes !== 0) problems.push(`outputBytes ${stats.outputBytes}, expected 0`);
  return problems;
}

/**
 * A workload's failure list: `fail` records a message, keeping the first `max` so a run that goes
 * wrong everywhere still gives a readable report.
 */
export function failureList(max = 50): { failures: string[]; fail: (message: string) => void } {
  const failures: string[] = [];
  return {
    failures,
    fail: (message: string): void => {
      if (failures.length < max) failures.push(message);
    },
  };
}
