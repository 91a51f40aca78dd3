/**
 * {@linkcode Gate}: the one guard through which admission calls application code (access rules,
 * the `rawConnection` predicate): what that code throws is logged as a `CallbackError`, and only the
 * connection concerned is refused.
 *
 * @module
 */
import { CallbackError } from "../errors.ts";
import { describeAddr } from "../wire/ip.ts";
import type { IncomingConnectionInfo, Logger } from "../options.ts";
import type { PeerInfo, RuleCheck } from "./rules.ts";
import { WebSocketConnection, webSocketOf } from "../connection/websocket_connection.ts";
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

  /**
   * True when `rules` admit the peer (announcing `keyword`, if any); a rule that throws refuses it. A
   * peer without a keyword (an unknown client) that {@linkcode needsSecret} is refused.
   */
  allowed(rules: RuleCheck, peer: Incoming, keyword?: Uint8Array): boolean {
    if (keyword === undefined && needsSecret(peer.conn)) return false;
    const admitted = this.guarded("An access rule", peer, () => rules(peerInfo(peer, keyword)));
    return typeof admitted === "number" && admitted >= 0;
  }
}

/** What `rawConnection` is shown of a new incoming connection (`localAddr` read only if asked for). */
export function incomingInfo(peer: Incoming): IncomingConnectionInfo {
  const { conn } = peer;
  return {
    listener: peer.listener,
    remoteAddr: peer.remoteAddr,
    get localAddr() {
      return conn.localAddr;
    },
    proxyAddr: peer.proxyAddr,
    websocket: isWebSocket(conn),
  };
}

/** What an access rule is shown of a peer. */
function peerInfo(peer: Incoming, keyword: Uint8Array | undefined): PeerInfo {
  const { conn, listener } = peer;
  return {
    listener,
    remoteAddr: peer.remoteAddr,
    // Read when a rule asks: a transport may make it only then.
    get localAddr() {
      return conn.localAddr;
    },
    transport: listener.addr.transport,
    keyword,
    tls: conn.tls,
    proxyAddr: peer.proxyAddr,
    websocket: isWebSocket(conn),
  };
}

/** True for a request on a `websocket` listener that was not an upgrade: a raw connection, bytes intact. */
export function isHttpRequest(conn: Connection): boolean {
  return conn instanceof WebSocketConnection && conn.passedThrough;
}

/** True when `conn` was upgraded to WebSocket on a `websocket` listener. */
export function isWebSocket(conn: Connection): boolean {
  return webSocketOf(conn) !== undefined;
}

/**
 * True for a browser's WebSocket (it sent `Origin`) on a listener without `allowedOrigins`: any web
 * page may have opened it, so it is admitted only as a named client that proves its secret.
 */
export function needsSecret(conn: Connection): boolean {
  const ws = webSocketOf(conn);
  return ws !== undefined && ws.origin !== undefined && ws.allowedOrigins === undefined;
}
