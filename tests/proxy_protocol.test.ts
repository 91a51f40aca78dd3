/**
 * The PROXY protocol header reader as a pure state machine: bytes in, a decision out, no sockets.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ProtocolError } from "../core/errors.ts";
import {
  DEFAULT_MAX_PROXY_V2_BYTES,
  PROXY_V1_MAX_BYTES,
  PROXY_V2_SIGNATURE,
  type ProxyDecision,
  type ProxyHeader,
  ProxyHeaderReader,
} from "../core/wire/proxy_protocol.ts";
import { concatBytes } from "./_helpers.ts";
import { Rng } from "./_stream_check.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);
const PAYLOAD = utf8("\x00\x00\x00\x00\x00\x00\x00\x05hello after the header");

const concat = (...parts: (Uint8Array | number[])[]): Uint8Array => concatBytes(parts);

/** A v2 header: `length` defaults to the address block plus the TLVs. */
function v2(
  versionCommand: number,
  family: number,
  body: number[] = [],
  tlvs: number[] = [],
  length = body.length + tlvs.length,
): Uint8Array {
  return concat(PROXY_V2_SIGNATURE, [versionCommand, family, length >> 8, length & 0xff], body, tlvs);
}

const be16 = (n: number) => [n >> 8, n & 0xff];
const IPV4_BODY = [192, 0, 2, 1, 198, 51, 100, 7, ...be16(56324), ...be16(443)];
const IPV6_SRC = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const IPV6_DST = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3];
const IPV6_BODY = [...IPV6_SRC, ...IPV6_DST, ...be16(65535), ...be16(0)];
/** PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP with 3 bytes. */
const TLVS = [0x01, 0, 2, ...utf8("h2"), 0x02, 0, 11, ...utf8("example.com"), 0x04, 0, 3, 0, 0, 0];

interface ValidCase {
  name: string;
  bytes: Uint8Array;
  header: ProxyHeader;
}

const addr = (hostname: string, port: number) => ({ hostname, port });

const VALID: ValidCase[] = [
  {
    name: "v1 TCP4",
    bytes: utf8("PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n"),
    header: {
      version: 1,
      command: "proxy",
      source: addr("192.0.2.1", 56324),
      destination: addr("198.51.100.7", 443),
    },
  },
  {
    name: "v1 TCP6 in upper case, reported lower case and compressed",
    bytes: utf8("PROXY TCP6 2001:DB8:0:0:0:0:0:1 ::FFFF:10.1.2.3 65535 0\r\n"),
    header: {
      version: 1,
      command: "proxy",
      source: addr("2001:db8::1", 65535),
      destination: addr("::ffff:10.1.2.3", 0),
    },
  },
  { name: "v1 UNKNOWN alone", bytes: utf8("PROXY UNKNOWN\r\n"), header: { version: 1, command: "local" } },
  {
    name: "v1 UNKNOWN with addresses, ignored, at the 107-byte limit",
    bytes: utf8(`PROXY UNKNOWN ${"ffff:".repeat(7)}ffff ${"ffff:".repeat(7)}ffff 65535 65535\r\n`),
    header: { version: 1, command: "local" },
  },
  {
    name: "v2 PROXY TCP over IPv4 with TLVs",
    bytes: v2(0x21, 0x11, IPV4_BODY, TLVS),
    header: {
      version: 2,
      command: "proxy",
      source: addr("192.0.2.1", 56324),
      destination: addr("198.51.100.7", 443),
    },
  },
  {
    name: "v2 PROXY TCP over IPv6 with TLVs",
    bytes: v2(0x21, 0x21, IPV6_BODY, TLVS),
    header: {
      version: 2,
      command: "proxy",
      source: addr("2001:db8::1", 65535),
      destination: addr("::ffff:10.1.2.3", 0),
    },
  },
  { name: "v2 LOCAL UNSPEC", bytes: v2(0x20, 0x00), header: { version: 2, command: "local" } },
  {
    name: "v2 LOCAL with IPv4 addresses and TLVs, ignored",
    bytes: v2(0x20, 0x11, IPV4_BODY, TLVS),
    header: { version: 2, command: "local" },
  },
];

/** Feeds `bytes` in `pieces`, stepping after each; returns the decision and the byte count it came at. */
function feed(
  reader: ProxyHeaderReader,
  bytes: Uint8Array,
  cuts: readonly number[],
): { decision: ProxyDecision; at: number } {
  let decision: ProxyDecision = reader.step();
  let at = 0;
  for (const cut of [...cuts, bytes.length]) {
    if (cut <= at) continue;
    reader.push(bytes.subarray(at, cut));
    at = cut;
    decision = reader.step();
    if (decision.kind !== "pending") break;
  }
  return { decision, at };
}

const everyByte = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

function assertHeader(decision: ProxyDecision, header: ProxyHeader): void {
  if (decision.kind === "fail") assert.fail(decision.error.message);
  assert.equal(decision.kind, "header");
  if (decision.kind === "header") assert.deepEqual(decision.header, header);
}

function assertFail(decision: ProxyDecision, message: string): void {
  assert.equal(decision.kind, "fail");
  if (decision.kind !== "fail") return;
  assert.ok(decision.error instanceof ProtocolError);
  assert.equal(decision.error.message, `Cannot read PROXY header: ${message}`);
}

describe("ProxyHeaderReader: valid headers", () => {
  it("has a v1 case of exactly the 107-byte limit", () => {
    assert.equal(VALID[3]!.bytes.length, PROXY_V1_MAX_BYTES);
  });

  for (const c of VALID) {
    it(`reads ${c.name} byte by byte, deciding at its last byte and keeping the payload`, () => {
      const reader = new ProxyHeaderReader();
      const wire = concat(c.bytes, PAYLOAD);
      const { decision, at } = feed(reader, wire, everyByte(wire.length));
      assertHeader(decision, c.header);
      assert.equal(at, c.bytes.length, "decided exactly when the header's last byte arrived");
      reader.push(wire.subarray(at));
      assert.equal(reader.bufferedBytes, PAYLOAD.length);
      assert.deepEqual(reader.takeRest(), PAYLOAD);
      assert.equal(reader.bufferedBytes, 0);
    });

    it(`reads ${c.name} cut in two at every place, and in one chunk with the payload`, () => {
      const wire = concat(c.bytes, PAYLOAD);
      for (let cut = 0; cut <= wire.length; cut++) {
        const reader = new ProxyHeaderReader();
        reader.push(wire.subarray(0, cut));
        const first = reader.step();
        if (cut < c.bytes.length) assert.equal(first.kind, "pending", `cut at ${cut}`);
        reader.push(wire.subarray(cut));
        assertHeader(reader.step(), c.header);
        assert.deepEqual(reader.takeRest(), PAYLOAD, `cut at ${cut}`);
      }
    });
  }

  it("reads random splits of every valid header followed by payload", () => {
    const rng = new Rng(20261130, 1);
    for (let round = 0; round < 400; round++) {
      const c = rng.pick(VALID);
      const payload = rng.bytes(rng.int(64));
      const wire = concat(c.bytes, payload);
      const cuts = everyByte(wire.length).filter(() => rng.chance(0.2));
      const reader = new ProxyHeaderReader();
      let at = 0;
      let decision: ProxyDecision = reader.step();
      for (const cut of [...cuts, wire.length]) {
        if (cut <= at) continue;
        reader.push(wire.subarray(at, cut));
        at = cut;
        decision = reader.step();
      }
      assertHeader(decision, c.header);
      assert.deepEqual(reader.takeRest(), payload);
    }
  });

  it("answers the same decision again once decided, and takes later pushes as rest", () => {
    const reader = new ProxyHeaderReader();
    reader.push(utf8("PROXY UNKNOWN\r\nab"));
    const first = reader.step();
    assert.equal(first.kind, "header");
    assert.equal(reader.step(), first);
    reader.push(utf8("cd"));
    assert.deepEqual(reader.takeRest(), utf8("abcd"));
  });

  it("accepts a v2 header of exactly maxV2Bytes, and longer TLVs with a larger maxV2Bytes", () => {
    const exact = v2(0x21, 0x11, IPV4_BODY, new Array(DEFAULT_MAX_PROXY_V2_BYTES - 28).fill(0));
    assert.equal(exact.length, DEFAULT_MAX_PROXY_V2_BYTES);
    const reader = new ProxyHeaderReader();
    reader.push(exact);
    assert.equal(reader.step().kind, "header");
    const long = v2(0x21, 0x21, IPV6_BODY, new Array(4000).fill(0));
    const big = new ProxyHeaderReader({ maxV2Bytes: long.length });
    const { decision } = feed(big, concat(long, PAYLOAD), [1, 100, 2000, long.length - 1]);
    assertHeader(decision, VALID[5]!.header);
    assert.deepEqual(big.takeRest(), PAYLOAD);
  });

  it("accepts v2 LOCAL whatever its family, as the spec says the receiver ignores it", () => {
    const reader = new ProxyHeaderReader();
    reader.push(concat(v2(0x20, 0x31, new Array(216).fill(0x2f)), PAYLOAD));
    assertHeader(reader.step(), { version: 2, command: "local" });
    assert.deepEqual(reader.takeRest(), PAYLOAD);
  });

  it("keeps every byte, nothing consumed, while pending and after a failure", () => {
    const pending = new ProxyHeaderReader();
    pending.push(utf8("PROXY TCP4 1.2"));
    assert.equal(pending.step().kind, "pending");
    assert.equal(pending.bufferedBytes, 14);
    assert.deepEqual(pending.takeRest(), utf8("PROXY TCP4 1.2"));
    const failed = new ProxyHeaderReader();
    failed.push(utf8("GET / HTTP/1.1\r\n"));
    assert.equal(failed.step().kind, "fail");
    assert.deepEqual(failed.takeRest(), utf8("GET / HTTP/1.1\r\n"));
  });

  it("starts over when the bytes are taken before a decision", () => {
    const reader = new ProxyHeaderReader();
    reader.push(utf8("PROXY TCP4 1.2.3.4 5.6"));
    assert.equal(reader.step().kind, "pending");
    assert.deepEqual(reader.takeRest(), utf8("PROXY TCP4 1.2.3.4 5.6"));
    assert.equal(reader.bufferedBytes, 0);
    reader.push(utf8("PROXY UNKNOWN\r\n!"));
    assertHeader(reader.step(), { version: 1, command: "local" });
    assert.deepEqual(reader.takeRest(), utf8("!"));
  });

  it("refuses a maxV2Bytes that is not an integer in [16, 65551]", () => {
    for (const maxV2Bytes of [15, 65552, 100.5, NaN, -1]) {
      assert.throws(() => new ProxyHeaderReader({ maxV2Bytes }), RangeError, String(maxV2Bytes));
    }
    assert.doesNotThrow(() => new ProxyHeaderReader({ maxV2Bytes: 16 }));
  });
});

interface RefusalCase {
  name: string;
  bytes: Uint8Array;
  /** How many bytes it takes to decide: the reader fails as soon as a prefix cannot be valid. */
  decidedAt: number;
  message: string;
  maxV2Bytes?: number;
}

const line = (text: string) => utf8(text);
const sig = (...rest: number[]) => concat(PROXY_V2_SIGNATURE, rest);
const MISSING = "first bytes match neither the v1 nor the v2 signature";

const REFUSALS: RefusalCase[] = [
  { name: "an HTTP request", bytes: line("GET / HTTP/1.1\r\n\r\n"), decidedAt: 1, message: MISSING },
  { name: "a TLS ClientHello", bytes: new Uint8Array([0x16, 3, 1, 2, 0]), decidedAt: 1, message: MISSING },
  { name: "PROXY without its space", bytes: line("PROXYTCP4 "), decidedAt: 6, message: MISSING },
  { name: "lower-case proxy", bytes: line("proxy TCP4 "), decidedAt: 1, message: MISSING },
  {
    name: "the v2 signature with its last byte wrong",
    bytes: concat(PROXY_V2_SIGNATURE.subarray(0, 11), [0x0d, 0x21, 0x11]),
    decidedAt: 12,
    message: MISSING,
  },
  {
    name: "v1 protocol TCP5",
    bytes: line("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n"),
    decidedAt: 10,
    message: 'v1 protocol starting "TCP5" is not TCP4, TCP6 or UNKNOWN',
  },
  {
    name: "v1 protocol UDP4",
    bytes: line("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n"),
    decidedAt: 8,
    message: 'v1 protocol starting "UD" is not TCP4, TCP6 or UNKNOWN',
  },
  {
    name: "v1 UNKNOWN run into more letters",
    bytes: line("PROXY UNKNOWNS\r\n"),
    decidedAt: 14,
    message: 'v1 protocol starting "UNKNOWNS" is not TCP4, TCP6 or UNKNOWN',
  },
  {
    name: "v1 empty protocol",
    bytes: line("PROXY \r\n"),
    decidedAt: 8,
    message: 'v1 protocol "" is not TCP4, TCP6 or UNKNOWN',
  },
  {
    name: "v1 IPv4 octet above 255",
    bytes: line("PROXY TCP4 256.1.1.1 5.6.7.8 1 2\r\n"),
    decidedAt: 21,
    message: 'v1 source address "256.1.1.1" is not an IPv4 address',
  },
  {
    name: "v1 IPv4 octet with a leading zero",
    bytes: line("PROXY TCP4 1.2.3.4 010.6.7.8 1 2\r\n"),
    decidedAt: 29,
    message: 'v1 destination address "010.6.7.8" is not an IPv4 address',
  },
  {
    name: "v1 TCP4 with an IPv6 address",
    bytes: line("PROXY TCP4 ::1 5.6.7.8 1 2\r\n"),
    decidedAt: 15,
    message: 'v1 source address "::1" is IPv6, and the protocol is TCP4',
  },
  {
    name: "v1 TCP4 with an IPv4-mapped IPv6 address",
    bytes: line("PROXY TCP4 1.2.3.4 ::ffff:5.6.7.8 1 2\r\n"),
    decidedAt: 34,
    message: 'v1 destination address "::ffff:5.6.7.8" is IPv6, and the protocol is TCP4',
  },
  {
    name: "v1 TCP6 with an IPv4 address",
    bytes: line("PROXY TCP6 ::1 5.6.7.8 1 2\r\n"),
    decidedAt: 23,
    message: 'v1 destination address "5.6.7.8" is IPv4, and the protocol is TCP6',
  },
  {
    name: "v1 malformed IPv6",
    bytes: line("PROXY TCP6 1::2::3 ::1 1 2\r\n"),
    decidedAt: 19,
    message: 'v1 source address "1::2::3" is not an IPv6 address',
  },
  {
    name: "v1 IPv6 with a zone",
    bytes: line("PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n"),
    decidedAt: 19,
    message: 'v1 source address starting "fe80::1%" cannot be an IP address',
  },
  {
    name: "v1 address that is a name",
    bytes: line("PROXY TCP4 localhost 5.6.7.8 1 2\r\n"),
    decidedAt: 12,
    message: 'v1 source address starting "l" cannot be an IP address',
  },
  {
    name: "v1 source port 65536",
    bytes: line("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n"),
    decidedAt: 33,
    message: 'v1 source port "65536" is not an integer in [0, 65535] without leading zeros',
  },
  {
    name: "v1 destination port 99999, known at the CRLF",
    bytes: line("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n"),
    decidedAt: 36,
    message: 'v1 destination port "99999" is not an integer in [0, 65535] without leading zeros',
  },
  {
    name: "v1 port with a leading zero",
    bytes: line("PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n"),
    decidedAt: 29,
    message: 'v1 source port starting "08" cannot be a port',
  },
  {
    name: "v1 port with six digits",
    bytes: line("PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n"),
    decidedAt: 35,
    message: 'v1 destination port starting "123456" cannot be a port',
  },
  {
    name: "v1 negative port",
    bytes: line("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n"),
    decidedAt: 28,
    message: 'v1 source port starting "-" cannot be a port',
  },
  {
    name: "v1 two spaces between fields",
    bytes: line("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n"),
    decidedAt: 12,
    message: 'v1 source address "" is not an IPv4 address',
  },
  {
    name: "v1 line without its ports",
    bytes: line("PROXY TCP4 1.2.3.4 5.6.7.8\r\n"),
    decidedAt: 28,
    message: "v1 line ends after the destination address",
  },
  {
    name: "v1 line with a sixth field",
    bytes: line("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n"),
    decidedAt: 31,
    message: "v1 line has a field after the destination port",
  },
  {
    name: "v1 line ended by LF alone",
    bytes: line("PROXY UNKNOWN\n"),
    decidedAt: 14,
    message: "v1 line has a line feed without a carriage return before it",
  },
  {
    name: "v1 line with a CR not followed by LF",
    bytes: line("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n"),
    decidedAt: 32,
    message: "v1 line has a carriage return not followed by a line feed",
  },
  {
    name: "v1 UNKNOWN line with no CRLF within 107 bytes",
    bytes: line(`PROXY UNKNOWN ${"x".repeat(200)}\r\n`),
    decidedAt: PROXY_V1_MAX_BYTES,
    message: "v1 line is longer than 107 bytes",
  },
  {
    name: "v1 UNKNOWN line whose CRLF ends at byte 108",
    bytes: line(`PROXY UNKNOWN ${"x".repeat(92)}\r\n`),
    decidedAt: PROXY_V1_MAX_BYTES,
    message: "v1 line is longer than 107 bytes",
  },
  { name: "v2 version 1", bytes: sig(0x11, 0x11, 0, 12), decidedAt: 13, message: "v2 version is 1, not 2" },
  { name: "v2 version 3", bytes: sig(0x31, 0x11, 0, 12), decidedAt: 13, message: "v2 version is 3, not 2" },
  {
    name: "v2 command 0x2",
    bytes: sig(0x22, 0x11, 0, 12),
    decidedAt: 13,
    message: "v2 command 0x02 is neither LOCAL (0x00) nor PROXY (0x01)",
  },
  ...[0x12, 0x22, 0x31, 0x32, 0x00, 0x10, 0x01, 0x41].map((family) => ({
    name: `v2 PROXY with family and protocol 0x${family.toString(16).padStart(2, "0")}`,
    bytes: sig(0x21, family, 0, 36),
    decidedAt: 14,
    message: `v2 family and protocol 0x${
      family.toString(16).padStart(2, "0")
    } is not supported: only TCP over IPv4 (0x11) or IPv6 (0x21)`,
  })),
  {
    name: "v2 length beyond the default maxV2Bytes",
    bytes: sig(0x21, 0x11, 0, 217),
    decidedAt: 16,
    message: "v2 length 217 makes a 233-byte header, more than maxV2Bytes 232",
  },
  {
    name: "v2 length 65535",
    bytes: sig(0x20, 0x00, 0xff, 0xff),
    decidedAt: 16,
    message: "v2 length 65535 makes a 65551-byte header, more than maxV2Bytes 232",
  },
  {
    name: "v2 length beyond a custom maxV2Bytes",
    bytes: v2(0x21, 0x21, IPV6_BODY, TLVS),
    decidedAt: 16,
    maxV2Bytes: 52,
    message: `v2 length ${36 + TLVS.length} makes a ${52 + TLVS.length}-byte header, more than maxV2Bytes 52`,
  },
  {
    name: "v2 IPv4 length too short",
    bytes: v2(0x21, 0x11, IPV4_BODY, [], 11),
    decidedAt: 16,
    message: "v2 length 11 is too short for TCP over IPv4, which needs 12 address bytes",
  },
  {
    name: "v2 IPv6 length too short",
    bytes: v2(0x21, 0x21, IPV6_BODY, [], 12),
    decidedAt: 16,
    message: "v2 length 12 is too short for TCP over IPv6, which needs 36 address bytes",
  },
];

describe("ProxyHeaderReader: refusals", () => {
  for (const c of REFUSALS) {
    it(`fails on ${c.name} as soon as it can`, () => {
      const options = c.maxV2Bytes === undefined ? undefined : { maxV2Bytes: c.maxV2Bytes };
      const reader = new ProxyHeaderReader(options);
      const { decision, at } = feed(reader, c.bytes, everyByte(c.bytes.length));
      assertFail(decision, c.message);
      assert.equal(at, c.decidedAt, "decided at the first byte that makes the header impossible");
      assert.equal(reader.step(), decision, "a failed reader keeps its decision");
      assert.deepEqual(reader.takeRest(), c.bytes.subarray(0, at), "nothing was consumed");
      const whole = new ProxyHeaderReader(options);
      whole.push(c.bytes);
      assertFail(whole.step(), c.message);
    });
  }
});

/** Where the header that `bytes` declares ends, for a reader that accepted it. */
function declaredEnd(bytes: Uint8Array): number {
  if (bytes[0] === 0x50) {
    for (let i = 0; i + 1 < bytes.length; i++) if (bytes[i] === 0x0d && bytes[i + 1] === 0x0a) return i + 2;
    return -1;
  }
  return 16 + ((bytes[14]! << 8) | bytes[15]!);
}

function mutate(rng: Rng, source: Uint8Array): Uint8Array {
  const bytes = source.slice();
  switch (rng.int(7)) {
    case 0:
      for (let i = rng.range(1, 3); i > 0; i--) bytes[rng.int(bytes.length)]! ^= 1 << rng.int(8);
      return bytes;
    case 1:
      return bytes.subarray(0, rng.int(bytes.length));
    case 2: {
      const at = rng.int(bytes.length + 1);
      return concat(bytes.subarray(0, at), rng.bytes(rng.range(1, 8)), bytes.subarray(at));
    }
    case 3:
      bytes[rng.int(bytes.length)] = rng.pick([0x20, 0x0d, 0x0a, 0x3a, 0x2e, 0x30, 0x00, 0xff]);
      return bytes;
    case 4:
      return concat(rng.bytes(rng.range(1, 8)), bytes);
    case 5: {
      // Rewrite a v2 byte the reader branches on.
      const at = rng.pick([12, 13, 14, 15]);
      if (at < bytes.length) bytes[at] = rng.int(256);
      return bytes;
    }
    default:
      return rng.bytes(rng.int(160));
  }
}

function outcome(decision: ProxyDecision): string {
  return decision.kind === "fail"
    ? `fail: ${decision.error.message}`
    : decision.kind === "header"
    ? `header: ${JSON.stringify(decision.header)}`
    : "pending";
}

describe("ProxyHeaderReader: fuzz", () => {
  it("never throws, never consumes past the declared header, and decides the same whatever the split", () => {
    const rng = new Rng(0x9e3779b9, 2);
    const kinds = { header: 0, fail: 0, pending: 0 };
    for (let round = 0; round < 3000; round++) {
      const base = rng.pick(VALID).bytes;
      const input = concat(mutate(rng, base), rng.chance(0.5) ? PAYLOAD : []);
      const oneChunk = new ProxyHeaderReader();
      oneChunk.push(input);
      const whole = oneChunk.step();
      const split = new ProxyHeaderReader();
      const cuts = everyByte(input.length).filter(() => rng.chance(0.3));
      let at = 0;
      let decision: ProxyDecision = split.step();
      for (const cut of [...cuts, input.length]) {
        if (cut <= at) continue;
        split.push(input.subarray(at, cut));
        at = cut;
        decision = split.step();
      }
      const label = `round ${round}: ${JSON.stringify([...input])}`;
      assert.equal(outcome(decision), outcome(whole), label);
      assert.ok(whole.kind !== "fail" || whole.error instanceof ProtocolError, label);
      kinds[whole.kind]++;
      if (whole.kind === "header") {
        const end = declaredEnd(input);
        assert.ok(end > 0 && end <= input.length, label);
        assert.deepEqual(oneChunk.takeRest(), input.subarray(end), label);
        assert.deepEqual(split.takeRest(), input.subarray(end), label);
      } else {
        if (whole.kind === "pending") {
          assert.ok(input.length < Math.max(PROXY_V1_MAX_BYTES, DEFAULT_MAX_PROXY_V2_BYTES), label);
        }
        assert.deepEqual(oneChunk.takeRest(), input, label);
      }
    }
    for (const [kind, count] of Object.entries(kinds)) assert.ok(count > 100, `${kind}: ${count}`);
  });
});
