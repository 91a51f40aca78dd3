/**
 * Access rules: which named client may come through which listener, transport or address.
 *
 * @module
 */
import type { Addr, TlsConnectionInfo, TransportKind } from "../../transports/types.ts";
import type { ListenerInfo } from "../types.ts";
import { type CidrRange, ipInRange, isLoopbackIp, parseCidr, parseIp } from "../wire/ip.ts";

/** What a rule sees of a connection. */
export interface PeerInfo {
  /** The listener it came through. */
  readonly listener: ListenerInfo;
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** The local address it was accepted on. */
  readonly localAddr: Addr;
  /** `"unix"`, `"tcp"`, `"tls"` or `"udp"`. */
  readonly transport: TransportKind;
  /** The keyword announced, for named clients. */
  readonly keyword?: Uint8Array;
  /** What the TLS handshake established, on TLS listeners. */
  readonly tls?: TlsConnectionInfo;
  /** The balancer's address, behind a trusted PROXY protocol source (`remoteAddr` is the client's). */
  readonly proxyAddr?: Addr;
  /** True for a connection upgraded to WebSocket on a `websocket` listener. */
  readonly websocket?: boolean;
}

/**
 * One access rule. Every field given must match (AND); a list of rules admits a connection when
 * any rule matches (OR). An empty list admits nothing.
 *
 * @example Allow a named client from the UNIX socket, or over TCP from the LAN
 * ```ts
 * import type { AccessRule } from "@asockio/core";
 * const rules: AccessRule[] = [{ transport: "unix" }, { transport: "tcp", cidr: "192.168.0.0/16" }];
 * ```
 */
export interface AccessRule {
  /** A listener name or id (index in `IoCoreOptions.listeners`), or several. */
  listener?: string | number | ReadonlyArray<string | number>;
  /** A transport, or several (`"udp"` matches the unknown clients of UDP listeners). */
  transport?: TransportKind | ReadonlyArray<TransportKind>;
  /** `true`: the peer must be on loopback (127.0.0.0/8, ::1, or a UNIX socket). */
  loopback?: boolean;
  /** CIDR ranges the peer's IP must fall in (IPv4-mapped IPv6 peers match IPv4 ranges). */
  cidr?: string | readonly string[];
  /**
   * `true`: the peer presented a client certificate that verified against the listener's `ca`
   * (set `requestClientCert` on the TLS listener). Connections that are not TLS never match.
   */
  clientCertVerified?: boolean;
  /** `true`: only WebSocket connections match; `false`: only other connections. */
  websocket?: boolean;
  /** Any custom check. A check that throws refuses that connection only; the core logs it. */
  test?: (peer: PeerInfo) => boolean;
}

/**
 * The default for named clients: only through UNIX sockets or from loopback. Secure by default:
 * anything reachable from the network must be allowed explicitly.
 *
 * @example
 * ```ts
 * import { LOCAL_ONLY } from "@asockio/core";
 * console.log(LOCAL_ONLY); // [{ transport: "unix" }, { loopback: true }]
 * ```
 */
export const LOCAL_ONLY: readonly AccessRule[] = Object.freeze([
  Object.freeze({ transport: "unix" as const }),
  Object.freeze({ loopback: true }),
]);

/**
 * Allows every connection. Use it deliberately, e.g. behind TLS with a shared secret.
 *
 * @example
 * ```ts
 * import { ALLOW_ALL } from "@asockio/core";
 * // core.addClient({ keyword: "public", allow: ALLOW_ALL });
 * ```
 */
export const ALLOW_ALL: readonly AccessRule[] = Object.freeze([Object.freeze({})]);

/** A compiled rule list: returns the index of the first matching rule, or -1. */
export type RuleCheck = (peer: PeerInfo) => number;

const list = <T>(value: T | ReadonlyArray<T> | undefined): readonly T[] | undefined =>
  value === undefined ? undefined : Array.isArray(value) ? value : [value as T];

/**
 * Validates and compiles rules once (CIDR strings parsed up front), so checking a connection
 * allocates nothing. Throws a `TypeError` for a malformed rule.
 *
 * @example
 * ```ts
 * import { compileRules } from "@asockio/core";
 * const check = compileRules([{ cidr: "10.0.0.0/8" }]);
 * ```
 */
export function compileRules(rules: readonly AccessRule[]): RuleCheck {
  if (!Array.isArray(rules)) throw new TypeError("Cannot compile access rules: expected an array");
  const compiled = rules.map((rule, index) => {
    if (rule === null || typeof rule !== "object") {
      throw new TypeError(`Cannot compile access rule ${index}: expected an object`);
    }
    const known = new Set([
      "listener",
      "transport",
      "loopback",
      "cidr",
      "clientCertVerified",
      "websocket",
      "test",
    ]);
    for (const key of Object.keys(rule)) {
      if (!known.has(key)) throw new TypeError(`Cannot compile access rule ${index}: unknown field ${key}`);
    }
    const listeners = list(rule.listener);
    const transports = list(rule.transport);
    const ranges: CidrRange[] | undefined = list(rule.cidr)?.map((text) => parseCidr(text));
    const { loopback, clientCertVerified, websocket, test } = rule;
    if (test !== undefined && typeof test !== "function") {
      throw new TypeError(`Cannot compile access rule ${index}: test must be a function`);
    }
    return (peer: PeerInfo): boolean => {
      if (listeners && !listeners.includes(peer.listener.name) && !listeners.includes(peer.listener.id)) {
        return false;
      }
      if (transports && !transports.includes(peer.transport)) return false;
      if (websocket !== undefined && (peer.websocket === true) !== websocket) return false;
      const remote = peer.remoteAddr;
      if (loopback !== undefined) {
        const isLoop = remote.transport === "unix" || isLoopbackIp(remote.hostname);
        if (isLoop !== loopback) return false;
      }
      if (clientCertVerified !== undefined && (peer.tls?.authorized === true) !== clientCertVerified) {
        return false;
      }
      if (ranges) {
        if (remote.transport === "unix") return false;
        const ip = parseIp(remote.hostname);
        if (!ip || !ranges.some((range) => ipInRange(ip, range))) return false;
      }
      return test ? test(peer) === true : true;
    };
  });
  return (peer) => compiled.findIndex((match) => match(peer));
}
