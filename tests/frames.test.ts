/**
 * The batch API: `takeFrames` and `sendFrames` on `IoCore`, and `onFramesReceived` in processors.
 * Every test ends with the core's input and output counters back at 0.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame } from "../core/wire/codec.ts";
import { type FrameBatch, InlineProcessor, IoCore, type IoCoreOptions } from "../mod.ts";
import { type CoreFixture, iterateUntil, startCore } from "./_core_fixture.ts";
import { bytePattern, bytesEqual, concatBytes, delay, MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { Rng } from "./_stream_check.ts";
import { text, type WirePeer } from "./_wire_peer.ts";

const encoder = new TextEncoder();

/**
 * A test on a core with a loopback TCP listener and room for 17 MB messages; afterwards the core's
 * input and output counters must be back at 0.
 */
function coreTest(name: string, body: (fx: CoreFixture) => Promise<void>, options: IoCoreOptions = {}): void {
  it(name, TEST_TIMEOUT, async () => {
    await using fx = await startCore({
      listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
      limits: { maxMessageBytes: 20 * MiB },
      ...options,
    });
    await body(fx);
    // Output is counted until the transport reports it written: give the last drain a moment.
    await iterateUntil(fx.core, () => fx.core.stats().outputBytes === 0, 5000).catch(() => {});
    const { inputBytes, outputBytes } = fx.core.stats();
    assert.equal(inputBytes, 0, "stats().inputBytes is back to 0");
    assert.equal(outputBytes, 0, "stats().outputBytes is back to 0");
  });
}

/** The payloads a batch visits through `forEach`, copied. */
function payloadsOf(batch: FrameBatch): Uint8Array[] {
  const out: Uint8Array[] = [];
  batch.forEach((buf, offset, length) => out.push(buf.slice(offset, offset + length)));
  return out;
}

/** Runs `ioIteration`, echoing every batch through `takeFrames`/`sendFrames`, until `done()`. */
function echoFramesUntil(core: IoCore, done: () => boolean, timeoutMs: number, seen?: { count: number }) {
  return iterateUntil(core, done, timeoutMs, (r) => {
    for (const id of r.clientsHaveDataToRead) {
      const batch = core.takeFrames(id);
      if (!batch) continue;
      let payload = 0;
      batch.forEach((_buf, _offset, length) => payload += length);
      assert.equal(
        batch.byteLength,
        payload + 8 * batch.count,
        "byteLength is the payloads and a header each",
      );
      if (seen) seen.count += batch.count;
      core.sendFrames(id, batch);
    }
  });
}

describe("takeFrames and sendFrames", () => {
  coreTest(
    "round-trip 20k random messages of 0 B to 17 MB byte-exact: empty, one-chunk and split frames",
    async (fx) => {
      const core = fx.core;
      const { peer } = await fx.connectNamed("random");
      const rng = new Rng(15);
      const next = () => rng.float();
      const sizes: number[] = [];
      for (let i = 0; i < 20_000; i++) {
        const r = next();
        // Mostly small, some a few KiB to 1 MB, and three of 17 MB (one at each end, one in the middle).
        sizes.push(
          r < 0.6
            ? Math.floor(next() * 64)
            : r < 0.97
            ? Math.floor(next() * 2048)
            : Math.floor(next() * 4096),
        );
      }
      for (let i = 0; i < 40; i++) {
        sizes[Math.floor(next() * sizes.length)] = 64 * 1024 + Math.floor(next() * 960_000);
      }
      sizes[0] = 17_000_000;
      sizes[10_000] = 17_000_000;
      sizes[19_999] = 16_777_216 + 1;
      sizes[1] = 0;
      sizes[2] = 0;
      const messages = sizes.map((size, i) => bytePattern(size, i + 1));
      const seen = { count: 0 };
      // Frames of exactly one chunk: each written alone, and echoed, before the next goes.
      const alone = [new Uint8Array(0), bytePattern(1, 7), bytePattern(30, 8), bytePattern(70_000, 9)];
      for (const message of alone) {
        peer.write(encodeFrame(message));
        const before = peer.pending;
        await echoFramesUntil(core, () => peer.pending > before, 10_000, seen);
        assert.ok(bytesEqual(peer.take()!, message), `a one-chunk frame of ${message.length} B`);
      }
      // The rest as one stream cut at random points, so frames and headers are split across reads.
      const stream = concatBytes(messages.map(encodeFrame));
      const total = stream.length;
      for (let from = 0; from < total;) {
        const size = next() < 0.5 ? 1 + Math.floor(next() * 16) : 1 + Math.floor(next() * 256 * 1024);
        peer.write(stream.subarray(from, Math.min(total, from + size)));
        from += size;
      }
      await echoFramesUntil(core, () => peer.pending >= messages.length || peer.closed, 45_000, seen);
      assert.equal(peer.error, undefined);
      const received = peer.takeAll();
      assert.equal(received.length, messages.length);
      for (let i = 0; i < messages.length; i++) {
        if (!bytesEqual(received[i]!, messages[i]!)) {
          assert.fail(`message ${i} (${messages[i]!.length} B) differs`);
        }
      }
      assert.equal(seen.count, messages.length + alone.length, "every message went through a batch");
    },
  );

  coreTest("forwards a batch from client A to client B as it came", async (fx) => {
    const core = fx.core;
    const a = await fx.connectNamed("A");
    const b = await fx.connectNamed("B");
    const messages = [
      encoder.encode("one"),
      new Uint8Array(0),
      bytePattern(200_000, 3),
      encoder.encode("four"),
    ];
    a.peer.send(...messages);
    let forwarded = 0;
    await iterateUntil(core, () => b.peer.pending >= messages.length, 10_000, (r) => {
      if (!r.clientsHaveDataToRead.has(a.id)) return;
      const batch = core.takeFrames(a.id);
      if (batch) {
        forwarded += batch.count;
        core.sendFrames(b.id, batch);
      }
    });
    assert.equal(forwarded, messages.length);
    const received = b.peer.takeAll();
    assert.deepEqual(received.map((m) => m.length), messages.map((m) => m.length));
    for (let i = 0; i < messages.length; i++) {
      assert.ok(bytesEqual(received[i]!, messages[i]!), `message ${i}`);
    }
    assert.equal(a.peer.pending, 0, "nothing went back to A");
  });

  coreTest("sends the bytes as changed in place before sending", async (fx) => {
    const core = fx.core;
    const { id, peer } = await fx.connectNamed("upper");
    peer.send("abc", "", "hello world");
    await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 3);
    const batch = core.takeFrames(id)!;
    assert.equal(batch.count, 3);
    batch.forEach((buf, offset, length) => {
      for (let i = offset; i < offset + length; i++) buf[i] = buf[i]! - 32 * Number(buf[i] !== 32);
    });
    core.sendFrames(id, batch);
    await peer.until(() => peer.pending >= 3);
    assert.deepEqual(peer.takeAll().map(text), ["ABC", "", "HELLO WORLD"]);
  });

  coreTest(
    "refuses a forged batch, another core's batch and a batch already sent, with a TypeError",
    async (fx) => {
      const core = fx.core;
      const { id, peer } = await fx.connectNamed("forger");
      const forged = {
        count: 1,
        byteLength: 9,
        forEach() {},
        *[Symbol.iterator]() {},
      } as unknown as FrameBatch;
      assert.throws(() => core.sendFrames(id, forged), TypeError);
      assert.throws(() => core.sendFrames(id, Object.create(null)), TypeError);
      assert.throws(() => core.sendFrames(id, undefined as unknown as FrameBatch), TypeError);
      peer.send("real");
      await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 1);
      const batch = core.takeFrames(id)!;
      const other = new IoCore({ logger: null });
      try {
        assert.throws(() => other.sendFrames(id, batch), TypeError, "another core's batch");
      } finally {
        await other.close();
      }
      core.sendFrames(id, batch);
      assert.throws(() => core.sendFrames(id, batch), TypeError, "a batch is sent once");
      // The refusals wrote nothing: the peer's framing is intact.
      assert.equal(text(await peer.next()), "real");
      await delay(20); // A sleep: it shows that nothing else arrives.
      assert.equal(peer.pending, 0);
      assert.equal(peer.error, undefined);
    },
  );

  coreTest(
    "refuses a batch whose frame headers were written into, and sends it once restored",
    async (fx) => {
      const core = fx.core;
      const { id, peer } = await fx.connectNamed("header");
      peer.send("abc", "defg");
      await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 2);
      const batch = core.takeFrames(id)!;
      let header: { buf: Uint8Array; at: number } | undefined;
      batch.forEach((buf, offset) => header ??= { buf, at: offset - 8 });
      const { buf, at } = header!;
      const saved = buf[at]!;
      buf[at] = 200; // "abc" now claims 200 bytes: the receiver's framing would break
      assert.throws(() => core.sendFrames(id, batch), TypeError);
      buf[at] = saved;
      core.sendFrames(id, batch);
      await peer.until(() => peer.pending >= 2);
      assert.deepEqual(peer.takeAll().map(text), ["abc", "defg"]);
    },
  );

  coreTest(
    "keeps the order when getMessageFromClient, takeFrames and getMessagesFromClient are mixed",
    async (fx) => {
      const core = fx.core;
      const { id, peer } = await fx.connectNamed("mixed");
      const messages: Uint8Array[] = Array.from({ length: 40 }, (_, i) => encoder.encode(`m${i}`));
      messages[17] = bytePattern(300_000, 17); // spans reads
      for (let i = 0; i < messages.length; i += 10) {
        peer.send(...messages.slice(i, i + 10));
        const want = i + 10;
        await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === want);
      }
      const got: Uint8Array[] = [];
      got.push(core.getMessageFromClient(id)!);
      got.push(core.getMessageFromClient(id)!);
      const batch = core.takeFrames(id)!;
      assert.equal(batch.count, 38, "the batch starts after the messages already read");
      const all = [...batch];
      assert.equal(all.length, 38);
      got.push(...all.slice(0, 20));
      assert.equal(core.takeFrames(id), undefined, "nothing is left unread");
      peer.send("late one", "late two");
      await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 2);
      got.push(...all.slice(20));
      const late = core.takeFrames(id)!;
      assert.deepEqual([...late].map(text), ["late one", "late two"]);
      peer.send("x", "y", "z");
      await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 3);
      assert.equal(text(core.getMessageFromClient(id)), "x");
      assert.deepEqual(payloadsOf(core.takeFrames(id)!).map(text), ["y", "z"]);
      assert.equal(got.length, messages.length);
      for (let i = 0; i < messages.length; i++) assert.ok(bytesEqual(got[i]!, messages[i]!), `message ${i}`);
    },
  );

  coreTest("stops a batch at a raw chunk: frames, raw bytes, frames again give two batches", async (fx) => {
    const core = fx.core;
    const { id, peer } = await fx.connectNamed("switching");
    const unread = (n: number) => iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === n);
    peer.send("f1", "f2", "f3");
    await unread(3);
    core.switchClientRawConnectionMode(id, true);
    peer.write(encoder.encode("RAW BYTES"));
    await unread(4);
    core.switchClientRawConnectionMode(id, false);
    peer.send("f4", "f5");
    await unread(6);
    const first = core.takeFrames(id)!;
    assert.deepEqual([...first].map(text), ["f1", "f2", "f3"]);
    assert.equal(core.takeFrames(id), undefined, "a raw chunk is next");
    assert.equal(text(core.getMessageFromClient(id)), "RAW BYTES");
    const second = core.takeFrames(id)!;
    assert.deepEqual([...second].map(text), ["f4", "f5"]);
    // A batch sent to a connection in raw mode goes as the frames it is.
    core.switchClientRawConnectionMode(id, true);
    core.sendFrames(id, first);
    core.switchClientRawConnectionMode(id, false);
    core.sendFrames(id, second);
    await peer.until(() => peer.pending >= 5);
    assert.deepEqual(peer.takeAll().map(text), ["f1", "f2", "f3", "f4", "f5"]);
  });

  coreTest("returns undefined for an unknown client, and for a raw client's chunks", async (fx) => {
    const core = fx.core;
    assert.equal(core.takeFrames(12345), undefined);
    const id = core.addClient({ keyword: "raw one", raw: true });
    const peer = await fx.handshake("raw one");
    peer.write(encoder.encode("raw!"));
    await iterateUntil(core, () => (core.getClientInfo(id)?.unreadMessages ?? 0) > 0);
    assert.equal(core.takeFrames(id), undefined);
    assert.equal(text(concatBytes(core.getMessagesFromClient(id))), "raw!");
  });
});

describe("InlineProcessor.onFramesReceived", () => {
  coreTest(
    "gets each read's messages as a batch, and answers with sendFrames and outputMessages",
    async (fx) => {
      const core = fx.core;
      let batches = 0;
      let messages = 0;
      let perMessage = 0;
      class BatchEcho extends InlineProcessor {
        override onDataReceived(): void {
          perMessage++;
        }
        override onFramesReceived(batch: FrameBatch): void {
          batches++;
          messages += batch.count;
          this.outputMessages.push(`count ${batch.count}`);
          this.sendFrames(batch);
        }
      }
      const id = core.addClient({ keyword: "batch echo", processor: BatchEcho });
      const peer = await fx.handshake("batch echo");
      peer.send("a", "b", bytePattern(150_000, 5));
      await peer.until(() => messages === 3 && peer.pending >= 3 + batches, 10_000, "every answer");
      const received = peer.takeAll();
      assert.equal(perMessage, 0, "onDataReceived is not called for frames");
      assert.equal(messages, 3);
      assert.ok(batches >= 1 && batches <= 3, `${batches} batches`);
      // Each batch's count comes first (outputMessages before sendFrames), then the batch.
      const echoed = received.filter((m) => !text(m).startsWith("count "));
      assert.deepEqual(echoed.map((m) => m.length), [1, 1, 150_000]);
      assert.ok(bytesEqual(echoed[2]!, bytePattern(150_000, 5)));
      assert.equal(text(received[0]).startsWith("count "), true);
      assert.equal(received.length, 3 + batches);
      assert.equal(core.getClientInfo(id)?.state, "connected");
    },
  );

  coreTest("hands over unread messages as a batch when the processor is set later", async (fx) => {
    const core = fx.core;
    const { id, peer } = await fx.connectNamed("late processor");
    peer.send("one", "two");
    await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === 2);
    const got: string[] = [];
    class Collect extends InlineProcessor {
      override onFramesReceived(batch: FrameBatch): void {
        for (const message of batch) got.push(text(message));
      }
    }
    core.setInlineProcessorForClient(id, Collect);
    assert.deepEqual(got, ["one", "two"]);
    peer.send("three");
    await iterateUntil(core, () => got.length === 3);
    assert.deepEqual(got, ["one", "two", "three"]);
  });

  coreTest(
    "a connection with a processor keeps it; the class set later drives the next connection",
    async (fx) => {
      const core = fx.core;
      const tagger = (tag: string) =>
        class extends InlineProcessor {
          override onDataReceived(data: Uint8Array): void {
            this.outputMessages.push(`${tag} ${text(data)}`);
          }
        };
      const id = core.addClient({ keyword: "swapped", processor: tagger("first") });
      const peer = await fx.handshake("swapped");
      peer.send("a");
      assert.equal(text(await peer.next()), "first a");
      core.setInlineProcessorForClient(id, tagger("second"));
      peer.send("b");
      assert.equal(text(await peer.next()), "first b", "the open connection keeps its processor");
      peer.close();
      await iterateUntil(core, (e) => e.disconnected.has(id));
      const again = await fx.handshake("swapped");
      again.send("c");
      assert.equal(text(await again.next()), "second c", "the next connection gets the new class");
    },
  );

  coreTest("closes only its connection when onFramesReceived throws", async (fx) => {
    const core = fx.core;
    class Throws extends InlineProcessor {
      override onFramesReceived(): void {
        throw new Error("boom");
      }
    }
    core.addClient({ keyword: "thrower", processor: Throws });
    const peer: WirePeer = await fx.handshake("thrower");
    peer.send("x");
    await peer.waitClosed();
    const other = await fx.connectNamed("still fine");
    other.peer.send("ok");
    await iterateUntil(core, () => core.getClientInfo(other.id)!.unreadMessages === 1);
    assert.equal(text(core.getMessageFromClient(other.id)), "ok");
  });
});

describe("read memory given back and read into again", () => {
  it(
    "large and small frames sent in bulk arrive intact when the application reads them late",
    TEST_TIMEOUT,
    async () => {
      // On Deno and Node, chunks whose frames were all copied (large ones in large reads) are read
      // into again, while the small frames' views keep theirs: a wrong reuse would overwrite those.
      // Frames of 300 kB switch Node's reads to reused memory (see `_node_read_memory.ts`).
      await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
      const core = fx.core;
      const { id, peer } = await fx.connectNamed("bulk");
      const sent: Uint8Array[] = [];
      for (let i = 0; i < 120; i++) {
        sent.push(bytePattern(i % 3 === 0 ? 10 : i % 5 === 1 ? 300_000 + i : 20_000 + i * 97, i + 1));
      }
      peer.write(concatBytes(sent.map((m) => encodeFrame(m))));
      await iterateUntil(core, () => core.getClientInfo(id)!.unreadMessages === sent.length);
      const got = core.getMessagesFromClient(id);
      assert.equal(got.length, sent.length);
      for (let i = 0; i < sent.length; i++) assert.ok(bytesEqual(got[i]!, sent[i]!), `message ${i} intact`);
    },
  );
});
