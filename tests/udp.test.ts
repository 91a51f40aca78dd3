/**
 * UDP listeners and datagram clients on the core: each remote address is an unknown client, one
 * datagram is one message, both API styles and the events work as for TCP. The far end is a
 * `node:dgram` peer on loopback.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { networkInterfaces } from "node:os";
import {
  type ClientId,
  InlineProcessor,
  type IoCore,
  type IoCoreOptions,
  MessageTooLargeError,
  TimeoutError,
  UnsupportedError,
} from "../mod.ts";
import { iterateUntil, recordingLogger, startCore } from "./_core_fixture.ts";
import { bytePattern, bytesEqual, delay, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { UdpPeer, type UdpTarget } from "./_udp_peer.ts";
import { WirePeer } from "./_wire_peer.ts";

const noIpv6Reason = Object.values(networkInterfaces()).flat().some((info) => info?.address === "::1")
  ? undefined
  : "this machine has no IPv6 loopback (::1)";
const decoder = new TextDecoder();
const text = (data: Uint8Array) => decoder.decode(data);

/** A UDP-listening core that admits unknown clients; `extra` adds to or overrides the options. */
function udpCore(extra: IoCoreOptions = {}) {
  return startCore({ listeners: [{ transport: "udp", port: 0 }], unknownClients: "allow", ...extra });
}

/** True once the core logged refusing an unknown UDP client. */
function refusedUdp(lines: readonly string[]): boolean {
  return lines.some((line) => line.includes("Refused unknown client from udp:"));
}

function udpTarget(core: { addrs: readonly { transport: string }[] }, index = 0): UdpTarget {
  const addr = core.addrs[index]!;
  if (addr.transport !== "udp") throw new TypeError(`Listener ${index} is ${addr.transport}, not udp`);
  const { hostname, port } = addr as unknown as UdpTarget;
  return { hostname, port };
}

/** Runs `ioIteration` in the background, echoing every message, until `stop()`. */
function echoThroughIoIteration(core: IoCore): { stop(): Promise<void> } {
  let running = true;
  const done = (async () => {
    while (running) {
      const r = await core.ioIteration(20);
      for (const id of r.clientsHaveDataToRead) core.sendMessagesToClient(id, core.getMessagesFromClient(id));
    }
  })();
  return {
    stop() {
      running = false;
      return done;
    },
  };
}

/** The `index`th datagram of peer `tag`: its tag and index, padded to a size that varies up to 1,200 bytes. */
function numbered(tag: string, index: number): Uint8Array {
  const head = new TextEncoder().encode(`${tag}:${index}:`);
  const out = new Uint8Array(head.length + (index * 37) % 1200);
  out.set(head);
  out.fill(0x61 + (index % 26), head.length);
  return out;
}

/**
 * Sends `count` numbered datagrams in windows of `window`, waiting for each window's echoes before
 * the next, so the loopback receive buffers cannot overflow (Linux's default 208 KiB holds about a
 * hundred small datagrams, kernel overhead included: two peers with windows of 100 lost some on Deno).
 * Returns how many echoes never came.
 */
async function sendWindowed(peer: UdpPeer, tag: string, count: number, to: UdpTarget, window = 25) {
  let lost = 0;
  for (let start = 0; start < count; start += window) {
    const end = Math.min(count, start + window);
    for (let i = start; i < end; i++) await peer.send(numbered(tag, i), to);
    lost += await peer.missingAfter(end - lost, 5000);
  }
  return lost;
}

/** Checks that `peer` got back exactly its `count` numbered datagrams, in order. */
function assertEchoedInOrder(peer: UdpPeer, tag: string, count: number): void {
  assert.equal(peer.received.length, count, `${tag}: ${count - peer.received.length} echoes missing`);
  for (let i = 0; i < count; i++) {
    if (!bytesEqual(peer.received[i]!, numbered(tag, i))) {
      assert.fail(`${tag}: echo ${i} is ${text(peer.received[i]!.subarray(0, 20))}…, expected ${tag}:${i}:…`);
    }
  }
}

/** Sends one datagram from a fresh peer and waits until the core admits it; returns the peer and id. */
async function admitOne(core: IoCore, to: UdpTarget, hostname = "127.0.0.1", payload = "hello") {
  const peer = await UdpPeer.open(hostname);
  await peer.send(payload, to);
  const events = await iterateUntil(core, (e) => e.unknown.size > 0 && e.data.size > 0);
  const [id] = [...events.unknown] as [ClientId];
  return { peer, id };
}

/** What {@linkcode withClient} hands its body: the core, its UDP address, the peer and its client id. */
interface AdmittedClient {
  readonly core: IoCore;
  readonly to: UdpTarget;
  readonly peer: UdpPeer;
  readonly id: ClientId;
}

/**
 * Runs `body` on a UDP core (`options` added, its listener on `hostname`) with one client admitted
 * from a fresh peer that sent `first`; closes the peer and the core afterwards.
 */
async function withClient(
  body: (client: AdmittedClient) => Promise<void>,
  { options = {}, first = "hello", hostname = "127.0.0.1" }: {
    options?: IoCoreOptions;
    first?: string;
    hostname?: string;
  } = {},
): Promise<void> {
  await using fx = await udpCore({ listeners: [{ transport: "udp", hostname, port: 0 }], ...options });
  const to = udpTarget(fx);
  const { peer, id } = await admitOne(fx.core, to, hostname, first);
  try {
    await body({ core: fx.core, to, peer, id });
  } finally {
    peer.close();
  }
}

describe("IoCore over UDP: echo", () => {
  it(
    "echoes 10,000 datagrams from two node:dgram peers through ioIteration, in order per client, with no loss",
    TEST_TIMEOUT,
    async () => {
      await using fx = await udpCore();
      const to = udpTarget(fx);
      const a = await UdpPeer.open();
      const b = await UdpPeer.open();
      const pump = echoThroughIoIteration(fx.core);
      try {
        const [lostA, lostB] = await Promise.all([
          sendWindowed(a, "a", 5000, to),
          sendWindowed(b, "b", 5000, to),
        ]);
        assert.deepEqual({ lostA, lostB }, { lostA: 0, lostB: 0 }, "loss on loopback");
        assertEchoedInOrder(a, "a", 5000);
        assertEchoedInOrder(b, "b", 5000);
        assert.equal(fx.core.stats().udpClients, 2);
        assert.equal(fx.core.stats().droppedUdpDatagrams, 0);
      } finally {
        await pump.stop();
        a.close();
        b.close();
      }
    },
  );

  it(
    "echoes 10,000 datagrams through an unknownClientProcessor, in order, with no loss",
    TEST_TIMEOUT,
    async () => {
      class Echo extends InlineProcessor {
        override onDataReceived(data: Uint8Array): void {
          this.outputMessages.push(data);
        }
      }
      await using fx = await udpCore({ unknownClientProcessor: Echo });
      const a = await UdpPeer.open();
      try {
        assert.equal(await sendWindowed(a, "p", 10_000, udpTarget(fx), 50), 0, "loss on loopback");
        assertEchoedInOrder(a, "p", 10_000);
      } finally {
        a.close();
      }
    },
  );

  it(
    "carries empty datagrams both ways as empty messages",
    TEST_TIMEOUT,
    () =>
      withClient(async ({ core, to, peer, id }) => {
        assert.deepEqual(core.getMessagesFromClient(id).map((m) => m.length), [0]);
        core.sendMessagesToClient(id, [new Uint8Array(0), "after"]);
        await peer.waitFor(2);
        assert.deepEqual(peer.received.map(text), ["", "after"]);
        await peer.send(new Uint8Array(0), to);
        await iterateUntil(core, (e) => e.data.has(id));
        assert.deepEqual(core.getMessagesFromClient(id).map((m) => m.length), [0]);
      }, { first: "" }),
  );

  it(
    "reads a UDP client with messages(id), and reports clientsWithEmptyOutputFifo after a send",
    TEST_TIMEOUT,
    () =>
      withClient(async ({ core, to, peer, id }) => {
        core.sendMessageToClient(id, bytePattern(20_000, 3));
        await iterateUntil(core, (e) => e.empty.has(id));
        await peer.waitFor(1);
        assert.ok(bytesEqual(peer.received[0]!, bytePattern(20_000, 3)));
        await peer.send("second", to);
        const got: string[] = [];
        for await (const message of core.messages(id)) {
          got.push(text(message));
          if (got.length === 2) break;
        }
        assert.deepEqual(got, ["first", "second"]);
      }, { first: "first" }),
  );
});

describe("IoCore over UDP: clients", () => {
  it("makes 100 peers 100 distinct clients, which expire after udpIdleTimeoutMs", TEST_TIMEOUT, async () => {
    await using fx = await udpCore({ limits: { udpIdleTimeoutMs: 300 } });
    const to = udpTarget(fx);
    const peers = await Promise.all(Array.from({ length: 100 }, () => UdpPeer.open()));
    try {
      await Promise.all(peers.map((peer, i) => peer.send(`peer ${i}`, to)));
      const events = await iterateUntil(fx.core, (e) => e.unknown.size === 100 && e.data.size === 100);
      const ports = new Set<number>();
      for (const id of events.unknown) {
        const info = fx.core.getClientInfo(id)!;
        assert.equal(info.kind, "unknown");
        assert.equal(info.raw, true);
        assert.equal(info.remoteAddr?.transport, "udp");
        ports.add((info.remoteAddr as { port: number }).port);
        const [message] = fx.core.getMessagesFromClient(id);
        assert.equal(
          text(message!),
          `peer ${peers.findIndex((p) => p.port === (info.remoteAddr as { port: number }).port)}`,
        );
      }
      assert.equal(ports.size, 100);
      assert.equal(fx.core.stats().udpClients, 100);
      const gone = await iterateUntil(fx.core, (e) => e.disconnected.size === 100, 10_000);
      assert.deepEqual([...gone.disconnected].sort(), [...events.unknown].sort());
      assert.equal(fx.core.stats().udpClients, 0);
      assert.equal(fx.core.stats().clients, 0);
      // The next datagram from an expired address is a new client.
      await peers[0]!.send("again", to);
      const again = await iterateUntil(fx.core, (e) => e.unknown.size > 0);
      assert.ok(![...events.unknown].includes([...again.unknown][0]!));
    } finally {
      for (const peer of peers) peer.close();
    }
  });

  it(
    "reports an expired client's TimeoutError as its lastError while it has unread messages",
    TEST_TIMEOUT,
    async () => {
      await using fx = await udpCore({ limits: { udpIdleTimeoutMs: 200 } });
      const peer = await UdpPeer.open();
      try {
        await peer.send("unread", udpTarget(fx));
        const events = await iterateUntil(fx.core, (e) => e.unknown.size > 0 && e.disconnected.size > 0);
        const [id] = [...events.unknown] as [ClientId];
        assert.ok(fx.core.getClientInfo(id)?.lastError instanceof TimeoutError);
        assert.deepEqual(fx.core.getMessagesFromClient(id).map(text), ["unread"]);
      } finally {
        peer.close();
      }
    },
  );

  it("drops datagrams from new addresses past maxUdpClients and counts them", TEST_TIMEOUT, async () => {
    await using fx = await udpCore({ limits: { maxUdpClients: 3 } });
    const to = udpTarget(fx);
    const peers = await Promise.all(Array.from({ length: 6 }, () => UdpPeer.open()));
    try {
      for (const peer of peers.slice(0, 3)) await peer.send("in", to);
      await iterateUntil(fx.core, (e) => e.unknown.size === 3);
      for (const peer of peers.slice(3)) await peer.send("over the cap", to);
      await waitFor(() => fx.core.stats().droppedUdpDatagrams >= 3, 5000, "three datagrams dropped");
      assert.equal(fx.core.stats().droppedUdpDatagrams, 3);
      assert.equal(fx.core.stats().udpClients, 3);
      const later = await fx.core.ioIteration(100);
      assert.equal(later.newlyConnectedUnknownClients.size, 0);
    } finally {
      for (const peer of peers) peer.close();
    }
  });

  it(
    "refuses to switch a UDP client to framed mode with UnsupportedError",
    TEST_TIMEOUT,
    () =>
      withClient(({ core, id }) => {
        assert.throws(() => core.switchClientRawConnectionMode(id, false), UnsupportedError);
        assert.equal(core.getClientInfo(id)?.raw, true);
        core.switchClientRawConnectionMode(id, true);
        return Promise.resolve();
      }),
  );

  it(
    "takeFrames gives a UDP client no batch, and sendFrames to it throws UnsupportedError, sending nothing",
    TEST_TIMEOUT,
    async () => {
      await using fx = await udpCore({
        listeners: [{ transport: "udp", hostname: "127.0.0.1", port: 0 }, { transport: "tcp", port: 0 }],
      });
      const core = fx.core;
      const { peer, id } = await admitOne(core, udpTarget(fx));
      const framed = core.addClient({ keyword: "framed" });
      const tcp = await WirePeer.handshake(fx.addrs[1] as { transport: "tcp"; port: number }, "framed");
      try {
        assert.equal(core.takeFrames(id), undefined, "a datagram is a raw message, never a frame");
        tcp.send("one", "two");
        await iterateUntil(core, (e) => e.data.has(framed));
        const batch = core.takeFrames(framed)!;
        assert.equal(batch.count, 2);
        assert.throws(() => core.sendFrames(id, batch), UnsupportedError);
        core.sendFrames(framed, batch); // still unsent: it goes back to where it came from
        await tcp.until(() => tcp.pending >= 2);
        assert.deepEqual(tcp.takeAll().map(text), ["one", "two"]);
        assert.equal(await peer.missingAfter(1, 200), 1, "the UDP peer got nothing");
      } finally {
        tcp.close();
        peer.close();
      }
    },
  );

  it(
    "removeClient forgets the address: its next datagram is a new client",
    TEST_TIMEOUT,
    () =>
      withClient(async ({ core, to, peer, id }) => {
        core.removeClient(id);
        assert.equal(core.getClientInfo(id), undefined);
        await peer.send("back", to);
        const events = await iterateUntil(core, (e) => e.unknown.size > 0 && e.data.size > 0);
        const [next] = [...events.unknown] as [ClientId];
        assert.notEqual(next, id);
        assert.deepEqual(core.getMessagesFromClient(next).map(text), ["back"]);
      }),
  );
});

describe("IoCore over UDP: admission rules", () => {
  it("admits by address: unknownClientsAllow with a cidr refuses other sources", TEST_TIMEOUT, async () => {
    const logger = recordingLogger();
    await using fx = await udpCore({ unknownClientsAllow: [{ cidr: "127.0.0.1/32" }], logger });
    const to = udpTarget(fx);
    const outsider = await UdpPeer.open("127.0.0.2");
    const insider = await UdpPeer.open("127.0.0.1");
    try {
      await outsider.send("let me in", to);
      await waitFor(() => refusedUdp(logger.lines), 5000, "the refusal to be logged");
      assert.ok(
        logger.lines.some((l) => l.includes("Refused unknown client from udp:127.0.0.2:")),
        logger.lines.join("\n"),
      );
      await insider.send("hello", to);
      const events = await iterateUntil(fx.core, (e) => e.unknown.size > 0);
      assert.equal(events.unknown.size, 1);
      const info = fx.core.getClientInfo([...events.unknown][0]!);
      assert.equal((info?.remoteAddr as { hostname: string }).hostname, "127.0.0.1");
    } finally {
      outsider.close();
      insider.close();
    }
  });

  it(
    "admits by transport: a rule for tcp refuses UDP clients, a rule for udp admits them",
    TEST_TIMEOUT,
    async () => {
      for (const [transport, admitted] of [["tcp", false], ["udp", true]] as const) {
        const logger = recordingLogger();
        await using fx = await udpCore({ unknownClientsAllow: [{ transport }], logger });
        const peer = await UdpPeer.open();
        try {
          await peer.send("hi", udpTarget(fx));
          if (admitted) {
            const events = await iterateUntil(fx.core, (e) => e.unknown.size > 0, 5000);
            assert.equal(events.unknown.size, 1, `rule transport: ${transport}`);
          } else {
            // The refusal is logged when the datagram arrives, so waiting for it proves the datagram came.
            await waitFor(() => refusedUdp(logger.lines), 5000, "the refusal to be logged");
            assert.equal((await fx.core.ioIteration(0)).newlyConnectedUnknownClients.size, 0);
            assert.equal(fx.core.stats().clients, 0, `rule transport: ${transport}`);
          }
        } finally {
          peer.close();
        }
      }
    },
  );

  it("drops UDP clients when unknownClients is refuse", TEST_TIMEOUT, async () => {
    const logger = recordingLogger();
    await using fx = await udpCore({ unknownClients: "refuse", logger });
    const peer = await UdpPeer.open();
    try {
      await peer.send("hi", udpTarget(fx));
      await waitFor(() => refusedUdp(logger.lines), 5000, "the refusal to be logged");
      const r = await fx.core.ioIteration(0);
      assert.equal(r.newlyConnectedUnknownClients.size, 0);
      assert.equal(fx.core.stats().clients, 0);
    } finally {
      peer.close();
    }
  });
});

describe("IoCore over UDP: flow", () => {
  it(
    "holds datagrams in order while a messages() reader pauses the client, and delivers them after",
    TEST_TIMEOUT,
    () =>
      withClient(async ({ core, to, peer, id }) => {
        const got: string[] = [];
        // A high-water mark of 1 byte pauses reading while 2 bytes or more wait for the reader.
        const reader = core.messages(id, { highWaterMarkBytes: 1 })[Symbol.asyncIterator]();
        got.push(text((await reader.next()).value!));
        for (let i = 1; i < 50; i++) await peer.send(`${i}`, to);
        await delay(100); // A sleep: the datagrams must arrive while reading is paused; nothing counts them.
        for (let i = 1; i < 50; i++) got.push(text((await reader.next()).value!));
        await reader.return?.();
        assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `${i}`));
        assert.equal(core.stats().droppedUdpDatagrams, 0);
      }, { first: "0" }),
  );

  it(
    "past 1 MiB waiting for a paused client, drops datagrams and counts them, keeping the rest in order",
    TEST_TIMEOUT,
    () =>
      withClient(async ({ core, to, peer, id }) => {
        const reader = core.messages(id, { highWaterMarkBytes: 1 })[Symbol.asyncIterator]();
        assert.equal(text((await reader.next()).value!), "first");
        // Read nothing more for now: 30 datagrams of 50,000 bytes (1.5 MB) arrive while reading is paused.
        for (let i = 0; i < 30; i++) {
          await peer.send(new Uint8Array(50_000).fill(i), to);
          if (i % 4 === 3) await delay(20); // paced, so the kernel's receive buffer never overflows
        }
        await waitFor(() => core.stats().droppedUdpDatagrams > 0, 5000, "a datagram dropped past 1 MiB");
        const dropped = core.stats().droppedUdpDatagrams;
        assert.ok(dropped >= 1, "nothing was dropped past 1 MiB");
        const delivered: number[] = [];
        for (let i = 0; i < 30 - dropped; i++) {
          // Not a wait: a bound on one read, past which the rest counts as dropped.
          const next = await Promise.race([reader.next(), delay(1000).then(() => undefined)]);
          if (next === undefined || next.done) break;
          delivered.push(next.value[0]!);
        }
        await reader.return?.();
        assert.ok(delivered.length >= 20, `only ${delivered.length} of 1 MiB's worth were kept`);
        assert.deepEqual(delivered, [...delivered].sort((a, b) => a - b), "kept datagrams out of order");
        assert.ok(delivered.length + dropped <= 30);
      }, { first: "first" }),
  );

  it(
    "serves UDP clients on an IPv6 loopback listener",
    { ...TEST_TIMEOUT, skip: noIpv6Reason },
    () =>
      withClient(async ({ core, to, peer, id }) => {
        assert.equal(to.hostname, "::1");
        assert.deepEqual(core.getMessagesFromClient(id).map(text), ["over ipv6"]);
        assert.equal((core.getClientInfo(id)?.remoteAddr as { hostname: string }).hostname, "::1");
        core.sendMessageToClient(id, new Uint8Array(65_527));
        assert.throws(() => core.sendMessageToClient(id, new Uint8Array(65_528)), MessageTooLargeError);
        await peer.waitFor(1);
        assert.equal(peer.received[0]!.length, 65_527);
      }, { first: "over ipv6", hostname: "::1" }),
  );
});

describe("IoCore over UDP: limits", () => {
  it(
    "throws MessageTooLargeError past maxMessageBytes, and sends nothing of the call",
    TEST_TIMEOUT,
    () =>
      withClient(async ({ core, peer, id }) => {
        assert.throws(() => core.sendMessageToClient(id, new Uint8Array(30_001)), MessageTooLargeError);
        assert.throws(
          () => core.sendMessagesToClient(id, ["small", new Uint8Array(30_001)]),
          MessageTooLargeError,
        );
        core.sendMessageToClient(id, new Uint8Array(30_000));
        core.sendMessageToClient(id, "last");
        await peer.waitFor(2);
        assert.deepEqual(peer.received.map((m) => m.length), [30_000, 4]);
      }, { options: { limits: { maxMessageBytes: 30_000 } } }),
  );

  it(
    "throws MessageTooLargeError past 65,507 bytes to an IPv4 client, and sends 65,507",
    TEST_TIMEOUT,
    () =>
      withClient(async ({ core, peer, id }) => {
        assert.throws(() => core.sendMessageToClient(id, new Uint8Array(65_508)), MessageTooLargeError);
        core.sendMessageToClient(id, new Uint8Array(65_507));
        await peer.waitFor(1);
        assert.deepEqual(peer.received.map((m) => m.length), [65_507]);
      }),
  );

  it("drops a received datagram over maxMessageBytes and counts it", TEST_TIMEOUT, async () => {
    await using fx = await udpCore({ limits: { maxMessageBytes: 100 } });
    const to = udpTarget(fx);
    const peer = await UdpPeer.open();
    try {
      await peer.send(new Uint8Array(101), to);
      await peer.send(new Uint8Array(100), to);
      const events = await iterateUntil(fx.core, (e) => e.data.size > 0);
      const [id] = [...events.data] as [ClientId];
      assert.deepEqual(fx.core.getMessagesFromClient(id).map((m) => m.length), [100]);
      assert.equal(fx.core.stats().droppedUdpDatagrams, 1);
    } finally {
      peer.close();
    }
  });

  it("serves a TCP and a UDP listener on the same port number on one core", TEST_TIMEOUT, async () => {
    // A free TCP port number; the UDP one of the same number is almost always free too, so retry a few times.
    for (let attempt = 0;; attempt++) {
      const port = await new Promise<number>((resolve) => {
        const server = createServer().listen(0, "127.0.0.1", () => {
          const { port } = server.address() as { port: number };
          server.close(() => resolve(port));
        });
      });
      let fx;
      try {
        fx = await startCore({
          listeners: [{ transport: "tcp", port }, { transport: "udp", port }],
          unknownClients: "allow",
          rawConnection: () => true,
        });
      } catch (err) {
        if (attempt < 5) continue;
        throw err;
      }
      await using _fx = fx;
      assert.equal((fx.addrs[0] as { port: number }).port, port);
      assert.equal((fx.addrs[1] as { port: number }).port, port);
      const tcp = await WirePeer.connect({ transport: "tcp", hostname: "127.0.0.1", port });
      const udp = await UdpPeer.open();
      try {
        tcp.write(new TextEncoder().encode("over tcp"));
        await udp.send("over udp", { hostname: "127.0.0.1", port });
        const events = await iterateUntil(fx.core, (e) => e.unknown.size === 2 && e.data.size === 2);
        const byTransport = new Map<string, string>();
        for (const id of events.unknown) {
          const info = fx.core.getClientInfo(id)!;
          byTransport.set(
            info.listener!.addr.transport,
            fx.core.getMessagesFromClient(id).map(text).join(""),
          );
        }
        assert.deepEqual(Object.fromEntries(byTransport), { tcp: "over tcp", udp: "over udp" });
      } finally {
        tcp.close();
        udp.close();
      }
      return;
    }
  });
});

describe("IoCore over UDP: outgoing datagram clients", () => {
  it(
    "addClient with connect udp sends datagrams to the address and hears only its replies",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({});
      const server = await UdpPeer.open();
      const stranger = await UdpPeer.open();
      try {
        const id = fx.core.addClient({
          keyword: "udp upstream",
          connect: { transport: "udp", port: server.port },
        });
        // Sent before the socket is bound: it waits in the client's send buffer.
        fx.core.sendMessageToClient(id, "early");
        await iterateUntil(fx.core, (e) => e.expected.has(id));
        const info = fx.core.getClientInfo(id)!;
        assert.equal(info.direction, "outgoing");
        assert.equal(info.raw, true);
        assert.equal(info.state, "connected");
        fx.core.sendMessagesToClient(id, ["one", new Uint8Array(0)]);
        await server.waitFor(3);
        assert.deepEqual(server.received.map(text), ["early", "one", ""]);
        const source = { hostname: "127.0.0.1", port: server.senders[0]! };
        await stranger.send("not from the server", source);
        await server.send("reply", source);
        await iterateUntil(fx.core, (e) => e.data.has(id));
        assert.deepEqual(fx.core.getMessagesFromClient(id).map(text), ["reply"]);
        assert.equal(fx.core.stats().droppedUdpDatagrams, 1);
        assert.throws(() => fx.core.sendMessageToClient(id, new Uint8Array(65_508)), MessageTooLargeError);
        fx.core.removeClient(id);
      } finally {
        server.close();
        stranger.close();
      }
    },
  );

  it("refuses a secret for a UDP client: there is no handshake to prove it in", TEST_TIMEOUT, async () => {
    await using fx = await startCore({});
    assert.throws(
      () => fx.core.addClient({ keyword: "k", secret: "s", connect: { transport: "udp", port: 9 } }),
      TypeError,
    );
    assert.equal(fx.core.stats().clients, 0);
  });
});
