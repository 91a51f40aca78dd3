/**
 * The lifecycle and its idioms: a loop that stops on close, `for await`, AbortSignal, `closed`,
 * `messages(id)` with backpressure, and asynchronous processor callbacks.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { CoreClosedError, InlineProcessor, type IoCoreOptions, type IoIterationResult } from "../mod.ts";
import { type CoreFixture, iterateUntil, recordingLogger, startCore } from "./_core_fixture.ts";
import { delay, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { Rng } from "./_stream_check.ts";
import { text } from "./_wire_peer.ts";

/** A core on a loopback TCP listener, closed by the test or on dispose. */
function listening(options: IoCoreOptions = {}): Promise<CoreFixture> {
  return startCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }], ...options });
}

describe("a loop that stops", () => {
  it(
    "ends an ioIteration loop within 100 ms of close() from another task, without spinning",
    TEST_TIMEOUT,
    async () => {
      await using fx = await listening();
      const core = fx.core;
      let iterations = 0;
      let closedAt = 0;
      // Not a wait: close() comes from another task while the loop runs.
      setTimeout(() => {
        closedAt = performance.now();
        void core.close();
      }, 50);
      let error: unknown;
      try {
        for (;;) {
          await core.ioIteration(1000);
          iterations++;
        }
      } catch (err) {
        error = err;
      }
      const endedAfter = performance.now() - closedAt;
      assert.ok(error instanceof CoreClosedError, String(error));
      assert.ok(endedAfter < 100, `the loop ended ${endedAfter.toFixed(1)} ms after close()`);
      assert.ok(iterations <= 2, `${iterations} iterations: the loop spun`);
      await core.closed;
      assert.equal(core.isClosed, true);
    },
  );

  it(
    "resolves a pending ioIteration with the disconnections when close() is called, and rejects the next",
    TEST_TIMEOUT,
    async () => {
      await using fx = await listening();
      const core = fx.core;
      const id = core.addClient({ keyword: "worker" });
      const peer = await fx.handshake("worker");
      await iterateUntil(core, (e) => e.expected.has(id));
      const pending = core.ioIteration(5000);
      void core.close();
      const last = await pending;
      assert.ok(last.clientsWithDisconnectedConnection.has(id));
      await assert.rejects(core.ioIteration(10), CoreClosedError);
      await peer.waitClosed();
    },
  );

  it(
    "rejects an aborted ioIteration with the signal's reason and keeps the core working",
    TEST_TIMEOUT,
    async () => {
      await using fx = await listening();
      const core = fx.core;
      const controller = new AbortController();
      const reason = new Error("stop waiting");
      const pending = core.ioIteration(10_000, { signal: controller.signal });
      controller.abort(reason);
      await assert.rejects(pending, (err) => err === reason);
      await assert.rejects(
        core.ioIteration(10, { signal: AbortSignal.abort(reason) }),
        (err) => err === reason,
      );
      const id = core.addClient({ keyword: "after abort" });
      const peer = await fx.handshake("after abort");
      peer.send("still served");
      await iterateUntil(core, (e) => e.data.has(id));
      assert.deepEqual(core.getMessagesFromClient(id).map(text), ["still served"]);
      peer.close();
    },
  );

  it("closes the core when IoCoreOptions.signal aborts, resolving closed", TEST_TIMEOUT, async () => {
    const controller = new AbortController();
    await using fx = await listening({ signal: controller.signal });
    const core = fx.core;
    controller.abort();
    await core.closed;
    assert.equal(core.isClosed, true);
    await assert.rejects(fx.connect(), /refused/i);
  });
});

describe("for await over the core", () => {
  it("yields the events and ends quietly when the core closes", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const core = fx.core;
    const id = core.addClient({ keyword: "looped" });
    const peer = await fx.handshake("looped");
    peer.send("ping");
    const seen: IoIterationResult[] = [];
    for await (const events of core) {
      seen.push(events);
      for (const client of events.clientsHaveDataToRead) {
        assert.deepEqual(core.getMessagesFromClient(client).map(text), ["ping"]);
        void core.close();
      }
    }
    assert.ok(seen.some((e) => e.newlyConnectedExpectedClients.has(id)));
    assert.ok(
      seen.some((e) => e.clientsWithDisconnectedConnection.has(id)),
      "the last batch has the disconnection",
    );
    assert.ok(seen.every((e) => Object.values(e).some((set: Set<number>) => set.size > 0)), "no empty batch");
  });

  it("ends when IoCoreOptions.signal aborts", TEST_TIMEOUT, async () => {
    await using fx = await listening({ signal: AbortSignal.timeout(100) });
    const core = fx.core;
    const started = performance.now();
    for await (const _events of core) {
      // nothing connects
    }
    assert.ok(performance.now() - started < 5000);
    assert.equal(core.isClosed, true);
  });

  it("allows one consumer at a time", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const core = fx.core;
    const first = core[Symbol.asyncIterator]();
    const next = first.next(); // an async generator: this call takes the core before it returns
    await assert.rejects(core.ioIteration(10), TypeError);
    await assert.rejects(core[Symbol.asyncIterator]().next(), TypeError);
    await core.close();
    assert.equal((await next).done, true);
  });
});

describe("messages(id)", () => {
  it("yields 100k messages in order", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const core = fx.core;
    const id = core.addClient({ keyword: "ordered" });
    const peer = await fx.handshake("ordered");
    const count = 100_000;
    const batch: string[] = [];
    for (let i = 0; i < count; i++) {
      batch.push(String(i));
      if (batch.length === 1000) peer.send(...batch.splice(0));
    }
    let expected = 0;
    for await (const message of core.messages(id)) {
      assert.equal(text(message), String(expected));
      if (++expected === count) break;
    }
    assert.equal(expected, count);
    assert.equal(
      core.getClientInfo(id)?.state,
      "connected",
      "breaking out ends the iteration, not the client",
    );
    assert.equal(core.stats().inputBytes, 0, "every message read is released from the input count");
    peer.close();
  });

  it("pauses the sender above highWaterMarkBytes and loses nothing", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const core = fx.core;
    const id = core.addClient({ keyword: "flood" });
    const peer = await fx.handshake("flood");
    const frame = new Uint8Array(1024);
    const frames = 16 * 1024; // 16 MiB
    for (let i = 0; i < frames; i += 256) {
      const batch: Uint8Array[] = [];
      for (let k = 0; k < 256; k++) {
        const f = frame.slice();
        new DataView(f.buffer).setUint32(0, i + k);
        batch.push(f);
      }
      peer.send(...batch);
    }
    const highWaterMarkBytes = 64 * 1024;
    const iterator = core.messages(id, { highWaterMarkBytes })[Symbol.asyncIterator]();
    const first = await iterator.next();
    assert.equal(new DataView(first.value!.buffer, first.value!.byteOffset).getUint32(0), 0);
    await delay(300); // A sleep: the reader holds back, and reading from the connection must stay paused.
    const unread = core.getClientInfo(id)!.unreadBytes;
    assert.ok(unread < highWaterMarkBytes + 2 * 1024 * 1024, `${unread} bytes unread while paused`);
    assert.ok(peer.conn.bufferedAmount > 0, "the sender is held back");
    let expected = 1;
    while (expected < frames) {
      const { value, done } = await iterator.next();
      assert.equal(done, false);
      assert.equal(new DataView(value!.buffer, value!.byteOffset).getUint32(0), expected++);
    }
    await iterator.return?.();
    peer.close();
  });

  it("ends when the client is removed", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const core = fx.core;
    const id = core.addClient({ keyword: "leaving" });
    const peer = await fx.handshake("leaving");
    peer.send("one");
    const got: string[] = [];
    for await (const message of core.messages(id)) {
      got.push(text(message));
      core.removeClient(id);
    }
    assert.deepEqual(got, ["one"]);
    await peer.waitClosed();
  });

  it("goes on across a reconnection of the same named client", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const core = fx.core;
    const id = core.addClient({ keyword: "returning" });
    const got: string[] = [];
    const reading = (async () => {
      for await (const message of core.messages(id)) {
        got.push(text(message));
        if (got.length === 2) break;
      }
    })();
    const first = await fx.handshake("returning");
    first.send("before");
    await first.until(() => got.length === 1, 10_000, "the first message");
    first.close();
    await iterateUntil(core, (e) => e.disconnected.has(id));
    const second = await fx.handshake("returning");
    second.send("after");
    await reading;
    assert.deepEqual(got, ["before", "after"]);
    second.close();
  });

  it("ends with the signal's reason when it aborts", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const core = fx.core;
    const id = core.addClient({ keyword: "aborted" });
    const reason = new Error("enough");
    const controller = new AbortController();
    setTimeout(() => controller.abort(reason), 20); // Not a wait: the abort comes while nothing arrives.
    await assert.rejects(async () => {
      for await (const _message of core.messages(id, { signal: controller.signal })) {
        // nothing arrives
      }
    }, (err) => err === reason);
  });
});

describe("asynchronous processor callbacks", () => {
  it(
    "keeps order over 10k messages with a random delay per message, and answers after each await",
    TEST_TIMEOUT,
    async () => {
      const rng = new Rng(0x51e);
      class SlowEcho extends InlineProcessor {
        override async onDataReceived(data: Uint8Array): Promise<void> {
          if (rng.chance(0.05)) await delay(rng.float() * 2); // Not a wait: the callback's own latency.
          else await Promise.resolve();
          this.outputMessages.push(data);
        }
      }
      await using fx = await listening();
      const core = fx.core;
      core.addClient({ keyword: "slow", processor: SlowEcho });
      const peer = await fx.handshake("slow");
      const count = 10_000;
      for (let i = 0; i < count; i += 500) peer.send(...Array.from({ length: 500 }, (_, k) => String(i + k)));
      await peer.until(() => peer.pending >= count, 25_000, "every echo");
      assert.deepEqual(peer.takeAll().map(text), Array.from({ length: count }, (_, i) => String(i)));
      assert.deepEqual(
        [core.stats().inputBytes, core.stats().outputBytes],
        [0, 0],
        "the counters return to 0",
      );
      peer.close();
    },
  );

  it(
    "closes only the connection whose callback rejects, after writing what it pushed",
    TEST_TIMEOUT,
    async () => {
      class Fragile extends InlineProcessor {
        override async onDataReceived(data: Uint8Array): Promise<void> {
          await delay(1); // Not a wait: a callback that really awaits.
          this.outputMessages.push(data);
          if (text(data) === "boom") throw new Error("async processor exploded");
        }
      }
      const logger = recordingLogger();
      await using fx = await listening({ logger });
      const core = fx.core;
      const a = core.addClient({ keyword: "a", processor: Fragile });
      const b = core.addClient({ keyword: "b", processor: Fragile });
      const peerA = await fx.handshake("a");
      const peerB = await fx.handshake("b");
      peerA.send("boom", "never answered");
      await peerA.waitClosed();
      assert.deepEqual(peerA.takeAll().map(text), ["boom"]);
      peerB.send("fine");
      assert.equal(text(await peerB.next()), "fine");
      await iterateUntil(core, (e) => e.disconnected.has(a));
      assert.equal(core.getClientInfo(a)?.lastError?.message, "async processor exploded");
      assert.equal(core.getClientInfo(b)?.state, "connected");
      assert.ok(
        logger.lines.some((l) => l.startsWith("error:") && l.includes("onDataReceived")),
        logger.lines.join("\n"),
      );
      peerB.close();
    },
  );

  it("holds the input until an asynchronous onConnected settles", TEST_TIMEOUT, async () => {
    const order: string[] = [];
    class Greeter extends InlineProcessor {
      override async onConnected(): Promise<void> {
        await delay(50); // Not a wait: a slow onConnected, during which input arrives.
        order.push("connected");
        this.outputMessages.push("hello");
      }
      override onDataReceived(data: Uint8Array): void {
        order.push(text(data));
        this.outputMessages.push(data);
      }
    }
    await using fx = await listening();
    const core = fx.core;
    core.addClient({ keyword: "greeted", processor: Greeter });
    const peer = await fx.connect("greeted");
    peer.send("early");
    await peer.until(() => peer.pending >= 3, 10_000, "three frames");
    assert.deepEqual(peer.takeAll().map(text), ["OK", "hello", "early"]);
    assert.deepEqual(order, ["connected", "early"]);
    peer.close();
  });

  it(
    "writes answers sent later from outside any callback with sendMessageToClient",
    TEST_TIMEOUT,
    async () => {
      await using fx = await listening();
      const core = fx.core;
      const id = core.addClient({ keyword: "later" });
      const peer = await fx.handshake("later");
      setTimeout(() => core.sendMessageToClient(id, "from a timer"), 20); // Not a wait: the send under test.
      assert.equal(text(await peer.next()), "from a timer");
      peer.close();
    },
  );
});

describe("asynchronous callbacks after their connection closed", () => {
  it(
    "logs a rejection that comes after the connection closed, and the process lives on",
    TEST_TIMEOUT,
    async () => {
      let reject: (err: Error) => void = () => {};
      class Late extends InlineProcessor {
        override onDataReceived(): Promise<void> {
          this.markSocketAsShouldBeClosedImmediately();
          return new Promise((_, fail) => (reject = fail));
        }
      }
      const logger = recordingLogger();
      await using fx = await listening({ logger });
      const id = fx.core.addClient({ keyword: "late", processor: Late });
      const peer = await fx.handshake("late");
      peer.send("go");
      await iterateUntil(fx.core, (e) => e.disconnected.has(id));
      reject(new Error("too late"));
      await waitFor(
        () =>
          logger.lines.some((l) =>
            l.includes("rejected for client") && l.includes("after its connection closed")
          ),
        5000,
        "the late rejection to be logged",
      );
    },
  );
});

describe("shutdown", () => {
  it(
    "stops accepting, writes what is queued, closes each connection, and resolves once closed",
    TEST_TIMEOUT,
    async () => {
      await using fx = await listening();
      const core = fx.core;
      const id = core.addClient({ keyword: "draining" });
      const peer = await fx.handshake("draining");
      await iterateUntil(core, (e) => e.expected.has(id));
      core.sendMessagesToClient(id, Array.from({ length: 1000 }, (_, i) => `tail ${i}`));
      const done = core.shutdown({ timeoutMs: 5000 });
      // From now on a connection is refused, or closed unanswered if the kernel had already taken it.
      const late = await fx.connect("late").catch(() => undefined);
      if (late) {
        await late.waitClosed();
        assert.equal(late.pending, 0, "a connection that came during the shutdown is not served");
      }
      await done;
      await assert.rejects(fx.connect(), /refused/i, "the listener is closed");
      assert.equal(core.isClosed, true);
      await peer.waitClosed();
      const got = peer.takeAll().map(text);
      assert.equal(got.length, 1000, "everything queued was written before the close");
      assert.equal(got.at(-1), "tail 999");
    },
  );

  it("closes what is left after timeoutMs", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const id = fx.core.addClient({ keyword: "stuck" });
    const peer = await fx.handshake("stuck", 0);
    await iterateUntil(fx.core, (e) => e.expected.has(id));
    peer.conn.pauseReading(); // it never reads, and never closes
    fx.core.sendMessageToClient(id, new Uint8Array(8 * 1024 * 1024));
    const started = performance.now();
    await fx.core.shutdown({ timeoutMs: 200 });
    const took = performance.now() - started;
    assert.ok(took >= 150 && took < 5000, `shutdown took ${took.toFixed(0)} ms`);
    assert.equal(fx.core.stats().connections, 0);
  });

  it("stopAccepting keeps the open connections working", TEST_TIMEOUT, async () => {
    await using fx = await listening();
    const id = fx.core.addClient({ keyword: "stays" });
    const peer = await fx.handshake("stays");
    await fx.core.stopAccepting();
    await assert.rejects(fx.connect(), /refused/i);
    peer.send("still here");
    await iterateUntil(fx.core, (e) => e.data.has(id));
    assert.deepEqual(fx.core.getMessagesFromClient(id).map(text), ["still here"]);
  });
});
