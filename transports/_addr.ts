/**
 * Addresses as every transport names them in messages, and the host every one defaults to.
 *
 * @module
 */
import type { Addr } from "./types.ts";

/** The host to bind and to connect to when the options name none: loopback, never every interface. */
export const DEFAULT_HOSTNAME = "127.0.0.1";

/**
 * The host names a listener binds every interface with: its sockets' local addresses differ.
 *
 * @example
 * ```ts
 * WILDCARD_HOSTS.has("0.0.0.0"); // true
 * ```
 */
export const WILDCARD_HOSTS: ReadonlySet<string> = new Set(["0.0.0.0", "::", "0:0:0:0:0:0:0:0", "[::]", ""]);

/**
 * An address in one line, its kind first, as the core names addresses too: `tcp:127.0.0.1:5000`,
 * `tls:[::1]:443`, `unix:/tmp/app.sock` (`unix:(unnamed)` for a client's own side).
 *
 * @example
 * ```ts
 * formatAddr({ transport: "tcp", hostname: "::1", port: 80 }); // "tcp:[::1]:80"
 * ```
 */
export function formatAddr(addr: Addr): string {
  if (addr.transport === "unix") return `unix:${addr.path || "(unnamed)"}`;
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return `${addr.transport}:${host}:${addr.port}`;
}

/**
 * The name of a connection's far end for messages: its remote address, or for a UNIX connection
 * accepted by a listener (whose peer has no name) the listener's path.
 *
 * @example
 * ```ts
 * peerName({ transport: "unix", path: "/tmp/a.sock" }, { transport: "unix", path: "" }); // "unix:/tmp/a.sock"
 * ```
 */
export function peerName(localAddr: Addr, remoteAddr: Addr): string {
  if (remoteAddr.transport === "unix" && remoteAddr.path === "" && localAddr.transport === "unix") {
    return formatAddr(localAddr);
  }
  return formatAddr(remoteAddr);
}

/** The last local address made: a listener's connections share one (it is never modified). */
let lastLocal: Addr = { transport: "unix", path: "" };

/**
 * A TCP or TLS local address, the same object as the last one made when it is equal: the connections of
 * one listener share one, instead of an object each.
 *
 * @example
 * ```ts
 * localAddrOf("tcp", "127.0.0.1", 80) === localAddrOf("tcp", "127.0.0.1", 80); // true
 * ```
 */
export function localAddrOf(transport: "tcp" | "tls", hostname: string, port: number): Addr {
  const last = lastLocal;
  if (last.transport === transport && last.hostname === hostname && last.port === port) return last;
  return lastLocal = { transport, hostname, port };
}
