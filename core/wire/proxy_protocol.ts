/**
 * A reader for HAProxy's PROXY protocol header (v1 text and v2 binary), as a pure state machine with
 * no I/O: the bytes a load balancer sends first go in, the original client's address comes out, and
 * the bytes after the header stay for the next stage (the keyword handshake, or raw traffic).
 *
 * The reader decides as soon as it can: bytes that cannot start either signature fail at once, and a
 * v2 header with an unsupported version, command or family fails at the byte that says so. It never
 * reads past the header.
 *
 * @example Read a v1 header fed one byte at a time
 * ```ts
 * import { ProxyHeaderReader } from "./proxy_protocol.ts";
 * const reader = new ProxyHeaderReader();
 * let decision = reader.step();
 * for (const byte of new TextEncoder().encode("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\nhello")) {
 *   reader.push(new Uint8Array([byte]));
 *   decision = reader.step();
 *   if (decision.kind !== "pending") break;
 * }
 * console.log(decision.kind === "header" && decision.header.source); // { hostname: "192.0.2.1", port: 56324 }
 * ```
 *
 * @module
 */
import { ProtocolError } from "../errors.ts";
import { formatIp, type IpBytes, parseIp, parseIpv6 } from "./ip.ts";

/** What a PROXY header says about the connection. */
export interface ProxyHeader {
  /** The protocol version the header used. */
  readonly version: 1 | 2;
  /** "proxy": a relayed connection with the original addresses; "local": the balancer's own connection (health check), or v1 UNKNOWN. */
  readonly command: "proxy" | "local";
  /** The original client, for "proxy". */
  readonly source?: { hostname: string; port: number };
  /** Where the client connected to, for "proxy". */
  readonly destination?: { hostname: string; port: number };
}

/** The reader's decision after some input. */
export type ProxyDecision =
  /** More bytes are needed. */
  | { readonly kind: "pending" }
  /** The header is read; the bytes after it are in {@linkcode ProxyHeaderReader.takeRest}. */
  | { readonly kind: "header"; readonly header: ProxyHeader }
  /** Missing, malformed, oversized or unsupported header: close the connection. */
  | { readonly kind: "fail"; readonly error: ProtocolError };

/** The longest v1 line, CRLF included (the spec's worst case, an UNKNOWN line with two IPv6 addresses). */
export const PROXY_V1_MAX_BYTES = 107;

/** The 12 bytes a v2 header starts with: `\r\n\r\n\0\r\nQUIT\n`. */
export const PROXY_V2_SIGNATURE: Uint8Array = new Uint8Array([
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
]);

/** The fixed part of a v2 header: signature, version and command, family and protocol, length. */
export const PROXY_V2_FIXED_BYTES = 16;

/** The default `maxV2Bytes`: the fixed part plus the largest address block of the spec (two UNIX paths). */
export const DEFAULT_MAX_PROXY_V2_BYTES: number = PROXY_V2_FIXED_BYTES + 216;

/** Options for {@linkcode ProxyHeaderReader}. */
export interface ProxyHeaderReaderOptions {
  /**
   * The largest v2 header accepted, fixed part, addresses and TLVs included; a header declaring more
   * fails as oversized. An integer in [16, 65551].
   * @default {232}
   */
  maxV2Bytes?: number;
}

/** "PROXY " */
const V1_PREFIX = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20];
const CR = 0x0d;
const LF = 0x0a;
const V2_LOCAL = 0x0;
const V2_PROXY = 0x1;
const TCP_IPV4 = 0x11;
const TCP_IPV6 = 0x21;
const V1_FAMILIES = ["TCP4", "TCP6", "UNKNOWN"];
const V1_FIELDS = ["source address", "destination address", "source port", "destination port"];
const PENDING: ProxyDecision = Object.freeze({ kind: "pending" });

function fail(reason: string): ProxyDecision {
  return { kind: "fail", error: new ProtocolError(`Cannot read PROXY header: ${reason}`) };
}

function latin1(bytes: Uint8Array, from: number, to: number): string {
  let out = "";
  for (let i = from; i < to; i++) out += String.fromCharCode(bytes[i]!);
  return out;
}

function hex(byte: number): string {
  return `0x${byte.toString(16).padStart(2, "0")}`;
}

/** The IP of a complete v1 address field, or why it is refused. */
function v1Address(family: string, field: string, text: string): IpBytes | string {
  // The spec allows only these characters; the check also keeps zones and brackets out of parseIpv6,
  // and an IPv4 address must be dotted, never IPv4-mapped IPv6.
  const chars = /^[0-9A-Fa-f:.]+$/.test(text);
  const v6 = chars && text.includes(":") ? parseIpv6(text) : undefined;
  const v4 = chars && !text.includes(":") ? parseIp(text) : undefined;
  const tcp6 = family === "TCP6";
  const ip = tcp6 ? v6 : v4;
  if (ip) return ip;
  if (tcp6 ? v4 : v6) {
    return `v1 ${field} ${JSON.stringify(text)} is ${tcp6 ? "IPv4" : "IPv6"}, and the protocol is ${family}`;
  }
  return `v1 ${field} ${JSON.stringify(text)} is not an ${tcp6 ? "IPv6" : "IPv4"} address`;
}

/** The value of a complete v1 port field, or why it is refused. */
function v1Port(field: string, text: string): number | string {
  if (/^(0|[1-9][0-9]{0,4})$/.test(text) && Number(text) <= 65535) return Number(text);
  return `v1 ${field} ${JSON.stringify(text)} is not an integer in [0, 65535] without leading zeros`;
}

/** Why a v1 field still being received can never become valid, or `undefined` while it can. */
function v1Partial(index: number, text: string): string | undefined {
  if (index === 0) {
    return V1_FAMILIES.some((f) => f.startsWith(text))
      ? undefined
      : `v1 protocol starting ${JSON.stringify(text)} is not TCP4, TCP6 or UNKNOWN`;
  }
  const field = V1_FIELDS[index - 1]!;
  if (index >= 3) {
    return /^(0|[1-9][0-9]{0,4})?$/.test(text)
      ? undefined
      : `v1 ${field} starting ${JSON.stringify(text)} cannot be a port`;
  }
  // Either family's characters pass here, so a TCP4 line with an IPv6 address is named as such.
  return /^[0-9A-Fa-f:.]{0,45}$/.test(text)
    ? undefined
    : `v1 ${field} starting ${JSON.stringify(text)} cannot be an IP address`;
}

/**
 * Checks the v1 fields after `PROXY `: the whole line when `complete`, else the fields received so
 * far (the last one possibly cut). Returns the header, an error decision, or `pending` to wait.
 */
function parseV1(line: string, complete: boolean): ProxyDecision {
  const fields = line.split(" ");
  const whole = complete ? fields.length : fields.length - 1;
  const family = fields[0]!;
  if (whole === 0) {
    const why = v1Partial(0, family);
    return why === undefined ? PENDING : fail(why);
  }
  if (family === "UNKNOWN") {
    // The spec: the receiver ignores whatever follows UNKNOWN up to the CRLF.
    return complete ? { kind: "header", header: { version: 1, command: "local" } } : PENDING;
  }
  if (family !== "TCP4" && family !== "TCP6") {
    return fail(`v1 protocol ${JSON.stringify(family)} is not TCP4, TCP6 or UNKNOWN`);
  }
  if (fields.length > 5) return fail(`v1 line has a field after the destination port`);
  const values: (IpBytes | number)[] = [];
  for (let i = 1; i < whole; i++) {
    const field = V1_FIELDS[i - 1]!;
    const value = i <= 2 ? v1Address(family, field, fields[i]!) : v1Port(field, fields[i]!);
    if (typeof value === "string") return fail(value);
    values.push(value);
  }
  if (!complete) {
    const why = v1Partial(whole, fields[whole]!);
    return why === undefined ? PENDING : fail(why);
  }
  if (fields.length < 5) {
    return fail(`v1 line ends after the ${fields.length === 1 ? "protocol" : V1_FIELDS[fields.length - 2]}`);
  }
  return {
    kind: "header",
    header: {
      version: 1,
      command: "proxy",
      source: { hostname: formatIp(values[0] as IpBytes), port: values[2] as number },
      destination: { hostname: formatIp(values[1] as IpBytes), port: values[3] as number },
    },
  };
}

/**
 * Reads one PROXY header (v1 or v2) from the start of a connection, fed in any split. Push what
 * arrives, call {@linkcode step}, and once it says `header` hand {@linkcode takeRest} to the next
 * stage. Once decided, `step` returns the same decision again. Chunks are kept by reference until
 * taken, as `FrameDecoder` keeps them: do not reuse them.
 *
 * @example A v2 LOCAL header (a health check) followed by application bytes
 * ```ts
 * import { PROXY_V2_SIGNATURE, ProxyHeaderReader } from "./proxy_protocol.ts";
 * const reader = new ProxyHeaderReader();
 * reader.push(PROXY_V2_SIGNATURE);
 * reader.push(new Uint8Array([0x20, 0x00, 0x00, 0x00, 0x68, 0x69]));
 * console.log(reader.step()); // { kind: "header", header: { version: 2, command: "local" } }
 * console.log(reader.takeRest()); // Uint8Array(2) [ 104, 105 ]
 * ```
 */
export class ProxyHeaderReader {
  readonly #maxV2Bytes: number;
  /** The first bytes received, up to the longest header accepted: all the parser ever looks at. */
  readonly #head: Uint8Array;
  #headLength = 0;
  /** Bytes past `#head`'s capacity, by reference, never looked at. */
  #tail: Uint8Array[] = [];
  #tailBytes = 0;
  /** Bytes at the start that belong to the header, once read. */
  #headerBytes = 0;
  #decision: ProxyDecision | undefined = undefined;
  /** The longest v1 prefix known to be able to start a valid line. */
  #v1Checked = V1_PREFIX.length;

  /**
   * Creates a reader waiting for the first bytes of a connection.
   *
   * @param options See {@linkcode ProxyHeaderReaderOptions}.
   * @throws {RangeError} When `maxV2Bytes` is not an integer in [16, 65551].
   */
  constructor(options?: ProxyHeaderReaderOptions) {
    const max = options?.maxV2Bytes ?? DEFAULT_MAX_PROXY_V2_BYTES;
    if (!Number.isInteger(max) || max < PROXY_V2_FIXED_BYTES || max > PROXY_V2_FIXED_BYTES + 0xffff) {
      throw new RangeError(
        `Cannot create PROXY header reader: maxV2Bytes ${max} is not an integer in [16, 65551]`,
      );
    }
    this.#maxV2Bytes = max;
    this.#head = new Uint8Array(Math.max(PROXY_V1_MAX_BYTES, max));
  }

  /**
   * Buffers bytes received; {@linkcode step} reads them.
   *
   * @param chunk Bytes as they arrived, cut anywhere.
   */
  push(chunk: Uint8Array): void {
    let from = 0;
    if (this.#tailBytes === 0 && this.#headLength < this.#head.length) {
      from = Math.min(chunk.length, this.#head.length - this.#headLength);
      this.#head.set(chunk.subarray(0, from), this.#headLength);
      this.#headLength += from;
    }
    if (from < chunk.length) {
      this.#tail.push(from === 0 ? chunk : chunk.subarray(from));
      this.#tailBytes += chunk.length - from;
    }
  }

  /**
   * Reads what has been pushed and decides: `header`, `fail`, or `pending` for more bytes.
   *
   * @returns The decision; the same one again once decided.
   *
   * @example Bytes that start neither signature fail at once
   * ```ts
   * import { ProxyHeaderReader } from "./proxy_protocol.ts";
   * const reader = new ProxyHeaderReader();
   * reader.push(new TextEncoder().encode("GET"));
   * const decision = reader.step();
   * console.log(decision.kind === "fail" && decision.error.message);
   * // "Cannot read PROXY header: first bytes match neither the v1 nor the v2 signature"
   * ```
   */
  step(): ProxyDecision {
    if (this.#decision) return this.#decision;
    const decision = this.#read();
    if (decision.kind !== "pending") this.#decision = decision;
    return decision;
  }

  /**
   * Bytes received and not consumed by the header: everything before it is read, what follows it after.
   */
  get bufferedBytes(): number {
    return this.#headLength + this.#tailBytes - this.#headerBytes;
  }

  /**
   * Takes the bytes after the header (all bytes received, if no header was read), for the next stage.
   *
   * @returns Those bytes; the reader holds none afterwards.
   */
  takeRest(): Uint8Array {
    const out = new Uint8Array(this.bufferedBytes);
    out.set(this.#head.subarray(this.#headerBytes, this.#headLength));
    let at = this.#headLength - this.#headerBytes;
    for (const chunk of this.#tail) {
      out.set(chunk, at);
      at += chunk.length;
    }
    this.#headerBytes = this.#headLength = this.#tailBytes = 0;
    this.#tail = [];
    this.#v1Checked = V1_PREFIX.length;
    return out;
  }

  #read(): ProxyDecision {
    const head = this.#head;
    const n = this.#headLength;
    if (n === 0) return PENDING;
    let v1 = true;
    let v2 = true;
    for (let i = 0; i < n && i < PROXY_V2_SIGNATURE.length; i++) {
      if (i < V1_PREFIX.length && head[i] !== V1_PREFIX[i]) v1 = false;
      if (head[i] !== PROXY_V2_SIGNATURE[i]) v2 = false;
    }
    if (v1) return n < V1_PREFIX.length ? PENDING : this.#readV1();
    if (v2) return n < PROXY_V2_SIGNATURE.length ? PENDING : this.#readV2();
    return fail("first bytes match neither the v1 nor the v2 signature");
  }

  #readV1(): ProxyDecision {
    const head = this.#head;
    const end = Math.min(this.#headLength, PROXY_V1_MAX_BYTES);
    // Each longer prefix is checked in turn, so the first byte that makes the line invalid decides the
    // error, the same whatever the split.
    for (let k = this.#v1Checked + 1; k <= end; k++) {
      const last = head[k - 1];
      if (last === LF) {
        if (head[k - 2] !== CR) return fail("v1 line has a line feed without a carriage return before it");
        const decision = parseV1(latin1(head, V1_PREFIX.length, k - 2), true);
        if (decision.kind === "header") this.#headerBytes = k;
        return decision;
      }
      if (head[k - 2] === CR) return fail("v1 line has a carriage return not followed by a line feed");
      if (k === PROXY_V1_MAX_BYTES) return fail(`v1 line is longer than ${PROXY_V1_MAX_BYTES} bytes`);
      const decision = parseV1(latin1(head, V1_PREFIX.length, last === CR ? k - 1 : k), false);
      if (decision.kind !== "pending") return decision;
      this.#v1Checked = k;
    }
    return PENDING;
  }

  #readV2(): ProxyDecision {
    const head = this.#head;
    const n = this.#headLength;
    if (n < 13) return PENDING;
    const versionCommand = head[12]!;
    if (versionCommand >> 4 !== 2) return fail(`v2 version is ${versionCommand >> 4}, not 2`);
    const command = versionCommand & 0x0f;
    if (command !== V2_LOCAL && command !== V2_PROXY) {
      return fail(`v2 command ${hex(command)} is neither LOCAL (0x00) nor PROXY (0x01)`);
    }
    if (n < 14) return PENDING;
    const family = head[13]!;
    // The spec: with LOCAL the receiver ignores the family and the addresses.
    if (command === V2_PROXY && family !== TCP_IPV4 && family !== TCP_IPV6) {
      return fail(
        `v2 family and protocol ${hex(family)} is not supported: only TCP over IPv4 (0x11) or IPv6 (0x21)`,
      );
    }
    if (n < PROXY_V2_FIXED_BYTES) return PENDING;
    const length = (head[14]! << 8) | head[15]!;
    const total = PROXY_V2_FIXED_BYTES + length;
    if (total > this.#maxV2Bytes) {
      return fail(
        `v2 length ${length} makes a ${total}-byte header, more than maxV2Bytes ${this.#maxV2Bytes}`,
      );
    }
    const addressBytes = command === V2_LOCAL ? 0 : family === TCP_IPV4 ? 12 : 36;
    if (length < addressBytes) {
      return fail(
        `v2 length ${length} is too short for TCP over ${
          family === TCP_IPV4 ? "IPv4" : "IPv6"
        }, which needs ${addressBytes} address bytes`,
      );
    }
    if (n < total) return PENDING;
    this.#headerBytes = total;
    if (command === V2_LOCAL) return { kind: "header", header: { version: 2, command: "local" } };
    const ipBytes = family === TCP_IPV4 ? 4 : 16;
    const at = PROXY_V2_FIXED_BYTES;
    const port = (i: number) => (head[i]! << 8) | head[i + 1]!;
    // TLVs after the addresses are skipped: the length covers them.
    return {
      kind: "header",
      header: {
        version: 2,
        command: "proxy",
        source: { hostname: formatIp(head.slice(at, at + ipBytes)), port: port(at + 2 * ipBytes) },
        destination: {
          hostname: formatIp(head.slice(at + ipBytes, at + 2 * ipBytes)),
          port: port(at + 2 * ipBytes + 2),
        },
      },
    };
  }
}
