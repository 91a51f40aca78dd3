/**
 * A `websocket` listener under the input cap: a connection assembling a large fragmented message is paused
 * as a TCP connection mid-frame is (its client holds unread messages), resumes when they are read, and
 * its message then arrives whole. Over `maxMessageBytes`, the message closes with 1009 instead.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { startCore } from "./_core_fixture.ts";
import { delay, MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { clientFrame, namedWsPeer } from "./_websocket_peer.ts";

const dec = (b: Uint8Array) => new TextDecoder().decode(b);

describe("websocket listener under the input cap", () => {
  it(
    "pauses a connection assembling a message over the input cap while its client holds unread messages; nothing is dropped",
    TEST_TIMEOUT,
    async () => {
      const parts = 24;
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0, websocket: { path: "/ws", pingIntervalMs: 0 } }],
        limits: { inputBytes: MiB, maxMessageBytes: 64 * MiB },
      });
      const id = fx.core.addClient({ keyword: "big" });
      const peer = await namedWsPeer(fx.port(), "big");
      peer.send(2, "unread");
      await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 1, 5000, "the small message");
      // 24 MiB in 1 MiB fragments, all written at once: each fragment's bytes say which it is.
      for (let i = 0; i < parts; i++) {
        peer.net.write(
          clientFrame(i === 0 ? 2 : 0, new Uint8Array(MiB).fill(i + 1), { fin: i === parts - 1 }),
        );
      }
      await waitFor(() => fx.core.stats().inputBytes > MiB, 5000, "input over the cap");
      // The connection is paused: the partial message stops growing while the application does not read.
      let peak = 0;
      for (let i = 0; i < 20; i++) {
        peak = Math.max(peak, fx.core.stats().inputBytes);
        await delay(10); // a short window to watch it not grow
      }
      assert.ok(peak < 3 * MiB, `unread and partial input reached ${peak} bytes with a 1 MiB cap`);
      assert.ok(fx.core.stats().readingPaused);
      assert.equal(fx.core.getClientInfo(id)!.unreadMessages, 1);
      // The application reads: the connection resumes, and the whole message arrives.
      assert.equal(dec(fx.core.getMessageFromClient(id)!), "unread");
      await waitFor(() => fx.core.getClientInfo(id)!.unreadMessages === 1, 30_000, "the 24 MiB message");
      const big = fx.core.getMessageFromClient(id)!;
      assert.equal(big.length, parts * MiB);
      for (let i = 0; i < parts; i++) {
        assert.equal(big[i * MiB], i + 1);
        assert.equal(big[(i + 1) * MiB - 1], i + 1);
      }
      await waitFor(() => fx.core.stats().inputBytes === 0, 5000, "input released");
      peer.net.socket.destroy();
    },
  );

  it(
    "closes with 1009 when the fragments add up to more than maxMessageBytes, before buffering them",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0, websocket: { path: "/ws", pingIntervalMs: 0 } }],
        limits: { inputBytes: MiB, maxMessageBytes: 2 * MiB },
      });
      const id = fx.core.addClient({ keyword: "too big" });
      const peer = await namedWsPeer(fx.port(), "too big");
      peer.send(2, new Uint8Array(MiB), { fin: false });
      peer.send(0, new Uint8Array(MiB), { fin: false });
      peer.net.write(clientFrame(0, new Uint8Array(MiB)).subarray(0, 14)); // only the header of the third
      assert.equal(await peer.closed(), 1009);
      await waitFor(() => fx.core.getClientInfo(id)!.state === "disconnected", 5000, "disconnected");
      await waitFor(() => fx.core.stats().inputBytes === 0, 5000, "input released");
    },
  );
});
