/**
 * A processor is user code: a constructor that throws and output that is not a message close only
 * that processor's connection, with a `CallbackError` logged, over TCP and UDP.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CallbackError, InlineProcessor } from "../mod.ts";
import { iterateUntil, recordingLogger, startCore } from "./_core_fixture.ts";
import { UdpPeer } from "./_udp_peer.ts";
import { text } from "./_wire_peer.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";

class Echo extends InlineProcessor {
  override onDataReceived(data: Uint8Array): void {
    this.outputMessages.push(data);
  }
}

class Unbuildable extends InlineProcessor {
  constructor() {
    super();
    throw new Error("constructor exploded");
  }
}

describe("a processor whose constructor throws", () => {
  it(
    "closes that TCP connection and logs a CallbackError; another client keeps working",
    TEST_TIMEOUT,
    async () => {
      const logger = recordingLogger();
      await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }], logger });
      const core = fx.core;
      const bad = core.addClient({ keyword: "bad", processor: Unbuildable });
      const good = core.addClient({ keyword: "good", processor: Echo });
      const badPeer = await fx.handshake("bad");
      await badPeer.waitClosed();
      await iterateUntil(core, (e) => e.disconnected.has(bad));
      assert.ok(core.getClientInfo(bad)!.lastError instanceof CallbackError);
      assert.ok(
        logger.lines.some((l) => l.startsWith("error: InlineProcessor constructor threw for client")),
      );
      const goodPeer = await fx.handshake("good");
      goodPeer.send("still here");
      assert.equal(text(await goodPeer.next()), "still here");
      assert.equal(core.getClientInfo(good)!.state, "connected");
    },
  );

  it("drops that UDP client and logs a CallbackError; the next address is echoed", TEST_TIMEOUT, async () => {
    let built = 0;
    class FirstFails extends Echo {
      constructor() {
        super();
        if (built++ === 0) throw new Error("first constructor exploded");
      }
    }
    const logger = recordingLogger();
    await using fx = await startCore({
      listeners: [{ transport: "udp", hostname: "127.0.0.1", port: 0 }],
      unknownClients: "allow",
      unknownClientProcessor: FirstFails,
      logger,
    });
    const addr = fx.addrs[0]!;
    const to = { hostname: "127.0.0.1", port: addr.transport === "udp" ? addr.port : 0 };
    const first = await UdpPeer.open();
    const second = await UdpPeer.open();
    try {
      await first.send("one", to);
      await iterateUntil(fx.core, (e) => e.disconnected.size > 0);
      assert.ok(
        logger.lines.some((l) => l.startsWith("error: InlineProcessor constructor threw for client")),
      );
      await second.send("two", to);
      await second.waitFor(1);
      assert.equal(text(second.received[0]), "two");
      assert.equal(first.received.length, 0);
    } finally {
      first.close();
      second.close();
    }
  });
});

describe("what a processor pushes to outputMessages", () => {
  for (const [label, item] of [["a plain object", { ok: true }], ["a number", 12345]] as const) {
    it(
      `${label}: the output before it is written, a CallbackError is logged, that connection closes`,
      TEST_TIMEOUT,
      async () => {
        class Pushy extends InlineProcessor {
          override onDataReceived(data: Uint8Array): void {
            if (text(data) === "go") this.outputMessages.push("before", item as unknown as string, "after");
            else this.outputMessages.push(data);
          }
        }
        const logger = recordingLogger();
        await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }], logger });
        const core = fx.core;
        const bad = core.addClient({ keyword: "bad", processor: Pushy });
        const good = core.addClient({ keyword: "good", processor: Pushy });
        const badPeer = await fx.handshake("bad");
        const goodPeer = await fx.handshake("good");
        badPeer.send("go");
        assert.equal(text(await badPeer.next()), "before");
        await badPeer.waitClosed();
        assert.equal(badPeer.pending, 0, "nothing after the bad item");
        await iterateUntil(core, (e) => e.disconnected.has(bad));
        assert.ok(core.getClientInfo(bad)!.lastError instanceof CallbackError);
        assert.ok(
          logger.lines.some((l) => l.startsWith("error: InlineProcessor pushed")),
          logger.lines.join("\n"),
        );
        goodPeer.send("echo me");
        assert.equal(text(await goodPeer.next()), "echo me");
        assert.equal(core.stats().outputBytes, 0);
        assert.equal(core.getClientInfo(good)!.state, "connected");
      },
    );
  }
});
