/**
 * IP address helpers (what `@std/net` would give): parse IPv4 and IPv6 literals, CIDR ranges,
 * loopback checks, with IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) treated as IPv4; and the one way
 * addresses are written in names and logs.
 *
 * @module
 */
import type { Addr } from "../../transports/types.ts";

/** A parsed address: 4 bytes for IPv4, 16 for IPv6. */
export type IpBytes = Uint8Array;

function parseIpv4(text: string): IpBytes | undefined {
  const parts = text.split(".");
  if (parts.length !== 4) return undefined;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i]!;
    if (!/^\d{1,3}$/.test(part) || (part.length > 1 && part[0] === "0")) return undefined;
    const value = Number(part);
    if (value > 255) return undefined;
    bytes[i] = value;
  }
  return bytes;
}

/**
 * Parses an IPv6 literal into its 16 bytes, keeping an IPv4-mapped address in its IPv6 form (unlike
 * {@linkcode parseIp}). A zone (`%eth0`) is dropped and brackets are accepted.
 *
 * @param text The literal, such as `2001:db8::1` or `::ffff:10.1.2.3`.
 * @returns The 16 bytes, or `undefined` when `text` is not an IPv6 literal.
 */
export function parseIpv6(text: string): IpBytes | undefined {
  const zone = text.indexOf("%");
  if (zone >= 0) text = text.slice(0, zone);
  if (text.startsWith("[") && text.endsWith("]")) text = text.slice(1, -1);
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === "") return [];
    const out: number[] = [];
    const items = part.split(":");
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i === items.length - 1 && item.includes(".")) {
        const v4 = parseIpv4(item);
        if (!v4) return undefined;
        out.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return undefined;
        out.push(parseInt(item, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

/**
 * Parses an IPv4 or IPv6 literal. An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) comes back
 * as the 4-byte IPv4 address, so IPv4 rules match it on dual-stack listeners. Text that is not an IP
 * literal gives `undefined`; a value that is not a string throws a `TypeError`.
 *
 * @example
 * ```ts
 * import { parseIp } from "@asockio/core";
 * console.log(parseIp("::ffff:10.1.2.3")); // Uint8Array(4) [10, 1, 2, 3]
 * ```
 */
export function parseIp(text: string): IpBytes | undefined {
  if (typeof text !== "string") {
    throw new TypeError(`Cannot parse IP address: expected a string, got ${typeof text}`);
  }
  if (!text.includes(":")) return parseIpv4(text);
  const v6 = parseIpv6(text);
  if (!v6) return undefined;
  const mapped = v6.subarray(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

/**
 * Formats address bytes the way Node, Deno and Bun report a peer's address: IPv4 dotted, IPv6 in
 * lower case with the longest run of two or more zero groups (the first of equal runs) compressed to
 * `::` (RFC 5952), and an IPv4-mapped IPv6 address as `::ffff:a.b.c.d`.
 *
 * @param ip 4 or 16 bytes.
 * @returns The address text.
 * @throws {RangeError} When `ip` is neither 4 nor 16 bytes long.
 *
 * @example
 * ```ts
 * import { formatIp } from "./ip.ts";
 * console.log(formatIp(new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]))); // "2001:db8::1"
 * ```
 */
export function formatIp(ip: IpBytes): string {
  if (ip.length === 4) return `${ip[0]}.${ip[1]}.${ip[2]}.${ip[3]}`;
  if (ip.length !== 16) {
    throw new RangeError(`Cannot format IP address: ${ip.length} bytes are neither 4 nor 16`);
  }
  if (ip.subarray(0, 10).every((b) => b === 0) && ip[10] === 0xff && ip[11] === 0xff) {
    return `::ffff:${ip[12]}.${ip[13]}.${ip[14]}.${ip[15]}`;
  }
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((ip[i]! << 8) | ip[i + 1]!);
  let bestAt = -1;
  let bestLength = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let end = i;
    while (end < 8 && groups[end] === 0) end++;
    if (end - i > bestLength) {
      bestAt = i;
      bestLength = end - i;
    }
    i = end;
  }
  const hex = (from: number, to: number) => groups.slice(from, to).map((g) => g.toString(16)).join(":");
  return bestAt < 0 ? hex(0, 8) : `${hex(0, bestAt)}::${hex(bestAt + bestLength, 8)}`;
}

/** A CIDR range such as `10.0.0.0/8` or `fd00::/8`. */
export interface CidrRange {
  /** The network address bytes. */
  readonly network: IpBytes;
  /** The prefix length in bits. */
  readonly prefix: number;
}

/**
 * Parses a CIDR range; a bare address means a single host. Throws a `TypeError` when malformed.
 *
 * @example
 * ```ts
 * import { ipInRange, parseCidr, parseIp } from "@asockio/core";
 * const lan = parseCidr("192.168.0.0/16");
 * console.log(ipInRange(parseIp("192.168.4.2")!, lan)); // true
 * ```
 */
export function parseCidr(text: string): CidrRange {
  if (typeof text !== "string") {
    throw new TypeError(`Cannot parse CIDR range: expected a string, got ${typeof text}`);
  }
  const slash = text.lastIndexOf("/");
  const network = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!network) throw new TypeError(`Cannot parse CIDR range ${JSON.stringify(text)}: bad address`);
  let prefix = network.length * 8;
  if (slash >= 0) {
    const bits = text.slice(slash + 1);
    // An IPv4-mapped network keeps its prefix relative to the IPv6 form.
    const offset = text.slice(0, slash).includes(":") && network.length === 4 ? 96 : 0;
    if (!/^\d{1,3}$/.test(bits) || Number(bits) - offset < 0 || Number(bits) - offset > network.length * 8) {
      throw new TypeError(`Cannot parse CIDR range ${JSON.stringify(text)}: bad prefix length`);
    }
    prefix = Number(bits) - offset;
  }
  return { network, prefix };
}

/**
 * True when `ip` lies in `range` (both of the same family).
 *
 * @example
 * ```ts
 * import { ipInRange, parseCidr, parseIp } from "@asockio/core";
 * console.log(ipInRange(parseIp("::1")!, parseCidr("::1/128"))); // true
 * ```
 */
export function ipInRange(ip: IpBytes, range: CidrRange): boolean {
  if (ip.length !== range.network.length) return false;
  let bits = range.prefix;
  for (let i = 0; bits > 0; i++, bits -= 8) {
    const mask = bits >= 8 ? 0xff : (0xff << (8 - bits)) & 0xff;
    if ((ip[i]! & mask) !== (range.network[i]! & mask)) return false;
  }
  return true;
}

const LOOPBACK_V4 = parseCidr("127.0.0.0/8");
const LOOPBACK_V6 = parseCidr("::1/128");

/**
 * True for `127.0.0.0/8`, `::1` and their IPv4-mapped forms.
 *
 * @example
 * ```ts
 * import { isLoopbackIp } from "@asockio/core";
 * console.log(isLoopbackIp("::ffff:127.0.0.1")); // true
 * ```
 */
export function isLoopbackIp(text: string): boolean {
  const ip = parseIp(text);
  return !!ip && (ipInRange(ip, LOOPBACK_V4) || ipInRange(ip, LOOPBACK_V6));
}

/**
 * False for a TCP or TLS address the runtime could not read (an empty hostname): Node and Bun give
 * none for a connection its peer has already reset.
 */
export function addrKnown(addr: Addr): boolean {
  return addr.transport === "unix" || addr.hostname !== "";
}

/**
 * Formats an address for names and logs: `tcp:127.0.0.1:80`, `tcp:[::1]:80`, `unix:/run/app.sock`.
 */
export function describeAddr(addr: Addr): string {
  if (!addrKnown(addr)) return `${addr.transport}:(unknown address)`;
  return addr.transport === "unix"
    ? `unix:${addr.path || "(unnamed)"}`
    : `${addr.transport}:${addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname}:${addr.port}`;
}
