/**
 * The few members of the `Deno` namespace that the deno transport touches, declared by hand so its
 * files type-check under `tsc` with Node types only. Reached through `globalThis` ({@linkcode denoGlobal}),
 * never `lib.deno`; {@linkcode denoErrorCode} reads Deno's errors.
 *
 * @module
 */
import { errorCode } from "./_errors.ts";

/** A TCP address as Deno reports it. */
export interface DenoTcpAddr {
  transport: "tcp";
  hostname: string;
  port: number;
}

/** A UNIX address as Deno reports it; `path` is `null` for an unnamed client socket. */
export interface DenoUnixAddr {
  transport: "unix";
  path: string | null;
}

/** Either address kind a stream socket can have in Deno. */
export type DenoAddr = DenoTcpAddr | DenoUnixAddr;

/** `Deno.Conn`, plus the `Deno.TcpConn` extras (absent on UNIX connections). */
export interface DenoConn {
  readonly localAddr: DenoAddr;
  readonly remoteAddr: DenoAddr;
  /** Resolves with the byte count, or `null` at EOF. */
  read(p: Uint8Array): Promise<number | null>;
  /** Resolves with the byte count written, which may be less than `p.length`. */
  write(p: Uint8Array): Promise<number>;
  closeWrite(): Promise<void>;
  close(): void;
  setNoDelay?(noDelay?: boolean): void;
  setKeepAlive?(keepAlive?: boolean): void;
}

/** `Deno.TlsConn`. */
export interface DenoTlsConn extends DenoConn {
  /** Completes the handshake (otherwise done on first read or write); rejects when it fails. */
  handshake(): Promise<{ alpnProtocol: string | null }>;
}

/** `Deno.Listener`. */
export interface DenoListener {
  readonly addr: DenoAddr;
  accept(): Promise<DenoConn>;
  close(): void;
}

/** `Deno.listen` options for TCP. */
export interface DenoTcpListenOptions {
  transport?: "tcp";
  hostname?: string;
  port?: number;
  reusePort?: boolean;
}

/** `Deno.listen` options for UNIX sockets. */
export interface DenoUnixListenOptions {
  transport: "unix";
  path: string;
}

/** `Deno.connect` options for TCP. */
export interface DenoTcpConnectOptions {
  transport?: "tcp";
  hostname?: string;
  port: number;
}

/** `Deno.connect` options for UNIX sockets. */
export interface DenoUnixConnectOptions {
  transport: "unix";
  path: string;
}

/** `Deno.connectTls` options; `caCerts` add to Deno's built-in roots. */
export interface DenoConnectTlsOptions {
  hostname?: string;
  port: number;
  caCerts?: string[];
  cert?: string;
  key?: string;
}

/** `Deno.startTls` options; `hostname` is the name to verify (and send as SNI). */
export interface DenoStartTlsOptions {
  hostname?: string;
  caCerts?: string[];
}

/** A UDP address as Deno reports it. */
export interface DenoUdpAddr {
  transport: "udp";
  hostname: string;
  port: number;
}

/** `Deno.listenDatagram` options for UDP. */
export interface DenoUdpListenOptions {
  transport: "udp";
  hostname: string;
  port: number;
}

/** `Deno.DatagramConn` (unstable). */
export interface DenoDatagramConn {
  readonly addr: DenoUdpAddr;
  /** Resolves with the datagram (a view into `p` when given) and its sender. */
  receive(p?: Uint8Array): Promise<[Uint8Array, DenoUdpAddr]>;
  /** Resolves with the bytes sent. */
  send(p: Uint8Array, addr: DenoUdpAddr): Promise<number>;
  close(): void;
}

/** Any of Deno's error classes under `Deno.errors`. */
export type DenoErrorClass = new (...args: never[]) => Error;

/** The `Deno` namespace members used by the transport. */
export interface DenoNamespace {
  listen(options: DenoTcpListenOptions | DenoUnixListenOptions): DenoListener;
  connect(options: DenoTcpConnectOptions | DenoUnixConnectOptions): Promise<DenoConn>;
  connectTls(options: DenoConnectTlsOptions): Promise<DenoTlsConn>;
  startTls(conn: DenoConn, options: DenoStartTlsOptions): Promise<DenoTlsConn>;
  /** Only present with `--unstable-net`; its absence is detected, never assumed. */
  listenDatagram?(options: DenoUdpListenOptions): DenoDatagramConn;
  errors: {
    NotFound: DenoErrorClass;
    ConnectionRefused: DenoErrorClass;
    ConnectionReset: DenoErrorClass;
    ConnectionAborted: DenoErrorClass;
    NotConnected: DenoErrorClass;
    AddrInUse: DenoErrorClass;
    BrokenPipe: DenoErrorClass;
    BadResource: DenoErrorClass;
    Interrupted: DenoErrorClass;
  };
}

/**
 * The `Deno` namespace; a `TypeError` outside Deno.
 */
export function denoGlobal(): DenoNamespace {
  const ns = (globalThis as { Deno?: DenoNamespace }).Deno;
  if (ns === undefined) throw new TypeError("Cannot use the deno transport outside Deno");
  return ns;
}

/**
 * The errno code a Deno error stands for: Deno sets `code` on most of its socket errors, and its
 * class names it for the others.
 */
export function denoErrorCode(err: unknown): string | undefined {
  const code = errorCode(err);
  if (code !== undefined) return code;
  const errors = denoGlobal().errors;
  if (err instanceof errors.ConnectionRefused) return "ECONNREFUSED";
  // Deno reports a UNIX path with no socket file as NotFound.
  if (err instanceof errors.NotFound) return "ENOENT";
  if (err instanceof errors.AddrInUse) return "EADDRINUSE";
  if (err instanceof errors.ConnectionReset) return "ECONNRESET";
  if (err instanceof errors.BrokenPipe) return "EPIPE";
  if (err instanceof errors.ConnectionAborted) return "ECONNABORTED";
  if (err instanceof errors.NotConnected) return "ENOTCONN";
  return undefined;
}
