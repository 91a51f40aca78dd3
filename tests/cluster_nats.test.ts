/**
 * Named clients across processes and machines: cores joined by `natsCluster` over a real
 * `nats-server` (skipped, with the install command, where it is missing; `.ci/run` installs it).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "nats";
import { ClientNotConnectedError, HandshakeRejectedError, IoCore, TimeoutError } from "../mod.ts";
import { natsCluster, type NatsConnectionLike, type NatsKvOpener } from "../cluster/nats.ts";
import {
  decodeMulti,
  decodeResults,
  encodeBatch,
  encodeMulti,
  encodeResults,
  multiEntryBytes,
  Reply,
} from "../cluster/_nats_wire.ts";
import { iterateUntil, startCore } from "./_core_fixture.ts";
import { assertBytesEqual, bytePattern, delay, MiB } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { startNatsServer } from "./_nats_server.ts";
import { text, type WirePeer } from "./_wire_peer.ts";
import { located, NATS, node, TCP } from "./_cluster_nodes.ts";

describe("natsCluster: named clients across nodes", () => {
  it("reaches a named client on node A from node B, and locates it there", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a");
    await using b = await node(nats.url, "b");
    const peer = await a.fx.handshake("sensor-17");
    await iterateUntil(a.core, (e) => e.expected.size === 1);
    await located(b.core, "sensor-17", "a");
    assert.deepEqual(await a.core.locateKeyword("sensor-17"), { node: "a" });

    await b.core.sendMessageToKeyword("sensor-17", "from b");
    await b.core.sendMessagesToKeyword("sensor-17", ["one", new Uint8Array([50])]);
    assert.deepEqual([text(await peer.next()), text(await peer.next()), text(await peer.next())], [
      "from b",
      "one",
      "2",
    ]);
    assert.deepEqual(b.core.stats().cluster, {
      node: "b",
      keywordsHeld: 0,
      sendsOut: 3,
      sendsIn: 0,
      failures: 0,
    });
    assert.deepEqual(a.core.stats().cluster, {
      node: "a",
      keywordsHeld: 1,
      sendsOut: 0,
      sendsIn: 3,
      failures: 0,
    });

    // The device leaves A and connects through B: reachable there, from A too.
    peer.close();
    await iterateUntil(a.core, (e) => e.disconnected.size === 1);
    await assert.rejects(b.core.sendMessageToKeyword("sensor-17", "gone"), ClientNotConnectedError);
    assert.equal(await b.core.locateKeyword("sensor-17"), undefined);
    const again = await b.fx.handshake("sensor-17");
    await iterateUntil(b.core, (e) => e.expected.size === 1);
    await located(a.core, "sensor-17", "b");
    await a.core.sendMessageToKeyword("sensor-17", "from a");
    assert.equal(text(await again.next()), "from a");
    assert.equal(b.core.stats().cluster?.failures, 1);
  });

  it("admits a device on B an instant after it left A, before A's claim is deleted", NATS, async () => {
    await using nats = await startNatsServer();
    // A's claim store, with its deletions held back until the test lets them go.
    const store = await connect({ servers: nats.url });
    await using _store = { [Symbol.asyncDispose]: () => store.close() };
    let letDeletesGo = () => {};
    const held = new Promise<void>((resolve) => letDeletesGo = resolve);
    let deletesSettled = 0;
    const kv: NatsKvOpener = async (bucket, opts) => {
      const real = await store.jetstream().views.kv(bucket, opts);
      return {
        create: (key, data) => real.create(key, data),
        update: (key, data, version) => real.update(key, data, version),
        put: (key, data) => real.put(key, data),
        get: (key) => real.get(key),
        delete: (key, options) => held.then(() => real.delete(key, options)).finally(() => deletesSettled++),
      };
    };
    await using a = await node(nats.url, "a", { kv });
    await using b = await node(nats.url, "b");
    await using _deletes = { [Symbol.asyncDispose]: () => Promise.resolve(letDeletesGo()) }; // before a closes
    const first = await a.fx.handshake("walker");
    await waitFor(() => a.core.stats().cluster?.keywordsHeld === 1, 10_000, "a's claim");
    first.close();
    await iterateUntil(a.core, (e) => e.disconnected.size === 1);
    const moved = await b.fx.handshake("walker"); // a's claim is still in the store
    await iterateUntil(b.core, (e) => e.expected.size === 1);
    await located(a.core, "walker", "b");
    await a.core.sendMessageToKeyword("walker", "found you");
    assert.equal(text(await moved.next()), "found you");
    letDeletesGo();
    await waitFor(() => deletesSettled === 1, 10_000, "a's deletion of its old claim");
    const claims = await store.jetstream().views.kv("asockio_test_keywords");
    assert.equal((await claims.get("k" + btoa("walker")))?.string(), "b", "b's claim stands");
    assert.equal(b.core.stats().cluster?.keywordsHeld, 1);
  });

  it("rejects with ClientNotConnectedError for a keyword no node holds", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a");
    const started = Date.now();
    const err = await a.core.sendMessageToKeyword("nobody", "x").catch((e) => e);
    assert.ok(err instanceof ClientNotConnectedError, String(err));
    assert.match(err.message, /"nobody"/);
    assert.ok(Date.now() - started < 2000);
    assert.equal(await a.core.locateKeyword("nobody"), undefined);
  });

  it("keeps the order of 10,000 sends from one node to one keyword, batched", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a");
    await using b = await node(nats.url, "b");
    const peer = await a.fx.handshake("ordered");
    await iterateUntil(a.core, (e) => e.expected.size === 1);
    await located(b.core, "ordered", "a");
    const sends: Promise<void>[] = [];
    for (let i = 0; i < 10_000; i++) {
      sends.push(b.core.sendMessageToKeyword("ordered", `${i}`));
      if (i % 1000 === 999) await new Promise((resolve) => setTimeout(resolve, 0)); // several ticks, several batches
    }
    await Promise.all(sends);
    for (let i = 0; i < 10_000; i++) assert.equal(text(await peer.next()), `${i}`);
    assert.equal(b.core.stats().cluster?.sendsOut, 10_000);
  });

  it("sends the batches of many keywords on one node in one NATS request per node", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a");
    await using c = await node(nats.url, "c");
    // Node b's connection counts its requests by subject.
    const nc = await connect({ servers: nats.url });
    const subjects: string[] = [];
    const counted: NatsConnectionLike = {
      subscribe: (subject, options) => nc.subscribe(subject, options),
      request: (subject, data, options) => {
        subjects.push(subject);
        return nc.request(subject, data, options);
      },
      flush: () => nc.flush(),
      get info() {
        return nc.info;
      },
    };
    await using b = await startCore({
      listeners: TCP,
      cluster: natsCluster(counted, { name: "test", node: "b", claims: false }),
    });
    try {
      const peers = new Map<string, WirePeer>();
      for (let i = 0; i < 40; i++) {
        const [holder, name] = i % 2 === 0 ? [a, `on-a-${i}`] : [c, `on-c-${i}`];
        peers.set(name, await holder.fx.handshake(name));
      }
      await waitFor(() => a.core.stats().cluster?.keywordsHeld === 20, 10_000, "a's keywords");
      await waitFor(() => c.core.stats().cluster?.keywordsHeld === 20, 10_000, "c's keywords");
      // The first send to each keyword goes to its subject, and learns its node.
      await Promise.all([...peers.keys()].map((name) => b.core.sendMessageToKeyword(name, "hello")));
      subjects.length = 0;
      for (let round = 0; round < 3; round++) {
        const sends = [...peers.keys()].map((name) => b.core.sendMessagesToKeyword(name, [`${round}`, name]));
        await Promise.all(sends);
      }
      assert.deepEqual(subjects.toSorted(), [
        ...Array(3).fill("asockio.test.n.a"),
        ...Array(3).fill("asockio.test.n.c"),
      ], "one request per node per round, none per keyword");
      for (const [name, peer] of peers) {
        const got = [];
        for (let i = 0; i < 7; i++) got.push(text(await peer.next()));
        assert.deepEqual(got, ["hello", "0", name, "1", name, "2", name]);
      }
      assert.equal(b.core.stats().cluster?.sendsOut, 40 + 3 * 80);

      // A keyword that moved (its node no longer holds it) is asked for on its own subject.
      peers.get("on-a-0")!.close();
      await iterateUntil(a.core, (e) => e.disconnected.size === 1);
      const moved = await c.fx.handshake("on-a-0");
      await located(b.core, "on-a-0", "c");
      subjects.length = 0;
      await Promise.all([
        b.core.sendMessageToKeyword("on-a-0", "found you"),
        b.core.sendMessageToKeyword("on-a-2", "still on a"),
      ]);
      assert.equal(text(await moved.next()), "found you");
      assert.equal(text(await peers.get("on-a-2")!.next()), "still on a");
      assert.deepEqual(subjects, ["asockio.test.n.a", "asockio.test.kb24tYS0w"]);
    } finally {
      await b.close();
      await nc.close();
    }
  });

  it("carries messages over NATS's 1 MiB max_payload in parts, intact", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a");
    await using b = await node(nats.url, "b");
    const peer = await a.fx.handshake("big");
    await iterateUntil(a.core, (e) => e.expected.size === 1);
    await located(b.core, "big", "a");
    const large = bytePattern(3 * MiB + 17, 7);
    const sends = [
      b.core.sendMessageToKeyword("big", "before"),
      b.core.sendMessageToKeyword("big", large),
      b.core.sendMessagesToKeyword("big", [bytePattern(700 * 1024, 1), bytePattern(700 * 1024, 2)]),
      b.core.sendMessageToKeyword("big", "after"),
    ];
    await Promise.all(sends);
    assert.equal(text(await peer.next()), "before");
    assertBytesEqual((await peer.next())!, large, "the 3 MiB message");
    assertBytesEqual((await peer.next())!, bytePattern(700 * 1024, 1), "the first 700 KiB message");
    assertBytesEqual((await peer.next())!, bytePattern(700 * 1024, 2), "the second 700 KiB message");
    assert.equal(text(await peer.next()), "after");
  });

  it("rejects with TimeoutError when the holder does not answer in requestTimeoutMs", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a", { requestTimeoutMs: 200 });
    // Something that holds the keyword's subject and never answers: a stuck node.
    const stuck: NatsConnection = await connect({ servers: nats.url });
    try {
      const subject = "asockio.test.k" + btoa("stuck").replace(/=+$/, "");
      stuck.subscribe(subject, { callback: () => {} });
      await stuck.flush();
      await assert.rejects(a.core.sendMessageToKeyword("stuck", "x"), TimeoutError);
      assert.equal(a.core.stats().cluster?.failures, 1);
    } finally {
      await stuck.close();
    }
  });

  it("checks its options, and serves one core", NATS, async () => {
    await using nats = await startNatsServer();
    const nc = await connect({ servers: nats.url });
    try {
      assert.throws(() => natsCluster(nc, {} as never), /options.name/);
      assert.throws(() => natsCluster(nc, { name: "a.b" }), /letters, digits/);
      assert.throws(() => natsCluster(nc, { name: "x", requestTimeoutMs: 0 }), RangeError);
      assert.throws(() => natsCluster(nc, { name: "x", nodes: "y" } as never), /nodes/);
      assert.throws(() => natsCluster({} as never, { name: "x" }), /nats.js connection/);
      const bus = natsCluster(nc, { name: "x" });
      const core = new IoCore({ cluster: bus, logger: null });
      assert.throws(() => new IoCore({ cluster: bus }), /serves another core/);
      assert.match(bus.node, /^node-[0-9a-f]{8}$/);
      await core.close();
      await waitFor(() => bus.stats().keywordsHeld === 0, 1000, "released");
    } finally {
      await nc.close();
    }
  });
});

describe("natsCluster: keyword claims across nodes (JetStream KV)", () => {
  it("refuses a keyword another node holds before OK, and keeps the first connection", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a");
    await using b = await node(nats.url, "b");
    const first = await a.fx.handshake("sensor-17");
    await iterateUntil(a.core, (e) => e.expected.size === 1);
    await waitFor(() => a.core.stats().cluster?.keywordsHeld === 1, 10_000, "a's claim");
    // A raw peer: its first answer is the refusal, never OK.
    const second = await b.fx.connect("sensor-17");
    assert.equal(text(await second.next()), "duplicate keyword");
    await second.waitClosed();
    // An asockio client: its connection fails with HandshakeRejectedError, and is never admitted on b.
    await using clientFx = await startCore();
    const id = clientFx.core.addClient({ keyword: "sensor-17", connect: b.fx.target() });
    await iterateUntil(clientFx.core, (e) => e.disconnected.has(id));
    const error = clientFx.core.getClientInfo(id)?.lastError;
    assert.ok(error instanceof HandshakeRejectedError, `got ${error}`);
    assert.equal(error.reason, "duplicate keyword");
    assert.equal(b.core.getClientIdByKeyword("sensor-17"), undefined, "b registered nothing for it");
    assert.equal(b.core.stats().cluster?.keywordsHeld, 0);
    await located(b.core, "sensor-17", "a");
    await b.core.sendMessageToKeyword("sensor-17", "still a");
    assert.equal(text(await first.next()), "still a");
  });

  it("admits one of two connections racing for a keyword on two nodes", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a");
    await using b = await node(nats.url, "b");
    for (let round = 0; round < 5; round++) {
      const keyword = `race-${round}`;
      const [onA, onB] = await Promise.all([a.fx.connect(keyword), b.fx.connect(keyword)]);
      const closed = await Promise.race([
        onA.waitClosed().then(() => "a"),
        onB.waitClosed().then(() => "b"),
      ]);
      const survivor = closed === "a" ? onB : onA;
      const loser = closed === "a" ? onA : onB;
      const holder = closed === "a" ? "b" : "a";
      assert.equal(text(await loser.next()), "duplicate keyword", "the loser never got OK");
      assert.equal(text(await survivor.next()), "OK");
      await located(a.core, keyword, holder);
      await a.core.sendMessageToKeyword(keyword, "to the survivor");
      assert.equal(text(await survivor.next()), "to the survivor");
      survivor.close();
    }
  });

  it("replaces the other node's connection with duplicateKeyword: replace", NATS, async () => {
    await using nats = await startNatsServer();
    await using a = await node(nats.url, "a");
    await using b = await node(nats.url, "b", {}, { duplicateKeyword: "replace" });
    const old = await a.fx.handshake("moving");
    await iterateUntil(a.core, (e) => e.expected.size === 1);
    const moved = await b.fx.handshake("moving");
    await old.waitClosed();
    await located(a.core, "moving", "b");
    await a.core.sendMessageToKeyword("moving", "found you");
    assert.equal(text(await moved.next()), "found you");
  });

  it("lets a client of a node that lost NATS connect elsewhere within 10 s", NATS, async () => {
    await using nats = await startNatsServer();
    const a = await node(nats.url, "a");
    await using b = await node(nats.url, "b", { requestTimeoutMs: 500 });
    try {
      await a.fx.handshake("orphan");
      await iterateUntil(a.core, (e) => e.expected.size === 1);
      await located(b.core, "orphan", "a");
      await waitFor(() => a.core.stats().cluster?.keywordsHeld === 1, 10_000, "a's claim");
      // Made before a fresh server's JetStream was ready, the claim is written on a later try.
      const kv = await b.nc.jetstream().views.kv("asockio_test_keywords");
      const token = "k" + btoa("orphan").replace(/=+$/, "");
      for (const t = Date.now(); (await kv.get(token))?.string() !== "a"; await delay(50)) {
        assert.ok(Date.now() - t < 10_000, "a's claim of orphan is in the store");
      }
      await a.nc.close(); // node a is cut off: its claim stays, its heartbeat stops
      await located(b.core, "orphan", undefined); // once the server has dropped a's subscriptions
      await assert.rejects(b.core.sendMessageToKeyword("orphan", "x"), ClientNotConnectedError);
      const started = Date.now();
      for (;;) {
        const peer = await b.fx.connect("orphan");
        const claimed = () => b.core.stats().cluster?.keywordsHeld === 1;
        const closed = await Promise.race([
          peer.waitClosed().then(() => true),
          waitFor(claimed, 10_000, "the claim").then(() => false),
        ]).catch(() => true);
        if (!closed) break;
        assert.ok(!claimed());
        assert.ok(Date.now() - started < 10_000, "taken over within 10 s");
        await new Promise((resolve) => setTimeout(resolve, 500)); // a device's pause before it tries again
      }
      const tookMs = Date.now() - started;
      assert.ok(tookMs > 1000 && tookMs < 10_000, `taken over after ${tookMs} ms`);
      await a.core.sendMessageToKeyword("orphan", "from b").catch(() => {}); // a is cut off
      await b.core.sendMessageToKeyword("orphan", "local on b");
    } finally {
      await a.fx.close();
    }
  });

  it("admits without claims, with a warning, when JetStream is not enabled", NATS, async () => {
    await using nats = await startNatsServer(false);
    const warnings: string[] = [];
    await using a = await node(nats.url, "a", {}, { logger: { warn: (m: string) => warnings.push(m) } });
    await a.fx.handshake("plain");
    await iterateUntil(a.core, (e) => e.expected.size === 1);
    await waitFor(() => warnings.some((w) => /not claimed/.test(w)), 10_000, "the warning");
    assert.deepEqual(await a.core.locateKeyword("plain"), { node: "a" });
  });

  it("claims its keywords again when NATS comes back after a server restart", NATS, async () => {
    const first = await startNatsServer();
    const port = first.port;
    await using a = await node(first.url, "a");
    await a.fx.handshake("survivor");
    await waitFor(() => a.core.stats().cluster?.keywordsHeld === 1, 10_000, "a's claim");
    await first.stop(); // the server and its JetStream store are gone
    await using second = await startNatsServer(true, port);
    await using b = await node(second.url, "b");
    await located(b.core, "survivor", "a"); // a reconnected and subscribed again
    const kv = await b.nc.jetstream().views.kv("asockio_test_keywords");
    const token = "k" + btoa("survivor").replace(/=+$/, "");
    for (const t = Date.now(); (await kv.get(token))?.string() !== "a"; await delay(50)) {
      // JetStream answers its first requests on a restarted server late (a 5 s request timeout each).
      assert.ok(Date.now() - t < 30_000, "a claims survivor again in the new store");
    }
    const duplicate = await b.fx.connect("survivor");
    await duplicate.waitClosed(); // a's claim is in the new store: b refuses the duplicate
    await b.core.sendMessageToKeyword("survivor", "after the restart");
  });
});

describe("natsCluster wire: several keywords in one request", () => {
  it("encodes and decodes batches for several keywords, and one result each", () => {
    const enc = (s: string) => new TextEncoder().encode(s);
    const messages = [[enc("a1"), enc("")], [enc("b1")], []];
    const entries = ["k1", "", "k3"].map((keyword, i) => {
      let bytes = 1;
      for (const m of messages[i]!) bytes += 4 + m.length;
      return { keyword: enc(keyword), body: encodeBatch(messages[i]!, bytes) };
    });
    const request = encodeMulti(entries);
    assert.equal(request.length, 1 + entries.reduce((n, e) => n + multiEntryBytes(e), 0));
    const decoded = decodeMulti(request);
    assert.deepEqual(decoded.map((e) => text(e.keyword)), ["k1", "", "k3"]);
    assert.deepEqual(decoded.map((e) => e.messages.map(text)), [["a1", ""], ["b1"], []]);
    for (let cut = 1; cut < request.length; cut++) {
      const prefix = request.subarray(0, cut);
      try {
        decodeMulti(prefix); // a cut at an entry's end is a shorter, valid request
      } catch (err) {
        assert.match(String(err), /malformed request/);
      }
    }
    const answer = encodeResults([
      { code: Reply.ok, why: new Uint8Array(0) },
      { code: Reply.offline, why: enc("gone") },
    ]);
    const results = decodeResults(answer, 2);
    assert.deepEqual(results.map((r) => [r[0], text(r.subarray(1))]), [[Reply.ok, ""], [
      Reply.offline,
      "gone",
    ]]);
    assert.throws(() => decodeResults(answer, 3), /2 results for 3/);
    assert.throws(() => decodeResults(answer.subarray(0, 3), 1), /cut short/);
  });
});
