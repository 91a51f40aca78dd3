/**
 * {@linkcode SessionHost}: what a session needs from the core around it, the contract between
 * `Session` and the scheduler. Types only.
 *
 * @module
 */
import type { ClientRecord } from "../clients/client_registry.ts";
import type { ClusterRefusal } from "../clients/cluster_bus.ts";
import type { EventBoard } from "../engine/event_board.ts";
import type { MemoryBudget } from "../engine/memory_budget.ts";
import type { ProcessorHost } from "../engine/processor_host.ts";
import type { Logger, ResolvedLimits } from "../options.ts";
import type { KeywordVerdict } from "../wire/handshake.ts";
import type { FlushScheduler } from "./output.ts";
import type { Session } from "./session.ts";

/** What a session needs from the core around it. */
export interface SessionHost {
  readonly limits: ResolvedLimits;
  readonly logger: Logger;
  readonly budget: MemoryBudget;
  readonly board: EventBoard;
  readonly processors: ProcessorHost;
  readonly flusher: FlushScheduler;
  /** True when `limits.idleTimeoutMs` is set, so activity must be stamped. */
  readonly tracksIdle: boolean;
  /** Accepting side: the PROXY header was read; the session goes on as a handshake or a raw client. */
  proxied(session: Session): void;
  /** Accepting side: what to do with an announced keyword (rules, registry, duplicates). */
  keywordVerdict(session: Session, keyword: Uint8Array, authenticated: boolean): KeywordVerdict;
  /** Accepting side: the cluster's say on an admitted keyword before its `OK` (see `KeywordRouter`). */
  readonly router: {
    admit(keyword: Uint8Array): Promise<ClusterRefusal | undefined> | undefined;
    admitting(keyword: Uint8Array): boolean;
    admitted(keyword: Uint8Array, abandoned: boolean): void;
  };
  /** Accepting side: the handshake admitted `keyword`; bind the session to its client. */
  admitNamed(session: Session, keyword: Uint8Array): void;
  /** Accepting side: hold the session for `keyword` until somebody registers it. */
  hold(session: Session, keyword: Uint8Array): void;
  /** Binds an admitted session to its client, and reports it. */
  bind(session: Session, record: ClientRecord): void;
  /** Whether `proof` answers `nonce` for the client registered with `keyword`. */
  verifyProof(keyword: Uint8Array, nonce: Uint8Array, proof: Uint8Array): Promise<boolean>;
  /** The proof for the server's `nonce`, from this (outgoing) client's secret. */
  proofFor(record: ClientRecord, nonce: Uint8Array): Promise<Uint8Array>;
  /**
   * The session has closed: forget it and tell its client. `unsent` is the output never handed to
   * the transport (an outgoing client keeps it for its next connection).
   */
  sessionClosed(
    session: Session,
    error: Error | undefined,
    wasConnecting: boolean,
    unsent: Uint8Array[],
  ): void;
}
