/**
 * Listeners behind a load balancer: the PROXY protocol header (v1 and v2) from trusted sources sets
 * the client's address for rules, processors and getClientInfo; everything else is refused.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { InlineProcessor, type IoCoreOptions } from "../mod.ts";
import { iterateUntil, recordingLogger, startCore } from "./_core_fixture.ts";
import { macrotask } from "./_settle.ts";
import { frameBytes, text } from "./_wire_peer.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";

const encoder = new TextEncoder();

/** A v1 header, written by hand from the spec (not by the library's reader). */
function v1(source: string, sourcePort: number, family = source.includes(":") ? "TCP6" : "TCP4"): Uint8Array {
  const destination = family === "TCP6" ? "::1" : "127.0.0.1";
  return encoder.encode(`PROXY ${family} ${source} ${destination} ${sourcePort} 25000\r\n`);
}

const V2_SIGNATURE = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

/** A v2 header: PROXY over TCP/IPv4 or IPv6 (from 16-bit groups), or LOCAL. */
function v2(source?: { ip: number[]; port: number }): Uint8Array {
  if (!source) return new Uint8Array([...V2_SIGNATURE, 0x20, 0x00, 0x00, 0x00]);
  const six = source.ip.length === 8;
  const addressBytes = six ? source.ip.flatMap((group) => [group >> 8, group & 0xff]) : source.ip;
  const destination = six ? [...new Array(15).fill(0), 1] : [127, 0, 0, 1];
  const body = [...addressBytes, ...destination, source.port >> 8, source.port & 0xff, 0x61, 0xa8];
  return new Uint8Array([
    ...V2_SIGNATURE,
    0x21,
    six ? 0x21 : 0x11,
    body.length >> 8,
    body.length & 0xff,
    ...body,
  ]);
}

function behindBalancer(trusted: string[], extra: IoCoreOptions = {}) {
  return startCore({
    listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0, proxyProtocol: { trusted } }],
    ...extra,
  });
}

describe("PROXY protocol on a listener", () => {
  for (
    const [label, header, hostname, port] of [
      ["v1 TCP4", v1("192.0.2.10", 40001), "192.0.2.10", 40001],
      ["v1 TCP6", v1("2001:db8::7", 40002), "2001:db8::7", 40002],
      ["v2 IPv4", v2({ ip: [192, 0, 2, 11], port: 40003 }), "192.0.2.11", 40003],
      ["v2 IPv6", v2({ ip: [0x2001, 0xdb8, 0, 0, 0, 0, 0, 8], port: 40004 }), "2001:db8::8", 40004],
    ] as const
  ) {
    it(
      `takes the client's address from a trusted ${label} header, for getClientInfo and rules`,
      TEST_TIMEOUT,
      async () => {
        await using fx = await behindBalancer(["127.0.0.1/32"]);
        const id = fx.core.addClient({
          keyword: "proxied",
          allow: [{ cidr: ["192.0.2.0/24", "2001:db8::/32"] }],
        });
        const peer = await fx.connect();
        peer.write(header);
        peer.send("proxied", "first");
        assert.equal(text(await peer.next()), "OK");
        await iterateUntil(fx.core, (e) => e.data.has(id));
        const info = fx.core.getClientInfo(id)!;
        assert.deepEqual(info.remoteAddr, { transport: "tcp", hostname, port });
        assert.equal(info.proxyAddr?.transport === "tcp" && info.proxyAddr.hostname, "127.0.0.1");
        assert.deepEqual(fx.core.getMessagesFromClient(id).map(text), ["first"]);
        assert.equal(fx.core.stats().inputBytes, 0, "the header's bytes are not left counted as input");
      },
    );
  }

  it(
    "applies the rules to the proxied address: LOCAL_ONLY refuses a client that is not local",
    TEST_TIMEOUT,
    async () => {
      await using fx = await behindBalancer(["127.0.0.0/8"]);
      fx.core.addClient({ keyword: "default rules" });
      const peer = await fx.connect();
      peer.write(v1("198.51.100.4", 5000));
      peer.send("default rules");
      assert.equal(text(await peer.next()), "access denied");
      await peer.waitClosed();
    },
  );

  it("admits a v2 LOCAL connection (a health check) as the balancer itself", TEST_TIMEOUT, async () => {
    await using fx = await behindBalancer(["127.0.0.1/32"]);
    const id = fx.core.addClient({ keyword: "health" });
    const peer = await fx.connect();
    peer.write(v2());
    peer.send("health");
    assert.equal(text(await peer.next()), "OK");
    const info = fx.core.getClientInfo(id)!;
    assert.equal(info.remoteAddr?.transport === "tcp" && info.remoteAddr.hostname, "127.0.0.1");
  });

  it("reads a header split into single bytes, and the frames right behind it", TEST_TIMEOUT, async () => {
    await using fx = await behindBalancer(["127.0.0.1/32"]);
    const id = fx.core.addClient({ keyword: "split", allow: [{ cidr: "192.0.2.0/24" }] });
    const peer = await fx.connect();
    const header = v2({ ip: [192, 0, 2, 99], port: 1234 });
    const keyword = frameBytes("split");
    const all = new Uint8Array([...header, ...keyword]);
    for (const byte of all) {
      peer.write(new Uint8Array([byte]));
      await macrotask();
    }
    assert.equal(text(await peer.next()), "OK");
    assert.deepEqual(fx.core.getClientInfo(id)?.remoteAddr, {
      transport: "tcp",
      hostname: "192.0.2.99",
      port: 1234,
    });
  });

  it("gives rawConnection and unknown clients the proxied address", TEST_TIMEOUT, async () => {
    const seen: string[] = [];
    class Echo extends InlineProcessor {
      override onConnected(): void {
        seen.push(this.remoteAddr.transport === "tcp" ? this.remoteAddr.hostname : "?");
      }
      override onDataReceived(data: Uint8Array): void {
        this.outputMessages.push(data);
      }
    }
    await using fx = await behindBalancer(["127.0.0.1/32"], {
      rawConnection: (info) => {
        seen.push(info.remoteAddr.transport === "tcp" ? info.remoteAddr.hostname : "?");
        return true;
      },
      unknownClients: "allow",
      unknownClientProcessor: Echo,
    });
    const peer = await fx.connect(undefined, 0, { raw: true });
    peer.write(new Uint8Array([...v1("203.0.113.5", 6000), ...encoder.encode("hello")]));
    await peer.until(() => peer.rawLength >= 5, 10_000, "the echo");
    assert.equal(text(peer.takeRaw()), "hello");
    assert.deepEqual(seen, ["203.0.113.5", "203.0.113.5"]);
  });

  for (
    const [label, trusted, bytes, expected] of [
      ["from an untrusted source", ["10.0.0.0/8"], v1("192.0.2.1", 1), /not a trusted PROXY protocol source/],
      ["with no header", ["127.0.0.1/32"], frameBytes("keyword"), /PROXY/],
      [
        "with a malformed v1 header",
        ["127.0.0.1/32"],
        encoder.encode("PROXY TCP4 1.2.3 127.0.0.1 1 2\r\n"),
        /PROXY/,
      ],
      [
        "with an oversized v1 header",
        ["127.0.0.1/32"],
        encoder.encode(`PROXY TCP4 ${"1".repeat(120)}`),
        /PROXY/,
      ],
    ] as const
  ) {
    it(`closes a connection ${label}, answering nothing and logging why`, TEST_TIMEOUT, async () => {
      const logger = recordingLogger();
      await using fx = await behindBalancer([...trusted], { logger });
      fx.core.addClient({ keyword: "keyword" });
      const peer = await fx.connect();
      peer.write(bytes);
      await peer.waitClosed();
      assert.equal(peer.pending, 0, "nothing was answered");
      assert.ok(logger.lines.some((line) => expected.test(line)), logger.lines.join("\n"));
      assert.equal(fx.core.stats().connections, 0);
    });
  }

  it("refuses proxyProtocol on a UNIX listener and a malformed trusted range when the core is created", async () => {
    await assert.rejects(
      startCore({
        listeners: [{ transport: "unix", path: "x.sock", proxyProtocol: { trusted: ["127.0.0.1/32"] } }],
      }),
      TypeError,
    );
    await assert.rejects(
      startCore({ listeners: [{ transport: "tcp", port: 0, proxyProtocol: { trusted: ["not a range"] } }] }),
      TypeError,
    );
  });
});
