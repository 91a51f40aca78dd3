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
import type { HandshakeDriver } from "./session_handshake.ts";
import type { HalfOpen } from "./half_open.ts";
import type { ClientRecord } from "../clients/client_registry.ts";

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
  budget: 8,
  /** A `messages()` reader holds more than its high-water mark. */
  reader: 16,
  /** An asynchronous processor callback has not settled. */
  callback: 32,
  /** A streamed message's queue is full, or it arrived and is not read to its end yet. */
  stream: 64,
} as const;
/** One of {@linkcode Pause}'s values. */
export type Pause = typeof Pause[keyof typeof Pause];
/**
 * A session's states, in one field with its {@linkcode Phase} (the low bits) and {@linkcode Pause}'s
 * bits: one field, not seven.
 */
export const State = {
  /** The bits of the {@linkcode Phase}. */
  phase: 7,
  /** Every {@linkcode Pause} bit: reading is paused for some reason. */
  paused: 120,
  /** Bound to a client (or held) and open. */
  opened: 128,
  /** Carrying raw bytes. */
  raw: 256,
  closeAfterFlush: 512,
  closingGracefully: 1024,
  /** The peer ended its side. */
  peerEnded: 2048,
} as const;

/**
 * What a session needs only at times, made when first written: an open session that has no PROXY
 * addresses, is not held, closing or half-open, has none.
 *
 * @example
 * ```ts
 * import { SessionRare } from "./session_phase.ts";
 * const rare = new SessionRare();
 * rare.closeError = new Error("refused");
 * console.log(rare.opened()); // false: the close error is kept
 * ```
 */
export class SessionRare {
  /** Drives the PROXY header and handshake; kept after the session opens only for PROXY addresses. */
  driver: HandshakeDriver | undefined = undefined;
  /** The handshake's, half-close's or close's timer. */
  deadline: Deadline | undefined = undefined;
  /** Set once the peer of an accepted session ended its side. */
  halfOpen: HalfOpen | undefined = undefined;
  /** The provisional record of a held unexpected keyword. */
  held: ClientRecord | undefined = undefined;
  /** The error the client's `lastError` gets when the session closes. */
  closeError: Error | undefined = undefined;

  /** The session opened (its deadline cleared): drops what only the handshake needed; true when empty. */
  opened(): boolean {
    this.deadline = undefined;
    if (this.driver?.proxyAddr === undefined) this.driver = undefined;
    return this.driver === undefined && this.halfOpen === undefined && this.held === undefined &&
      this.closeError === undefined;
  }
}

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
export function logClosedBeforeProxyHeader(session: DescribedSession, logger: Logger): void {
  // A trusted balancer's health check connects and closes without a header: not worth a warning.
  logger.debug?.(`Connection from ${describeSession(session)} closed before its PROXY header`);
}

/** What {@linkcode describeSession} reads of a session. */
export interface DescribedSession {
  readonly remoteAddr: Addr;
  readonly listener: { readonly name: string } | undefined;
}

/**
 * A session's peer and listener, for logs.
 *
 * @example
 * ```ts
 * import { describeSession } from "./session_phase.ts";
 * const remoteAddr = { transport: "tcp" as const, hostname: "127.0.0.1", port: 5000 };
 * describeSession({ remoteAddr, listener: undefined }); // "tcp:127.0.0.1:5000 on an outgoing connection"
 * ```
 */
export function describeSession(session: DescribedSession): string {
  return `${describeAddr(session.remoteAddr)} on ${session.listener?.name ?? "an outgoing connection"}`;
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
