/**
 * A `websocket` listener with `proxyProtocol`: the PROXY header (v1 or v2, written by hand here, and
 * sent by a real HAProxy where installed) comes before the HTTP request; the client's address from it is
 * what rules, `rawConnection` and `getClientInfo` see, for upgraded and for passed-through requests.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { describe, it } from "node:test";
import WsClient from "ws";
import { type IoCoreOptions, nativeTransport } from "../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../processors/http_responder.ts";
import { startCore } from "./_core_fixture.ts";
import { delay, missingTool, tempDir, TEST_TIMEOUT } from "./_helpers.ts";
import { NetPeer } from "./_net_client.ts";
import { waitFor } from "./_settle.ts";
import { clientFrame, upgradeRequest, WsPeer } from "./_websocket_peer.ts";

const enc = new TextEncoder();
const noHaproxyReason = missingTool("haproxy", "-v", "apt-get install -y haproxy");

/** A v1 header, written from the spec. */
const v1 = (source: string, port: number) => enc.encode(`PROXY TCP4 ${source} 127.0.0.1 ${port} 25000\r\n`);

/** A v2 PROXY header over TCP/IPv4, written from the spec. */
function v2(ip: number[], port: number): Uint8Array {
  const body = [...ip, 127, 0, 0, 1, port >> 8, port & 0xff, 0x61, 0xa8];
  const signature = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
  return new Uint8Array([...signature, 0x21, 0x11, 0, body.length, ...body]);
}

function wsBehindBalancer(trusted: string[], more: IoCoreOptions = {}) {
  return startCore({
    listeners: [{
      transport: "tcp",
      hostname: "127.0.0.1",
      port: 0,
      proxyProtocol: { trusted },
      websocket: { path: "/ws", pingIntervalMs: 0 },
    }],
    ...more,
  });
}

describe("websocket listener with proxyProtocol", () => {
  for (
    const [label, header, hostname, port] of [
      ["v1", v1("192.0.2.10", 40001), "192.0.2.10", 40001],
      ["v2", v2([192, 0, 2, 11], 40002), "192.0.2.11", 40002],
    ] as const
  ) {
    it(
      `reads a ${label} header before the upgrade; rules and getClientInfo see the client`,
      TEST_TIMEOUT,
      async () => {
        await using fx = await wsBehindBalancer(["127.0.0.1/32"]);
        const id = fx.core.addClient({ keyword: "tab", allow: [{ cidr: "192.0.2.0/24" }] });
        const peer = await WsPeer.open(fx.port(), "/ws", [], header);
        peer.send(1, "tab");
        peer.send(2, "after the header");
        await peer.until((frames) => frames.length >= 1);
        assert.deepEqual(peer.texts(), ["OK"]);
        await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 1, 5000, "the message");
        const info = fx.core.getClientInfo(id)!;
        assert.deepEqual(info.remoteAddr, { transport: "tcp", hostname, port });
        assert.equal(info.proxyAddr?.transport === "tcp" && info.proxyAddr.hostname, "127.0.0.1");
        assert.equal(info.websocket, true);
        assert.equal(new TextDecoder().decode(fx.core.getMessageFromClient(id)!), "after the header");
        peer.net.socket.destroy();
      },
    );
  }

  it("reads the header, the upgrade and the first frame sent one byte at a time", TEST_TIMEOUT, async () => {
    await using fx = await wsBehindBalancer(["127.0.0.1/32"]);
    const id = fx.core.addClient({ keyword: "slow", allow: [{ cidr: "192.0.2.0/24" }] });
    const net = await NetPeer.connect(fx.port());
    const all = new Uint8Array([
      ...v2([192, 0, 2, 99], 1234),
      ...enc.encode(upgradeRequest("/ws", "dGhlIHNhbXBsZSBub25jZQ==")),
      ...clientFrame(1, "slow"),
    ]);
    for (const byte of all) {
      net.write(new Uint8Array([byte]));
      await delay(0); // each byte its own write
    }
    await waitFor(() => fx.core.getClientInfo(id)!.state === "connected", 5000, "admitted");
    assert.match(net.text(), /^HTTP\/1\.1 101 /);
    assert.deepEqual(fx.core.getClientInfo(id)!.remoteAddr, {
      transport: "tcp",
      hostname: "192.0.2.99",
      port: 1234,
    });
    net.socket.destroy();
  });

  it(
    "applies the default rules to the proxied address: a client that is not local is refused",
    TEST_TIMEOUT,
    async () => {
      await using fx = await wsBehindBalancer(["127.0.0.1/32"]);
      fx.core.addClient({ keyword: "default rules" });
      const peer = await WsPeer.open(fx.port(), "/ws", [], v1("198.51.100.4", 5000));
      peer.send(1, "default rules");
      assert.equal(await peer.closed(), 1008);
      assert.deepEqual(peer.texts(), ["access denied"]);
    },
  );

  it(
    "passes a request that is not an upgrade, header and all, to the HttpResponder",
    TEST_TIMEOUT,
    async () => {
      const seen: string[] = [];
      class Site extends HttpResponder {
        override handle(_request: HttpRequest): HttpResponse {
          seen.push(this.remoteAddr.transport === "tcp" ? this.remoteAddr.hostname : "?");
          return { body: "page\n" };
        }
      }
      await using fx = await wsBehindBalancer(["127.0.0.1/32"], {
        unknownClients: "allow",
        unknownClientProcessor: Site,
      });
      const net = await NetPeer.connect(fx.port());
      net.write(new Uint8Array([...v1("192.0.2.50", 7), ...enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n")]));
      await net.until(() => net.text().includes("page\n"));
      assert.match(net.text(), /^HTTP\/1\.1 200 /);
      assert.deepEqual(seen, ["192.0.2.50"]);
      net.socket.destroy();
    },
  );

  it(
    "closes a connection whose PROXY header is malformed, and one from an untrusted source",
    TEST_TIMEOUT,
    async () => {
      await using fx = await wsBehindBalancer(["127.0.0.1/32"]);
      const bad = await NetPeer.connect(fx.port());
      bad.write(
        enc.encode(
          "PROXY TCP4 not-an-ip 127.0.0.1 1 2\r\n" + upgradeRequest("/ws", "dGhlIHNhbXBsZSBub25jZQ=="),
        ),
      );
      const outcome = await bad.outcome();
      assert.ok(!outcome.text.includes("101"), outcome.text);
      await using strict = await wsBehindBalancer(["10.0.0.0/8"]);
      const untrusted = await NetPeer.connect(strict.port());
      untrusted.write(
        new Uint8Array([
          ...v1("192.0.2.1", 1),
          ...enc.encode(upgradeRequest("/ws", "a2V5a2V5a2V5a2V5a2V5aw==")),
        ]),
      );
      assert.equal((await untrusted.outcome()).text, "");
    },
  );

  it(
    "behind HAProxy (mode tcp, send-proxy-v2): a ws client is admitted and seen with its own port",
    { timeout: 60_000, skip: noHaproxyReason },
    async () => {
      await using dir = await tempDir("asockio-haproxy-ws-");
      await using fx = await wsBehindBalancer(["127.0.0.1/32"]);
      const id = fx.core.addClient({ keyword: "behind haproxy", allow: [{ cidr: "127.0.0.0/8" }] });
      const probe = await nativeTransport().listen(
        { transport: "tcp", hostname: "127.0.0.1", port: 0 },
        (c) => c.close(),
      );
      const frontend = (probe.addr as { port: number }).port;
      await probe.close();
      const config = dir.join("haproxy.cfg");
      writeFileSync(
        config,
        [
          "defaults",
          "  mode tcp",
          "  timeout connect 2s",
          "  timeout client 30s",
          "  timeout server 30s",
          "frontend web",
          `  bind 127.0.0.1:${frontend}`,
          "  default_backend cores",
          "backend cores",
          `  server one 127.0.0.1:${fx.port()} send-proxy-v2 check check-send-proxy inter 200ms`,
          "",
        ].join("\n"),
      );
      let haproxy: ChildProcess | undefined;
      try {
        haproxy = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "ignore", "ignore"] });
        let socket: WsClient | undefined;
        const inbox: string[] = [];
        for (const deadline = Date.now() + 10_000; socket === undefined;) {
          const attempt = new WsClient(`ws://127.0.0.1:${frontend}/ws`);
          attempt.on("message", (data: Uint8Array) => inbox.push(new TextDecoder().decode(data)));
          const opened = await new Promise<boolean>((resolve) => {
            attempt.once("open", () => resolve(true)).once("error", () => resolve(false));
          });
          if (opened) socket = attempt;
          else if (Date.now() > deadline) assert.fail("HAProxy did not come up");
          else await delay(50); // until HAProxy listens
        }
        socket.send("behind haproxy");
        await waitFor(() => inbox.length === 1, 5000, "OK");
        assert.deepEqual(inbox, ["OK"]);
        const info = fx.core.getClientInfo(id)!;
        assert.equal(info.websocket, true);
        assert.equal(info.proxyAddr?.transport === "tcp" && info.proxyAddr.hostname, "127.0.0.1");
        assert.notEqual((info.remoteAddr as { port: number }).port, fx.port());
        assert.notEqual(
          (info.remoteAddr as { port: number }).port,
          (info.proxyAddr as { port: number }).port,
        );
        socket.close();
      } finally {
        haproxy?.kill("SIGKILL");
      }
    },
  );
});
