/**
 * {@linkcode ClusterBus}: what a core needs from a cluster to reach named clients held by other
 * processes (nodes): announce the keywords it holds, carry sends to the node holding a keyword, and
 * say where a keyword is. `natsCluster` (in `@asockio/core/cluster`) implements it over NATS; the
 * core itself never names a broker.
 *
 * @module
 */

/** Where a keyword's client is connected: the name of the node that holds it. */
export interface KeywordLocation {
  /** The holding node's name (`ClusterBus.node`, or the core's own name without a cluster). */
  readonly node: string;
}

/** A cluster's counters, as `IoCore.stats().cluster` reports them. */
export interface ClusterStats {
  /** This node's name. */
  readonly node: string;
  /** Keywords this node holds and answers for now (with claims: once its claim succeeded). */
  readonly keywordsHeld: number;
  /** Messages sent to other nodes and acknowledged by them. */
  readonly sendsOut: number;
  /** Messages received from other nodes and queued for a client here. */
  readonly sendsIn: number;
  /** Remote sends that failed: the keyword offline, a timeout, or the holder refusing them. */
  readonly failures: number;
}

/** Why a cluster refuses an incoming connection before its handshake's `OK` (see `ClusterBus.admit`). */
export interface ClusterRefusal {
  /** What the peer is told, as a local refusal would say it: `duplicate keyword`. */
  readonly reason: string;
  /** The node holding the keyword (for the core's log, not sent to the peer). */
  readonly node: string;
}

/** The core's side of a cluster: what a bus calls when another node sends to this one. */
export interface ClusterHost {
  /**
   * Queues `messages` for the client holding `keyword` in this core, as `sendMessagesToClient`
   * does. Throws `ClientNotConnectedError` when no client here holds it, `SendBufferFullError` or
   * `MessageTooLargeError` as a local send would.
   */
  deliver(keyword: Uint8Array, messages: Uint8Array[]): void;
  /** The largest message the core accepts (`limits.maxMessageBytes`). */
  readonly maxMessageBytes: number;
  /** `duplicateKeyword: "replace"`: a claim takes a keyword from the node holding it. */
  readonly replaceDuplicates: boolean;
  /**
   * Another node holds `keyword` (and this one did not take it), or took it over: closes this
   * core's connection for it, with `reason` (such as `duplicate keyword`) in its error.
   */
  drop(keyword: Uint8Array, reason: string): void;
  /** Reports something the application should know (through the core's logger). */
  warn(message: string, error?: unknown): void;
}

/**
 * A cluster of cores that reach each other's named clients. A bus serves one core: the core calls
 * {@linkcode ClusterBus.attach} once, when it is created, and {@linkcode ClusterBus.detach} when it
 * closes.
 *
 * A bus that claims keywords in a shared store reports a conflict back with `ClusterHost.drop`: the
 * core admits a connection at once, and the claim that follows may close it again.
 *
 * @example A bus that holds nothing and reaches no one (what a core without a cluster behaves as)
 * ```ts
 * import { ClientNotConnectedError, type ClusterBus } from "@asockio/core";
 * const lonely: ClusterBus = {
 *   node: "alone",
 *   attach() {},
 *   detach: () => Promise.resolve(),
 *   claim() {},
 *   release() {},
 *   send: () => Promise.reject(new ClientNotConnectedError("Cannot send to keyword: nobody holds it")),
 *   locate: () => Promise.resolve(undefined),
 *   stats: () => ({ node: "alone", keywordsHeld: 0, sendsOut: 0, sendsIn: 0, failures: 0 }),
 * };
 * ```
 */
export interface ClusterBus {
  /** This node's name, unique in the cluster. */
  readonly node: string;
  /** Starts serving `host`; a second core on the same bus throws a `TypeError`. */
  attach(host: ClusterHost): void;
  /** Stops answering for every keyword; resolves once the bus has let go of them. */
  detach(): Promise<void>;
  /**
   * Optional: asked before an incoming connection announcing `keyword` gets its handshake's `OK`.
   * Resolves `undefined` to admit it (the core then calls {@linkcode ClusterBus.claim}, or
   * {@linkcode ClusterBus.release} when the connection ended meanwhile), or a refusal when another
   * node holds the keyword. A bus that cannot tell in time (its store is slow or unreachable) admits,
   * and reports a conflict found later with `ClusterHost.drop`. It must settle within a bounded time
   * (the handshake waits, and other connections for the keyword are refused as duplicates until then).
   */
  admit?(keyword: Uint8Array): Promise<ClusterRefusal | undefined>;
  /** This node now holds `keyword` (a named client connected here): sends to it come here. */
  claim(keyword: Uint8Array): void;
  /** This node no longer holds `keyword`. */
  release(keyword: Uint8Array): void;
  /**
   * Carries `messages` to the node holding `keyword`. Resolves once that node queued them for its
   * client; rejects with `ClientNotConnectedError` when no node holds it, `TimeoutError` when the
   * holder did not answer in time (the messages may or may not have been queued).
   */
  send(keyword: Uint8Array, messages: Uint8Array[]): Promise<void>;
  /** The node holding `keyword`, or `undefined` when none does. */
  locate(keyword: Uint8Array): Promise<KeywordLocation | undefined>;
  /** The bus's counters. */
  stats(): ClusterStats;
}
