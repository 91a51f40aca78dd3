/**
 * A real load balancer in front of two cores: HAProxy in `mode tcp` with `send-proxy-v2`. Skipped,
 * with the install command, when `haproxy` is not installed (`.ci/run` installs it).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { nativeTransport } from "../mod.ts";
import { type CoreFixture, startCore } from "./_core_fixture.ts";
import { delay, tempDir } from "./_helpers.ts";
import { haproxyConfig, noHaproxyReason } from "./_haproxy.ts";
import { waitFor } from "./_settle.ts";
import { text, WirePeer } from "./_wire_peer.ts";

/** A free loopback port: bound, read and released. */
async function freePort(): Promise<number> {
  const listener = await nativeTransport().listen(
    { transport: "tcp", hostname: "127.0.0.1", port: 0 },
    (c) => c.close(),
  );
  const port = (listener.addr as { port: number }).port;
  await listener.close();
  return port;
}

function backend(): Promise<CoreFixture> {
  return startCore({
    listeners: [{
      transport: "tcp",
      hostname: "127.0.0.1",
      port: 0,
      proxyProtocol: { trusted: ["127.0.0.1/32"] },
    }],
  });
}

async function connected(port: number, keyword: string): Promise<WirePeer> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await WirePeer.connect({ transport: "tcp", hostname: "127.0.0.1", port }, keyword);
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await delay(50); // A pause between connect attempts, until HAProxy is up.
    }
  }
}

describe("behind HAProxy (mode tcp, send-proxy-v2)", () => {
  it(
    "shows each backend the client's own address and port, applies rules to it, and fails over when a backend goes",
    { timeout: 60_000, skip: noHaproxyReason },
    async () => {
      await using dir = await tempDir("asockio-haproxy-");
      const one = await backend();
      await using two = await backend();
      const frontend = await freePort();
      const config = dir.join("haproxy.cfg");
      const checks = "check check-send-proxy inter 100ms fall 1 rise 1";
      writeFileSync(
        config,
        haproxyConfig(frontend, [
          { name: "one", port: one.port(), options: checks },
          { name: "two", port: two.port(), options: checks },
        ]),
      );
      let haproxy: ChildProcess | undefined;
      try {
        haproxy = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
        let haproxyLog = "";
        haproxy.stderr?.on("data", (chunk) => (haproxyLog += String(chunk)));
        for (const fx of [one, two]) {
          fx.core.addClient({ keyword: "local client", allow: [{ cidr: "127.0.0.0/8" }] });
          fx.core.addClient({ keyword: "lan only", allow: [{ cidr: "10.0.0.0/8" }] });
        }

        // Round robin: two connections, one on each backend, each seeing the client's own port.
        const peers = [await connected(frontend, "local client"), await connected(frontend, "local client")];
        for (const peer of peers) assert.equal(text(await peer.next()), "OK");
        const seen = new Map<number, number>(); // client port → backend index
        for (const [index, fx] of [one, two].entries()) {
          const id = fx.core.getClientIdByKeyword("local client")!;
          const info = fx.core.getClientInfo(id);
          if (info?.state !== "connected") continue;
          assert.equal(info.remoteAddr?.transport === "tcp" && info.remoteAddr.hostname, "127.0.0.1");
          assert.equal(info.proxyAddr?.transport === "tcp" && info.proxyAddr.hostname, "127.0.0.1");
          seen.set((info.remoteAddr as { port: number }).port, index);
        }
        const clientPorts = peers.map((peer) => (peer.conn.localAddr as { port: number }).port);
        assert.deepEqual(
          [...seen.keys()].sort(),
          [...clientPorts].sort(),
          "each backend sees its client's own port",
        );
        assert.deepEqual([...seen.values()].sort(), [0, 1], "one connection on each backend");
        for (const peer of peers) peer.close();

        const refused = await connected(frontend, "lan only");
        assert.equal(text(await refused.next()), "access denied", "the rule sees 127.0.0.1, not 10/8");
        refused.close();

        // One backend goes: new connections all land on the other (held there: nobody registered them).
        await one.close();
        await waitFor(
          () => haproxyLog.includes("cores/one is DOWN"),
          10_000,
          "HAProxy to mark backend one down",
        );
        const moved: WirePeer[] = [];
        for (let i = 0; i < 4; i++) {
          const peer = await connected(frontend, `failover ${i}`);
          assert.equal(text(await peer.next()), "OK");
          moved.push(peer);
        }
        assert.equal(two.core.stats().heldConnections, 4);
        for (const peer of moved) peer.close();
      } finally {
        haproxy?.kill("SIGKILL");
        await one.close();
      }
    },
  );
});
