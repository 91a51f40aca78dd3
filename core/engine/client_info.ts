/**
 * {@linkcode clientSnapshot}: what `IoCore.getClientInfo` reports of a client, read from its record
 * and its connection.
 *
 * @module
 */
import type { ClientRecord } from "../clients/client_registry.ts";
import { Phase } from "../connection/session.ts";
import { webSocketOf } from "../connection/websocket_connection.ts";
import type { ClientConnectionState, ClientInfo } from "../types.ts";

const utf8Decoder = new TextDecoder();

/**
 * A snapshot of the client (see `IoCore.getClientInfo`); `nextAttemptAt` is when its next connection
 * attempt starts, if one is scheduled.
 */
export function clientSnapshot(record: ClientRecord, nextAttemptAt: number | undefined): ClientInfo {
  const session = record.session;
  let state: ClientConnectionState = "disconnected";
  if (record.connecting) state = "connecting";
  else if (session) {
    state = session.phase === Phase.open || session.phase === Phase.draining
      ? (session.closing ? "closing" : "connected")
      : "handshake";
  } else if (nextAttemptAt !== undefined) state = "reconnecting";
  return {
    id: record.id,
    kind: record.kind,
    keyword: record.keyword,
    keywordText: utf8Decoder.decode(record.keyword),
    direction: record.connect ? "outgoing" : "incoming",
    state,
    remoteAddr: record.remoteAddr,
    proxyAddr: record.proxyAddr,
    listener: record.listener,
    raw: session ? session.raw : record.rawOnConnect,
    websocket: session !== undefined && webSocketOf(session.conn) !== undefined,
    unreadMessages: record.unread,
    unreadBytes: record.inboxBytes,
    peerEnded: session ? session.peerEnded : false,
    queuedOutputBytes: session ? session.queuedOutputBytes : 0,
    lastError: record.lastError,
    reconnectAttempts: record.failures,
    nextAttemptInMs: nextAttemptAt === undefined ? undefined : Math.max(0, nextAttemptAt - Date.now()),
  };
}
