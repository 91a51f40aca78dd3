/**
 * PROXY protocol headers for the live fuzzer: valid v1/v2 headers built from the spec, mutations of
 * them, and a small judge that decides what a receiver must do with a header. Nothing here imports
 * `core/wire/proxy_protocol.ts` or `core/wire/ip.ts`: the core's reader must not judge itself.
 *
 * @module
 */
import type { Rng } from "./_stream_check.ts";

const encoder = new TextEncoder();

/** The 12 bytes a v2 header starts with: `\r\n\r\n\0\r\nQUIT\n` (spec, section 2.2). */
export const V2_SIGNATURE: readonly number[] = [
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
];
/** The longest v1 line, CRLF included (spec, section 2.1). */
export const V1_MAX_LINE_BYTES = 107;
/**
 * The largest v2 header the fuzz core takes: the listener's documented default (the fixed 16 bytes
 * plus the spec's largest address block, two UNIX paths). Restated here so the oracle owns it.
 */
export const V2_MAX_HEADER_BYTES = 16 + 216;

/** The original client a valid header names; `undefined` source: LOCAL or UNKNOWN (the real peer). */
export interface ProxySource {
  readonly hostname: string;
  readonly port: number;
}

/**
 * What a receiver must do with a header that is all the bytes before the keyword:
 * `ok` (complete and valid, ending exactly there), `refused` (whatever follows), or `unsure` (the
 * judge cannot tell on its own; such mutations are not kept).
 */
export type ProxyVerdict =
  | { readonly kind: "ok"; readonly source: ProxySource | undefined }
  | { readonly kind: "refused"; readonly why: string }
  | { readonly kind: "unsure" };

const UNSURE: ProxyVerdict = { kind: "unsure" };

function refused(why: string): ProxyVerdict {
  return { kind: "refused", why };
}

/** RFC 5952 text of 16 address bytes: lowercase, no leading zeros, the longest run of 2+ zero groups as `::`. */
export function formatIpv6(bytes: ArrayLike<number>): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes[i]! * 256 + bytes[i + 1]!);
  let best = -1;
  let bestLength = 0;
  for (let i = 0; i < 8; i++) {
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i >= 2 && j - i > bestLength) {
      best = i;
      bestLength = j - i;
    }
    if (j > i) i = j - 1;
  }
  const hex = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLength))}`;
}

/** Strict dotted-quad IPv4: bytes, `"invalid"`, or `"unsure"` (leading zeros, which some read as octal). */
function judgeIpv4(text: string): number[] | "invalid" | "unsure" {
  const parts = text.split(".");
  if (parts.length !== 4) return "invalid";
  const out: number[] = [];
  let unsure = false;
  for (const part of parts) {
    if (!/^[0-9]{1,3}$/.test(part)) return "invalid";
    if (Number(part) > 255) return "invalid";
    if (part.length > 1 && part[0] === "0") unsure = true;
    out.push(Number(part));
  }
  return unsure ? "unsure" : out;
}

/** IPv6 text (hex groups and at most one `::`): bytes, `"invalid"`, or `"unsure"` (a dotted tail). */
function judgeIpv6(text: string): number[] | "invalid" | "unsure" {
  if (!text.includes(":")) return "invalid";
  if (text.includes(".")) return /^[0-9A-Fa-f:.]+$/.test(text) ? "unsure" : "invalid";
  if (!/^[0-9A-Fa-f:]+$/.test(text)) return "invalid";
  const halves = text.split("::");
  if (halves.length > 2) return "invalid";
  const groupsOf = (half: string): number[] | undefined => {
    if (half === "") return [];
    const out: number[] = [];
    for (const g of half.split(":")) {
      if (!/^[0-9A-Fa-f]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groupsOf(halves[0]!);
  const tail = halves.length === 2 ? groupsOf(halves[1]!) : [];
  if (!head || !tail) return "invalid";
  const count = head.length + tail.length;
  if (halves.length === 2 ? count > 7 : count !== 8) return "invalid";
  const groups = [...head, ...new Array(8 - count).fill(0), ...tail];
  return groups.flatMap((g) => [g >> 8, g & 0xff]);
}

/** A v1 port: a decimal in [0, 65535]; leading zeros are left undecided. */
function judgePort(text: string): number | "invalid" | "unsure" {
  if (!/^[0-9]+$/.test(text)) return "invalid";
  if (text.length > 5 || Number(text) > 65535) return "invalid";
  return text.length > 1 && text[0] === "0" ? "unsure" : Number(text);
}

function judgeV1(bytes: Uint8Array): ProxyVerdict {
  let lf = -1;
  for (let i = 0; i < Math.min(bytes.length, V1_MAX_LINE_BYTES); i++) {
    if (bytes[i] === 0x0a) {
      lf = i;
      break;
    }
  }
  if (lf < 0) return bytes.length >= V1_MAX_LINE_BYTES ? refused("no CRLF within 107 bytes") : UNSURE;
  if (bytes[lf - 1] !== 0x0d) return refused("LF without CR");
  for (let i = 0; i < lf - 1; i++) if (bytes[i] === 0x0d) return refused("CR inside the line");
  // Bytes after the line would be read as the handshake: not a header this judge can place.
  if (lf + 1 !== bytes.length) return UNSURE;
  let line = "";
  for (let i = 6; i < lf - 1; i++) line += String.fromCharCode(bytes[i]!);
  const tokens = line.split(" ");
  const family = tokens[0]!;
  // The spec: after UNKNOWN the receiver ignores everything up to the CRLF.
  if (family === "UNKNOWN") return { kind: "ok", source: undefined };
  if (family !== "TCP4" && family !== "TCP6") return refused(`family ${JSON.stringify(family)}`);
  if (tokens.length !== 5) return refused(`${tokens.length} fields`);
  const [, src, dst, sport, dport] = tokens as [string, string, string, string, string];
  let source: string | undefined;
  for (const address of [src, dst]) {
    const v4 = judgeIpv4(address);
    const v6 = judgeIpv6(address);
    const mine = family === "TCP4" ? v4 : v6;
    const other = family === "TCP4" ? v6 : v4;
    if (mine === "unsure") return UNSURE;
    if (mine === "invalid") {
      if (other === "unsure") return UNSURE;
      return refused(`address ${JSON.stringify(address)} for ${family}`);
    }
    if (source === undefined && family === "TCP6" && mine.slice(0, 10).every((b) => b === 0)) {
      // IPv4-compatible and IPv4-mapped sources have their own text conventions: not judged.
      return UNSURE;
    }
    source ??= family === "TCP4" ? mine.join(".") : formatIpv6(mine);
  }
  const ports: number[] = [];
  for (const text of [sport, dport]) {
    const port = judgePort(text);
    if (port === "unsure") return UNSURE;
    if (port === "invalid") return refused(`port ${JSON.stringify(text)}`);
    ports.push(port);
  }
  return { kind: "ok", source: { hostname: source!, port: ports[0]! } };
}

function judgeV2(bytes: Uint8Array): ProxyVerdict {
  if (bytes.length < 16) return UNSURE;
  const version = bytes[12]! >> 4;
  const command = bytes[12]! & 0x0f;
  if (version !== 2) return refused(`version ${version}`);
  if (command !== 0 && command !== 1) return refused(`command ${command}`);
  const family = bytes[13]!;
  // The listener documents TCP only; with LOCAL the spec says the family is ignored.
  if (command === 1 && family !== 0x11 && family !== 0x21) return refused(`family 0x${family.toString(16)}`);
  const length = bytes[14]! * 256 + bytes[15]!;
  if (16 + length > V2_MAX_HEADER_BYTES) return refused(`${16 + length} bytes`);
  const addressBytes = command === 0 ? 0 : family === 0x11 ? 12 : 36;
  if (length < addressBytes) return refused(`length ${length} for the addresses`);
  if (16 + length !== bytes.length) return UNSURE;
  if (command === 0) return { kind: "ok", source: undefined };
  const ip = bytes.subarray(16, 16 + (family === 0x11 ? 4 : 16));
  const at = 16 + addressBytes - 4;
  const port = bytes[at]! * 256 + bytes[at + 1]!;
  if (family === 0x11) return { kind: "ok", source: { hostname: [...ip].join("."), port } };
  if (ip.subarray(0, 10).every((b) => b === 0)) return UNSURE;
  return { kind: "ok", source: { hostname: formatIpv6(ip), port } };
}

/**
 * Judges `bytes` as all a peer sends before its keyword, independently of the core's reader.
 */
export function judgeProxyHeader(bytes: Uint8Array): ProxyVerdict {
  const v1 = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20]; // "PROXY "
  const prefixOf = (sig: readonly number[]) => {
    for (let i = 0; i < Math.min(sig.length, bytes.length); i++) if (bytes[i] !== sig[i]) return false;
    return true;
  };
  const maybeV1 = prefixOf(v1);
  const maybeV2 = prefixOf(V2_SIGNATURE);
  if (!maybeV1 && !maybeV2) return refused("neither signature");
  if (maybeV1 && bytes.length >= v1.length) return judgeV1(bytes);
  if (maybeV2 && bytes.length >= V2_SIGNATURE.length) return judgeV2(bytes);
  return UNSURE;
}

/** A valid header, with the source it names. */
export interface BuiltHeader {
  readonly bytes: Uint8Array;
  readonly source: ProxySource | undefined;
  /** Where the TLVs start (v2 with TLVs), else the length. */
  readonly tlvFrom: number;
  readonly label: string;
}

function ipv4(rng: Rng): number[] {
  return [rng.int(256), rng.int(256), rng.int(256), rng.int(256)];
}

/** 16 bytes whose first group is not zero, so the text has no IPv4-mapped form. */
function ipv6(rng: Rng): number[] {
  const out = rng.chance(0.5) ? [0x20, 0x01, 0x0d, 0xb8] : [rng.range(1, 255), rng.int(256), 0, 0];
  while (out.length < 16) out.push(rng.chance(0.4) ? 0 : rng.int(256));
  return out;
}

/** IPv6 text in several equivalent spellings: canonical, full, uppercase. */
function ipv6Text(rng: Rng, bytes: number[]): string {
  const r = rng.float();
  if (r < 0.6) return formatIpv6(bytes);
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! * 256 + bytes[i + 1]!).toString(16));
  return r < 0.8 ? groups.join(":") : formatIpv6(bytes).toUpperCase();
}

/**
 * A valid PROXY header: v1 TCP4, TCP6 or UNKNOWN, or v2 PROXY over IPv4/IPv6 or LOCAL, with TLVs.
 *
 * @example
 * ```ts
 * const h = validProxyHeader(new Rng(1, 2));
 * judgeProxyHeader(h.bytes); // { kind: "ok", source: h.source }
 * ```
 */
export function validProxyHeader(rng: Rng): BuiltHeader {
  const r = rng.float();
  const sport = rng.chance(0.1) ? rng.pick([0, 65535]) : rng.range(1, 65535);
  const dport = rng.range(0, 65535);
  if (r < 0.2) {
    const s = ipv4(rng);
    const d = ipv4(rng);
    const line = `PROXY TCP4 ${s.join(".")} ${d.join(".")} ${sport} ${dport}\r\n`;
    const bytes = encoder.encode(line);
    return { bytes, source: { hostname: s.join("."), port: sport }, tlvFrom: bytes.length, label: "v1 TCP4" };
  }
  if (r < 0.35) {
    const s = ipv6(rng);
    const d = ipv6(rng);
    const line = `PROXY TCP6 ${ipv6Text(rng, s)} ${ipv6Text(rng, d)} ${sport} ${dport}\r\n`;
    const bytes = encoder.encode(line);
    return {
      bytes,
      source: { hostname: formatIpv6(s), port: sport },
      tlvFrom: bytes.length,
      label: "v1 TCP6",
    };
  }
  if (r < 0.42) {
    const rest = rng.pick(["", ` ${ipv4(rng).join(".")} ${ipv4(rng).join(".")} 1 2`, " whatever follows"]);
    const bytes = encoder.encode(`PROXY UNKNOWN${rest}\r\n`);
    return { bytes, source: undefined, tlvFrom: bytes.length, label: "v1 UNKNOWN" };
  }
  const local = r >= 0.88;
  const six = !local && rng.chance(0.4);
  const s = six ? ipv6(rng) : ipv4(rng);
  const d = six ? ipv6(rng) : ipv4(rng);
  const addresses = local && rng.chance(0.6)
    ? []
    : [...s, ...d, sport >> 8, sport & 0xff, dport >> 8, dport & 0xff];
  const tlvs: number[] = [];
  const room = V2_MAX_HEADER_BYTES - 16 - addresses.length;
  const tlvCount = rng.chance(0.4) ? 0 : rng.range(1, 4);
  for (let i = 0; i < tlvCount; i++) {
    // ALPN, AUTHORITY, NOOP, UNIQUE_ID, or a custom type; no CRC32C, whose value a receiver may check.
    const type = rng.pick([0x01, 0x02, 0x04, 0x05, 0xe0 + rng.int(16)]);
    const length = rng.int(Math.min(40, room - tlvs.length - 3) + 1);
    if (length < 0) break;
    tlvs.push(type, length >> 8, length & 0xff, ...rng.bytes(length));
  }
  const body = [...addresses, ...tlvs];
  const family = local ? (addresses.length ? (six ? 0x21 : 0x11) : 0x00) : six ? 0x21 : 0x11;
  const bytes = new Uint8Array([
    ...V2_SIGNATURE,
    local ? 0x20 : 0x21,
    family,
    body.length >> 8,
    body.length & 0xff,
    ...body,
  ]);
  return {
    bytes,
    source: local ? undefined : { hostname: six ? formatIpv6(s) : s.join("."), port: sport },
    tlvFrom: 16 + addresses.length,
    label: local ? "v2 LOCAL" : six ? "v2 IPv6" : "v2 IPv4",
  };
}

/** A header mutation with the outcome the judge gives it. */
export interface MutatedHeader {
  readonly bytes: Uint8Array;
  /** `ok` with a source, `refused`, `either` (harmless: refused or OK with the source), or `truncated`. */
  readonly outcome: "ok" | "refused" | "either" | "truncated";
  readonly source: ProxySource | undefined;
  readonly label: string;
}

function replaceText(bytes: Uint8Array, from: string, to: string): Uint8Array {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  const out = text.replace(from, to);
  return new Uint8Array([...out].map((c) => c.charCodeAt(0)));
}

/** One targeted mutation of `valid`; may return bytes the judge cannot decide (the caller drops them). */
function mutate(rng: Rng, valid: BuiltHeader): { bytes: Uint8Array; label: string } {
  const h = valid.bytes;
  const v1 = h[0] === 0x50;
  const r = rng.float();
  if (r < 0.35) {
    const bytes = h.slice();
    const flips = rng.range(1, 3);
    for (let i = 0; i < flips; i++) bytes[rng.int(bytes.length)]! ^= 1 << rng.int(8);
    return { bytes, label: `${flips} bit flips` };
  }
  if (r < 0.45) {
    // Garbage first: its first byte starts neither signature.
    const garbage = rng.bytes(rng.range(1, 16));
    while (garbage[0] === 0x50 || garbage[0] === 0x0d) garbage[0] = rng.int(256);
    return { bytes: new Uint8Array([...garbage, ...h]), label: `${garbage.length} garbage bytes first` };
  }
  if (v1) {
    const text = String.fromCharCode(...h);
    const family = text.split(" ")[1]!;
    const tokens = text.slice(0, -2).split(" ");
    const m = rng.int(8);
    switch (m) {
      case 0:
        return {
          bytes: replaceText(h, family, rng.pick(["TCP5", "UDP4", "tcp4", "TCP", "TCP44", "UNKNOWNX", ""])),
          label: "bad v1 protocol",
        };
      case 1: {
        const bad = rng.pick([
          "256.1.2.3",
          "1.2.3",
          "1.2.3.4.5",
          "1..2.3",
          "a.b.c.d",
          "2001:db8::1",
          "::1::",
        ]);
        return tokens.length > 2
          ? { bytes: replaceText(h, ` ${tokens[2]} `, ` ${bad} `), label: `bad v1 source ${bad}` }
          : { bytes: h, label: "valid" };
      }
      case 2: {
        const bad = rng.pick(["65536", "99999", "1a", "-1", "123456"]);
        return tokens.length > 4
          ? { bytes: replaceText(h, ` ${tokens[4]} `, ` ${bad} `), label: `bad v1 port ${bad}` }
          : { bytes: h, label: "valid" };
      }
      case 3:
        return { bytes: new Uint8Array([...h.subarray(0, -2), 0x0a]), label: "v1 LF without CR" };
      case 4:
        return { bytes: new Uint8Array([...h.subarray(0, -2), 0x0d, 0x20, 0x0d, 0x0a]), label: "v1 lone CR" };
      case 5:
        return {
          bytes: new Uint8Array([...h.subarray(0, -2), ...encoder.encode(" 7\r\n")]),
          label: "v1 extra field",
        };
      case 6:
        return { bytes: replaceText(h, " ", "  "), label: "v1 double space" };
      default: {
        // Oversized: the CRLF lands past byte 107.
        const pad = "9".repeat(V1_MAX_LINE_BYTES + rng.int(64));
        return { bytes: encoder.encode(`PROXY ${family} ${pad}\r\n`), label: "v1 oversized" };
      }
    }
  }
  const bytes = h.slice();
  const m = rng.int(5);
  if (m === 0) {
    bytes[12] = (rng.pick([0, 1, 3, 4, 15]) << 4) | (bytes[12]! & 0x0f);
    return { bytes, label: `v2 version ${bytes[12]! >> 4}` };
  }
  if (m === 1) {
    bytes[12] = 0x20 | rng.range(2, 15);
    return { bytes, label: `v2 command ${bytes[12]! & 0x0f}` };
  }
  if (m === 2 && bytes[12] === 0x21) {
    bytes[13] = rng.pick([0x00, 0x12, 0x22, 0x31, 0x32, 0x10, 0x20, 0x41, rng.int(256)]);
    return { bytes, label: `v2 family 0x${bytes[13]!.toString(16)}` };
  }
  if (m === 3) {
    const length = rng.range(V2_MAX_HEADER_BYTES - 16 + 1, 0xffff);
    bytes[14] = length >> 8;
    bytes[15] = length & 0xff;
    return { bytes, label: `v2 oversized (length ${length})` };
  }
  if (bytes[12] === 0x21) {
    const length = rng.int(bytes[13] === 0x11 ? 12 : 36);
    bytes[14] = 0;
    bytes[15] = length;
    return { bytes: bytes.subarray(0, 16 + length), label: `v2 length ${length} too short` };
  }
  return { bytes: h, label: "valid" };
}

/**
 * A valid header (half the time) or a mutation whose outcome the judge decides: bit flips,
 * truncation, garbage first, oversized, bad protocol, family, version, command, address or port.
 *
 * @example
 * ```ts
 * const h = proxyHeaderCase(new Rng(1, 3));
 * console.log(h.label, h.outcome);
 * ```
 */
export function proxyHeaderCase(rng: Rng): MutatedHeader {
  const valid = validProxyHeader(rng);
  const r = rng.float();
  if (r < 0.45) return { bytes: valid.bytes, outcome: "ok", source: valid.source, label: valid.label };
  if (r < 0.6) {
    const at = rng.range(1, valid.bytes.length - 1);
    return {
      bytes: valid.bytes.subarray(0, at),
      outcome: "truncated",
      source: undefined,
      label: `${valid.label} cut at ${at}/${valid.bytes.length}`,
    };
  }
  for (let attempt = 0; attempt < 4; attempt++) {
    const m = mutate(rng, valid);
    const verdict = judgeProxyHeader(m.bytes);
    const label = `${valid.label}, ${m.label}`;
    if (verdict.kind === "refused") return { bytes: m.bytes, outcome: "refused", source: undefined, label };
    if (verdict.kind !== "ok") continue;
    // A change confined to the TLVs is harmless by the spec, but a receiver may refuse malformed TLVs.
    let differs = false;
    for (let i = 0; i < valid.tlvFrom; i++) if (m.bytes[i] !== valid.bytes[i]) differs = true;
    const tlvOnly = !differs && m.bytes.length === valid.bytes.length && valid.tlvFrom < valid.bytes.length;
    return { bytes: m.bytes, outcome: tlvOnly ? "either" : "ok", source: verdict.source, label };
  }
  return {
    bytes: valid.bytes,
    outcome: "ok",
    source: valid.source,
    label: `${valid.label} (mutation undecided)`,
  };
}
