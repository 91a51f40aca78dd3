/**
 * {@linkcode Connector}: connects outgoing clients. `limits.handshakeTimeoutMs` covers each attempt
 * from the TCP connect to the end of the keyword exchange; a failed, timed-out or abandoned attempt
 * reports the client disconnected, and its reconnect policy (see `OutgoingClients`) retries.
 *
 * @module
 */
import type { ClientRecord } from "../clients/client_registry.ts";
import type { OutgoingClients } from "../clients/outgoing.ts";
import type { Session } from "../connection/session.ts";
import { TimeoutError } from "../errors.ts";
import type { Logger, ResolvedLimits } from "../options.ts";
import { bindDatagramClient, type DatagramPeersOptions } from "../udp/datagram_peers.ts";
import type { Connection, Transport } from "../../transports/types.ts";
import type { EventBoard } from "./event_board.ts";

/** What connecting out needs from the core around it. */
export interface ConnectorHost {
  readonly transport: Transport;
  readonly limits: ResolvedLimits;
  readonly logger: Logger;
  readonly board: EventBoard;
  readonly outgoing: OutgoingClients;
  /** What outgoing UDP clients' sockets share (the counters, the caps). */
  readonly datagrams: DatagramPeersOptions;
  /** `IoCoreOptions.noDelay`. */
  readonly noDelay: boolean;
  isClosed(): boolean;
  /** A session for `conn`: `"raw"` for UDP, or the client's record to start its handshake. */
  newSession(conn: Connection, listener: undefined, start: "raw" | ClientRecord): Session;
  /** Binds an admitted session to its client, and reports it. */
  bind(session: Session, record: ClientRecord): void;
}

/** Starts, times out and gives up outgoing clients' connection attempts. */
export class Connector {
  readonly #host: ConnectorHost;

  /** Connects through `host`. */
  constructor(host: ConnectorHost) {
    this.#host = host;
  }

  /**
   * Connects an outgoing client and starts its handshake; `limits.handshakeTimeoutMs` covers both
   * the connect and the keyword exchange.
   */
  connect(record: ClientRecord): void {
    const h = this.#host;
    record.connectStarted();
    const target = record.connect!;
    const udp = target.transport === "udp";
    const timeoutMs = udp ? 0 : h.limits.handshakeTimeoutMs;
    const attempt = h.outgoing.attemptStarted(
      record,
      timeoutMs,
      () => this.#timedOut(record, timeoutMs),
    );
    const opening = udp ? bindDatagramClient(h.transport, target, h.datagrams) : h.transport.connect(target);
    opening.then(
      (conn) => {
        // Given up meanwhile (timed out, closed by this side, removed, the core closed): not used.
        if (!h.outgoing.isCurrent(record, attempt) || h.isClosed() || record.removed) return conn.close();
        // UDP: no handshake, the client is raw and connected at once.
        if (udp) return h.bind(h.newSession(conn, undefined, "raw"), record);
        if (h.noDelay) conn.setNoDelay(true);
        const session = h.newSession(conn, undefined, record);
        record.handshakeStarted(session);
        session.queueOutput(record.keyword, true);
      },
      (err: Error) => {
        if (!h.outgoing.isCurrent(record, attempt)) return;
        h.outgoing.attemptEnded(record);
        if (h.isClosed() || record.removed) return record.connectEnded();
        this.#failed(record, err);
      },
    );
  }

  /** The attempt took longer than `timeoutMs`: in its handshake the session fails, else the connect does. */
  #timedOut(record: ClientRecord, timeoutMs: number): void {
    const h = this.#host;
    if (h.isClosed() || record.removed) return;
    const error = new TimeoutError(
      `Cannot connect client ${record.id}: the connection and handshake were not done within ${timeoutMs} ms`,
    );
    if (record.session) return record.session.fail(error); // sessionClosed reports it and retries
    this.#failed(record, error);
  }

  /** A connect failed or timed out: the client is reported disconnected and retried by its policy. */
  #failed(record: ClientRecord, err: Error): void {
    const h = this.#host;
    record.connectEnded(err);
    h.logger.warn?.(`Cannot connect client ${record.id}: ${err.message}`);
    h.board.emit(h.board.events.clientsWithDisconnectedConnection, record.id);
    h.outgoing.retryLater(record, err, false);
  }

  /** A connect still under way was given up by this side: the client is disconnected now. */
  abandoned(record: ClientRecord): void {
    const h = this.#host;
    record.connectEnded();
    if (!h.isClosed() && !record.removed) {
      h.board.emit(h.board.events.clientsWithDisconnectedConnection, record.id);
    }
  }
}
