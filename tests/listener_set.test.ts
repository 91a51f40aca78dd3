/**
 * Parking: accepted connections wait unread for a slot, per listener, with a cap and a timeout.
 * `ListenerSet` without sockets first, then the core over loopback.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ListenerSet, type ParkingOptions } from "../core/admission/listener_set.ts";
import type { ListenerInfo } from "../core/types.ts";
import type { Connection, Listener, Transport } from "../transports/types.ts";
import { iterateUntil, recordingLogger, startCore } from "./_core_fixture.ts";
import { waitFor } from "./_settle.ts";
import { text } from "./_wire_peer.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";

/** A stand-in for an accepted connection: only what parking touches. */
function stubConn(name: string): Connection & { name: string } {
  const conn = {
    name,
    closed: false,
    remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
    close() {
      conn.closed = true;
    },
  };
  return conn as unknown as Connection & { name: string };
}

/** A transport whose listeners bind nothing, so `ListenerSet.bind` runs without sockets. */
const noSockets = {
  listen: (options: { port?: number }) =>
    Promise.resolve(
      { addr: { transport: "tcp", hostname: "127.0.0.1", port: options.port }, close() {} } as Listener,
    ),
} as unknown as Transport;

async function boundSet(caps: number[], parking?: ParkingOptions) {
  const set = new ListenerSet(
    caps.map((maxConnections, i) => ({ transport: "tcp" as const, port: 1000 + i, maxConnections })),
    parking,
  );
  await set.bind(noSockets, () => {}, {} as never);
  return { set, infos: set.infos as ListenerInfo[] };
}

describe("ListenerSet without sockets", () => {
  it("a full listener holds back only its own parked connections", async () => {
    const { set, infos } = await boundSet([1, 5]);
    const [admin, open] = infos as [ListenerInfo, ListenerInfo];
    set.opened(admin);
    assert.ok(!set.hasRoom(admin));
    const a = stubConn("admin-2");
    const b = stubConn("public-1");
    set.park(a, admin);
    set.park(b, open);
    assert.ok(set.hasParked(admin) && set.hasParked(open));
    const admitted: string[] = [];
    set.unpark(() => true, (conn) => admitted.push((conn as typeof a).name));
    assert.deepEqual(admitted, ["public-1"], "the public one passes the parked admin one");
    assert.equal(set.parkedCount, 1);
    assert.ok(!set.hasParked(open));
    set.closed(admin);
    set.unpark(() => true, (conn) => admitted.push((conn as typeof a).name));
    assert.deepEqual(admitted, ["public-1", "admin-2"]);
    assert.equal(set.parkedCount, 0);
  });

  it("admits in order of arrival while the core has room, and skips closed ones", async () => {
    const { set, infos } = await boundSet([10]);
    const conns = ["c1", "c2", "c3", "c4"].map(stubConn);
    for (const conn of conns) set.park(conn, infos[0]!);
    conns[1]!.close();
    let room = 2;
    const admitted: string[] = [];
    set.unpark(() => room > 0, (conn) => {
      room--;
      admitted.push((conn as (typeof conns)[0]).name);
    });
    assert.deepEqual(admitted, ["c1", "c3"]);
    assert.equal(set.parkedCount, 1);
    set.closeParked();
    assert.ok(conns[3]!.closed);
    assert.equal(set.parkedCount, 0);
  });

  it("closes a new connection at the cap, and a parked one after the timeout, reporting each", async () => {
    const logger = recordingLogger();
    const { set, infos } = await boundSet([1], { max: 2, timeoutMs: 20, logger });
    const conns = ["p1", "p2", "p3"].map(stubConn);
    for (const conn of conns) set.park(conn, infos[0]!);
    assert.ok(conns[2]!.closed && !conns[0]!.closed && !conns[1]!.closed);
    assert.equal(set.droppedCount, 1);
    assert.match(logger.lines[0]!, /^warn: .*maxParkedConnections/);
    assert.equal(set.parkedCount, 2);
    await waitFor(() => set.parkedCount === 0, 5000, "the parked connections' timeout");
    assert.ok(conns[0]!.closed && conns[1]!.closed);
    assert.equal(set.droppedCount, 3);
    assert.match(logger.lines[2]!, /^warn: .*handshakeTimeoutMs 20/);
  });
});

describe("parking over loopback", () => {
  it("a connection parked on a full admin listener does not stall the public one", TEST_TIMEOUT, async () => {
    await using fx = await startCore({
      listeners: [
        { transport: "tcp", port: 0, name: "admin", maxConnections: 1 },
        { transport: "tcp", port: 0, name: "public" },
      ],
    });
    const core = fx.core;
    await fx.connectNamed("admin-1", 0);
    const id2 = core.addClient({ keyword: "admin-2" });
    const parked = await fx.connect("admin-2", 0);
    await waitFor(() => core.stats().parkedConnections === 1, 5000, "the second admin connection to park");
    const { id } = await fx.connectNamed("public-1", 1);
    assert.equal(core.getClientInfo(id)!.state, "connected");
    assert.equal(parked.pending, 0, "the admin one still waits");
    assert.equal(core.getClientInfo(id2)!.state, "disconnected");
  });

  it(
    "past maxParkedConnections a new connection is closed at once, and a parked one after handshakeTimeoutMs",
    TEST_TIMEOUT,
    async () => {
      const logger = recordingLogger();
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0 }],
        limits: { maxConnections: 1, maxParkedConnections: 1, handshakeTimeoutMs: 300 },
        logger,
      });
      const core = fx.core;
      const { peer: first } = await fx.connectNamed("first");
      const secondAt = Date.now();
      const waiting = await fx.connect("second");
      await waitFor(() => core.stats().parkedConnections === 1, 5000, "the second to park");
      const third = await fx.connect("third");
      await third.waitClosed();
      assert.equal(third.pending, 0);
      assert.equal(core.stats().droppedConnections, 1);
      assert.ok(logger.lines.some((l) => l.includes("maxParkedConnections")), logger.lines.join("\n"));
      await waiting.waitClosed();
      const waited = Date.now() - secondAt;
      assert.ok(waited >= 250, `the parked connection was closed after ${waited} ms, not handshakeTimeoutMs`);
      assert.equal(core.stats().droppedConnections, 2);
      assert.equal(core.stats().parkedConnections, 0);
      first.send("still here");
      await iterateUntil(core, (e) => e.data.size > 0);
      assert.equal(text(core.getMessagesFromClient(core.getClientIdByKeyword("first")!)[0]), "still here");
    },
  );
});
