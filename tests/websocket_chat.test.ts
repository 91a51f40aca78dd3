/**
 * examples/websocket_chat.ts: a page, `/join` and WebSocket on one port, a native client on another;
 * messages reach every other client. With `ws` (npm) as the tab on every runtime, and with Chromium
 * (driven by playwright-core) where it is installed.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { describe, it } from "node:test";
import WsClient from "ws";
import { CLIENT_SCRIPT_PATH, startChat } from "../examples/websocket_chat.ts";
import { MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { WirePeer } from "./_wire_peer.ts";
import { createHmac } from "node:crypto";

const dec = (b: Uint8Array) => new TextDecoder().decode(b);
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));

/** A tab played by `ws`: join, connect, prove the secret. */
async function wsTab(port: number) {
  const { keyword, secret } = await (await fetch(`http://127.0.0.1:${port}/join`)).json() as {
    keyword: string;
    secret: string;
  };
  const socket = new WsClient(`ws://127.0.0.1:${port}/ws`, {
    headers: { Origin: `http://127.0.0.1:${port}` },
  });
  const inbox: Uint8Array[] = [];
  socket.on("message", (data: Uint8Array) => inbox.push(new Uint8Array(data)));
  await new Promise((resolve, reject) => socket.once("open", resolve).once("error", reject));
  socket.send(keyword);
  await waitFor(() => inbox.length === 1, 5000, "challenge");
  const nonce = inbox.shift()!.subarray(-32);
  socket.send(createHmac("sha256", secret).update(nonce).update(keyword).digest());
  await waitFor(() => inbox.length === 1, 5000, "OK");
  assert.equal(dec(inbox.shift()!), "OK");
  return { socket, inbox, keyword };
}

describe("examples/websocket_chat.ts", () => {
  it("serves the page, and messages reach every other tab and the native client", TEST_TIMEOUT, async () => {
    const { core, ports } = await startChat(0, 0);
    try {
      const page = await fetch(`http://127.0.0.1:${ports[0]}/`);
      assert.match(await page.text(), /<script type="module">/);
      const a = await wsTab(ports[0]!);
      const b = await wsTab(ports[0]!);
      const terminal = await WirePeer.handshake({ transport: "tcp", port: ports[1]! }, "terminal");
      a.socket.send("hello from a");
      await waitFor(() => b.inbox.length === 1, 5000, "b got it");
      assert.equal(dec(b.inbox[0]!), "hello from a");
      assert.equal(dec((await terminal.next())!), "hello from a");
      terminal.send("hello from the terminal");
      await waitFor(() => a.inbox.length === 1 && b.inbox.length === 2, 5000, "tabs got it");
      assert.equal(dec(a.inbox[0]!), "hello from the terminal");
      a.socket.close();
      b.socket.close();
      terminal.close();
    } finally {
      await core.close();
    }
  });

  it(
    "Chromium loads the page and connectWebSocket from the core's port, is admitted, echoes 1,000 messages and sends 3 MiB",
    { ...TEST_TIMEOUT, skip: CHROMIUM ? false : "no Chromium: apt-get install -y chromium" },
    async () => {
      const { chromium } = await import("playwright-core");
      const { core, ports } = await startChat(0, 0);
      const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
      try {
        const terminal = await WirePeer.handshake({ transport: "tcp", port: ports[1]! }, "terminal");
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on("pageerror", (error) => errors.push(error.message));
        const script = page.waitForResponse((r) => r.url().endsWith(CLIENT_SCRIPT_PATH));
        await page.goto(`http://127.0.0.1:${ports[0]}/`);
        assert.equal((await script).status(), 200);
        // The page sets `chat` once connectWebSocket (loaded from the core's port) is admitted.
        await page.waitForFunction(() => "chat" in globalThis, undefined, { timeout: 20_000 })
          .catch((err) => assert.fail(`no chat object (page errors: ${errors.join("; ")}): ${err}`));
        // The terminal echoes what the tab sends; the tab counts the echoes.
        await page.evaluate(() => {
          const chat = (globalThis as unknown as { chat: { send(m: string | Uint8Array): void } }).chat;
          for (let i = 0; i < 1000; i++) chat.send(`m${i}`);
          chat.send(new Uint8Array(3 * 1024 * 1024).fill(7));
        });
        let echoed = 0;
        let big = 0;
        while (echoed < 1001) {
          const m = (await terminal.next(20_000))!;
          if (echoed < 1000) assert.equal(dec(m), `m${echoed}`);
          else big = m.length;
          terminal.send(m);
          echoed++;
        }
        assert.equal(big, 3 * MiB);
        await page.waitForFunction(() =>
          (globalThis as unknown as { chat: { received: unknown[] } }).chat.received.length === 1001
        );
        await page.screenshot({ path: "/tmp/asockio_chat.png" });
        terminal.close();
      } finally {
        await browser.close();
        await core.close();
      }
    },
  );
});
