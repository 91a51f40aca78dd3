/**
 * Streamed messages: a frame over `streamThresholdBytes` is delivered as a byte stream while it
 * arrives, in order, with bounded memory; cancel, a peer that dies mid-stream, and the unchanged
 * default.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame, FrameDecoder } from "../core/wire/codec.ts";
import { InboundStream } from "../core/connection/message_stream.ts";
import { LARGEST_WHOLE_MESSAGE_ON_BUN, resolveLimits } from "../core/option_tables.ts";
import {
  AsockioError,
  ConnectionClosedError,
  ConnectionResetError,
  InlineProcessor,
  IoCore,
  type MessageStream,
  MessageTooLargeError,
  StreamLengthError,
  UnsupportedError,
} from "../mod.ts";
import { startCore } from "./_core_fixture.ts";
import { STREAM_OPTIONS, untilClientIn } from "./_stream_helpers.ts";
import { bytePattern, bytesEqual, MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { frameHeader, text } from "./_wire_peer.ts";

/** Reads a stream to its end; returns its bytes. */
async function readAll(readable: ReadableStream<Uint8Array>, byteLength: number): Promise<Uint8Array> {
  const out = new Uint8Array(byteLength);
  let at = 0;
  for await (const chunk of readable) {
    out.set(chunk, at);
    at += chunk.length;
  }
  assert.equal(at, byteLength);
  return out;
}

describe("FrameDecoder with a stream threshold", () => {
  it("streams a frame over the threshold without assembling it, fed byte by byte", () => {
    const payload = bytePattern(1000);
    const wire = new Uint8Array([...encodeFrame(new Uint8Array([1])), ...encodeFrame(payload)]);
    const decoder = new FrameDecoder({ streamThresholdBytes: 100 });
    const whole: Uint8Array[] = [];
    const streamed: number[] = [];
    for (const byte of [...wire, ...encodeFrame(new Uint8Array([2]))]) {
      decoder.push(new Uint8Array([byte]));
      for (;;) {
        const piece = decoder.takeStreamBytes();
        if (piece !== undefined) {
          streamed.push(...piece);
          continue;
        }
        if (decoder.streamRemainingBytes > 0) break;
        const message = decoder.next();
        if (message === undefined && decoder.streamRemainingBytes === 0) break;
        if (message !== undefined) whole.push(message.slice());
      }
    }
    assert.deepEqual(whole.map((m) => [...m]), [[1], [2]]);
    assert.ok(bytesEqual(new Uint8Array(streamed), payload));
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("refuses a frame over maxStreamedMessageBytes, and keeps maxMessageBytes for whole ones", () => {
    const streaming = new FrameDecoder({ streamThresholdBytes: 10, maxStreamedMessageBytes: 100 });
    streaming.push(frameHeader(101));
    assert.throws(() => streaming.next(), MessageTooLargeError);
    const whole = new FrameDecoder({ maxMessageBytes: 10, streamThresholdBytes: 50 });
    whole.push(frameHeader(20));
    assert.throws(() => whole.next(), MessageTooLargeError);
  });

  it("a BYOB reader reads an InboundStream into its own buffer, filled from as many pieces as fit", async () => {
    let released = 0;
    const stream = new InboundStream(6, { released: (n) => released += n, finished() {} });
    stream.push(new Uint8Array([1, 2, 3, 4]));
    stream.push(new Uint8Array([5, 6]));
    let reader: ReadableStreamBYOBReader;
    try {
      reader = stream.readable.getReader({ mode: "byob" });
    } catch {
      return; // this runtime has no BYOB readers
    }
    const first = await reader.read(new Uint8Array(3));
    assert.deepEqual([...first.value!], [1, 2, 3]);
    const second = await reader.read(new Uint8Array(8));
    assert.deepEqual([...second.value!], [4, 5, 6], "one read fills its buffer from several pieces");
    assert.equal(released, 6);
  });
});

describe("InboundStream.pushCopy (read memory the transport reuses)", () => {
  /** Pushes `payload` with pushCopy in `piece`-byte pieces of one reused buffer, wiped after each push. */
  function pushFromReusedBuffer(
    stream: InboundStream,
    payload: Uint8Array,
    piece: number,
    from = 0,
    to = payload.length,
  ) {
    const reused = new Uint8Array(piece);
    for (let at = from; at < to; at += piece) {
      const n = Math.min(piece, to - at);
      reused.set(payload.subarray(at, at + n));
      stream.pushCopy(reused.subarray(0, n));
      reused.fill(0xee); // the transport reads the next bytes into it
    }
  }

  it("keeps no view of a piece: a takeStreamBytes(false) leaves lentViews as it was", () => {
    const decoder = new FrameDecoder({ streamThresholdBytes: 10 });
    const before = decoder.lentViews;
    decoder.push(encodeFrame(bytePattern(100)));
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.takeStreamBytes(false)?.length, 100);
    assert.equal(decoder.lentViews, before);
    decoder.push(encodeFrame(bytePattern(100)));
    decoder.next();
    decoder.takeStreamBytes();
    assert.equal(decoder.lentViews, before + 1);
  });

  it("push and pushCopy answer a waiting BYOB read straight from the piece, and queue the rest", async () => {
    for (const method of ["push", "pushCopy"] as const) {
      let released = 0;
      const stream = new InboundStream(10, { released: (n) => released += n, finished() {} });
      let reader: ReadableStreamBYOBReader;
      try {
        reader = stream.readable.getReader({ mode: "byob" });
      } catch {
        return; // this runtime has no BYOB readers
      }
      const pending = reader.read(new Uint8Array(4));
      await new Promise((resolve) => setTimeout(resolve, 0)); // the stream's pull runs and waits
      const piece = bytePattern(10);
      stream[method](piece);
      assert.equal(released, 4, `the waiting read took its 4 bytes within ${method}`);
      const expected = [...piece];
      if (method === "pushCopy") piece.fill(0); // its memory is reused at once
      assert.deepEqual([...(await pending).value!], expected.slice(0, 4));
      assert.equal(released, 4);
      assert.equal(stream.queuedBytes, 6);
      const rest = await reader.read(new Uint8Array(16));
      assert.deepEqual([...rest.value!], expected.slice(4));
      assert.ok((await reader.read(new Uint8Array(1))).done);
      assert.equal(released, 10);
    }
  });

  it("delivers every byte in order through its reused buffers, to BYOB and default readers", async () => {
    const size = 3 * MiB + 12_345;
    const payload = bytePattern(size);
    for (const mode of ["byob", "default"] as const) {
      let released = 0;
      let finished = false;
      const stream = new InboundStream(size, {
        released: (n) => released += n,
        finished: () => finished = true,
      });
      const got = new Uint8Array(size);
      let at = 0;
      let pushed = 0;
      // Push up to ~1.2 MiB ahead of the reader, as the high-water mark allows, then read some.
      const pushAhead = () => {
        const to = Math.min(size, at + 1_200_000);
        if (to > pushed) {
          pushFromReusedBuffer(stream, payload, 65_536 + 7, pushed, to);
          pushed = to;
        }
      };
      pushAhead();
      if (mode === "byob") {
        let reader: ReadableStreamBYOBReader;
        try {
          reader = stream.readable.getReader({ mode: "byob" });
        } catch {
          continue;
        }
        let buffer = new Uint8Array(100_000);
        for (;;) {
          const { value, done } = await reader.read(buffer);
          if (done) break;
          got.set(value!, at);
          at += value!.length;
          buffer = new Uint8Array(value!.buffer);
          pushAhead();
        }
      } else {
        const reader = stream.readable.getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          got.set(value!, at);
          at += value!.length;
          pushAhead();
        }
      }
      assert.equal(at, size, mode);
      assert.ok(bytesEqual(got, payload), `${mode}: the bytes read differ from the bytes pushed`);
      assert.equal(released, size);
      assert.ok(finished);
    }
  });
});

describe("streamed messages through a core", () => {
  it("delivers a 24 MiB message as a stream, in order between whole messages", TEST_TIMEOUT, async () => {
    await using fx = await startCore(STREAM_OPTIONS);
    const { id, peer } = await fx.connectNamed("big");
    const payload = bytePattern(24 * MiB, 7);
    peer.write(encodeFrame(new TextEncoder().encode("before")));
    peer.write(encodeFrame(payload));
    peer.write(encodeFrame(new TextEncoder().encode("after")));
    await untilClientIn(fx.core, "clientsHaveDataToRead", id);
    assert.deepEqual(fx.core.getMessagesFromClient(id).map(text), ["before"]);
    await untilClientIn(fx.core, "clientsHaveMessageStream", id);
    assert.equal(fx.core.takeFrames(id), undefined);
    assert.deepEqual(fx.core.getMessagesFromClient(id), []);
    const stream = fx.core.takeMessageStream(id)!;
    assert.equal(stream.byteLength, payload.length);
    assert.equal(fx.core.takeMessageStream(id), undefined, "a stream is taken once");
    assert.ok(bytesEqual(await readAll(stream.readable, stream.byteLength), payload));
    await untilClientIn(fx.core, "clientsHaveDataToRead", id);
    assert.deepEqual(fx.core.getMessagesFromClient(id).map(text), ["after"]);
  });

  it("keeps inputBytes bounded while the reader sleeps", TEST_TIMEOUT, async () => {
    await using fx = await startCore(STREAM_OPTIONS);
    const { id, peer } = await fx.connectNamed("slow");
    const payload = bytePattern(32 * MiB, 3);
    peer.write(encodeFrame(payload));
    await untilClientIn(fx.core, "clientsHaveMessageStream", id);
    const stream = fx.core.takeMessageStream(id)!;
    // Nobody reads: the connection pauses near the 1 MiB high-water mark.
    await waitFor(
      () => fx.core.stats().readingPaused || fx.core.stats().inputBytes > 1 * MiB,
      10_000,
      "a pause",
    );
    let peak = 0;
    for (let i = 0; i < 20; i++) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      peak = Math.max(peak, fx.core.stats().inputBytes);
    }
    assert.ok(peak < 4 * MiB, `inputBytes ${peak} stays near the high-water mark`);
    assert.ok(bytesEqual(await readAll(stream.readable, stream.byteLength), payload));
    await waitFor(() => fx.core.stats().inputBytes === 0, 10_000, "input released");
  });

  it("cancel discards the rest, and the connection goes on", TEST_TIMEOUT, async () => {
    await using fx = await startCore(STREAM_OPTIONS);
    const { id, peer } = await fx.connectNamed("cancel");
    peer.write(encodeFrame(bytePattern(16 * MiB, 5)));
    peer.write(encodeFrame(new TextEncoder().encode("next")));
    await untilClientIn(fx.core, "clientsHaveMessageStream", id);
    const stream = fx.core.takeMessageStream(id)!;
    for await (const chunk of stream.readable) {
      assert.ok(chunk.length > 0);
      break; // cancels
    }
    await untilClientIn(fx.core, "clientsHaveDataToRead", id);
    assert.deepEqual(fx.core.getMessagesFromClient(id).map(text), ["next"]);
    await waitFor(() => fx.core.stats().inputBytes === 0, 10_000, "input released");
  });

  it("a peer that dies mid-stream makes the reader fail, never hang", TEST_TIMEOUT, async () => {
    await using fx = await startCore(STREAM_OPTIONS);
    const { id, peer } = await fx.connectNamed("dies");
    peer.write(frameHeader(8 * MiB));
    peer.write(bytePattern(2 * MiB));
    await untilClientIn(fx.core, "clientsHaveMessageStream", id);
    const stream = fx.core.takeMessageStream(id)!;
    const reading = readAll(stream.readable, stream.byteLength);
    peer.close();
    await assert.rejects(reading, (err) => {
      assert.ok(err instanceof ConnectionClosedError || err instanceof ConnectionResetError, String(err));
      assert.ok(err instanceof AsockioError);
      return true;
    });
    await waitFor(() => fx.core.stats().inputBytes === 0, 10_000, "input released");
  });

  it(
    "a per-client threshold overrides the core's, and no threshold keeps messages whole",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({ listeners: STREAM_OPTIONS.listeners });
      const whole = fx.core.addClient({ keyword: "whole" });
      const streamed = fx.core.addClient({ keyword: "streamed", streamThresholdBytes: 1024 });
      const a = await fx.handshake("whole");
      const b = await fx.handshake("streamed");
      const payload = bytePattern(2 * MiB, 9);
      a.write(encodeFrame(payload));
      b.write(encodeFrame(payload));
      await untilClientIn(fx.core, "clientsHaveDataToRead", whole);
      const [message] = fx.core.getMessagesFromClient(whole);
      assert.ok(bytesEqual(message!, payload));
      assert.equal(fx.core.takeMessageStream(whole), undefined);
      let taken: MessageStream | undefined;
      await waitFor(() => (taken ??= fx.core.takeMessageStream(streamed)) !== undefined, 10_000, "a stream");
      const stream = taken!;
      assert.ok(bytesEqual(await readAll(stream.readable, stream.byteLength), payload));
    },
  );

  it("messages() stops before a stream and goes on once it is read", TEST_TIMEOUT, async () => {
    await using fx = await startCore(STREAM_OPTIONS);
    const { id, peer } = await fx.connectNamed("iterated");
    const payload = bytePattern(4 * MiB, 11);
    peer.write(encodeFrame(new TextEncoder().encode("one")));
    peer.write(encodeFrame(payload));
    peer.write(encodeFrame(new TextEncoder().encode("two")));
    const seen: string[] = [];
    const reading = (async () => {
      for await (const message of fx.core.messages(id)) {
        seen.push(text(message));
        if (seen.length === 2) return;
      }
    })();
    await untilClientIn(fx.core, "clientsHaveMessageStream", id);
    assert.deepEqual(seen, ["one"], "the message after the stream waits");
    const stream = fx.core.takeMessageStream(id)!;
    assert.ok(bytesEqual(await readAll(stream.readable, stream.byteLength), payload));
    await reading;
    assert.deepEqual(seen, ["one", "two"]);
  });

  it("a client with a processor gets whole messages whatever the threshold", TEST_TIMEOUT, async () => {
    const received: number[] = [];
    class Count extends InlineProcessor {
      override onDataReceived(message: Uint8Array): void {
        received.push(message.length);
      }
    }
    await using fx = await startCore(STREAM_OPTIONS);
    fx.core.addClient({ keyword: "processed", processor: Count });
    const peer = await fx.handshake("processed");
    peer.write(encodeFrame(bytePattern(3 * MiB)));
    await waitFor(() => received.length === 1, 10_000, "the whole message");
    assert.deepEqual(received, [3 * MiB]);
  });

  it("lowers maxMessageBytes to what one Bun buffer holds, and says why", () => {
    const warnings: string[] = [];
    const logger = { warn: (message: string) => warnings.push(message) };
    const limits = { maxMessageBytes: 8 * 1024 * MiB };
    assert.equal(resolveLimits(limits, "bun", logger).maxMessageBytes, LARGEST_WHOLE_MESSAGE_ON_BUN);
    assert.match(warnings[0]!, /Bun's largest buffer is 4 GiB/);
    assert.equal(resolveLimits(limits, "node", logger).maxMessageBytes, 8 * 1024 * MiB);
    assert.equal(resolveLimits(undefined, "bun", logger).maxMessageBytes, 64 * MiB);
    assert.equal(warnings.length, 1);
  });

  it(
    "a processor with onMessageStream gets the stream in order, and the next message after it",
    TEST_TIMEOUT,
    async () => {
      const seen: string[] = [];
      const payload = bytePattern(6 * MiB, 23);
      class Upload extends InlineProcessor {
        override onDataReceived(message: Uint8Array): void {
          seen.push(text(message));
        }
        override async onMessageStream(stream: MessageStream): Promise<void> {
          const bytes = await readAll(stream.readable, stream.byteLength);
          seen.push(`stream ${bytesEqual(bytes, payload)}`);
          this.outputMessages.push(`received ${bytes.length}`);
        }
      }
      await using fx = await startCore(STREAM_OPTIONS);
      fx.core.addClient({ keyword: "upload", processor: Upload });
      const peer = await fx.handshake("upload");
      peer.write(encodeFrame(new TextEncoder().encode("a")));
      peer.write(encodeFrame(payload));
      peer.write(encodeFrame(new TextEncoder().encode("b")));
      assert.equal(text(await peer.next()), `received ${payload.length}`);
      await waitFor(() => seen.length === 3, 10_000, "three deliveries");
      assert.deepEqual(seen, ["a", "stream true", "b"]);
    },
  );

  it("checks the new options", () => {
    assert.throws(() => new IoCore({ streamThresholdBytes: -1 }), RangeError);
    assert.throws(() => new IoCore({ limits: { maxStreamedMessageBytes: 0.5 } }), RangeError);
    const core = new IoCore();
    assert.throws(
      () => core.addClient({ keyword: "x", streamThresholdBytes: "1" as unknown as number }),
      TypeError,
    );
  });
});

/** Yields `bytes` in pieces of `piece` bytes, then `extra` more bytes. */
async function* pieces(bytes: Uint8Array, piece = 64 * 1024, extra = 0): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += piece) yield bytes.subarray(at, at + piece);
  if (extra > 0) yield new Uint8Array(extra);
}

describe("sendMessageStream", () => {
  it("writes a 24 MiB stream, and messages sent after it follow it whole", TEST_TIMEOUT, async () => {
    await using fx = await startCore(STREAM_OPTIONS);
    const { id, peer } = await fx.connectNamed("sink");
    const payload = bytePattern(24 * MiB, 13);
    fx.core.sendMessageToClient(id, "before");
    const sending = fx.core.sendMessageStream(id, pieces(payload), payload.length);
    fx.core.sendMessageToClient(id, "after");
    const second = fx.core.sendMessageStream(id, new Blob([new Uint8Array([1, 2, 3])]).stream(), 3);
    fx.core.sendMessagesToClient(id, ["last"]);
    await Promise.all([sending, second]);
    await peer.until(() => peer.pending >= 5, 20_000, "five messages");
    const got = peer.takeAll();
    assert.equal(text(got[0]), "before");
    assert.ok(bytesEqual(got[1]!, payload));
    assert.equal(text(got[2]), "after");
    assert.deepEqual([...got[3]!], [1, 2, 3]);
    assert.equal(text(got[4]), "last");
    await waitFor(() => fx.core.stats().outputBytes === 0, 10_000, "output released");
  });

  it(
    "a short or long source rejects with StreamLengthError and closes only that connection",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(STREAM_OPTIONS);
      const short = await fx.connectNamed("short");
      const long = await fx.connectNamed("long");
      const other = await fx.connectNamed("other");
      await assert.rejects(
        fx.core.sendMessageStream(short.id, pieces(bytePattern(1000)), 2000),
        StreamLengthError,
      );
      await assert.rejects(
        fx.core.sendMessageStream(long.id, pieces(bytePattern(1000), 100, 1), 1000),
        StreamLengthError,
      );
      await short.peer.until(() => short.peer.closed, 10_000, "short closed");
      await long.peer.until(() => long.peer.closed, 10_000, "long closed");
      assert.equal(short.peer.pending, 0, "no frame arrives as complete");
      assert.equal(long.peer.pending, 0, "no frame arrives as complete");
      fx.core.sendMessageToClient(other.id, "still here");
      assert.equal(text(await other.peer.next()), "still here");
    },
  );

  it(
    "a source that throws rejects with an AsockioError and closes that connection",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(STREAM_OPTIONS);
      const { id, peer } = await fx.connectNamed("thrower");
      const boom = new Error("boom");
      async function* failing(): AsyncGenerator<Uint8Array> {
        yield new Uint8Array(10);
        throw boom;
      }
      await assert.rejects(fx.core.sendMessageStream(id, failing(), 100), (err) => {
        assert.ok(err instanceof AsockioError);
        assert.equal((err as Error).cause, boom);
        return true;
      });
      await peer.until(() => peer.closed, 10_000, "closed");
      await assert.rejects(
        fx.core.sendMessageStream(id, pieces(new Uint8Array(1)), 1),
        ConnectionClosedError,
      );
    },
  );

  it("forwards a 32 MiB stream from one peer to another with bounded memory", TEST_TIMEOUT, async () => {
    await using fx = await startCore(STREAM_OPTIONS);
    const from = await fx.connectNamed("from");
    const to = await fx.connectNamed("to");
    const payload = bytePattern(32 * MiB, 17);
    from.peer.write(encodeFrame(payload));
    await untilClientIn(fx.core, "clientsHaveMessageStream", from.id);
    const stream = fx.core.takeMessageStream(from.id)!;
    let peak = 0;
    const timer = setInterval(() => {
      const { inputBytes, outputBytes } = fx.core.stats();
      peak = Math.max(peak, inputBytes + outputBytes);
    }, 5);
    try {
      await fx.core.sendMessageStream(to.id, stream.readable, stream.byteLength);
    } finally {
      clearInterval(timer);
    }
    await to.peer.until(() => to.peer.pending === 1, 20_000, "the forwarded message");
    assert.ok(bytesEqual(to.peer.take()!, payload));
    assert.ok(peak < 8 * MiB, `input and output held stay bounded (peak ${peak})`);
  });

  it(
    "a processor sends a stream with this.sendMessageStream, its other output after it",
    TEST_TIMEOUT,
    async () => {
      const payload = bytePattern(8 * MiB, 19);
      let sent: Promise<void> | undefined;
      class Dump extends InlineProcessor {
        override onDataReceived(): void {
          sent = this.sendMessageStream(pieces(payload), payload.length);
          this.outputMessages.push("after");
        }
      }
      await using fx = await startCore(STREAM_OPTIONS);
      fx.core.addClient({ keyword: "dump", processor: Dump });
      const peer = await fx.handshake("dump");
      peer.send("go");
      await peer.until(() => peer.pending >= 2, 20_000, "the stream and the message after it");
      await sent;
      const [first, second] = peer.takeAll();
      assert.ok(bytesEqual(first!, payload));
      assert.equal(text(second), "after");
    },
  );

  it("refuses UDP clients, raw mode and bad arguments", TEST_TIMEOUT, async () => {
    await using fx = await startCore(STREAM_OPTIONS);
    const { id } = await fx.connectNamed("raw");
    fx.core.switchClientRawConnectionMode(id, true);
    await assert.rejects(fx.core.sendMessageStream(id, pieces(new Uint8Array(1)), 1), UnsupportedError);
    const udp = fx.core.addClient({
      keyword: "udp",
      connect: { transport: "udp", hostname: "127.0.0.1", port: 9 },
    });
    await assert.rejects(fx.core.sendMessageStream(udp, pieces(new Uint8Array(1)), 1), UnsupportedError);
    await assert.rejects(fx.core.sendMessageStream(id, pieces(new Uint8Array(1)), -1), RangeError);
    await assert.rejects(fx.core.sendMessageStream(id, "nope" as never, 1), TypeError);
  });
});
