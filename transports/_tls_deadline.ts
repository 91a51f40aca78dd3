/**
 * The one clock every transport puts on a TLS handshake it waits for.
 *
 * @module
 */
import { TimeoutError } from "../core/errors.ts";

/** What to do with an attempt that lost the race against its deadline. */
export interface TlsDeadlineHooks<T> {
  /** The deadline passed first: release what the attempt holds so far (its socket). */
  onTimeout?(): void;
  /** The attempt succeeded after its deadline: nobody waits for `value` any more, so close it. */
  onLate?(value: T): void;
}

/**
 * `attempt`, or a `TimeoutError` once `timeoutMs` pass first:
 * `${head}: TLS handshake not done within ${timeoutMs} ms`. The attempt is settled either way, so
 * a late success reaches `onLate` and a late failure is never an unhandled rejection.
 *
 * @example
 * ```ts
 * const conn = await raceTlsDeadline(openTls(), 10_000, "Cannot connect to tls:127.0.0.1:8443", {
 *   onLate: (late) => late.close(),
 * });
 * ```
 */
export function raceTlsDeadline<T>(
  attempt: Promise<T>,
  timeoutMs: number,
  head: string,
  hooks: TlsDeadlineHooks<T> = {},
): Promise<T> {
  let timedOut = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  attempt.then((value) => timedOut && hooks.onLate?.(value), () => {});
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      timedOut = true;
      hooks.onTimeout?.();
      reject(new TimeoutError(`${head}: TLS handshake not done within ${timeoutMs} ms`));
    }, timeoutMs);
  });
  return Promise.race([attempt, timeout]).finally(() => clearTimeout(timer));
}
