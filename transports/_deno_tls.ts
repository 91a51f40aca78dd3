/**
 * The deno transport's TLS clients, on `Deno.connectTls` (or `Deno.startTls` when a `serverName` is
 * given), bounded by `tlsHandshakeTimeoutMs`.
 *
 * @module
 */
import { TimeoutError } from "../core/errors.ts";
import { closeQuietly, DenoConnection } from "./_deno_connection.ts";
import {
  type DenoConn,
  denoErrorCode,
  denoGlobal,
  type DenoNamespace,
  type DenoTlsConn,
} from "./_deno_types.ts";
import { connectError } from "./_errors.ts";
import type { CheckedTlsConnect } from "./_tls.ts";
import { raceTlsDeadline } from "./_tls_deadline.ts";
import type { Addr, Connection } from "./types.ts";

/** Opens a TLS connection and completes its handshake; `open.conn` is what to close on a timeout. */
async function openTls(
  ns: DenoNamespace,
  c: CheckedTlsConnect,
  open: { conn?: DenoConn },
): Promise<DenoTlsConn> {
  try {
    let conn: DenoTlsConn;
    if (c.serverName !== undefined) {
      // connectTls verifies against the host it dials; startTls lets the name differ.
      open.conn = await ns.connect({ hostname: c.hostname, port: c.port });
      conn = await ns.startTls(open.conn, { hostname: c.serverName, caCerts: c.ca });
    } else {
      conn = await ns.connectTls({
        hostname: c.hostname,
        port: c.port,
        caCerts: c.ca,
        cert: c.cert,
        key: c.key,
      });
    }
    open.conn = conn;
    await conn.handshake();
    return conn;
  } catch (err) {
    closeQuietly(open.conn);
    throw err;
  }
}

/**
 * Connects over TLS and completes the handshake within `c.timeoutMs`, or rejects (`TimeoutError`, or the
 * typed connect error).
 */
export async function connectDenoTls(c: CheckedTlsConnect): Promise<Connection> {
  const ns = denoGlobal();
  const open: { conn?: DenoConn } = {};
  const target: Addr = { transport: "tls", hostname: c.hostname, port: c.port };
  try {
    const conn = await raceTlsDeadline(openTls(ns, c, open), c.timeoutMs, `Cannot connect to ${c.where}`, {
      onTimeout: () => closeQuietly(open.conn),
      onLate: (late) => closeQuietly(late),
    });
    // Deno verifies the server's certificate in every handshake, or fails it.
    return new DenoConnection(conn, { authorized: true });
  } catch (err) {
    if (err instanceof TimeoutError) throw err;
    throw connectError(err, target, denoErrorCode(err));
  }
}
