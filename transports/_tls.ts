/**
 * TLS helpers shared by every transport: option checks, PEM normalising, and turning each runtime's
 * handshake failures into one readable reason.
 *
 * @module
 */
import { DEFAULT_HOSTNAME, formatAddr } from "./_addr.ts";
import type { PemData, TlsConnectionInfo, TlsConnectOptions, TlsListenOptions } from "./types.ts";

/** How long a peer may take to complete the TLS handshake, unless the options say otherwise. */
export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

const decoder = new TextDecoder();

/**
 * PEM as a string (Deno takes only strings; Node and Bun take both).
 */
export function pemText(value: PemData): string {
  return typeof value === "string" ? value : decoder.decode(value);
}

/**
 * A `ca` option as a list of PEM strings, or `undefined` when not given.
 */
export function pemList(value: PemData | readonly PemData[] | undefined): string[] | undefined {
  if (value === undefined) return undefined;
  const list = (Array.isArray(value) ? value : [value]) as readonly PemData[];
  return list.map(pemText);
}

function checkTimeout(value: number | undefined, action: string): number {
  if (value === undefined) return DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
  if (typeof value !== "number" || !(value > 0) || value > 2 ** 31 - 1) {
    throw new RangeError(`Cannot ${action}: tlsHandshakeTimeoutMs must be a positive number of milliseconds`);
  }
  return value;
}

function isPem(value: unknown): value is PemData {
  return typeof value === "string" || value instanceof Uint8Array;
}

/** TLS listen options, checked and normalised. */
export interface CheckedTlsListen {
  readonly hostname: string;
  readonly port: number;
  readonly reusePort: boolean;
  readonly cert: string;
  readonly key: string;
  /** Present exactly when client certificates are required. */
  readonly ca: string[] | undefined;
  readonly requestClientCert: boolean;
  readonly timeoutMs: number;
}

/**
 * Checks TLS listen options, throwing a `TypeError` or `RangeError` for unusable ones.
 *
 * @example
 * ```ts
 * const checked = checkTlsListen({ transport: "tls", cert, key });
 * console.log(checked.hostname); // "127.0.0.1"
 * ```
 */
export function checkTlsListen(options: TlsListenOptions): CheckedTlsListen {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const port = options.port ?? 0;
  const where = formatAddr({ transport: "tls", hostname, port });
  if (!isPem(options.cert) || !isPem(options.key)) {
    throw new TypeError(`Cannot listen on ${where} with TLS: cert and key (PEM) are required`);
  }
  const requestClientCert = options.requestClientCert === true;
  const ca = pemList(options.ca);
  if (requestClientCert && (ca === undefined || ca.length === 0)) {
    throw new TypeError(`Cannot listen on ${where} with requestClientCert: ca is required to verify clients`);
  }
  return {
    hostname,
    port,
    reusePort: options.reusePort === true,
    cert: pemText(options.cert),
    key: pemText(options.key),
    ca: requestClientCert ? ca : undefined,
    requestClientCert,
    timeoutMs: checkTimeout(options.tlsHandshakeTimeoutMs, `listen on ${where}`),
  };
}

/** TLS connect options, checked and normalised. */
export interface CheckedTlsConnect {
  readonly hostname: string;
  readonly port: number;
  readonly ca: string[] | undefined;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  /** Only when it differs from `hostname`. */
  readonly serverName: string | undefined;
  readonly timeoutMs: number;
  /** The address for messages, such as `tls:127.0.0.1:8443`. */
  readonly where: string;
}

/**
 * Checks TLS connect options, throwing a `TypeError` or `RangeError` for unusable ones.
 *
 * @example
 * ```ts
 * const checked = checkTlsConnect({ transport: "tls", port: 8443, ca: caPem });
 * console.log(checked.where); // "tls:127.0.0.1:8443"
 * ```
 */
export function checkTlsConnect(options: TlsConnectOptions): CheckedTlsConnect {
  const hostname = options.hostname ?? DEFAULT_HOSTNAME;
  const where = formatAddr({ transport: "tls", hostname, port: options.port });
  if ((options.cert === undefined) !== (options.key === undefined)) {
    throw new TypeError(`Cannot connect to ${where}: a client cert needs its key, and a key its cert`);
  }
  if (
    (options.cert !== undefined && !isPem(options.cert)) || (options.key !== undefined && !isPem(options.key))
  ) {
    throw new TypeError(`Cannot connect to ${where}: cert and key must be PEM strings or bytes`);
  }
  if (
    options.serverName !== undefined && (typeof options.serverName !== "string" || options.serverName === "")
  ) {
    throw new TypeError(`Cannot connect to ${where}: serverName must be a non-empty string`);
  }
  return {
    hostname,
    port: options.port,
    ca: pemList(options.ca),
    cert: options.cert === undefined ? undefined : pemText(options.cert),
    key: options.key === undefined ? undefined : pemText(options.key),
    serverName: options.serverName === hostname ? undefined : options.serverName,
    timeoutMs: checkTimeout(options.tlsHandshakeTimeoutMs, `connect to ${where}`),
    where,
  };
}

/** OpenSSL's certificate verification results, as Node and Bun name them. */
const VERIFY_CODES = new Set([
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_DECRYPT_CERT_SIGNATURE",
  "UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY",
  "CERT_SIGNATURE_FAILURE",
  "CERT_NOT_YET_VALID",
  "CERT_HAS_EXPIRED",
  "ERROR_IN_CERT_NOT_BEFORE_FIELD",
  "ERROR_IN_CERT_NOT_AFTER_FIELD",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "CERT_CHAIN_TOO_LONG",
  "CERT_REVOKED",
  "INVALID_CA",
  "PATH_LENGTH_EXCEEDED",
  "INVALID_PURPOSE",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
]);

/**
 * A short reason for a TLS failure from any runtime, or `undefined` when `err` is not one:
 * `certificate verification failed (SELF_SIGNED_CERT_IN_CHAIN)`, `certificate does not match the host
 * name (NotValidForName)`, `the peer refused the TLS handshake (CertificateRequired)`.
 *
 * @example
 * ```ts
 * tlsFailureReason(Object.assign(new Error("x"), { code: "CERT_HAS_EXPIRED" }));
 * // "certificate verification failed (CERT_HAS_EXPIRED)"
 * ```
 */
export function tlsFailureReason(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  const message = err instanceof Error ? err.message : "";
  if (typeof code === "string") {
    if (code === "ERR_TLS_CERT_ALTNAME_INVALID" || code === "HOSTNAME_MISMATCH") {
      return `certificate does not match the host name (${code})`;
    }
    if (VERIFY_CODES.has(code)) return `certificate verification failed (${code})`;
    if (code === "ERR_TLS_HANDSHAKE_TIMEOUT") return `TLS handshake timed out (${code})`;
    if (code === "EPROTO" || code.startsWith("ERR_SSL_") || code.startsWith("ERR_TLS_")) {
      // Bun's EPROTO carries BoringSSL's reason last: "...:OPENSSL_internal:TLSV1_ALERT_UNKNOWN_CA".
      const detail = code === "EPROTO" ? (/:([A-Z0-9_]+)$/.exec(message)?.[1] ?? code) : code;
      return /ALERT/.test(detail)
        ? `the peer refused the TLS handshake (${detail})`
        : `TLS handshake failed (${detail})`;
    }
    return undefined;
  }
  // Deno (rustls) reports handshake failures as InvalidData with rustls's own words.
  if (err instanceof Error && err.name === "InvalidData") {
    const cert = /invalid peer certificate: (.+)$/.exec(message);
    if (cert) {
      // Older rustls names the error (NotValidForName); newer spells it out ("certificate not valid for name").
      return /NotValidForName|not valid for name/.test(cert[1])
        ? `certificate does not match the host name (${cert[1]})`
        : `certificate verification failed (${cert[1]})`;
    }
    const alert = /received fatal alert: (\w+)/.exec(message);
    if (alert) return `the peer refused the TLS handshake (${alert[1]})`;
    return `TLS handshake failed (${message})`;
  }
  return undefined;
}

/**
 * A certificate subject as Node and Bun give it (`{ CN: "x", O: ["a", "b"] }`) in one line,
 * `CN=x, O=a, O=b`; `undefined` when there is none.
 *
 * @example
 * ```ts
 * formatSubject({ CN: "worker-7", O: "Example" }); // "CN=worker-7, O=Example"
 * ```
 */
export function formatSubject(subject: unknown): string | undefined {
  if (typeof subject !== "object" || subject === null) return undefined;
  const parts: string[] = [];
  for (const [key, value] of Object.entries(subject as Record<string, unknown>)) {
    for (const item of Array.isArray(value) ? value : [value]) parts.push(`${key}=${String(item)}`);
  }
  return parts.length > 0 ? parts.join(", ") : undefined;
}

/**
 * What a finished TLS handshake tells of the peer: whether it was verified, and the subject of the
 * certificate it sent (`subject` as Node and Bun give it), when it sent one.
 */
export function tlsConnectionInfo(authorized: boolean, subject: unknown): TlsConnectionInfo {
  const formatted = formatSubject(subject);
  return formatted === undefined ? { authorized } : { authorized, peerCertificateSubject: formatted };
}
