/**
 * Runtime socket failures as typed asockio errors, worded the same on every runtime.
 *
 * Each transport names the failure by its errno code (`ECONNREFUSED`, `ECONNRESET`, …): Node and Bun
 * carry it as `err.code`, and the Deno transport derives it from Deno's error class. From the code
 * on, the class and the message come from here, with the runtime's error as `cause`, so
 * `Cannot connect to tcp:127.0.0.1:1234: connection refused` reads the same on Deno, Bun and Node.
 *
 * @module
 */
import {
  AddressInUseError,
  ConnectionRefusedError,
  ConnectionResetError,
  TransportError,
} from "../core/errors.ts";
import { formatAddr } from "./_addr.ts";
import { tlsFailureReason } from "./_tls.ts";
import type { Addr } from "./types.ts";

/** Readable words for the codes a socket user is likely to meet; others are shown as the bare code. */
const ERROR_WORDS: Record<string, string> = {
  EACCES: "permission denied",
  EADDRNOTAVAIL: "address not available",
  EHOSTUNREACH: "host unreachable",
  EMFILE: "too many open files",
  ENETUNREACH: "network unreachable",
  ENOENT: "no such file or directory",
  ENOTFOUND: "host not found",
  ETIMEDOUT: "timed out",
};

/** What the peer did when the connection broke: all four leave nothing to read or write. */
const RESET_CODES = new Set(["ECONNRESET", "EPIPE", "ECONNABORTED", "ENOTCONN"]);

/**
 * The errno code a runtime error carries (`err.code`), when it is a string.
 *
 * @example
 * ```ts
 * errorCode(Object.assign(new Error("x"), { code: "EPIPE" })); // "EPIPE"
 * ```
 */
export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function reasonOf(err: unknown, code: string | undefined): string {
  const tls = tlsFailureReason(err);
  if (tls !== undefined) return tls;
  if (code !== undefined) {
    const words = ERROR_WORDS[code];
    return words === undefined ? code : `${words} (${code})`;
  }
  const message = err instanceof Error ? err.message : String(err);
  return message.charAt(0).toLowerCase() + message.slice(1);
}

function typed(head: string, err: unknown, code: string | undefined): Error {
  if (code === "ECONNREFUSED") {
    return new ConnectionRefusedError(`${head}: connection refused`, { cause: err });
  }
  if (code !== undefined && RESET_CODES.has(code)) {
    return new ConnectionResetError(`${head}: connection reset by peer`, { cause: err });
  }
  if (code === "EADDRINUSE") return new AddressInUseError(`${head}: address already in use`, { cause: err });
  return new TransportError(`${head}: ${reasonOf(err, code)}`, { cause: err });
}

/**
 * Why connecting to `target` failed, as a typed error: `ConnectionRefusedError` when nothing listens
 * there (a UNIX path with no socket file is nobody listening too), `ConnectionResetError`,
 * otherwise a `TransportError` naming the reason. Bad options (`TypeError`, `RangeError`) pass as they are.
 *
 * @example
 * ```ts
 * connectError(err, { transport: "tcp", hostname: "127.0.0.1", port: 1 });
 * // ConnectionRefusedError: Cannot connect to tcp:127.0.0.1:1: connection refused
 * ```
 */
export function connectError(err: unknown, target: Addr, code: string | undefined = errorCode(err)): Error {
  if (err instanceof TypeError || err instanceof RangeError) return err;
  const head = `Cannot connect to ${formatAddr(target)}`;
  if (code === "ENOENT" && target.transport === "unix") {
    return new ConnectionRefusedError(`${head}: connection refused (no socket file there)`, { cause: err });
  }
  return typed(head, err, code);
}

/**
 * Why listening on `target` failed, as a typed error (`AddressInUseError` when it is taken).
 *
 * @example
 * ```ts
 * listenError(err, { transport: "tcp", hostname: "127.0.0.1", port: 80 });
 * // AddressInUseError: Cannot listen on tcp:127.0.0.1:80: address already in use
 * ```
 */
export function listenError(err: unknown, target: Addr, code: string | undefined = errorCode(err)): Error {
  if (err instanceof TypeError || err instanceof RangeError) return err;
  return typed(`Cannot listen on ${formatAddr(target)}`, err, code);
}

/**
 * Why a TLS connect to `target` ended before its handshake was done: the runtime's TLS failure when
 * `cause` is one (an untrusted certificate, a refused handshake), else the server closed it.
 *
 * @example
 * ```ts
 * tlsConnectError(undefined, { transport: "tls", hostname: "127.0.0.1", port: 8443 });
 * // ConnectionResetError: Cannot connect to tls:127.0.0.1:8443: closed during the TLS handshake
 * ```
 */
export function tlsConnectError(cause: unknown, target: Addr): Error {
  const head = `Cannot connect to ${formatAddr(target)}`;
  const reason = tlsFailureReason(cause);
  if (reason !== undefined) return new TransportError(`${head}: ${reason}`, { cause });
  return new ConnectionResetError(`${head}: closed during the TLS handshake`, { cause });
}

/**
 * Why an open connection with `peer` (see `peerName`) broke, as a typed error
 * (`ConnectionResetError` when the peer reset it).
 *
 * @example
 * ```ts
 * connectionError(err, "tcp:127.0.0.1:5000");
 * // ConnectionResetError: Connection with tcp:127.0.0.1:5000 failed: connection reset by peer
 * ```
 */
export function connectionError(
  err: unknown,
  peer: string,
  code: string | undefined = errorCode(err),
): Error {
  return typed(`Connection with ${peer} failed`, err, code);
}

/**
 * The `TypeError` for options whose `transport` is none of `tcp`, `unix` and `tls`.
 *
 * @example
 * ```ts
 * throw unknownTransportError("connect", { transport: "udp" });
 * // TypeError: Cannot connect: unknown transport "udp"
 * ```
 */
export function unknownTransportError(
  action: "listen" | "connect",
  options: { transport: unknown },
): TypeError {
  return new TypeError(`Cannot ${action}: unknown transport ${JSON.stringify(options.transport)}`);
}
