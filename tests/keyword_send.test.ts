/**
 * Named clients by keyword, without a cluster: `acceptUnexpectedKeywords: "adopt"`,
 * `sendMessageToKeyword` / `sendMessagesToKeyword` and `locateKeyword` in one core.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ClientNotConnectedError,
  type ClusterBus,
  type ClusterRefusal,
  ConnectionClosedError,
  CoreClosedError,
  IoCore,
  type IoIterationResult,
  SendBufferFullError,
} from "../mod.ts";
import { iterateUntil, startCore } from "./_core_fixture.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { text } from "./_wire_peer.ts";

const TCP = [{ transport: "tcp" as const, hostname: "127.0.0.1", port: 0 }];

describe("acceptUnexpectedKeywords: adopt", () => {
  it(
    "registers an unannounced keyword at once and forgets it when its connection ends",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({ listeners: TCP, acceptUnexpectedKeywords: "adopt" });
      const core = fx.core;
      const peer = await fx.handshake("sensor-17");
      const events = await iterateUntil(core, (e) => e.expected.size === 1);
      const [id] = [...events.expected];
      assert.equal(core.getClientIdByKeyword("sensor-17"), id);
      assert.equal(text(core.getClientInfo(id!)?.keyword), "sensor-17");
      assert.equal(core.stats().heldConnections, 0);

      await core.sendMessageToKeyword("sensor-17", "hello");
      assert.equal(text(await peer.next()), "hello");
      peer.send("from device");
      await iterateUntil(core, (e) => e.data.has(id!));
      assert.deepEqual(core.getMessagesFromClient(id!).map(text), ["from device"]);

      peer.close();
      const seen: IoIterationResult[] = [];
      await iterateUntil(core, (e) => e.disconnected.has(id!), 10_000, (r) => seen.push(r));
      assert.equal(core.getClientIdByKeyword("sensor-17"), undefined);
      assert.equal(core.getClientInfo(id!), undefined);
      assert.equal(core.stats().clients, 0);
      const reported = seen.filter((r) => r.clientsWithDisconnectedConnection.has(id!)).length;
      assert.equal(reported, 1);
      await assert.rejects(core.sendMessageToKeyword("sensor-17", "late"), ClientNotConnectedError);

      // The device comes back: a new registration, under a new id.
      await fx.handshake("sensor-17");
      const again = await iterateUntil(core, (e) => e.expected.size === 1);
      assert.notEqual([...again.expected][0], id);
    },
  );

  it(
    "keeps an adopted client until its unread messages are read, then forgets it",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({
        listeners: TCP,
        acceptUnexpectedKeywords: "adopt",
        limits: { halfOpenTimeoutMs: 50 },
      });
      const core = fx.core;
      const peer = await fx.handshake("meter");
      peer.send("last words");
      const events = await iterateUntil(core, (e) => e.data.size === 1);
      const [id] = [...events.data];
      peer.close();
      // The peer's FIN leaves the connection half-open while its message is unread (issue 24's half-close).
      await waitFor(() => core.getClientInfo(id!)?.peerEnded === true, 5000, "the peer's FIN");
      assert.equal(core.getClientInfo(id!)?.keywordText, "meter");
      assert.deepEqual(core.getMessagesFromClient(id!).map(text), ["last words"]);
      await iterateUntil(core, (e) => e.disconnected.has(id!));
      assert.equal(core.getClientInfo(id!), undefined);
    },
  );

  it("refuses a second connection for an adopted keyword (duplicate keyword)", TEST_TIMEOUT, async () => {
    await using fx = await startCore({ listeners: TCP, acceptUnexpectedKeywords: "adopt" });
    await fx.handshake("twin");
    await iterateUntil(fx.core, (e) => e.expected.size === 1);
    await assert.rejects(fx.handshake("twin"), /duplicate keyword/);
  });
});

describe("sendMessageToKeyword without a cluster", () => {
  it(
    "delivers to a registered client in order, batched with sendMessagesToKeyword",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({ listeners: TCP });
      const { peer } = await fx.connectNamed("worker");
      const sends: Promise<void>[] = [];
      for (let i = 0; i < 1000; i++) sends.push(fx.core.sendMessageToKeyword("worker", `m${i}`));
      sends.push(fx.core.sendMessagesToKeyword("worker", ["x", new Uint8Array([121])]));
      await Promise.all(sends);
      const got: string[] = [];
      while (got.length < 1002) got.push(text(await peer.next()));
      assert.deepEqual(got.slice(0, 3), ["m0", "m1", "m2"]);
      assert.deepEqual(got.slice(998), ["m998", "m999", "x", "y"]);
      const where = await fx.core.locateKeyword("worker");
      assert.deepEqual(Object.keys(where ?? {}), ["node"]);
      assert.match(where!.node, /^node-[0-9a-f]{8}$/);
    },
  );

  it(
    "rejects with ClientNotConnectedError for a keyword nobody holds, or one not connected",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({ listeners: TCP });
      const core = fx.core;
      const err = await core.sendMessageToKeyword("nobody", "x").catch((e) => e);
      assert.ok(err instanceof ClientNotConnectedError);
      assert.ok(err instanceof ConnectionClosedError);
      assert.match(err.message, /Cannot send to keyword "nobody"/);
      core.addClient({ keyword: "registered" });
      await assert.rejects(core.sendMessagesToKeyword("registered", ["x"]), ClientNotConnectedError);
      assert.equal(await core.locateKeyword("registered"), undefined);
      assert.equal(await core.locateKeyword("nobody"), undefined);
    },
  );

  it(
    "keeps messages for an away outgoing client in its send buffer, and says when it is full",
    TEST_TIMEOUT,
    async () => {
      await using server = await startCore({ listeners: TCP });
      const serverId = server.core.addClient({ keyword: "upstream" });
      await using fx = await startCore({ listeners: TCP });
      fx.core.addClient({
        keyword: "upstream",
        connect: server.target(),
        reconnect: { bufferBytes: 64, initialDelayMs: 10 },
      });
      await fx.core.sendMessageToKeyword("upstream", "queued while away");
      await iterateUntil(server.core, (e) => e.data.has(serverId));
      assert.deepEqual(server.core.getMessagesFromClient(serverId).map(text), ["queued while away"]);
      await server.close();
      await iterateUntil(fx.core, (e) => e.disconnected.size === 1);
      await fx.core.sendMessageToKeyword("upstream", "a");
      await assert.rejects(fx.core.sendMessageToKeyword("upstream", "b".repeat(100)), SendBufferFullError);
    },
  );

  it(
    "checks its arguments: bad keywords and messages throw, a closed core rejects",
    TEST_TIMEOUT,
    async () => {
      const core = new IoCore({ logger: null });
      const bad = [1, null, undefined, {}, new Uint16Array(1)] as unknown as string[];
      for (const keyword of bad) {
        assert.throws(() => core.sendMessageToKeyword(keyword, "x"), TypeError);
        assert.throws(() => core.sendMessagesToKeyword(keyword, ["x"]), TypeError);
        assert.throws(() => core.locateKeyword(keyword), TypeError);
      }
      assert.throws(() => core.sendMessageToKeyword("k", 5 as unknown as string), TypeError);
      assert.throws(() => core.sendMessagesToKeyword("k", "not a list" as unknown as string[]), TypeError);
      assert.throws(() => core.sendMessagesToKeyword("k", ["ok", 5 as unknown as string]), TypeError);
      assert.throws(() => new IoCore({ acceptUnexpectedKeywords: "yes" as unknown as boolean }), TypeError);
      assert.throws(() => new IoCore({ cluster: {} as never }), /ClusterBus/);
      await core.close();
      await assert.rejects(core.sendMessageToKeyword("k", "x"), CoreClosedError);
      await assert.rejects(core.sendMessagesToKeyword("k", ["x"]), CoreClosedError);
      await assert.rejects(core.locateKeyword("k"), CoreClosedError);
    },
  );
});

describe("ClusterBus.admit: the cluster's say before OK", () => {
  /** A bus whose `admit` answers when the test says, and which records its calls. */
  function slowBus() {
    const calls: string[] = [];
    const answers: ((refusal: ClusterRefusal | undefined) => void)[] = [];
    const bus: ClusterBus = {
      node: "here",
      attach() {},
      detach: () => Promise.resolve(),
      admit(keyword) {
        calls.push(`admit ${text(keyword)}`);
        return new Promise((resolve) => answers.push(resolve));
      },
      claim: (keyword) => void calls.push(`claim ${text(keyword)}`),
      release: (keyword) => void calls.push(`release ${text(keyword)}`),
      send: () => Promise.reject(new ClientNotConnectedError("Cannot send to keyword: nobody holds it")),
      locate: () => Promise.resolve(undefined),
      stats: () => ({ node: "here", keywordsHeld: 0, sendsOut: 0, sendsIn: 0, failures: 0 }),
    };
    return { bus, calls, answers };
  }

  it("waits for admit before OK, and refuses a second connection meanwhile", TEST_TIMEOUT, async () => {
    const { bus, calls, answers } = slowBus();
    await using fx = await startCore({ listeners: TCP, acceptUnexpectedKeywords: "adopt", cluster: bus });
    const first = await fx.connect("sensor-17");
    await waitFor(() => answers.length === 1, 5000, "admit asked");
    const second = await fx.connect("sensor-17");
    assert.equal(text(await second.next()), "duplicate keyword");
    answers[0]!(undefined);
    assert.equal(text(await first.next()), "OK");
    await iterateUntil(fx.core, (e) => e.expected.size === 1);
    assert.deepEqual(calls, ["admit sensor-17", "claim sensor-17"]);
  });

  it("sends the refusal instead of OK, and registers nothing", TEST_TIMEOUT, async () => {
    const { bus, calls, answers } = slowBus();
    await using fx = await startCore({ listeners: TCP, acceptUnexpectedKeywords: "adopt", cluster: bus });
    const peer = await fx.connect("taken");
    await waitFor(() => answers.length === 1, 5000, "admit asked");
    answers[0]!({ reason: "duplicate keyword", node: "there" });
    assert.equal(text(await peer.next()), "duplicate keyword");
    await peer.waitClosed();
    assert.equal(fx.core.getClientIdByKeyword("taken"), undefined);
    assert.deepEqual(calls, ["admit taken"]);
  });

  it("releases the keyword when the connection ends while admit runs", TEST_TIMEOUT, async () => {
    const { bus, calls, answers } = slowBus();
    await using fx = await startCore({ listeners: TCP, acceptUnexpectedKeywords: "adopt", cluster: bus });
    const peer = await fx.connect("leaving");
    await waitFor(() => answers.length === 1, 5000, "admit asked");
    peer.close();
    await waitFor(() => fx.core.stats().connections === 0, 5000, "the connection closed");
    answers[0]!(undefined);
    await waitFor(() => calls.length === 2, 5000, "released");
    assert.deepEqual(calls, ["admit leaving", "release leaving"]);
    assert.equal(fx.core.getClientIdByKeyword("leaving"), undefined);
  });
});
