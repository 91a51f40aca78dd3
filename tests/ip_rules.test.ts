import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatIp, ipInRange, isLoopbackIp, parseCidr, parseIp, parseIpv6 } from "../core/wire/ip.ts";
import { type AccessRule, compileRules, LOCAL_ONLY, type PeerInfo } from "../core/admission/rules.ts";

describe("IP parsing", () => {
  it("parses IPv4 and rejects malformed IPv4", () => {
    assert.deepEqual([...parseIp("10.1.2.3")!], [10, 1, 2, 3]);
    for (const bad of ["10.1.2", "10.1.2.256", "01.1.1.1", "1.1.1.1.1", "a.b.c.d", ""]) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });

  it("parses IPv6 forms, and maps ::ffff:a.b.c.d to IPv4", () => {
    assert.equal(parseIp("::1")!.length, 16);
    assert.equal(parseIp("::1")![15], 1);
    assert.deepEqual([...parseIp("::ffff:127.0.0.1")!], [127, 0, 0, 1]);
    assert.deepEqual([...parseIp("::ffff:7f00:1")!], [127, 0, 0, 1]);
    assert.deepEqual(parseIp("fe80::1%eth0"), parseIp("fe80::1"));
    assert.deepEqual(parseIp("2001:db8:0:0:0:0:0:1"), parseIp("2001:db8::1"));
    for (const bad of ["1::2::3", "12345::", "1:2:3:4:5:6:7:8:9", "g::1", ":::"]) {
      assert.equal(parseIp(bad), undefined, bad);
    }
  });

  it("keeps an IPv4-mapped address in its 16-byte form with parseIpv6, and refuses IPv4 there", () => {
    assert.equal(parseIpv6("::ffff:127.0.0.1")!.length, 16);
    assert.deepEqual([...parseIpv6("::ffff:127.0.0.1")!.subarray(10)], [0xff, 0xff, 127, 0, 0, 1]);
    assert.equal(parseIpv6("127.0.0.1"), undefined);
  });

  it("formats addresses as the runtimes report them: dotted IPv4, RFC 5952 IPv6, ::ffff:a.b.c.d", () => {
    const cases: [string, string][] = [
      ["10.1.2.3", "10.1.2.3"],
      ["0.0.0.0", "0.0.0.0"],
      ["::", "::"],
      ["::1", "::1"],
      ["1::", "1::"],
      ["2001:DB8:0:0:0:0:0:1", "2001:db8::1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"],
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"],
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"],
      ["fe80:0000:0000:0000:0204:61ff:fe9d:f156", "fe80::204:61ff:fe9d:f156"],
      ["::ffff:10.1.2.3", "::ffff:10.1.2.3"],
      ["::ffff:a01:203", "::ffff:10.1.2.3"],
      ["1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"],
      ["1:0:0:0:0:0:0:0", "1::"],
    ];
    for (const [input, expected] of cases) {
      const bytes = input.includes(":") ? parseIpv6(input)! : parseIp(input)!;
      assert.equal(formatIp(bytes), expected, input);
    }
    assert.throws(() => formatIp(new Uint8Array(5)), RangeError);
  });

  it("formats random IPv6 addresses as WHATWG URL does, and parses them back", () => {
    let state = 12345;
    const next = () => (state = (Math.imul(state, 1103515245) + 12345) >>> 0) >>> 16;
    for (let round = 0; round < 2000; round++) {
      const bytes = new Uint8Array(16);
      // Mostly zero groups, so compression is exercised.
      for (let g = 0; g < 8; g++) {
        if (next() % 3 === 0) continue;
        bytes[2 * g] = next() % 4 === 0 ? next() : 0;
        bytes[2 * g + 1] = next();
      }
      const mapped = bytes.subarray(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
      const text = formatIp(bytes);
      assert.deepEqual(parseIpv6(text), bytes, text);
      if (!mapped) assert.equal(text, new URL(`http://[${text}]/`).hostname.slice(1, -1), text);
    }
  });

  it("matches CIDR ranges of both families, never across families", () => {
    assert.ok(ipInRange(parseIp("192.168.7.9")!, parseCidr("192.168.0.0/16")));
    assert.ok(!ipInRange(parseIp("192.169.0.1")!, parseCidr("192.168.0.0/16")));
    assert.ok(ipInRange(parseIp("10.255.255.255")!, parseCidr("10.0.0.0/8")));
    assert.ok(ipInRange(parseIp("1.2.3.4")!, parseCidr("0.0.0.0/0")));
    assert.ok(ipInRange(parseIp("1.2.3.4")!, parseCidr("1.2.3.4")));
    assert.ok(!ipInRange(parseIp("1.2.3.5")!, parseCidr("1.2.3.4")));
    assert.ok(ipInRange(parseIp("fd12::5")!, parseCidr("fd00::/8")));
    assert.ok(!ipInRange(parseIp("fe12::5")!, parseCidr("fd00::/8")));
    assert.ok(ipInRange(parseIp("10.0.0.1")!, parseCidr("::ffff:10.0.0.0/104")));
    assert.ok(!ipInRange(parseIp("::1")!, parseCidr("0.0.0.0/0")));
    assert.ok(ipInRange(parseIp("172.20.0.1")!, parseCidr("172.16.0.0/12")));
    assert.ok(!ipInRange(parseIp("172.32.0.1")!, parseCidr("172.16.0.0/12")));
  });

  it("rejects malformed CIDR ranges with a TypeError", () => {
    for (const bad of ["10.0.0.0/33", "10.0.0.0/x", "nope/8", "::/129", "10.0.0.0/-1"]) {
      assert.throws(() => parseCidr(bad), TypeError, bad);
    }
  });

  it("knows loopback addresses", () => {
    for (const ip of ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"]) assert.ok(isLoopbackIp(ip), ip);
    for (const ip of ["10.0.0.1", "::2", "::ffff:10.0.0.1", "garbage"]) assert.ok(!isLoopbackIp(ip), ip);
  });
});

describe("access rules", () => {
  const listener = {
    id: 1,
    name: "public",
    addr: { transport: "tcp" as const, hostname: "0.0.0.0", port: 1 },
  };
  const tcpPeer = (hostname: string): PeerInfo => ({
    listener,
    remoteAddr: { transport: "tcp", hostname, port: 5000 },
    localAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    transport: "tcp",
  });
  const unixPeer: PeerInfo = {
    listener: { id: 0, name: "local", addr: { transport: "unix", path: "/tmp/x.sock" } },
    remoteAddr: { transport: "unix", path: "" },
    localAddr: { transport: "unix", path: "/tmp/x.sock" },
    transport: "unix",
  };

  it("admits UNIX and loopback peers by default (LOCAL_ONLY) and nothing else", () => {
    const check = compileRules(LOCAL_ONLY);
    assert.ok(check(unixPeer) >= 0);
    assert.ok(check(tcpPeer("127.0.0.1")) >= 0);
    assert.ok(check(tcpPeer("::1")) >= 0);
    assert.ok(check(tcpPeer("::ffff:127.0.0.1")) >= 0);
    assert.equal(check(tcpPeer("10.0.0.7")), -1);
    assert.equal(check(tcpPeer("::ffff:10.0.0.7")), -1);
  });

  it("combines fields with AND and rules with OR", () => {
    const rules: AccessRule[] = [
      { listener: "public", cidr: ["10.0.0.0/8", "fd00::/8"] },
      { listener: 0, transport: "unix" },
    ];
    const check = compileRules(rules);
    assert.equal(check(tcpPeer("10.1.1.1")), 0);
    assert.equal(check(tcpPeer("::ffff:10.1.1.1")), 0, "IPv4-mapped peers match IPv4 rules");
    assert.equal(check(tcpPeer("fd00::9")), 0);
    assert.equal(check(tcpPeer("11.1.1.1")), -1);
    assert.equal(check(unixPeer), 1);
    assert.equal(compileRules([{ listener: "other", cidr: "10.0.0.0/8" }])(tcpPeer("10.1.1.1")), -1);
  });

  it("supports loopback: false and custom predicates", () => {
    assert.equal(compileRules([{ loopback: false }])(tcpPeer("127.0.0.1")), -1);
    assert.equal(compileRules([{ loopback: false }])(tcpPeer("8.8.8.8")), 0);
    const check = compileRules([{
      test: (peer) => peer.remoteAddr.transport === "tcp" && peer.remoteAddr.port === 5000,
    }]);
    assert.equal(check(tcpPeer("8.8.8.8")), 0);
    assert.equal(check(unixPeer), -1);
  });

  it("clientCertVerified matches only TLS peers whose client certificate verified", () => {
    const tlsPeer = (authorized: boolean): PeerInfo => ({
      ...tcpPeer("127.0.0.1"),
      transport: "tls",
      tls: { authorized },
    });
    const verifiedOnly = compileRules([{ clientCertVerified: true }]);
    assert.equal(verifiedOnly(tlsPeer(true)), 0);
    assert.equal(verifiedOnly(tlsPeer(false)), -1);
    assert.equal(verifiedOnly(tcpPeer("127.0.0.1")), -1, "a connection without TLS never matches");
    const unverifiedOnly = compileRules([{ clientCertVerified: false }]);
    assert.equal(unverifiedOnly(tlsPeer(false)), 0);
    assert.equal(unverifiedOnly(tlsPeer(true)), -1);
  });

  it("admits nothing with an empty list, and rejects malformed rules up front", () => {
    assert.equal(compileRules([])(unixPeer), -1);
    assert.throws(() => compileRules([{ cidr: "10.0.0.0/99" }]), TypeError);
    assert.throws(() => compileRules([{ nonsense: true } as unknown as AccessRule]), TypeError);
    assert.throws(() => compileRules([{ test: 5 } as unknown as AccessRule]), TypeError);
  });
});
