/**
 * {@linkcode unrefTimer}: the one place that lets a timer not hold the process open.
 *
 * @module
 */

/**
 * Lets the process exit while `timer` is pending: Node's and Bun's timers have `unref`; Deno's are
 * numbers, and whoever set them clears them on close. Returns `timer`.
 */
export function unrefTimer<T>(timer: T): T {
  (timer as { unref?: () => void } | null)?.unref?.();
  return timer;
}
