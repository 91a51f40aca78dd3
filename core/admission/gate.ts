/**
 * {@linkcode Gate}: the one guard through which admission calls application code (access rules,
 * the `rawConnection` predicate): what that code throws is logged as a `CallbackError`, and only the
 * connection concerned is refused.
 *
 * @module
 */
import { CallbackError } from "../errors.ts";
import { describeAddr } from "../wire/ip.ts";
import type { Logger } from "../options.ts";
import type { PeerInfo, RuleCheck } from "./rules.ts";
import type { Addr, Connection } from "../../transports/types.ts";
import type { ListenerInfo } from "../types.ts";

/** An incoming connection as admission sees it: behind a balancer, the original client's address. */
export interface Incoming {
  readonly conn: Connection;
  readonly listener: ListenerInfo;
  readonly remoteAddr: Addr;
  readonly proxyAddr?: Addr;
}

/** Calls application code for admission, behind one guard. */
export class Gate {
  readonly #logger: Logger;

  /** What application code throws goes to `logger.error`. */
  constructor(logger: Logger) {
    this.#logger = logger;
  }

  /** Calls `call`; what it throws is logged and returned as a `CallbackError` naming `what` and the peer. */
  guarded<T>(what: string, peer: Incoming, call: () => T): T | CallbackError {
    try {
      return call();
    } catch (err) {
      const where = `${describeAddr(peer.remoteAddr)} on ${peer.listener.name}`;
      const error = new CallbackError(`${what} threw for ${where}`, { cause: err });
      this.#logger.error?.(`${error.message}; connection refused`, err);
      return error;
    }
  }

  /** True when `rules` admit the peer (announcing `keyword`, if any); a rule that throws refuses it. */
  allowed(rules: RuleCheck, peer: Incoming, keyword?: Uint8Array): boolean {
    const admitted = this.guarded("An access rule", peer, () => rules(peerInfo(peer, keyword)));
    return typeof admitted === "number" && admitted >= 0;
  }
}

/** What an access rule is shown of a peer. */
function peerInfo(peer: Incoming, keyword: Uint8Array | undefined): PeerInfo {
  const { conn, listener } = peer;
  return {
    listener,
    remoteAddr: peer.remoteAddr,
    localAddr: conn.localAddr,
    transport: listener.addr.transport,
    keyword,
    tls: conn.tls,
    proxyAddr: peer.proxyAddr,
  };
}
