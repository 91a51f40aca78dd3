import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ConnectionClosedError,
  encodeFrames,
  HandshakeRejectedError,
  InlineProcessor,
  MessageTooLargeError,
  nativeTransport,
  ProtocolError,
} from "../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../processors/http_responder.ts";
import { iterateUntil, recordingLogger, startCore } from "./_core_fixture.ts";
import { bytesEqual, concatBytes, delay, listenForOne, Resources, TEST_TIMEOUT } from "./_helpers.ts";
import { macrotask, waitFor } from "./_settle.ts";
import { frameBytes, frameHeader, targetOf, text, type WirePeer } from "./_wire_peer.ts";

const encoder = new TextEncoder();

describe("IoCore named clients", () => {
  it(
    "binds a keyword to one client id through TCP and later through the UNIX listener",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0 }, { transport: "unix", path: "core.sock" }],
      });
      const core = fx.core;
      assert.equal(fx.addrs[1]?.transport, "unix");
      const id = core.addClient({ keyword: "manager client" });
      assert.equal(core.getClientIdByKeyword("manager client"), id);
      assert.equal(core.getClientIdByKeyword(encoder.encode("manager client")), id);

      const viaTcp = await fx.handshake("manager client", 0);
      let events = await iterateUntil(core, (e) => e.expected.has(id));
      assert.equal(core.getClientInfo(id)?.listener?.id, 0);
      assert.equal(core.getClientInfo(id)?.state, "connected");
      viaTcp.send("over tcp");
      events = await iterateUntil(core, (e) => e.data.has(id));
      assert.deepEqual(core.getMessagesFromClient(id).map(text), ["over tcp"]);
      viaTcp.close();
      events = await iterateUntil(core, (e) => e.disconnected.has(id));
      assert.equal(core.getClientInfo(id)?.state, "disconnected");

      const viaUnix = await fx.handshake("manager client", 1);
      events = await iterateUntil(core, (e) => e.expected.has(id));
      assert.equal(core.getClientInfo(id)?.listener?.id, 1);
      assert.equal(core.getClientInfo(id)?.listener?.addr.transport, "unix");
      core.sendMessageToClient(id, "over unix");
      assert.equal(text(await viaUnix.next()), "over unix");
      assert.equal(events.unknown.size, 0);
      viaUnix.close();
    },
  );

  it("holds an unexpected keyword and adopts it when addClient registers it", TEST_TIMEOUT, async () => {
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const core = fx.core;
    const peer = await fx.handshake("late worker");
    peer.send("sent while held");
    for (let i = 0; i < 50 && core.stats().heldConnections === 0; i++) await core.ioIteration(20);
    assert.equal(core.stats().heldConnections, 1);
    const id = core.addClient({ keyword: "late worker" });
    const events = await iterateUntil(core, (e) => e.expected.has(id) && e.data.has(id));
    assert.ok(events.expected.has(id));
    assert.deepEqual(core.getMessagesFromClient(id).map(text), ["sent while held"]);
    assert.equal(core.stats().heldConnections, 0);
    core.sendMessageToClient(id, "welcome");
    assert.equal(text(await peer.next()), "welcome");
    peer.close();
  });

  it("refuses an unexpected keyword when acceptUnexpectedKeywords is false", TEST_TIMEOUT, async () => {
    const logger = recordingLogger();
    await using fx = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      acceptUnexpectedKeywords: false,
      logger,
    });
    const core = fx.core;
    const peer = await fx.connect("stranger");
    assert.equal(text(await peer.next()), "unexpected keyword");
    await peer.waitClosed();
    assert.equal(core.stats().heldConnections, 0);
    assert.ok(logger.lines.some((line) => line.includes("unexpected keyword") && line.includes("127.0.0.1")));
  });

  it("refuses a duplicate keyword and keeps the first connection working", TEST_TIMEOUT, async () => {
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const core = fx.core;
    const { id, peer: first } = await fx.connectNamed("only once");
    const second = await fx.connect("only once");
    assert.equal(text(await second.next()), "duplicate keyword");
    await second.waitClosed();
    core.sendMessageToClient(id, "still here");
    assert.equal(text(await first.next()), "still here");
    first.close();
  });

  it("replaces the old connection when duplicateKeyword is replace", TEST_TIMEOUT, async () => {
    await using fx = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      duplicateKeyword: "replace",
    });
    const core = fx.core;
    const { id, peer: first } = await fx.connectNamed("replaceable");
    const second = await fx.handshake("replaceable");
    await first.waitClosed();
    core.sendMessageToClient(id, "to the new one");
    assert.equal(text(await second.next()), "to the new one");
    second.close();
  });

  it("serves 1000 concurrent named clients, each with a round trip", TEST_TIMEOUT, async () => {
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const core = fx.core;
    const count = 1000;
    const ids = new Map<number, number>();
    for (let i = 0; i < count; i++) ids.set(core.addClient({ keyword: `client-${i}` }), i);
    const serving = (async () => {
      let answered = 0;
      const deadline = Date.now() + 50_000;
      while (answered < count && Date.now() < deadline) {
        const r = await core.ioIteration(50);
        for (const id of r.clientsHaveDataToRead) {
          for (const message of core.getMessagesFromClient(id)) {
            core.sendMessageToClient(id, `${text(message)} -> ${ids.get(id)}`);
            answered++;
          }
        }
      }
      return answered;
    })();
    const peers: WirePeer[] = [];
    const batch = 100;
    for (let start = 0; start < count; start += batch) {
      peers.push(
        ...await Promise.all(
          Array.from(
            { length: Math.min(batch, count - start) },
            (_, k) => fx.connect(`client-${start + k}`),
          ),
        ),
      );
    }
    peers.forEach((peer, i) => peer.send(`ping ${i}`));
    const answers = await Promise.all(
      peers.map(async (peer) => [text(await peer.next()), text(await peer.next())]),
    );
    assert.equal(await serving, count);
    answers.forEach(([ok, answer], i) => {
      assert.equal(ok, "OK");
      assert.equal(answer, `ping ${i} -> ${i}`);
    });
    for (const peer of peers) peer.close();
  });
});

describe("IoCore as a client of another IoCore", () => {
  for (const kind of ["tcp", "unix"] as const) {
    it(`connects out over ${kind} and exchanges messages with both API styles`, TEST_TIMEOUT, async () => {
      class Doubler extends InlineProcessor {
        override onDataReceived(data: Uint8Array): void {
          this.outputMessages.push(text(data) + text(data));
        }
      }
      await using serverFx = await startCore({
        listeners: [kind === "tcp" ? { transport: "tcp", port: 0 } : { transport: "unix", path: "s.sock" }],
      });
      const server = serverFx.core;
      const onServer = server.addClient({ keyword: "worker-7", processor: Doubler });

      await using clientFx = await startCore();
      const client = clientFx.core;
      assert.equal(serverFx.addrs[0]?.transport, kind);
      const upstream = client.addClient({ keyword: "worker-7", connect: serverFx.target() });
      assert.equal(client.getClientInfo(upstream)?.state, "connecting");
      await iterateUntil(client, (e) => e.expected.has(upstream));
      assert.equal(client.getClientInfo(upstream)?.direction, "outgoing");
      client.sendMessagesToClient(upstream, ["ab", "cd"]);
      const got: string[] = [];
      await iterateUntil(client, () => got.length === 2, 10_000, (r) => {
        for (const id of r.clientsHaveDataToRead) got.push(...client.getMessagesFromClient(id).map(text));
      });
      assert.deepEqual(got, ["abab", "cdcd"]);
      assert.equal(server.getClientInfo(onServer)?.state, "connected");

      // And the other way round: the client side uses a processor, the server plain code. A running
      // processor is not replaced (setInlineProcessorForClient applies to later connections then), so
      // this goes over a second pair of clients whose connection has none yet.
      const onServer2 = server.addClient({ keyword: "worker-8" });
      const upstream2 = client.addClient({ keyword: "worker-8", connect: serverFx.target() });
      await iterateUntil(client, (e) => e.expected.has(upstream2));
      client.setInlineProcessorForClient(upstream2, Doubler);
      await iterateUntil(server, () => server.getClientInfo(onServer2)?.state === "connected");
      server.sendMessagesToClient(onServer2, ["ef", "gh"]);
      const back: string[] = [];
      await iterateUntil(server, () => back.length === 2, 10_000, (r) => {
        for (const id of r.clientsHaveDataToRead) back.push(...server.getMessagesFromClient(id).map(text));
      });
      assert.deepEqual(back, ["efef", "ghgh"]);
      assert.deepEqual(client.getMessagesFromClient(upstream2), [], "the client's processor took its input");
      client.closeClientConnection(upstream);
      await iterateUntil(client, (e) => e.disconnected.has(upstream));
      await iterateUntil(server, (e) => e.disconnected.has(onServer));
    });
  }

  it("reports a refused handshake as a disconnection with a typed error", TEST_TIMEOUT, async () => {
    await using server = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      acceptUnexpectedKeywords: false,
    });
    await using clientFx = await startCore();
    const client = clientFx.core;
    const id = client.addClient({ keyword: "nobody expects me", connect: server.target() });
    await iterateUntil(client, (e) => e.disconnected.has(id));
    const error = client.getClientInfo(id)?.lastError;
    assert.ok(error instanceof HandshakeRejectedError, `got ${error}`);
    assert.equal(error.reason, "unexpected keyword");
    assert.throws(() => client.sendMessageToClient(id, "x"), ConnectionClosedError);
  });

  it(
    "reports a refused connection as a disconnection with a typed error, and reconnects later",
    TEST_TIMEOUT,
    async () => {
      const probe = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
      const port = probe.port();
      await probe.close();
      await using clientFx = await startCore();
      const client = clientFx.core;
      const id = client.addClient({ keyword: "k", connect: { transport: "tcp", port }, reconnect: false });
      await iterateUntil(client, (e) => e.disconnected.has(id));
      assert.equal(client.getClientInfo(id)?.lastError?.name, "ConnectionRefusedError");
      assert.equal(client.getClientInfo(id)?.state, "disconnected");

      await using serverFx = await startCore({ listeners: [{ transport: "tcp", port }] });
      const server = serverFx.core;
      const onServer = server.addClient({ keyword: "k" });
      client.reconnectClient(id);
      await iterateUntil(client, (e) => e.expected.has(id));
      client.sendMessageToClient(id, "back");
      await iterateUntil(server, (e) => e.data.has(onServer));
      assert.equal(server.getClientInfo(onServer)?.unreadBytes, 4);
      assert.deepEqual(server.getMessagesFromClient(onServer).map(text), ["back"]);
      assert.throws(() => server.reconnectClient(onServer), TypeError);
    },
  );
});

describe("IoCore unknown clients", () => {
  it(
    "answers an HTTP/1.1 keep-alive request stream on the core that serves named clients",
    TEST_TIMEOUT,
    async () => {
      class Hello extends HttpResponder {
        override handle(request: HttpRequest): HttpResponse {
          return { body: `hello ${request.method} ${request.target}` };
        }
      }
      await using fx = await startCore({
        listeners: [
          { transport: "tcp", port: 0, name: "http" },
          { transport: "unix", path: "named.sock", name: "named" },
        ],
        rawConnection: (info) => info.listener.name === "http",
        unknownClients: "allow",
        unknownClientProcessor: Hello,
      });
      const core = fx.core;
      const named = core.addClient({ keyword: "manager client" });
      const manager = await fx.handshake("manager client", 1);

      const browser = await fx.connect(undefined, 0);
      browser.raw = true;
      const requests = ["/a", "/b", "/c"].map((path) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`).join("");
      // Split mid-request to check the parser's buffering.
      browser.write(encoder.encode(requests.slice(0, 30)));
      await macrotask();
      browser.write(encoder.encode(requests.slice(30)));
      let body = "";
      const received = () => (body += text(browser.takeRaw()));
      await browser.until(() => (received().match(/hello/g) ?? []).length === 3, 10_000, "three responses");
      assert.match(body, /^HTTP\/1\.1 200 OK\r\ncontent-length: 12\r\n\r\nhello GET \/a/);
      assert.ok(body.indexOf("hello GET /a") < body.indexOf("hello GET /b"));
      assert.ok(body.indexOf("hello GET /b") < body.indexOf("hello GET /c"));
      assert.equal(browser.closed, false, "keep-alive keeps the connection open");

      manager.send("meanwhile");
      const events = await iterateUntil(core, (e) => e.data.has(named) && e.unknown.size === 1);
      assert.deepEqual(core.getMessagesFromClient(named).map(text), ["meanwhile"]);
      const [unknownId] = events.unknown;
      assert.equal(core.getClientInfo(unknownId!)?.kind, "unknown");
      assert.match(core.getClientInfo(unknownId!)?.keywordText ?? "", /^UNKNOWN CLIENT: /);
      browser.close();
      manager.close();
    },
  );

  it("keeps no events for unknown clients that came and went while nobody polled", TEST_TIMEOUT, async () => {
    class Echo extends InlineProcessor {
      override onDataReceived(data: Uint8Array): void {
        this.outputMessages.push(data);
      }
    }
    await using fx = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      rawConnection: () => true,
      unknownClients: "allow",
      unknownClientProcessor: Echo,
    });
    const core = fx.core;
    for (let i = 0; i < 20; i++) {
      const peer = await fx.connect();
      peer.raw = true;
      peer.write(encoder.encode(`hello ${i}`));
      await peer.until(() => peer.rawLength >= `hello ${i}`.length, 5000, "echo");
      assert.equal(text(peer.takeRaw()), `hello ${i}`);
      peer.close();
    }
    await waitFor(() => core.stats().clients === 0, 5000, "every unknown client to go");
    assert.equal(core.stats().clients, 0);
    const r = await core.ioIteration(0);
    assert.equal(r.newlyConnectedUnknownClients.size, 0);
    assert.equal(r.clientsWithDisconnectedConnection.size, 0);
    assert.equal(r.clientsWithEmptyOutputFifo.size, 0);
  });

  it("closes raw connections when unknown clients are refused (the default)", TEST_TIMEOUT, async () => {
    await using fx = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      rawConnection: () => true,
    });
    const core = fx.core;
    const peer = await fx.connect();
    await peer.waitClosed();
    assert.equal(core.stats().clients, 0);
  });
});

describe("IoCore delivery, limits and failures", () => {
  it("delivers 100k messages in order before closing with markClientConnectionAsReadyToBeClosed", {
    timeout: 60_000,
  }, async () => {
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const core = fx.core;
    const { id, peer } = await fx.connectNamed("sink");
    const count = 100_000;
    const messages: Uint8Array[] = [];
    for (let i = 0; i < count; i++) messages.push(encoder.encode(`message ${i}`));
    core.sendMessagesToClient(id, messages);
    core.markClientConnectionAsReadyToBeClosed(id);
    assert.equal(core.getClientInfo(id)?.state, "closing");
    await peer.until(() => peer.ended || peer.closed, 30_000, "end of stream");
    const received = peer.takeAll();
    assert.equal(received.length, count);
    for (let i = 0; i < count; i++) {
      if (text(received[i]) !== `message ${i}`) assert.fail(`message ${i} is ${text(received[i])}`);
    }
    peer.close();
    await iterateUntil(core, (e) => e.disconnected.has(id));
  });

  it("forwards received messages byte-exact and in order, mixed with its own, cut anywhere", {
    timeout: 60_000,
  }, async () => {
    // Runs of received messages go back uncopied from the read chunk; frames that crossed a chunk
    // boundary, messages the application makes and strings are encoded. The order must hold across all.
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const core = fx.core;
    const from = core.addClient({ keyword: "from" });
    const to = core.addClient({ keyword: "to" });
    const sender = await fx.handshake("from");
    const receiver = await fx.handshake("to");
    await iterateUntil(core, (e) => e.expected.has(from) && e.expected.has(to));
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 4294967296;
    const count = 20_000;
    const sent: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const message = new Uint8Array(
        rand() < 0.95
          ? 4 + Math.floor(rand() * 60)
          : (rand() < 0.9 ? 5000 + Math.floor(rand() * 20000) : 65536 + Math.floor(rand() * 150000)),
      );
      new DataView(message.buffer).setUint32(0, i, true);
      message.fill(i & 0xff, 4);
      sent.push(message);
    }
    const wire = encodeFrames(sent);
    for (let at = 0; at < wire.length;) {
      const size = 1 + Math.floor(rand() * 9000);
      sender.write(wire.slice(at, at + size));
      at += size;
    }
    const expected: Uint8Array[] = [];
    let forwarded = 0;
    let own = 0;
    await iterateUntil(core, () => forwarded === count, 30_000, (r) => {
      if (!r.clientsHaveDataToRead.has(from)) return;
      const messages = core.getMessagesFromClient(from);
      const marker = `own ${own++}`;
      const half = messages.length >> 1;
      core.sendMessagesToClient(to, messages.slice(0, half));
      core.sendMessageToClient(to, marker);
      core.sendMessagesToClient(to, [...messages.slice(half), encoder.encode(marker)]);
      expected.push(...messages.slice(0, half).map((m) => m.slice()), encoder.encode(marker));
      expected.push(...messages.slice(half).map((m) => m.slice()), encoder.encode(marker));
      forwarded += messages.length;
    });
    await receiver.until(() => receiver.pending >= expected.length, 30_000, "forwarded messages");
    const received = receiver.takeAll();
    assert.equal(received.length, expected.length);
    let next = 0;
    for (let i = 0; i < expected.length; i++) {
      const got = received[i]!;
      if (!bytesEqual(got, expected[i]!)) assert.fail(`message ${i} differs`);
      if (!text(got).startsWith("own ") && !bytesEqual(got, sent[next++]!)) {
        assert.fail(`message ${i} reordered`);
      }
    }
    assert.equal(next, count);
  });

  it("receives large messages between small ones byte-exact, in order", TEST_TIMEOUT, async () => {
    // Large frames are assembled in their own buffer; the transport may then reuse its read memory.
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const core = fx.core;
    const { id, peer } = await fx.connectNamed("bulk");
    const pattern = (length: number, seed: number) => {
      const out = new Uint8Array(length);
      for (let i = 0; i < length; i++) out[i] = (i * 31 + seed * 7 + (i >>> 11)) & 0xff;
      return out;
    };
    const sent = [
      pattern(10, 1),
      pattern(6 * 1024 * 1024 + 3, 2),
      pattern(100, 3),
      pattern(3 * 1024 * 1024, 4),
    ];
    for (let i = 0; i < 50; i++) sent.push(pattern(i * 13, 10 + i));
    sent.push(pattern(2 * 1024 * 1024 + 1, 99));
    for (const message of sent) peer.write(encodeFrames([message]));
    const got: Uint8Array[] = [];
    await iterateUntil(core, () => got.length === sent.length, 30_000, () => {
      got.push(...core.getMessagesFromClient(id));
    });
    for (let i = 0; i < sent.length; i++) {
      if (!bytesEqual(got[i]!, sent[i]!)) assert.fail(`message ${i} (${sent[i]!.length} bytes) differs`);
    }
  });

  it(
    "keeps unread input within inputBytes plus one read chunk and loses nothing",
    TEST_TIMEOUT,
    async () => {
      const inputBytes = 256 * 1024;
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0 }],
        limits: { inputBytes },
      });
      const core = fx.core;
      const { id, peer } = await fx.connectNamed("flood");
      // A second client, connected before the flood (over the cap the core stops accepting).
      const { id: control, peer: controlPeer } = await fx.connectNamed("control");
      const payload = new Uint8Array(1000);
      const total = 4000; // ~4 MB, 16x the cap
      for (let i = 0; i < total; i++) {
        new DataView(payload.buffer).setUint32(0, i, true);
        peer.send(payload);
      }
      let maxSeen = 0;
      for (let i = 0; i < 40; i++) {
        await core.ioIteration(10); // the application does not read
        maxSeen = Math.max(maxSeen, core.stats().inputBytes);
      }
      assert.ok(core.stats().readingPaused, "reading is paused over the cap");
      // Meanwhile the second client, whose messages the application does read, keeps its round trips.
      for (let round = 0; round < 5; round++) {
        controlPeer.send(`ping ${round}`);
        await iterateUntil(core, () => core.getClientInfo(control)!.unreadMessages > 0, 5000);
        core.sendMessagesToClient(control, core.getMessagesFromClient(control));
        assert.equal(text(await controlPeer.next(5000)), `ping ${round}`);
      }
      assert.ok(core.stats().readingPaused, "the flood stays paused");
      controlPeer.close();
      // Over the input cap the core stops accepting: a newcomer waits for its OK until the app reads.
      core.addClient({ keyword: "latecomer" });
      const latecomer = await fx.connect("latecomer");
      await delay(100); // A sleep: it shows that no OK comes while over the cap.
      assert.equal(latecomer.pending, 0);
      const chunkAllowance = 512 * 1024;
      assert.ok(maxSeen <= inputBytes + chunkAllowance, `unread input ${maxSeen} exceeds the cap`);
      let next = 0;
      const deadline = Date.now() + 40_000;
      while (next < total && Date.now() < deadline) {
        await core.ioIteration(20);
        for (const message of core.getMessagesFromClient(id)) {
          assert.equal(new DataView(message.buffer, message.byteOffset).getUint32(0, true), next++);
          maxSeen = Math.max(maxSeen, core.stats().inputBytes);
        }
      }
      assert.equal(next, total);
      assert.ok(maxSeen <= inputBytes + chunkAllowance);
      assert.equal(core.stats().readingPaused, false);
      assert.equal(text(await latecomer.next()), "OK");
      latecomer.close();
      peer.close();
    },
  );

  it("closes only the connection that declares an oversized frame", TEST_TIMEOUT, async () => {
    await using fx = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      limits: { maxMessageBytes: 1024 },
    });
    const core = fx.core;
    const bad = core.addClient({ keyword: "bad" });
    const good = core.addClient({ keyword: "good" });
    const badPeer = await fx.handshake("bad");
    const goodPeer = await fx.handshake("good");
    await iterateUntil(core, (e) => e.expected.has(bad) && e.expected.has(good));
    badPeer.write(frameHeader(2n ** 64n - 1n));
    goodPeer.send("fine");
    await iterateUntil(core, (e) => e.disconnected.has(bad) && e.data.has(good));
    assert.ok(core.getClientInfo(bad)?.lastError instanceof MessageTooLargeError);
    assert.deepEqual(core.getMessagesFromClient(good).map(text), ["fine"]);
    core.sendMessageToClient(good, "still served");
    assert.equal(text(await goodPeer.next()), "still served");
    await badPeer.waitClosed();
    goodPeer.close();
  });

  it("closes only the connection whose processor throws", TEST_TIMEOUT, async () => {
    const logger = recordingLogger();
    class Fragile extends InlineProcessor {
      override onDataReceived(data: Uint8Array): void {
        if (text(data) === "boom") throw new Error("processor exploded");
        this.outputMessages.push(data);
      }
    }
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }], logger });
    const core = fx.core;
    const a = core.addClient({ keyword: "a", processor: Fragile });
    const b = core.addClient({ keyword: "b", processor: Fragile });
    const peerA = await fx.handshake("a");
    const peerB = await fx.handshake("b");
    peerA.send("boom");
    await peerA.waitClosed();
    peerB.send("echo");
    assert.equal(text(await peerB.next()), "echo");
    await iterateUntil(core, (e) => e.disconnected.has(a));
    assert.equal(core.getClientInfo(a)?.lastError?.message, "processor exploded");
    assert.equal(core.getClientInfo(b)?.state, "connected");
    assert.ok(logger.lines.some((line) => line.startsWith("error:") && line.includes("onDataReceived")));
    peerB.close();
  });

  it("switches a connection between framed and raw mid-stream", TEST_TIMEOUT, async () => {
    const seen: Array<[string, boolean]> = [];
    class Switcher extends InlineProcessor {
      override onDataReceived(data: Uint8Array): void {
        seen.push([text(data), this.isInRawMode]);
        if (text(data) === "go raw") return this.setIsInRawMode(true);
        if (text(data) === "go framed") this.setIsInRawMode(false);
        // Output goes out in the mode in effect when the callback returns.
        this.outputMessages.push(this.isInRawMode ? "raw ack" : "framed ack");
      }
    }
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const core = fx.core;
    const id = core.addClient({ keyword: "switcher", processor: Switcher });
    const peer = await fx.handshake("switcher");
    peer.raw = true;
    // One write: a frame that switches to raw, then raw bytes right behind it in the same chunk.
    peer.write(concatBytes([frameBytes("go raw"), encoder.encode("raw bytes")]));
    await peer.until(() => peer.rawLength >= "raw ack".length, 5000, "raw answer");
    assert.deepEqual(seen, [["go raw", false], ["raw bytes", true]]);
    assert.equal(text(peer.takeRaw()), "raw ack");
    assert.equal(core.getClientInfo(id)?.raw, true);

    peer.write(encoder.encode("go framed"));
    await peer.until(() => peer.rawLength >= 18, 5000, "framed answer");
    const answer = peer.takeRaw();
    assert.equal(new DataView(answer.buffer).getUint32(0, true), 10);
    assert.equal(text(answer.subarray(8)), "framed ack");
    assert.equal(core.getClientInfo(id)?.raw, false);
    peer.raw = false;
    peer.send("framed again");
    assert.equal(text(await peer.next()), "framed ack");
    assert.deepEqual(seen.at(-1), ["framed again", false]);

    // The plain-code API switches the same way, and its sends follow the mode.
    core.switchClientRawConnectionMode(id, true);
    assert.equal(core.getClientInfo(id)?.raw, true);
    peer.raw = true;
    core.sendMessageToClient(id, "plain raw");
    await peer.until(() => peer.rawLength >= "plain raw".length, 5000, "raw bytes from plain code");
    assert.equal(text(peer.takeRaw()), "plain raw", "no frame header in raw mode");
    core.switchClientRawConnectionMode(id, false);
    assert.equal(core.getClientInfo(id)?.raw, false);
    core.sendMessageToClient(id, "plain framed");
    await peer.until(() => peer.rawLength >= 8 + "plain framed".length, 5000, "a frame from plain code");
    assert.deepEqual(peer.takeRaw(), frameBytes("plain framed"));
    peer.close();
  });

  it("writes a batch mixing small and large messages byte-exact, framed and raw", TEST_TIMEOUT, async () => {
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const core = fx.core;
    const { id, peer } = await fx.connectNamed("mixed");
    const sizes = [3, 0, 70_000, 10, 300_000, 1, 65_536, 5];
    const messages = sizes.map((size, k) => new Uint8Array(size).map((_, i) => (i * 7 + k) & 0xff));
    core.sendMessagesToClient(id, messages);
    await peer.until(() => peer.pending === sizes.length, 10_000, "all messages");
    peer.takeAll().forEach((message, k) => assert.deepEqual(message, messages[k], `message ${k}`));
    // The same batch raw: the peer must see the concatenation.
    peer.raw = true;
    core.switchClientRawConnectionMode(id, true);
    core.sendMessagesToClient(id, messages);
    const total = sizes.reduce((a, b) => a + b, 0);
    await peer.until(() => peer.rawLength >= total, 10_000, "raw bytes");
    const received = peer.takeRaw();
    assert.equal(received.length, total);
    let at = 0;
    for (const message of messages) {
      assert.deepEqual(received.subarray(at, at + message.length), message);
      at += message.length;
    }
    peer.close();
  });

  it(
    "closes a connection whose keyword frame declares more than maxKeywordBytes, logging the ProtocolError",
    TEST_TIMEOUT,
    async () => {
      const logger = recordingLogger();
      await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }], logger });
      const peer = await fx.connect("x".repeat(2000));
      await peer.waitClosed();
      assert.equal(peer.receivedBytes, 0, "no answer, not even a reason");
      assert.equal(fx.core.stats().connections, 0);
      assert.equal(fx.core.stats().heldConnections, 0);
      assert.ok(
        logger.lines.some((line) =>
          line.startsWith("warn: ") && line.includes("Cannot complete handshake with tcp:127.0.0.1:") &&
          line.includes("first frame declares 2000 bytes, more than the 1024 allowed")
        ),
        logger.lines.join("\n"),
      );
    },
  );

  it(
    "fails an outgoing client with a ProtocolError when the server answers with a frame over maxKeywordBytes",
    TEST_TIMEOUT,
    async () => {
      await using res = new Resources();
      // The server answers the keyword with a header declaring 2000 bytes, over maxKeywordBytes (1024).
      const { listener: server } = await listenForOne(
        nativeTransport(),
        { transport: "tcp", hostname: "127.0.0.1", port: 0 },
        res,
        ({ conn }) => ({ onData: () => void conn.write(frameHeader(2000)), onEnd: () => conn.close() }),
      );
      await using client = await startCore();
      const id = client.core.addClient({ keyword: "k", connect: targetOf(server.addr), reconnect: false });
      await iterateUntil(client.core, (e) => e.disconnected.has(id));
      const error = client.core.getClientInfo(id)?.lastError;
      assert.ok(error instanceof ProtocolError, `got ${error}`);
      assert.ok(error.cause instanceof MessageTooLargeError, `cause ${error.cause}`);
      assert.match(error.message, /first frame declares 2000 bytes, more than the 1024 allowed/);
      assert.equal(client.core.getClientInfo(id)?.state, "disconnected");
    },
  );
});
