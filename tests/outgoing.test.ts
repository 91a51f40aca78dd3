/**
 * Outgoing clients between their connections: the send buffer while away (socket-free, on
 * `OutgoingClients`), the handshake timeout over a real silent server, and closes made while a
 * connect is still under way.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { nativeTransport, SendBufferFullError, TimeoutError } from "../mod.ts";
import { ClientRecord } from "../core/clients/client_registry.ts";
import { OutgoingClients } from "../core/clients/outgoing.ts";
import { DEFAULT_RECONNECT } from "../core/clients/reconnect.ts";
import { MemoryBudget } from "../core/engine/memory_budget.ts";
import { FRAME_HEADER_BYTES } from "../core/wire/codec.ts";
import type { Connection, ConnectOptions, Transport } from "../transports/types.ts";
import { iterateUntil, startCore } from "./_core_fixture.ts";
import { collect, type Collector, deferred, Resources, tcpPort, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { frameBytes } from "./_wire_peer.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);

/** An outgoing client's record with the default reconnect policy (and `bufferBytes`, if given). */
function awayRecord(bufferBytes = DEFAULT_RECONNECT.bufferBytes): ClientRecord {
  return new ClientRecord(1, "expected", utf8("worker"), {
    connect: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    reconnect: { ...DEFAULT_RECONNECT, bufferBytes },
  });
}

function outgoingClients(budget = new MemoryBudget(1 << 30, 1 << 30, () => {})) {
  const abandoned: ClientRecord[] = [];
  const outgoing = new OutgoingClients(budget, {}, {
    isClosed: () => false,
    connect: () => {},
    abandoned: (record) => abandoned.push(record),
  });
  return { outgoing, budget, abandoned };
}

describe("OutgoingClients without sockets", () => {
  it("keeps 25,000 sends in order without copying the buffer per send", () => {
    const { outgoing, budget } = outgoingClients();
    const record = awayRecord();
    // The defect: each send copied the whole buffer (Array.prototype.concat), quadratic in all.
    const concat = Array.prototype.concat;
    let copies = 0;
    Array.prototype.concat = function (this: unknown[], ...items: unknown[]) {
      copies++;
      return concat.apply(this, items);
    };
    try {
      for (let i = 0; i < 25_000; i++) outgoing.sendWhileAway(1, record, [utf8(`m${i}`)], "send message");
    } finally {
      Array.prototype.concat = concat;
    }
    assert.equal(copies, 0, "no send copied the buffer");
    const bytes = record.outboxBytes;
    assert.equal(budget.outputBytes, bytes);
    const kept = record.takeOutbox();
    assert.equal(kept.length, 25_000);
    assert.equal(new TextDecoder().decode(kept[24_999]), "m24999");
    assert.equal(bytes, kept.reduce((sum, m) => sum + m.length + FRAME_HEADER_BYTES, 0));
  });

  it("refuses a send past bufferBytes whole, and puts a lost connection's rest at the head", () => {
    const { outgoing, budget } = outgoingClients();
    const record = awayRecord(3 * (FRAME_HEADER_BYTES + 2));
    outgoing.sendWhileAway(1, record, [utf8("b1"), utf8("b2")], "send messages");
    assert.throws(
      () => outgoing.sendWhileAway(1, record, [utf8("b3"), utf8("b4")], "send messages"),
      SendBufferFullError,
    );
    assert.equal(record.outboxBytes, 2 * (FRAME_HEADER_BYTES + 2), "nothing of the refused call is kept");
    outgoing.toOutbox(record, [utf8("a1")], true);
    assert.equal(budget.outputBytes, 3 * (FRAME_HEADER_BYTES + 2));
    outgoing.removed(record);
    assert.equal(record.outboxBytes, 0);
    assert.equal(budget.outputBytes, 0);
    outgoing.sendWhileAway(1, record, [utf8("b1"), utf8("b2")], "send messages");
    outgoing.toOutbox(record, [utf8("a1")], true);
    assert.deepEqual(record.takeOutbox().map((m) => new TextDecoder().decode(m)), ["a1", "b1", "b2"]);
  });

  it("ends an attempt on time out, and a hold gives up an attempt still connecting", async () => {
    const { outgoing, abandoned } = outgoingClients();
    const record = awayRecord();
    let timedOut = false;
    const attempt = outgoing.attemptStarted(record, 10, () => timedOut = true);
    assert.ok(outgoing.isCurrent(record, attempt));
    await waitFor(() => timedOut, 5000, "the attempt's timeout"); // the timer is unref'd: this polls
    assert.ok(!outgoing.isCurrent(record, attempt), "a timed-out attempt is not current");

    record.connectStarted();
    const second = outgoing.attemptStarted(record, 0, () => assert.fail("no timeout was set"));
    outgoing.hold(record);
    assert.ok(!outgoing.isCurrent(record, second));
    assert.deepEqual(abandoned, [record]);
    assert.ok(record.reconnectHeld);
  });
});

/** A TCP server on loopback that accepts and never says a word; what each connection got is recorded. */
async function silentServer(res: Resources) {
  const accepted: { conn: Connection; got: Collector }[] = [];
  const listener = res.add(
    await nativeTransport().listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 }, (conn) => {
      res.add(conn);
      accepted.push({ conn, got: collect(conn) });
    }),
  );
  const target: ConnectOptions = { transport: "tcp", hostname: "127.0.0.1", port: tcpPort(listener.addr) };
  return { accepted, target };
}

/** The native transport, except that connecting to port 1 waits for `release` to get its connection. */
function heldConnectTransport(release: Promise<Connection>): Transport {
  const native = nativeTransport();
  const transport = Object.create(native) as Transport;
  transport.connect = (options) =>
    options.transport === "tcp" && options.port === 1 ? release : native.connect(options);
  return transport;
}

describe("outgoing clients over loopback", () => {
  it(
    "a server that accepts and never answers the keyword: disconnected with a TimeoutError, then retried",
    TEST_TIMEOUT,
    async () => {
      await using res = new Resources();
      const server = await silentServer(res);
      await using fx = await startCore({ limits: { handshakeTimeoutMs: 150 } });
      const id = fx.core.addClient({
        keyword: "worker",
        connect: server.target,
        reconnect: { initialDelayMs: 10, maxDelayMs: 20 },
      });
      await iterateUntil(fx.core, (e) => e.disconnected.has(id));
      const info = fx.core.getClientInfo(id)!;
      assert.ok(info.lastError instanceof TimeoutError, `lastError: ${info.lastError}`);
      assert.equal(info.reconnectAttempts, 1);
      await waitFor(() => server.accepted.length >= 2, 10_000, "the reconnect policy's next attempt");
      await server.accepted[0]!.got.ended; // the core closed the timed-out connection
    },
  );

  it(
    "a TCP connect that never completes: disconnected with a TimeoutError after handshakeTimeoutMs",
    TEST_TIMEOUT,
    async () => {
      const never = new Promise<Connection>(() => {});
      await using fx = await startCore({
        transport: heldConnectTransport(never),
        limits: { handshakeTimeoutMs: 100 },
      });
      const id = fx.core.addClient({
        keyword: "w",
        connect: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
        reconnect: { initialDelayMs: 60_000, maxDelayMs: 60_000 },
      });
      await iterateUntil(fx.core, (e) => e.disconnected.has(id));
      const info = fx.core.getClientInfo(id)!;
      assert.ok(info.lastError instanceof TimeoutError, `lastError: ${info.lastError}`);
      assert.equal(info.state, "reconnecting");
    },
  );

  it("25,000 messages sent while in the handshake all arrive after it, in order", TEST_TIMEOUT, async () => {
    await using res = new Resources();
    const server = await silentServer(res);
    await using fx = await startCore();
    const id = fx.core.addClient({ keyword: "w", connect: server.target });
    await waitFor(() => server.accepted.length === 1, 10_000, "the connection");
    const count = 25_000;
    for (let i = 0; i < count; i++) fx.core.sendMessageToClient(id, `message ${i}`.padEnd(16, "."));
    assert.equal(fx.core.stats().outputBytes, count * (16 + FRAME_HEADER_BYTES));
    const { conn, got } = server.accepted[0]!;
    conn.write(frameBytes("OK"));
    const expected = FRAME_HEADER_BYTES + 1 + count * (FRAME_HEADER_BYTES + 16);
    await got.untilLength(expected);
    const bytes = got.bytes();
    assert.equal(bytes.length, expected);
    const last = new TextDecoder().decode(bytes.subarray(bytes.length - 16));
    assert.equal(last, `message ${count - 1}`.padEnd(16, "."));
  });

  it(
    "closeClientConnection during the TCP connect disconnects at once; the late connection is closed",
    TEST_TIMEOUT,
    async () => {
      await using res = new Resources();
      const server = await silentServer(res);
      const release = deferred<Connection>();
      await using fx = await startCore({ transport: heldConnectTransport(release.promise) });
      const id = fx.core.addClient({
        keyword: "w",
        connect: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
      });
      assert.equal(fx.core.getClientInfo(id)!.state, "connecting");
      fx.core.closeClientConnection(id);
      assert.equal(fx.core.getClientInfo(id)!.state, "disconnected");
      await iterateUntil(fx.core, (e) => e.disconnected.has(id));
      release.resolve(await nativeTransport().connect(server.target));
      await waitFor(() => server.accepted.length === 1, 10_000, "the late connection to arrive");
      await server.accepted[0]!.got.ended;
      assert.equal(server.accepted[0]!.got.bytes().length, 0, "no keyword was sent on it");
      assert.equal(fx.core.getClientInfo(id)!.state, "disconnected");
      assert.equal(fx.core.stats().connections, 0);
    },
  );

  it("shutdown while a connect is under way does not wait for it", TEST_TIMEOUT, async () => {
    await using res = new Resources();
    const server = await silentServer(res);
    const release = deferred<Connection>();
    await using fx = await startCore({
      transport: heldConnectTransport(release.promise),
      listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
      limits: { closeTimeoutMs: 100 },
    });
    const { peer } = await fx.connectNamed("named");
    const id = fx.core.addClient({
      keyword: "w",
      connect: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    });
    // Longer than the test may run: shutdown must end when the named client's connection does.
    const shutdown = fx.core.shutdown({ timeoutMs: 120_000 });
    release.resolve(await nativeTransport().connect(server.target));
    await peer.waitClosed();
    await shutdown;
    assert.equal(fx.core.getClientInfo(id)?.state ?? "disconnected", "disconnected");
    await server.accepted[0]?.got.ended;
  });
});
