/**
 * Addresses as every transport names them in messages, and the host every one defaults to.
 *
 * @module
 */
import type { Addr } from "./types.ts";

/** The host to bind and to connect to when the options name none: loopback, never every interface. */
export const DEFAULT_HOSTNAME = "127.0.0.1";

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
