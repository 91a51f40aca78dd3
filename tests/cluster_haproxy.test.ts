/**
 * HAProxy (`mode tcp`, `send-proxy-v2`, round robin) in front of two cores joined by `natsCluster`
 * over a real `nats-server`: a device that connected through the balancer to one node reaches a
 * device that connected to the other, by keyword. Skipped, with the install command, where
 * `haproxy` or `nats-server` is missing (`.ci/run` installs both).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { connect } from "nats";
import { natsCluster } from "../cluster/nats.ts";
import { type CoreFixture, iterateUntil, startCore } from "./_core_fixture.ts";
import { delay, tempDir } from "./_helpers.ts";
import { haproxyConfig, noHaproxyReason } from "./_haproxy.ts";
import { freePort, noNatsServerReason, startNatsServer } from "./_nats_server.ts";
import { text, WirePeer } from "./_wire_peer.ts";

const skip = noHaproxyReason ?? noNatsServerReason;

/** A cluster node behind the balancer: trusts its PROXY header, adopts every keyword. */
async function node(url: string, name: string): Promise<CoreFixture & { nc: { close(): Promise<void> } }> {
  const nc = await connect({ servers: url });
  const fx = await startCore({
    listeners: [{
      transport: "tcp",
      hostname: "127.0.0.1",
      port: 0,
      proxyProtocol: { trusted: ["127.0.0.1/32"] },
    }],
    acceptUnexpectedKeywords: "adopt",
    cluster: natsCluster(nc, { name: "lb", node: name }),
  });
  return Object.assign(Object.create(fx) as CoreFixture, {
    nc,
    async close() {
      await fx.close();
      await nc.close();
    },
  });
}

/** A device through the balancer, once HAProxy is up: its handshake done. */
async function device(port: number, keyword: string): Promise<WirePeer> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      const peer = await WirePeer.connect({ transport: "tcp", hostname: "127.0.0.1", port }, keyword);
      assert.equal(text(await peer.next()), "OK");
      return peer;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await delay(50); // A pause between connect attempts, until HAProxy is up.
    }
  }
}

describe("natsCluster behind HAProxy", () => {
  it(
    "a device on one node reaches a device on the other through the cluster, by keyword",
    { timeout: 60_000, skip },
    async () => {
      await using nats = await startNatsServer();
      await using dir = await tempDir("asockio-haproxy-cluster-");
      const one = await node(nats.url, "one");
      const two = await node(nats.url, "two");
      const frontend = await freePort();
      const config = dir.join("haproxy.cfg");
      writeFileSync(
        config,
        haproxyConfig(frontend, [{ name: "one", port: one.port() }, { name: "two", port: two.port() }]),
      );
      let haproxy: ChildProcess | undefined;
      try {
        haproxy = spawn("haproxy", ["-db", "-f", config], { stdio: ["ignore", "ignore", "ignore"] });
        // Round robin: X on one node, Y on the other (which one is HAProxy's choice).
        const x = await device(frontend, "X");
        const y = await device(frontend, "Y");
        const nodes = [one, two];
        const holder = async (keyword: string) => {
          for (const deadline = Date.now() + 10_000;; await delay(20)) {
            const at = await one.core.locateKeyword(keyword);
            if (at) return nodes.find((fx) => fx.core.stats().cluster?.node === at.node)!;
            assert.ok(Date.now() < deadline, `${keyword} is located`);
          }
        };
        const onX = await holder("X");
        const onY = await holder("Y");
        assert.notEqual(onX, onY, "X and Y are on different nodes");

        // The application on X's node forwards what X sends to the keyword it names.
        x.send("to Y: hello from X");
        const idX = onX.core.getClientIdByKeyword("X")!;
        await iterateUntil(onX.core, (e) => e.data.has(idX));
        const [message] = onX.core.getMessagesFromClient(idX).map(text);
        assert.equal(message, "to Y: hello from X");
        await onX.core.sendMessageToKeyword("Y", message!);
        assert.equal(text(await y.next()), "to Y: hello from X");
        // And back, from Y's node.
        await onY.core.sendMessageToKeyword("X", "hello from Y");
        assert.equal(text(await x.next()), "hello from Y");
        assert.equal(onX.core.stats().cluster?.sendsOut, 1);
        assert.equal(onY.core.stats().cluster?.sendsIn, 1);
        x.close();
        y.close();
      } finally {
        haproxy?.kill("SIGKILL");
        await one.close();
        await two.close();
      }
    },
  );
});
