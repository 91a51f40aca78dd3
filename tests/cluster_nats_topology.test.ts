/**
 * Named clients across NATS topologies: a 3-server cluster, nats.js v3, nodes on other runtimes and in
 * other processes (skipped, with the install command, where `nats-server` is missing; `.ci/run` installs
 * it). Split from `cluster_nats.test.ts`, so that no file runs longer than a test's timeout on Node 20.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import process from "node:process";
import {
  connect as connectV3,
  NoRespondersError as NoRespondersV3,
  RequestError as RequestErrorV3,
  TimeoutError as TimeoutV3,
} from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { ClientNotConnectedError, detectRuntime } from "../mod.ts";
import { natsCluster } from "../cluster/nats.ts";
import { isNoResponders, isTimeout } from "../cluster/_nats_wire.ts";
import { iterateUntil, startCore } from "./_core_fixture.ts";
import { delay } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { startNatsCluster, startNatsServer } from "./_nats_server.ts";
import { text, WirePeer } from "./_wire_peer.ts";
import { CHILD, located, NATS, node, TCP } from "./_cluster_nodes.ts";

describe("natsCluster over a 3-server NATS cluster (routes, clustered JetStream)", () => {
  it(
    "reaches a named client on node A (server 1) from node C (server 3), and refuses its duplicate on C",
    NATS,
    async () => {
      await using servers = await startNatsCluster();
      await using a = await node(servers[0]!.url, "a");
      await using c = await node(servers[2]!.url, "c");
      const peer = await a.fx.handshake("sensor-17");
      await iterateUntil(a.core, (e) => e.expected.size === 1);
      // Interest crosses the routes, and the JetStream meta leader is elected, in a few seconds.
      await waitFor(
        () => a.core.stats().cluster?.keywordsHeld === 1,
        30_000,
        "a's claim in clustered JetStream",
      );
      await located(c.core, "sensor-17", "a");
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 1000; i++) sends.push(c.core.sendMessageToKeyword("sensor-17", `${i}`));
      await Promise.all(sends);
      for (let i = 0; i < 1000; i++) assert.equal(text(await peer.next()), `${i}`);
      const duplicate = await c.fx.connect("sensor-17");
      await duplicate.waitClosed();
    },
  );
});

describe("natsCluster with nats.js v3 (@nats-io/transport-node, @nats-io/kv)", () => {
  it("tells v3's no-responders and timeout errors apart, as causes too", () => {
    const noResponders = new RequestErrorV3("x", { cause: new NoRespondersV3("asockio.test.kx") });
    assert.ok(isNoResponders(noResponders) && !isTimeout(noResponders));
    assert.ok(isTimeout(new TimeoutV3()) && !isNoResponders(new TimeoutV3()));
    assert.ok(isTimeout(new RequestErrorV3("x", { cause: new TimeoutV3() })));
    assert.ok(!isNoResponders(new RequestErrorV3("x")) && !isTimeout(new Error("timeout")));
  });

  it("joins a v2 node: sends both ways, and claims in v3's KV refuse a duplicate", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a"); // nats v2
    const nc3 = await connectV3({ servers: nats.url });
    const kvm = new Kvm(nc3);
    await using b = await startCore({
      listeners: TCP,
      acceptUnexpectedKeywords: "adopt",
      cluster: natsCluster(nc3, { name: "test", node: "b", kv: (bucket, opts) => kvm.create(bucket, opts) }),
    });
    try {
      const onA = await a.fx.handshake("on-a");
      const onB = await b.handshake("on-b");
      await waitFor(() => a.core.stats().cluster?.keywordsHeld === 1, 10_000, "a's claim");
      await waitFor(() => b.core.stats().cluster?.keywordsHeld === 1, 10_000, "b's claim (v3 KV)");
      await located(a.core, "on-b", "b");
      await located(b.core, "on-a", "a");
      await Promise.all(Array.from({ length: 50 }, (_, i) => b.core.sendMessageToKeyword("on-a", `v3 ${i}`)));
      for (let i = 0; i < 50; i++) assert.equal(text(await onA.next()), `v3 ${i}`);
      await a.core.sendMessageToKeyword("on-b", "from v2");
      assert.equal(text(await onB.next()), "from v2");
      // Claims: b's (written through @nats-io/kv) refuses on-b on a; a's refuses on-a on b.
      const dupOnA = await a.fx.connect("on-b");
      assert.equal(text(await dupOnA.next()), "duplicate keyword");
      const dupOnB = await b.connect("on-a");
      assert.equal(text(await dupOnB.next()), "duplicate keyword");
      // Offline through v3: its NoRespondersError becomes ClientNotConnectedError.
      await assert.rejects(b.core.sendMessageToKeyword("nobody", "x"), ClientNotConnectedError);
      assert.equal(await b.core.locateKeyword("nobody"), undefined);
    } finally {
      await b.close();
      await nc3.close();
    }
  });
});

/** The runtime the other-runtime test runs its child node on, and that runtime's binary. */
function otherRuntime(): { name: string; binary: string; args: string[] } | string {
  const here = detectRuntime();
  const name = here === "deno" ? "bun" : here === "bun" ? "node" : "deno";
  // The repository root (the npm build's tests run from npm/esm/tests): the child runs from source.
  let root = fileURLToPath(new URL("..", import.meta.url));
  while (!existsSync(join(root, "tests", "_cluster_child.ts")) && dirname(root) !== root) {
    root = dirname(root);
  }
  const binary = join(root, "node_modules", ".bin", name);
  const child = join(root, "tests", "_cluster_child.ts");
  if (!existsSync(binary) || !existsSync(child)) {
    return `no ${name} in node_modules/.bin (npm ci installs it)`;
  }
  return { name, binary, args: name === "deno" ? ["run", "-A", child] : [child] };
}

/** Starts a cluster child node; resolves with its listening port, and a way to stop it. */
async function childNode(binary: string, args: string[], url: string, name: string) {
  const child = spawn(binary, [...args, url, name], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((resolve) => child.once("exit", resolve));
  let stderr = "";
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const port = await new Promise<number>((resolve, reject) => {
    let out = "";
    child.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      const match = /listening (\d+)/.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`cluster child exited with ${code}: ${stderr}`)));
  }).catch(async (err) => {
    child.kill("SIGKILL");
    await exited;
    throw err;
  });
  const kill = async () => {
    child.kill("SIGKILL");
    await exited;
  };
  return { port, kill, [Symbol.asyncDispose]: kill };
}

const other = otherRuntime();

describe("natsCluster with nodes on different runtimes", () => {
  it(
    `exchanges messages with a node on ${
      typeof other === "string" ? "another runtime" : other.name
    }, over a 3-server NATS cluster (server 1 and server 3)`,
    { ...NATS, skip: NATS.skip ?? (typeof other === "string" ? other : undefined) },
    async () => {
      const { name, binary, args } = other as Exclude<typeof other, string>;
      await using servers = await startNatsCluster();
      await using there = await childNode(binary, args, servers[0]!.url, `there-${name}`);
      await using here = await node(servers[2]!.url, "here");
      const target = { transport: "tcp" as const, hostname: "127.0.0.1", port: there.port };
      const a = await WirePeer.handshake(target, "device-a"); // on the other runtime's node
      const b = await here.fx.handshake("device-b"); // on this runtime's node
      await iterateUntil(here.core, (e) => e.expected.size === 1);
      await located(here.core, "device-a", `there-${name}`);

      // This runtime to the other: in order, batched.
      await Promise.all(
        Array.from({ length: 100 }, (_, i) => here.core.sendMessageToKeyword("device-a", `${i}`)),
      );
      for (let i = 0; i < 100; i++) assert.equal(text(await a.next()), `${i}`);
      // The other runtime to this one: device-a's node forwards what device-a sends.
      await located(here.core, "device-b", "here");
      a.send(`to device-b: hello from ${name}`);
      assert.equal(text(await b.next()), `hello from ${name}`);
      assert.equal(here.core.stats().cluster?.sendsIn, 1);
    },
  );
});

describe("natsCluster with a node in another process", () => {
  it(
    "after SIGKILL of the node holding a keyword, the client is reachable through another node",
    NATS,
    async () => {
      await using nats = await startNatsServer();
      await using b = await node(nats.url, "b");
      // Deno finds the repository's package.json (for "nats") from its deno.json: no --no-config here.
      const args = detectRuntime() === "deno" ? ["run", "-A", CHILD] : [CHILD];
      const child = await childNode(process.execPath, args, nats.url, "a");
      try {
        const port = child.port;
        const target = { transport: "tcp" as const, hostname: "127.0.0.1", port };
        const device = await WirePeer.handshake(target, "sensor-9");
        await located(b.core, "sensor-9", "a");
        await b.core.sendMessageToKeyword("sensor-9", "to the other process");
        assert.equal(text(await device.next()), "to the other process");

        await child.kill();
        await device.waitClosed();
        await located(b.core, "sensor-9", undefined); // the server dropped a's subscriptions
        await assert.rejects(b.core.sendMessageToKeyword("sensor-9", "x"), ClientNotConnectedError);

        // The device comes back through node b (as through a balancer): admitted once a's heartbeat expired.
        const started = Date.now();
        let again: WirePeer;
        for (;;) {
          again = await b.fx.connect("sensor-9");
          const claimed = () => b.core.stats().cluster?.keywordsHeld === 1;
          const closed = await Promise.race([
            again.waitClosed().then(() => true),
            waitFor(claimed, 10_000, "the claim").then(() => false),
          ]).catch(() => true);
          if (!closed) break;
          assert.ok(Date.now() - started < 10_000, "reachable elsewhere within 10 s");
          await delay(500); // a device's pause before it tries again
        }
        assert.equal(text(await again.next()), "OK");
        await b.core.sendMessageToKeyword("sensor-9", "welcome back");
        assert.equal(text(await again.next()), "welcome back");
      } finally {
        await child.kill();
      }
    },
  );
});
