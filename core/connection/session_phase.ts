/**
 * {@linkcode Phase} and {@linkcode Pause}: where a session stands and why it stopped reading. A leaf
 * module, so that the parts that act on sessions (the handshake driver, the memory budget, the
 * processor host) need not import `session.ts` at run time.
 *
 * @module
 */
import type { Addr } from "../../transports/types.ts";
import { AsockioError } from "../errors.ts";
import type { Logger } from "../options.ts";
import { describeAddr } from "../wire/ip.ts";
import { unrefTimer } from "../timer.ts";

/** Where a session stands. */
export const Phase = {
  /** Accepting side, behind a trusted balancer: the PROXY header comes first. */
  proxyHeader: 0,
  /** Accepting side: the keyword handshake is running. */
  accepting: 1,
  /** Connecting side: the keyword was sent; waiting for the answer. */
  connecting: 2,
  /** Bound to a client (or held): messages flow. */
  open: 3,
  /** Refused or failed: what is queued is written, input is ignored, then it closes. */
  draining: 4,
  closed: 5,
} as const;
/** One of {@linkcode Phase}'s values. */
export type Phase = typeof Phase[keyof typeof Phase];

/** Why a session stops reading; each is lifted on its own, and reading resumes when none is left. */
export const Pause = {
  /** A memory cap (see `MemoryBudget`). */
  budget: 1,
  /** A `messages()` reader holds more than its high-water mark. */
  reader: 2,
  /** An asynchronous processor callback has not settled. */
  callback: 4,
  /** A streamed message's queue is full, or it arrived and is not read to its end yet. */
  stream: 8,
} as const;
/** One of {@linkcode Pause}'s values. */
export type Pause = typeof Pause[keyof typeof Pause];
/** A session's states, bits above {@linkcode Pause}'s in the same field (one field, not six). */
export const State = {
  /** Every {@linkcode Pause} bit: reading is paused for some reason. */
  paused: 15,
  /** Bound to a client (or held) and open. */
  opened: 16,
  /** Carrying raw bytes. */
  raw: 32,
  closeAfterFlush: 64,
  closingGracefully: 128,
  /** The peer ended its side. */
  peerEnded: 256,
} as const;

/**
 * The one pending timer of a session: its handshake deadline, its graceful close's, or the end of
 * its half-open time. Setting one replaces the other; it never keeps the process alive.
 */
export class Deadline {
  #timer: ReturnType<typeof setTimeout> | undefined = undefined;

  /** Calls `expire` after `ms`, instead of what was pending. */
  set(ms: number, expire: () => void): void {
    this.clear();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      expire();
    }, ms);
    // Node and Bun timers can be unref'd; Deno's are numbers, and sessions clear theirs on close.
    unrefTimer(this.#timer);
  }

  /** Cancels what is pending. */
  clear(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
  }
}

/**
 * An internal error on a connection: logs it and closes that connection only (with `err` as its
 * error, wrapped in an `AsockioError` when it is not an `Error`); nothing reaches the event loop.
 *
 * @example
 * ```ts
 * import { closeOnInternalError } from "./session_phase.ts";
 * const conn = { remoteAddr: { transport: "tcp" as const, hostname: "127.0.0.1", port: 1 }, close() {} };
 * closeOnInternalError(conn, {}, new Error("bug"));
 * ```
 */
export function logClosedBeforeProxyHeader(session: { describe(): string }, logger: Logger): void {
  // A trusted balancer's health check connects and closes without a header: not worth a warning.
  logger.debug?.(`Connection from ${session.describe()} closed before its PROXY header`);
}

/** What an internal error on a session does: see {@linkcode closeOnInternalError}. */
export function closeOnInternalError(
  session: { readonly remoteAddr: Addr; close(error: Error): void },
  logger: Logger,
  err: unknown,
): void {
  logger.error?.(`Internal error on connection from ${describeAddr(session.remoteAddr)}; closed`, err);
  try {
    session.close(err instanceof Error ? err : new AsockioError("Internal error", { cause: err }));
  } catch (closeErr) {
    logger.error?.("Internal error while closing a connection", closeErr);
  }
}
