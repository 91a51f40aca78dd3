/**
 * The reconnect policy of outgoing clients: its options with their defaults, and the backoff delay.
 * Pure functions: the scheduler owns the timers.
 *
 * @module
 */

/**
 * How an outgoing client reconnects after a lost connection or a failed connect.
 *
 * @example
 * ```ts
 * import type { ReconnectOptions } from "@asockio/core";
 * const reconnect: ReconnectOptions = { initialDelayMs: 50, maxDelayMs: 2000, maxAttempts: 20 };
 * ```
 */
export interface ReconnectOptions {
  /**
   * The delay before the first retry.
   * @default {100}
   */
  initialDelayMs?: number;
  /**
   * The delay doubles after each failed attempt, up to this.
   * @default {10000}
   */
  maxDelayMs?: number;
  /**
   * Each delay is multiplied by a random factor in [1 − jitter, 1 + jitter], so that many clients
   * do not retry in step.
   * @default {0.2}
   */
  jitter?: number;
  /**
   * Consecutive failed attempts before giving up; `reconnectClient` starts again.
   * @default {Infinity}
   */
  maxAttempts?: number;
  /**
   * Whole messages accepted by `sendMessageToClient` while not connected, sent in order right after
   * the next handshake. Beyond it the call throws `SendBufferFullError`.
   * @default {8388608} (8 MiB)
   */
  bufferBytes?: number;
}

/** Every reconnect option, filled in with its default. Internal. */
export type ResolvedReconnect = Required<ReconnectOptions>;

/** The defaults of {@linkcode ReconnectOptions}. */
export const DEFAULT_RECONNECT: Readonly<ResolvedReconnect> = Object.freeze({
  initialDelayMs: 100,
  maxDelayMs: 10_000,
  jitter: 0.2,
  maxAttempts: Infinity,
  bufferBytes: 8 * 1024 * 1024,
});

/**
 * Checks `AddClientOptions.reconnect` and fills in the defaults; `false` turns reconnecting off.
 *
 * @example
 * ```ts
 * import { resolveReconnect } from "./reconnect.ts";
 * console.log(resolveReconnect({ maxAttempts: 3 })?.initialDelayMs); // 100
 * ```
 */
export function resolveReconnect(
  options: ReconnectOptions | false | undefined,
): ResolvedReconnect | undefined {
  if (options === false) return undefined;
  if (options !== undefined && (options === null || typeof options !== "object")) {
    throw new TypeError("Cannot add client: reconnect must be an object or false");
  }
  const resolved = { ...DEFAULT_RECONNECT };
  for (const [name, value] of Object.entries(options ?? {})) {
    if (!(name in DEFAULT_RECONNECT)) {
      throw new TypeError(`Cannot add client: unknown reconnect option ${name}`);
    }
    if (value === undefined) continue;
    const ok = typeof value === "number" && value >= 0 &&
      (name === "jitter" ? value <= 1 : name === "maxAttempts" ? value >= 1 : Number.isFinite(value));
    if (!ok) throw new RangeError(`Cannot add client: reconnect.${name} is out of range, got ${value}`);
    (resolved as Record<string, number>)[name] = value;
  }
  if (resolved.maxDelayMs < resolved.initialDelayMs) {
    throw new RangeError("Cannot add client: reconnect.maxDelayMs is below initialDelayMs");
  }
  return resolved;
}

/**
 * The delay before the next attempt after `failures` consecutive failed ones (0 after a lost
 * connection): `initialDelayMs · 2^failures`, capped at `maxDelayMs`, times a jitter factor.
 *
 * @example
 * ```ts
 * import { backoffDelay, DEFAULT_RECONNECT } from "./reconnect.ts";
 * const delay = backoffDelay(DEFAULT_RECONNECT, 3); // about 800 ms, ± 20 %
 * ```
 */
export function backoffDelay(
  policy: ResolvedReconnect,
  failures: number,
  random: () => number = Math.random,
): number {
  const base = Math.min(policy.maxDelayMs, policy.initialDelayMs * 2 ** Math.min(failures, 52));
  return Math.round(base * (1 - policy.jitter + 2 * policy.jitter * random()));
}
