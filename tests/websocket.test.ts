/**
 * WebSocket on a `websocket` listener, over real loopback sockets: the upgrade, the keyword handshake
 * over messages, every close code, pings, big and pipelined messages, the HTTP pass-through, with a
 * frame-level client written here, `ws` (npm) as an independent client, and the runtime's global
 * `WebSocket` where there is one.
 */
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { describe, it } from "node:test";
import WsClient from "ws";
import { type ClientId, IoCore, type IoCoreOptions, UnsupportedError } from "../mod.ts";
import { iterateUntil, startCore } from "./_core_fixture.ts";
import { MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { NetPeer } from "./_net_client.ts";
import { waitFor } from "./_settle.ts";
import { Rng } from "./_stream_check.ts";
import { clientFrame, closePayload, concatBytes, namedWsPeer, WsPeer } from "./_websocket_peer.ts";

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

function wsCore(
  websocket: { path: string; allowedOrigins?: string[]; pingIntervalMs?: number } = { path: "/ws" },
  more: IoCoreOptions = {},
) {
  return startCore({ listeners: [{ transport: "tcp", port: 0, websocket }], ...more });
}

/** Echoes every message of client `id` until the core closes. */
async function echo(core: IoCore, id: ClientId): Promise<void> {
  try {
    for await (const message of core.messages(id)) core.sendMessageToClient(id, message);
  } catch {
    // the core closed
  }
}

/** A named client over the frame-level client: keyword sent, `OK` received. */
const named = namedWsPeer;

describe("websocket listener", () => {
  it(
    "upgrades with the right Sec-WebSocket-Accept; the keyword handshake and messages run over frames",
    TEST_TIMEOUT,
    async () => {
      await using fx = await wsCore();
      const id = fx.core.addClient({ keyword: "tab" });
      const peer = await named(fx.port(), "tab");
      assert.match(peer.head, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      assert.ok(!/extensions/i.test(peer.head), "no extension (compression) is accepted");
      assert.equal(fx.core.getClientInfo(id)!.websocket, true);
      // Text and binary in, fragmented with a ping between; binary out.
      peer.send(1, "hello");
      peer.send(2, "wor", { fin: false });
      peer.send(9, "ping!");
      peer.send(0, "ld");
      await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 2, 5000, "two messages");
      assert.deepEqual(fx.core.getMessagesFromClient(id).map(dec), ["hello", "world"]);
      fx.core.sendMessageToClient(id, "to the browser");
      const frames = await peer.until((f) => f.length >= 3);
      assert.deepEqual(frames.slice(1).map((f) => [f.opcode, dec(f.payload)]), [[10, "ping!"], [
        2,
        "to the browser",
      ]]);
    },
  );

  it("echoes 10,000 pipelined messages in order, and an 8 MiB message", TEST_TIMEOUT, async () => {
    await using fx = await wsCore(undefined, { limits: { maxMessageBytes: 9 * MiB } });
    const id = fx.core.addClient({ keyword: "bulk" });
    const peer = await named(fx.port(), "bulk");
    void echo(fx.core, id);
    const all = Array.from({ length: 10_000 }, (_, i) => clientFrame(2, `m${i}`));
    const joined = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const f of all) {
      joined.set(f, at);
      at += f.length;
    }
    peer.net.write(joined);
    const big = new Uint8Array(8 * MiB);
    const rng = new Rng(8);
    for (let i = 0; i < big.length; i += 997) big[i] = rng.int(256);
    peer.send(2, big);
    const frames = await peer.until((f) => f.length >= 10_002, 30_000);
    const data = frames.slice(1);
    assert.equal(data.length, 10_001);
    for (let i = 0; i < 10_000; i++) assert.equal(dec(data[i]!.payload), `m${i}`);
    assert.deepEqual(data[10_000]!.payload, big);
  });

  const closeCases: [string, number, (peer: WsPeer) => void, IoCoreOptions?][] = [
    ["an unmasked frame", 1002, (p) => p.send(2, "x", { masked: false })],
    ["reserved bits (no extension was negotiated)", 1002, (p) => p.send(2, "x", { rsv: 4 })],
    ["an unknown opcode", 1002, (p) => p.send(5, "x")],
    ["a fragmented ping", 1002, (p) => p.send(9, "x", { fin: false })],
    ["a ping over 125 bytes", 1002, (p) => p.send(9, new Uint8Array(126))],
    ["text that is not UTF-8", 1007, (p) => p.send(1, new Uint8Array([0xc3, 0x28]))],
    ["a message over maxMessageBytes, across fragments", 1009, (p) => {
      p.send(2, new Uint8Array(600), { fin: false });
      p.send(0, new Uint8Array(600));
    }, { limits: { maxMessageBytes: 1000 } }],
  ];
  for (const [name, code, act, options] of closeCases) {
    it(`closes with ${code} on ${name}, and only that connection`, TEST_TIMEOUT, async () => {
      await using fx = await wsCore(undefined, options);
      const id = fx.core.addClient({ keyword: "bad" });
      const other = fx.core.addClient({ keyword: "good" });
      const peer = await named(fx.port(), "bad");
      const good = await named(fx.port(), "good");
      act(peer);
      assert.equal(await peer.closed(), code);
      assert.equal((await peer.net.outcome()).eof, true);
      await waitFor(() => fx.core.getClientInfo(id)!.state === "disconnected", 5000, "bad closed");
      assert.ok(fx.core.getClientInfo(id)!.lastError instanceof Error);
      good.send(2, "still here");
      await waitFor(() => fx.core.getClientInfo(other)!.unreadMessages === 1, 5000, "good message");
    });
  }

  it("echoes the peer's close frame and closes the TCP connection", TEST_TIMEOUT, async () => {
    await using fx = await wsCore();
    const id = fx.core.addClient({ keyword: "bye" });
    const peer = await named(fx.port(), "bye");
    peer.send(8, closePayload(1000, "done"));
    assert.equal(await peer.closed(), 1000);
    assert.equal((await peer.net.outcome()).timedOut, undefined);
    await waitFor(() => fx.core.getClientInfo(id)!.state === "disconnected", 5000, "closed");
  });

  for (
    const [last, code] of [[clientFrame(8, closePayload(1000, "done")), 1000], [
      clientFrame(5, "x"),
      1002,
    ]] as const
  ) {
    it(`delivers the messages that came before a close ${code} in the same chunk`, TEST_TIMEOUT, async () => {
      await using fx = await wsCore();
      const id = fx.core.addClient({ keyword: "last" });
      const peer = await named(fx.port(), "last");
      peer.net.write(concatBytes(clientFrame(2, "a"), clientFrame(1, "b"), clientFrame(2, "c"), last));
      assert.equal(await peer.closed(), code);
      await waitFor(() => fx.core.getClientInfo(id)!.state === "disconnected", 5000, "closed");
      assert.deepEqual(fx.core.getMessagesFromClient(id).map(dec), ["a", "b", "c"]);
    });
  }

  it(
    "pings every pingIntervalMs and closes with 1001 when no pong came by the next ping",
    TEST_TIMEOUT,
    async () => {
      await using fx = await wsCore({ path: "/ws", pingIntervalMs: 100 });
      fx.core.addClient({ keyword: "mute" });
      const peer = await named(fx.port(), "mute");
      assert.equal(await peer.closed(), 1001);
      assert.ok(peer.frames.some((f) => f.opcode === 9), "a ping came first");
    },
  );

  it("refuses a keyword with a reason and close 1008", TEST_TIMEOUT, async () => {
    await using fx = await wsCore(undefined, { acceptUnexpectedKeywords: false });
    const peer = await WsPeer.open(fx.port());
    peer.send(2, "nobody");
    assert.equal(await peer.closed(), 1008);
    assert.equal(peer.texts()[0], "unexpected keyword");
  });

  it(
    "admits a browser (Origin) without allowedOrigins only as a named client with a secret",
    TEST_TIMEOUT,
    async () => {
      const origin = ["Origin: null"];
      {
        // rawConnection says raw, but such a browser is never an unknown client.
        await using fx = await wsCore(undefined, { unknownClients: "allow", rawConnection: () => true });
        const unknown = await WsPeer.open(fx.port(), "/ws", origin);
        assert.equal(await unknown.closed(), 1008);
        assert.equal((await unknown.net.outcome()).eof, true);
        assert.equal(fx.core.stats().clients, 0);
      }
      await using fx = await wsCore(undefined, { acceptUnexpectedKeywords: true });
      fx.core.addClient({ keyword: "plain" });
      const id = fx.core.addClient({ keyword: "vault", secret: "s3cret" });
      for (const keyword of ["plain", "stranger"]) {
        const peer = await WsPeer.open(fx.port(), "/ws", origin);
        peer.send(2, keyword);
        assert.equal(await peer.closed(), 1008);
        assert.match(peer.texts()[0]!, /secret/);
      }
      const peer = await WsPeer.open(fx.port(), "/ws", origin);
      peer.send(2, "vault");
      const [challenge] = await peer.until((f) => f.length >= 1);
      const nonce = challenge!.payload.subarray(challenge!.payload.length - 32);
      peer.send(2, createHmac("sha256", "s3cret").update(nonce).update("vault").digest());
      await peer.until((f) => f.length >= 2);
      assert.equal(dec(peer.frames[1]!.payload), "OK");
      await waitFor(() => fx.core.getClientInfo(id)!.state === "connected", 5000, "vault connected");
    },
  );

  it("answers 404, 403, 426 and 400, and closes", TEST_TIMEOUT, async () => {
    await using fx = await wsCore({ path: "/ws", allowedOrigins: ["http://127.0.0.1:1"] });
    const ask = async (text: string) => {
      const net = await NetPeer.connect(fx.port());
      net.write(text);
      const outcome = await net.outcome();
      return outcome.text.split("\r\n")[0];
    };
    const up = (path: string, extra: string[] = [], version = "13") =>
      [
        `GET ${path} HTTP/1.1`,
        "Host: x",
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        `Sec-WebSocket-Version: ${version}`,
        ...extra,
        "",
        "",
      ].join("\r\n");
    assert.equal(await ask(up("/other")), "HTTP/1.1 404 Not Found");
    assert.equal(await ask(up("/ws", ["Origin: http://evil.example"])), "HTTP/1.1 403 Forbidden");
    assert.equal(await ask(up("/ws", ["Origin: null"])), "HTTP/1.1 403 Forbidden");
    assert.equal(await ask(up("/ws", [], "8")), "HTTP/1.1 426 Upgrade Required");
    assert.equal(await ask("\x00\x00\x00\x00\x00\x00\x00\x02hi"), "HTTP/1.1 400 Bad Request");
    assert.equal(await ask("GET / HTTP/1.1\nHost: x\n\n"), "HTTP/1.1 400 Bad Request");
    assert.equal(
      await ask("GET /" + "a".repeat(17 * 1024) + " HTTP/1.1\r\n\r\n"),
      "HTTP/1.1 431 Request Header Fields Too Large",
    );
    const allowed = await WsPeer.open(fx.port(), "/ws", ["Origin: http://127.0.0.1:1"]);
    allowed.net.socket.destroy();
  });

  it(
    "hands any other request, bytes intact, to the unknown-client path as a raw connection",
    TEST_TIMEOUT,
    async () => {
      await using fx = await wsCore(undefined, { unknownClients: "allow" });
      const net = await NetPeer.connect(fx.port());
      const request = "GET /index.html HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nafter";
      net.write(request);
      let got = "";
      let id: ClientId | undefined;
      await iterateUntil(fx.core, (e) => {
        for (const c of e.data) {
          id = c;
          for (const m of fx.core.getMessagesFromClient(c)) got += dec(m);
        }
        return got.length >= request.length;
      });
      assert.equal(got, request);
      assert.equal(fx.core.getClientInfo(id!)!.websocket, false);
      assert.equal(fx.core.getClientInfo(id!)!.raw, true);
      fx.core.sendMessageToClient(id!, "HTTP/1.1 204 No Content\r\n\r\n");
      assert.ok(await net.until(() => net.text().startsWith("HTTP/1.1 204")));
    },
  );

  it(
    "a TCP client and a WebSocket client exchange messages, also as frame batches",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0, websocket: { path: "/ws" } }, { transport: "tcp", port: 0 }],
      });
      const browser = fx.core.addClient({ keyword: "tab" });
      const ws = await named(fx.port(0), "tab");
      const { id: native, peer } = await fx.connectNamed("native", 1);
      peer.send("one", "two", "");
      await waitFor(() => fx.core.getClientInfo(native)!.unreadMessages === 3, 5000, "native input");
      const batch = fx.core.takeFrames(native)!;
      assert.equal(batch.count, 3);
      fx.core.sendFrames(browser, batch);
      fx.core.sendMessageToClient(browser, "three");
      const frames = await ws.until((f) => f.length >= 5);
      assert.deepEqual(frames.slice(1).map((f) => [f.opcode, dec(f.payload)]), [[2, "one"], [2, "two"], [
        2,
        "",
      ], [
        2,
        "three",
      ]]);
      ws.send(1, "back");
      await waitFor(() => fx.core.getClientInfo(browser)!.unreadMessages === 1, 5000, "ws input");
      fx.core.sendFrames(native, fx.core.takeFrames(browser)!);
      assert.equal(dec((await peer.next())!), "back");
    },
  );

  it(
    "an unknown (raw) WebSocket client gets each message as one chunk, and each send as one message",
    TEST_TIMEOUT,
    async () => {
      await using fx = await wsCore(undefined, {
        unknownClients: "allow",
        rawConnection: (info) => info.websocket,
      });
      const peer = await WsPeer.open(fx.port());
      peer.send(2, "first");
      peer.send(1, "second");
      let id: ClientId | undefined;
      const got: string[] = [];
      await iterateUntil(fx.core, (e) => {
        for (const c of e.data) {
          id = c;
          for (const m of fx.core.getMessagesFromClient(c)) got.push(dec(m));
        }
        return got.length >= 2;
      });
      assert.deepEqual(got, ["first", "second"]);
      assert.equal(fx.core.getClientInfo(id!)!.raw, true);
      assert.equal(fx.core.getClientInfo(id!)!.websocket, true);
      fx.core.sendMessagesToClient(id!, ["a", "b"]);
      fx.core.sendMessageToClient(id!, "c");
      const frames = await peer.until((f) => f.length >= 3);
      assert.deepEqual(peer.texts(), ["a", "b", "c"]);
      assert.equal(frames.length, 3);
    },
  );

  it(
    "refuses to switch a WebSocket client's raw mode with UnsupportedError; rawOnConnect has no effect",
    TEST_TIMEOUT,
    async () => {
      await using fx = await wsCore();
      const id = fx.core.addClient({ keyword: "tab", raw: true });
      const peer = await named(fx.port(), "tab");
      await waitFor(() => fx.core.getClientInfo(id)!.state === "connected", 5000, "connected");
      assert.equal(fx.core.getClientInfo(id)!.raw, false);
      assert.throws(() => fx.core.switchClientRawConnectionMode(id, true), UnsupportedError);
      peer.send(2, "still framed");
      await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 1, 5000, "message");
    },
  );

  it(
    "counts a partly received message in stats().inputBytes, and releases it when the connection closes",
    TEST_TIMEOUT,
    async () => {
      // A FIN (how node:net's destroy() ends on some runtimes) half-closes: the core keeps the connection
      // for halfOpenTimeoutMs, so a short one lets the close come within the wait.
      await using fx = await wsCore(undefined, {
        limits: { maxMessageBytes: 4 * MiB, halfOpenTimeoutMs: 50 },
      });
      fx.core.addClient({ keyword: "slow" });
      const peer = await named(fx.port(), "slow");
      peer.send(2, new Uint8Array(MiB), { fin: false });
      peer.net.write(clientFrame(0, new Uint8Array(MiB)).subarray(0, 512 * 1024));
      await waitFor(() => fx.core.stats().inputBytes >= 1.4 * MiB, 5000, "partial message counted");
      peer.net.socket.destroy();
      await waitFor(() => fx.core.stats().inputBytes === 0, 5000, "released");
    },
  );

  it(
    "access rules match websocket; a rawConnection that throws closes only that connection",
    TEST_TIMEOUT,
    async () => {
      let calls = 0;
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0, websocket: { path: "/ws" } }, { transport: "tcp", port: 0 }],
        rawConnection: (info) => {
          if (info.websocket && ++calls === 1) throw new Error("user bug");
          return false;
        },
      });
      const browserOnly = fx.core.addClient({ keyword: "ws-only", allow: [{ websocket: true }] });
      const tcpOnly = fx.core.addClient({ keyword: "tcp-only", allow: [{ websocket: false }] });
      const first = await WsPeer.open(fx.port(0));
      assert.equal((await first.net.outcome()).eof, true); // the predicate threw: closed
      const ws = await named(fx.port(0), "ws-only");
      const refused = await WsPeer.open(fx.port(0));
      refused.send(2, "tcp-only");
      assert.equal(await refused.closed(), 1008);
      assert.equal(refused.texts()[0], "access denied");
      await fx.handshake("tcp-only", 1);
      await assert.rejects(fx.handshake("ws-only", 1));
      await waitFor(() => fx.core.getClientInfo(browserOnly)!.state === "connected", 5000, "ws-only");
      await waitFor(() => fx.core.getClientInfo(tcpOnly)!.state === "connected", 5000, "tcp-only");
      ws.send(2, "fine");
      await waitFor(() => fx.core.getClientInfo(browserOnly)!.unreadMessages === 1, 5000, "message");
    },
  );

  it("rejects bad websocket options with a TypeError", () => {
    const bad = (websocket: unknown, transport = "tcp") => () =>
      new IoCore({ listeners: [{ transport, websocket } as never], logger: null });
    assert.throws(bad({ path: "ws" }), TypeError);
    assert.throws(bad({}), TypeError);
    assert.throws(bad({ path: "/ws", allowedOrigins: ["null"] }), TypeError);
    assert.throws(bad({ path: "/ws", allowedOrigins: ["127.0.0.1:80"] }), TypeError);
    assert.throws(bad({ path: "/ws", pingIntervalMs: -1 }), RangeError);
    assert.throws(bad({ path: "/ws", pth: 1 }), TypeError);
    assert.throws(
      () =>
        new IoCore({ listeners: [{ transport: "unix", path: "x", websocket: { path: "/ws" } } as never] }),
      TypeError,
    );
  });
});

/** The part of the WHATWG `WebSocket` API the tests use (the global one and `ws` both have it). */
interface BrowserLikeSocket {
  binaryType: string;
  readonly bufferedAmount: number;
  send(data: string | Uint8Array): void;
  close(code?: number): void;
  addEventListener(type: string, listener: (event: { data?: unknown; code?: number }) => void): void;
}
type SocketClass = new (url: string) => BrowserLikeSocket;

/** Opens `url`, does the keyword handshake (with the HMAC proof when `secret` is set) and collects messages. */
async function admitted(Ctor: SocketClass, url: string, keyword: string, secret?: string) {
  const socket = new Ctor(url);
  socket.binaryType = "arraybuffer";
  const inbox: Uint8Array[] = [];
  let closeCode: number | undefined;
  socket.addEventListener("message", (e) => inbox.push(new Uint8Array(e.data as ArrayBuffer)));
  socket.addEventListener("close", (e) => (closeCode = e.code));
  await new Promise<void>((resolve, reject) => {
    socket.addEventListener("open", () => resolve());
    socket.addEventListener("error", () => reject(new Error(`Cannot open ${url}`)));
  });
  socket.send(keyword);
  if (secret !== undefined) {
    await waitFor(() => inbox.length >= 1, 5000, "challenge");
    const nonce = inbox.shift()!.subarray(-32);
    socket.send(new Uint8Array(createHmac("sha256", secret).update(nonce).update(keyword).digest()));
  }
  await waitFor(() => inbox.length >= 1, 5000, "OK");
  assert.equal(dec(inbox.shift()!), "OK");
  return { socket, inbox, closeCode: () => closeCode };
}

/** 1,000 echoed messages (text and binary) and one 3 MiB message, through an independent client. */
async function echoThrough(Ctor: SocketClass): Promise<void> {
  await using fx = await wsCore(undefined, { limits: { maxMessageBytes: 4 * MiB } });
  const id = fx.core.addClient({ keyword: "tab", secret: "browser secret" });
  const client = await admitted(Ctor, `ws://127.0.0.1:${fx.port()}/ws`, "tab", "browser secret");
  void echo(fx.core, id);
  for (let i = 0; i < 1000; i++) {
    client.socket.send(i % 2 ? `text ${i} é` : new TextEncoder().encode(`bin ${i}`));
  }
  const big = new Uint8Array(3 * MiB).map((_, i) => (i * 31) & 0xff);
  client.socket.send(big);
  await waitFor(() => client.inbox.length >= 1001, 20_000, "echoes");
  for (let i = 0; i < 1000; i++) assert.equal(dec(client.inbox[i]!), i % 2 ? `text ${i} é` : `bin ${i}`);
  assert.deepEqual(client.inbox[1000], big);
  client.socket.close(1000);
  await waitFor(() => client.closeCode() !== undefined, 5000, "closed");
  await waitFor(() => fx.core.getClientInfo(id)!.state === "disconnected", 5000, "core saw the close");
}

describe("independent WebSocket clients", () => {
  it(
    "ws (npm) is admitted with its secret, echoes 1,000 messages and a 3 MiB message",
    TEST_TIMEOUT,
    async () => {
      await echoThrough(WsClient as unknown as SocketClass);
    },
  );

  it("ws (npm) sees 1009 for a message over maxMessageBytes", TEST_TIMEOUT, async () => {
    await using fx = await wsCore(undefined, { limits: { maxMessageBytes: 1000 } });
    fx.core.addClient({ keyword: "big" });
    const client = await admitted(
      WsClient as unknown as SocketClass,
      `ws://127.0.0.1:${fx.port()}/ws`,
      "big",
    );
    client.socket.send(new Uint8Array(2000));
    await waitFor(() => client.closeCode() !== undefined, 5000, "closed");
    assert.equal(client.closeCode(), 1009);
  });

  const Global = (globalThis as { WebSocket?: SocketClass }).WebSocket;
  it(
    "the runtime's global WebSocket is admitted with its secret and echoes",
    { ...TEST_TIMEOUT, skip: Global ? false : "this runtime has no global WebSocket (Node 20)" },
    async () => {
      await echoThrough(Global!);
    },
  );
});
