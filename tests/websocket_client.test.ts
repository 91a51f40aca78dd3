/**
 * `connectWebSocket` (`@asockio/core/websocket`) against a core's `websocket` listener: the keyword
 * handshake, the secret, refusals, reconnecting with the send buffer, on the runtime's global `WebSocket`
 * or, on Node 20, `ws`.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import WsClient from "ws";
import {
  ConnectionClosedError,
  HandshakeRejectedError,
  type IoCoreOptions,
  SendBufferFullError,
} from "../mod.ts";
import { connectWebSocket, type WebSocketConstructor } from "../web/websocket_client.ts";
import { startCore } from "./_core_fixture.ts";
import { delay, KiB, MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { pathToFileURL } from "node:url";
import {
  leftoverImport,
  WEBSOCKET_CLIENT_BUNDLE,
  webSocketClientBundle,
} from "../scripts/build_websocket_client.ts";

const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const WebSocket = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket ??
  (WsClient as unknown as WebSocketConstructor);

function wsCore(more: IoCoreOptions = {}) {
  return startCore({ listeners: [{ transport: "tcp", port: 0, websocket: { path: "/ws" } }], ...more });
}

describe("connectWebSocket", () => {
  it("is admitted with its secret, sends, and reads messages with for await", TEST_TIMEOUT, async () => {
    await using fx = await wsCore();
    const id = fx.core.addClient({ keyword: "tab", secret: "s3cret" });
    const client = await connectWebSocket(`ws://127.0.0.1:${fx.port()}/ws`, {
      keyword: "tab",
      secret: "s3cret",
      WebSocket,
      reconnect: false,
    });
    client.send("hello");
    client.send(new Uint8Array([1, 2, 3]));
    await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 2, 5000, "two messages");
    assert.deepEqual(fx.core.getMessagesFromClient(id).map((m) => Array.from(m)), [
      Array.from(new TextEncoder().encode("hello")),
      [1, 2, 3],
    ]);
    fx.core.sendMessagesToClient(id, ["one", "two"]);
    const got: string[] = [];
    for await (const message of client) {
      got.push(dec(message));
      if (got.length === 2) break;
    }
    assert.deepEqual(got, ["one", "two"]);
    client.close();
    await client.closed;
    assert.throws(() => client.send("late"), /closed/);
  });

  it("rejects with HandshakeRejectedError on a refusal, and does not retry", TEST_TIMEOUT, async () => {
    await using fx = await wsCore({ acceptUnexpectedKeywords: false });
    await assert.rejects(
      connectWebSocket(`ws://127.0.0.1:${fx.port()}/ws`, { keyword: "nobody", WebSocket }),
      (err: unknown) => err instanceof HandshakeRejectedError && err.reason === "unexpected keyword",
    );
  });

  it("reconnects after the core closed its connection, then sends again", TEST_TIMEOUT, async () => {
    await using fx = await wsCore();
    const id = fx.core.addClient({ keyword: "tab" });
    const client = await connectWebSocket(`ws://127.0.0.1:${fx.port()}/ws`, {
      keyword: "tab",
      WebSocket,
      reconnect: { initialDelayMs: 10, maxDelayMs: 50 },
    });
    fx.core.closeClientConnection(id);
    await waitFor(() => fx.core.getClientInfo(id)!.state === "disconnected", 5000, "disconnected");
    await waitFor(() => client.bufferedAmount === 0, 5000, "socket drained");
    await waitFor(() => fx.core.getClientInfo(id)!.state === "connected", 5000, "reconnected");
    client.send("after");
    await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 1, 5000, "message after reconnect");
    assert.equal(dec(fx.core.getMessageFromClient(id)!), "after");
    client.close();
  });

  it(
    "over maxBufferedBytes send throws SendBufferFullError and takes nothing; drain() resolves once the core reads, and every message taken arrives in order",
    TEST_TIMEOUT,
    async () => {
      // The core stops reading over its 256 KiB input cap while the application does not read.
      await using fx = await wsCore({ limits: { inputBytes: 256 * KiB } });
      const id = fx.core.addClient({ keyword: "pushy" });
      const cap = MiB;
      const client = await connectWebSocket(`ws://127.0.0.1:${fx.port()}/ws`, {
        keyword: "pushy",
        WebSocket,
        reconnect: false,
        maxBufferedBytes: cap,
      });
      const message = (i: number) => new Uint8Array(64 * KiB).fill(i & 0xff);
      let taken = 0;
      let full: unknown;
      // At most 64 MiB: the kernel's socket buffers fill first, then the WebSocket's own.
      while (full === undefined && taken < 1024) {
        try {
          client.send(message(taken));
          taken++;
        } catch (err) {
          full = err;
        }
        if (taken % 8 === 0) await delay(1); // lets the socket hand bytes to the kernel
      }
      assert.ok(full instanceof SendBufferFullError, `sent ${taken} messages without a full buffer`);
      // The kernel's buffers may still grow and take bytes: top up until three 20 ms waits in a row free no
      // room for one more message, so the buffer stays full while the core does not read.
      for (let still = 0; still < 3 && taken < 1024;) {
        await delay(20);
        let sent = 0;
        try {
          for (; taken < 1024; taken++, sent++) client.send(message(taken));
        } catch (err) {
          assert.ok(err instanceof SendBufferFullError);
        }
        still = sent === 0 ? still + 1 : 0;
      }
      assert.ok(client.bufferedAmount <= cap, `bufferedAmount ${client.bufferedAmount} over the cap`);
      // drain() resolves once half the cap is free. The kernel may still take bytes before the core
      // reads (its buffers grow), so what is checked is the room at the moment drain() resolves.
      let bufferedAtDrain = -1;
      const draining = client.drain().then(() => (bufferedAtDrain = client.bufferedAmount));
      let read = 0;
      while (read < taken) {
        await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages > 0, 10_000, `message ${read}`);
        for (const got of fx.core.getMessagesFromClient(id)) {
          assert.equal(got.length, 64 * KiB);
          assert.equal(got[0], read & 0xff, `message ${read} in order`);
          read++;
        }
      }
      await draining;
      assert.ok(
        bufferedAtDrain >= 0 && bufferedAtDrain <= cap / 2,
        `drain() resolved at ${bufferedAtDrain} bytes`,
      );
      client.send("room again");
      await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 1, 5000, "the next message");
      assert.equal(dec(fx.core.getMessageFromClient(id)!), "room again");
      client.close();
      await assert.rejects(client.drain(), ConnectionClosedError);
    },
  );

  it("throws a TypeError for a bad keyword", () => {
    assert.throws(
      () => connectWebSocket("ws://127.0.0.1:1/ws", { keyword: 5 as never, WebSocket }),
      TypeError,
    );
  });

  it(
    "ships as one self-contained ES module that connects, is admitted and echoes",
    TEST_TIMEOUT,
    async () => {
      const code = webSocketClientBundle();
      assert.equal(leftoverImport(code), undefined);
      assert.ok(code.length < 64 * 1024, `the bundle is ${code.length} bytes`);
      const bundle = await import(pathToFileURL(WEBSOCKET_CLIENT_BUNDLE).href) as {
        connectWebSocket: typeof connectWebSocket;
      };
      await using fx = await wsCore();
      const id = fx.core.addClient({ keyword: "page", secret: "k" });
      const client = await bundle.connectWebSocket(`ws://127.0.0.1:${fx.port()}/ws`, {
        keyword: "page",
        secret: "k",
        WebSocket,
        reconnect: false,
      });
      client.send("from the bundle");
      await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 1, 5000, "one message");
      fx.core.sendMessagesToClient(id, fx.core.getMessagesFromClient(id));
      for await (const message of client) {
        assert.equal(dec(message), "from the bundle");
        break;
      }
      client.close();
      await client.closed;
    },
  );

  it("the import check finds what a bundle must not keep", () => {
    assert.equal(leftoverImport("const a = 1;\nexport { a };\n"), undefined);
    assert.ok(leftoverImport('import { a } from "./a.js";'));
    assert.ok(leftoverImport('export * from "./a.js";'));
    assert.ok(leftoverImport('const m = await import("./a.js");'));
    assert.ok(leftoverImport('const m = require("a");'));
  });
});
