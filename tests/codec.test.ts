import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  encodeFrame,
  encodeFrames,
  encodeFramesInto,
  FRAME_HEADER_BYTES,
  FrameDecoder,
  framedLength,
  framedRunBytes,
  framedRunEnd,
  readFrameLength,
  writeFrameHeader,
} from "../core/wire/codec.ts";
import { frameLengthAt } from "../core/wire/frame_header.ts";
import { bytesEqual, concatBytes } from "../core/wire/bytes.ts";
import { MessageTooLargeError } from "../core/errors.ts";
import { Rng } from "./_stream_check.ts";

function randomInt(rand: () => number, maxExclusive: number): number {
  return Math.floor(rand() * maxExclusive);
}

/** A payload whose bytes depend on `seed`, so a mix-up between messages shows. */
function payload(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (seed * 31 + i * 7) & 0xff;
  return out;
}

/** A raw 8-byte header from two 32-bit halves, for lengths no valid payload could have. */
function rawHeader(lo: number, hi: number): Uint8Array {
  const header = new Uint8Array(8);
  const view = new DataView(header.buffer);
  view.setUint32(0, lo, true);
  view.setUint32(4, hi, true);
  return header;
}

/** Drains every message the decoder has ready. */
function drain(decoder: FrameDecoder, into: Uint8Array[] = []): Uint8Array[] {
  for (let msg = decoder.next(); msg !== undefined; msg = decoder.next()) into.push(msg);
  return into;
}

/** Cuts `wire` at random points into chunks (each its own copy, as a socket would deliver). */
function randomChunks(rand: () => number, wire: Uint8Array, maxChunk: number): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  for (let at = 0; at < wire.length;) {
    const size = Math.min(wire.length - at, 1 + randomInt(rand, maxChunk));
    chunks.push(wire.slice(at, at + size));
    at += size;
  }
  return chunks;
}

function assertMessages(actual: Uint8Array[], expected: Uint8Array[]): void {
  assert.equal(actual.length, expected.length, "message count");
  for (let i = 0; i < expected.length; i++) {
    assert.ok(bytesEqual(actual[i], expected[i]), `message ${i} differs`);
  }
}

describe("encoding", () => {
  it("prefixes the payload with its 8-byte little-endian length", () => {
    const frame = encodeFrame(new Uint8Array([0xaa, 0xbb, 0xcc]));
    assert.deepEqual([...frame], [3, 0, 0, 0, 0, 0, 0, 0, 0xaa, 0xbb, 0xcc]);
    assert.equal(FRAME_HEADER_BYTES, 8);
  });

  it("encodes a 300-byte payload with a two-byte length and copies it exactly", () => {
    const body = payload(300, 1);
    const frame = encodeFrame(body);
    assert.deepEqual([...frame.subarray(0, 8)], [0x2c, 0x01, 0, 0, 0, 0, 0, 0]);
    assert.ok(bytesEqual(frame.subarray(8), body));
  });

  it("frameLengthAt reads every header as readFrameLength does, at an offset, across 2^31, 2^32 and 2^53", () => {
    const lengths = [0, 1, 300, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 5, 2 ** 53 - 1];
    for (const length of lengths) {
      const bytes = new Uint8Array(3 + FRAME_HEADER_BYTES);
      writeFrameHeader(bytes, 3, length);
      const expected = readFrameLength(new DataView(bytes.buffer), 3);
      assert.equal(expected, length);
      assert.equal(frameLengthAt(bytes, 3), expected, `length ${length}`);
    }
  });

  it("encodes an empty payload as a bare header", () => {
    assert.deepEqual([...encodeFrame(new Uint8Array(0))], [0, 0, 0, 0, 0, 0, 0, 0]);
  });

  it("copies the payload of a view, not its whole backing buffer", () => {
    const backing = new Uint8Array([1, 2, 3, 4, 5]);
    assert.deepEqual([...encodeFrame(backing.subarray(1, 3))], [2, 0, 0, 0, 0, 0, 0, 0, 2, 3]);
  });

  it("writes headers above 2^32 exactly", () => {
    const target = new Uint8Array(10).fill(0xff);
    writeFrameHeader(target, 1, 2 ** 32);
    assert.deepEqual([...target], [0xff, 0, 0, 0, 0, 1, 0, 0, 0, 0xff]);
    writeFrameHeader(target, 2, Number.MAX_SAFE_INTEGER);
    assert.deepEqual([...target.subarray(2)], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0]);
    writeFrameHeader(target, 0, 0x0102030405);
    assert.deepEqual([...target.subarray(0, 8)], [5, 4, 3, 2, 1, 0, 0, 0]);
  });

  it("refuses invalid header lengths and offsets", () => {
    const target = new Uint8Array(16);
    assert.throws(() => writeFrameHeader(target, 0, -1), RangeError);
    assert.throws(() => writeFrameHeader(target, 0, 1.5), RangeError);
    assert.throws(() => writeFrameHeader(target, 0, 2 ** 53), RangeError);
    assert.throws(() => writeFrameHeader(target, 0, NaN), RangeError);
    assert.throws(() => writeFrameHeader(target, 9, 1), RangeError);
    assert.throws(() => writeFrameHeader(target, -1, 1), RangeError);
    writeFrameHeader(target, 8, 1); // exactly fits
  });

  it("encodes a batch as the frames back to back", () => {
    const batch = [payload(3, 1), new Uint8Array(0), payload(40, 2), payload(17, 3)];
    const wire = encodeFrames(batch);
    assert.equal(framedLength(batch), 8 * 4 + 3 + 40 + 17);
    assert.equal(wire.length, framedLength(batch));
    assert.ok(bytesEqual(wire, concatBytes(batch.map(encodeFrame))));
    assert.equal(encodeFrames([]).length, 0);
    assert.equal(framedLength([]), 0);
  });

  it("encodes a batch into a buffer at an offset and returns the end", () => {
    const batch = [payload(5, 1), payload(20, 2)];
    const target = new Uint8Array(4 + framedLength(batch) + 3).fill(0xee);
    const end = encodeFramesInto(target, 4, batch);
    assert.equal(end, 4 + framedLength(batch));
    assert.ok(bytesEqual(target.subarray(4, end), encodeFrames(batch)));
    assert.deepEqual([...target.subarray(0, 4)], [0xee, 0xee, 0xee, 0xee]);
    assert.deepEqual([...target.subarray(end)], [0xee, 0xee, 0xee]);
  });

  it("writes nothing when the batch does not fit", () => {
    const batch = [payload(5, 1), payload(20, 2)];
    const target = new Uint8Array(framedLength(batch) + 1).fill(0xee);
    assert.throws(() => encodeFramesInto(target, 2, batch), RangeError);
    assert.ok(target.every((b) => b === 0xee));
    assert.throws(() => encodeFramesInto(target, -1, batch), RangeError);
  });
});

describe("FrameDecoder options", () => {
  it("defaults maxMessageBytes to 64 MiB", () => {
    assert.equal(DEFAULT_MAX_MESSAGE_BYTES, 64 * 1024 * 1024);
    assert.equal(new FrameDecoder().maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES);
    assert.equal(new FrameDecoder({}).maxMessageBytes, DEFAULT_MAX_MESSAGE_BYTES);
  });

  it("accepts every integer limit from 0 to 2^53-1", () => {
    assert.equal(new FrameDecoder({ maxMessageBytes: 0 }).maxMessageBytes, 0);
    assert.equal(
      new FrameDecoder({ maxMessageBytes: Number.MAX_SAFE_INTEGER }).maxMessageBytes,
      Number.MAX_SAFE_INTEGER,
    );
  });

  it("rejects a limit that is not a number with a TypeError", () => {
    assert.throws(() => new FrameDecoder({ maxMessageBytes: "10" as unknown as number }), TypeError);
    assert.throws(() => new FrameDecoder({ maxMessageBytes: 10n as unknown as number }), TypeError);
    assert.throws(() => new FrameDecoder({ maxMessageBytes: null as unknown as number }), TypeError);
  });

  it("rejects a limit outside [0, 2^53-1] or not an integer with a RangeError", () => {
    for (const bad of [-1, 1.5, NaN, Infinity, -Infinity, 2 ** 53]) {
      assert.throws(() => new FrameDecoder({ maxMessageBytes: bad }), RangeError, String(bad));
    }
  });
});

describe("codec arguments", () => {
  // Calls with misuse on purpose.
  // deno-lint-ignore no-explicit-any
  const loose = (value: unknown) => value as any;
  const NOT_BYTES: unknown[] = ["hi", 12, null, undefined, new ArrayBuffer(2), new Uint16Array(1), [1, 2]];

  it("encodeFrame and encodeFrames refuse anything but Uint8Array payloads with a TypeError", () => {
    for (const bad of NOT_BYTES) {
      assert.throws(() => encodeFrame(loose(bad)), /Cannot encode frame: payload must be a Uint8Array/);
      assert.throws(
        () => encodeFrames([new Uint8Array(1), loose(bad)]),
        /Cannot encode frames: payloads\[1\] must be a Uint8Array/,
      );
    }
    assert.throws(() => encodeFrame(loose("hello")), /got a string/);
    assert.throws(() => encodeFrame(loose(new ArrayBuffer(1))), /got an ArrayBuffer/);
    assert.throws(() => encodeFrames(loose(null)), /payloads must be an array/);
    assert.throws(() => framedLength(loose("abc")), TypeError);
  });

  it("FrameDecoder refuses unknown options and non-byte chunks, and decodes on after a refusal", () => {
    assert.throws(() => new FrameDecoder(loose({ maxMesageBytes: 1 })), /did you mean maxMessageBytes\?/);
    assert.throws(() => new FrameDecoder(loose(5)), /options must be an object/);
    const decoder = new FrameDecoder();
    for (const bad of NOT_BYTES) assert.throws(() => decoder.push(loose(bad)), /chunk must be a Uint8Array/);
    decoder.push(encodeFrame(new Uint8Array([7])));
    assert.deepEqual(decoder.next(), new Uint8Array([7]));
  });
});

describe("FrameDecoder", () => {
  it("round-trips messages pushed as one chunk", () => {
    const batch = [payload(1, 1), payload(100, 2), payload(5000, 3), new Uint8Array(0), payload(8, 4)];
    const decoder = new FrameDecoder();
    decoder.push(encodeFrames(batch));
    assertMessages(drain(decoder), batch);
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("round-trips frames pushed one at a time with next() between them", () => {
    const decoder = new FrameDecoder();
    for (let i = 0; i < 50; i++) {
      const msg = payload(i * 3, i);
      decoder.push(encodeFrame(msg));
      const out = decoder.next();
      assert.ok(out !== undefined && bytesEqual(out, msg), `message ${i}`);
      assert.equal(decoder.next(), undefined);
    }
  });

  it("decodes a stream fed one byte at a time, calling next() after each byte", () => {
    const batch = [payload(3, 1), new Uint8Array(0), payload(20, 2), payload(1, 3), new Uint8Array(0)];
    const wire = encodeFrames(batch);
    const decoder = new FrameDecoder();
    const out: Uint8Array[] = [];
    for (let i = 0; i < wire.length; i++) {
      decoder.push(wire.subarray(i, i + 1));
      drain(decoder, out);
      // Only the bytes of whole frames are released.
      assert.equal(decoder.bufferedBytes, i + 1 - framedLength(out));
    }
    assertMessages(out, batch);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("decodes a stream pushed entirely one byte at a time before any next()", () => {
    const batch = Array.from({ length: 40 }, (_, i) => payload(i % 7 === 0 ? 0 : i * 5, i));
    const wire = encodeFrames(batch);
    const decoder = new FrameDecoder();
    for (let i = 0; i < wire.length; i++) decoder.push(wire.slice(i, i + 1));
    assert.equal(decoder.bufferedBytes, wire.length);
    assertMessages(drain(decoder), batch);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("waits for a header split at every position, then returns the message", () => {
    const msg = payload(12, 9);
    const frame = encodeFrame(msg);
    for (let split = 1; split < FRAME_HEADER_BYTES; split++) {
      const decoder = new FrameDecoder();
      decoder.push(frame.slice(0, split));
      assert.equal(decoder.next(), undefined, `split ${split}`);
      assert.equal(decoder.bufferedBytes, split);
      decoder.push(frame.slice(split));
      const out = decoder.next();
      assert.ok(out !== undefined && bytesEqual(out, msg), `split ${split}`);
      assert.equal(decoder.next(), undefined);
    }
  });

  it("splits a header across three chunks following a whole frame", () => {
    const first = payload(4, 1);
    const second = payload(30, 2);
    const wire = encodeFrames([first, second]);
    const decoder = new FrameDecoder();
    decoder.push(wire.slice(0, 12 + 2)); // first frame + 2 header bytes
    decoder.push(wire.slice(14, 17)); // 3 more header bytes
    decoder.push(wire.slice(17, 25)); // the rest of the header and 5 payload bytes
    const a = decoder.next();
    assert.ok(a !== undefined && bytesEqual(a, first));
    assert.equal(decoder.next(), undefined);
    decoder.push(wire.slice(25));
    const b = decoder.next();
    assert.ok(b !== undefined && bytesEqual(b, second));
  });

  it("decodes many frames from one chunk as views of that chunk", () => {
    const batch = Array.from({ length: 1000 }, (_, i) => payload(i % 50, i));
    const wire = encodeFrames(batch);
    const decoder = new FrameDecoder();
    decoder.push(wire);
    const out = drain(decoder);
    assertMessages(out, batch);
    let offset = 0;
    for (const msg of out) {
      assert.equal(msg.buffer, wire.buffer);
      assert.equal(msg.byteOffset, offset + 8);
      offset += 8 + msg.length;
    }
  });

  it("returns a message within one chunk zero-copy, even at an offset in the chunk's buffer", () => {
    const backing = new Uint8Array(100);
    const wire = encodeFrames([payload(10, 1), payload(20, 2)]);
    backing.set(wire, 7);
    const chunk = backing.subarray(7, 7 + wire.length);
    const decoder = new FrameDecoder();
    decoder.push(chunk);
    const a = decoder.next() as Uint8Array;
    const b = decoder.next() as Uint8Array;
    assert.equal(a.buffer, backing.buffer);
    assert.equal(b.buffer, backing.buffer);
    assert.equal(a.byteOffset, 7 + 8);
    assert.equal(b.byteOffset, 7 + 18 + 8);
    assert.ok(bytesEqual(b, payload(20, 2)));
  });

  it("copies a message spanning chunks into one buffer of its exact frame size", () => {
    const msg = payload(1000, 5);
    const frame = encodeFrame(msg);
    const decoder = new FrameDecoder();
    const chunks = [frame.slice(0, 300), frame.slice(300, 700), frame.slice(700)];
    decoder.push(chunks[0]);
    assert.equal(decoder.next(), undefined);
    decoder.push(chunks[1]);
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.bufferedBytes, 700);
    decoder.push(chunks[2]);
    const out = decoder.next() as Uint8Array;
    assert.ok(bytesEqual(out, msg));
    // One buffer of the frame's exact size, the header rebuilt in front (so it can be sent on as is).
    assert.equal(out.byteOffset, 8);
    assert.equal(out.buffer.byteLength, 1008);
    assert.deepEqual([...new Uint8Array(out.buffer, 0, 8)], [...frame.subarray(0, 8)]);
    for (const chunk of chunks) assert.notEqual(out.buffer, chunk.buffer);
  });

  it("decodes random splits from a fixed seed, with next() at random moments", () => {
    const rng = new Rng(0xc0dec);
    const rand = () => rng.float();
    for (let iteration = 0; iteration < 400; iteration++) {
      const count = 1 + randomInt(rand, 30);
      const batch: Uint8Array[] = [];
      for (let i = 0; i < count; i++) {
        const kind = rand();
        const length = kind < 0.15 ? 0 : kind < 0.8 ? randomInt(rand, 40) : randomInt(rand, 3000);
        batch.push(payload(length, iteration * 100 + i));
      }
      const wire = encodeFrames(batch);
      const chunks = randomChunks(rand, wire, 1 + randomInt(rand, iteration % 2 === 0 ? 12 : 4000));
      const decoder = new FrameDecoder();
      const out: Uint8Array[] = [];
      let pushed = 0;
      for (const chunk of chunks) {
        decoder.push(chunk);
        pushed += chunk.length;
        if (rand() < 0.6) drain(decoder, out);
        assert.equal(decoder.bufferedBytes, pushed - framedLength(out), `iteration ${iteration}`);
      }
      drain(decoder, out);
      assertMessages(out, batch);
      assert.equal(decoder.bufferedBytes, 0);
    }
  });

  it("round-trips 100k small messages encoded as one batch and cut into random chunks", () => {
    const rng = new Rng(100_000);
    const rand = () => rng.float();
    const batch: Uint8Array[] = new Array(100_000);
    for (let i = 0; i < batch.length; i++) batch[i] = payload(randomInt(rand, 33), i);
    const wire = encodeFrames(batch);
    assert.equal(wire.length, framedLength(batch));
    const decoder = new FrameDecoder();
    const out: Uint8Array[] = [];
    for (const chunk of randomChunks(rand, wire, 65536)) {
      decoder.push(chunk);
      drain(decoder, out);
    }
    assertMessages(out, batch);
    assert.equal(decoder.bufferedBytes, 0);
    // Byte-exact both ways: re-encoding what came out gives the same wire bytes.
    assert.ok(bytesEqual(encodeFrames(out), wire));
  });

  describe("zero-length messages", () => {
    it("decodes one alone, as a zero-length view", () => {
      const decoder = new FrameDecoder();
      decoder.push(encodeFrame(new Uint8Array(0)));
      const out = decoder.next();
      assert.ok(out instanceof Uint8Array);
      assert.equal(out.length, 0);
      assert.equal(decoder.next(), undefined);
      assert.equal(decoder.bufferedBytes, 0);
    });

    it("decodes a batch of only zero-length messages", () => {
      const batch = Array.from({ length: 100 }, () => new Uint8Array(0));
      const decoder = new FrameDecoder();
      decoder.push(encodeFrames(batch));
      assertMessages(drain(decoder), batch);
    });

    it("decodes one ending a chunk, one whose header spans chunks, and one starting a chunk", () => {
      const batch = [payload(5, 1), new Uint8Array(0), new Uint8Array(0), new Uint8Array(0), payload(3, 2)];
      const wire = encodeFrames(batch); // frames at 0..13, 13..21, 21..29, 29..37, 37..48
      const decoder = new FrameDecoder();
      decoder.push(wire.slice(0, 21)); // ends right after the first empty frame
      assertMessages(drain(decoder), batch.slice(0, 2));
      assert.equal(decoder.bufferedBytes, 0);
      decoder.push(wire.slice(21, 25)); // half the second empty frame's header
      assert.equal(decoder.next(), undefined);
      decoder.push(wire.slice(25, 29));
      const second = decoder.next();
      assert.ok(second !== undefined && second.length === 0);
      decoder.push(wire.slice(29)); // starts with the third empty frame
      assertMessages(drain(decoder), batch.slice(3));
    });

    it("decodes them with maxMessageBytes 0, and nothing longer", () => {
      const decoder = new FrameDecoder({ maxMessageBytes: 0 });
      decoder.push(encodeFrames([new Uint8Array(0), new Uint8Array(0), new Uint8Array(1)]));
      assert.equal(decoder.next()?.length, 0);
      assert.equal(decoder.next()?.length, 0);
      assert.throws(() => decoder.next(), MessageTooLargeError);
    });
  });

  describe("maxMessageBytes", () => {
    it("rejects a declared length of 2^64-1 with its exact value, before any allocation", () => {
      const decoder = new FrameDecoder();
      decoder.push(rawHeader(0xffffffff, 0xffffffff));
      const err = assertTooLarge(() => decoder.next(), 2n ** 64n - 1n, DEFAULT_MAX_MESSAGE_BYTES);
      assert.match(err.message, /^Cannot decode frame: declared length 18446744073709551615 exceeds/);
      assert.equal(decoder.bufferedBytes, 8);
    });

    it("keeps lengths above Number.MAX_SAFE_INTEGER exact", () => {
      const max = Number.MAX_SAFE_INTEGER;
      for (const [lo, hi, exact] of [[0, 0x200000, 2n ** 53n], [1, 0x200000, 2n ** 53n + 1n]] as const) {
        const decoder = new FrameDecoder({ maxMessageBytes: max });
        decoder.push(concatBytes([rawHeader(lo, hi), new Uint8Array(3)]));
        assertTooLarge(() => decoder.next(), exact, max);
      }
    });

    it("rejects maxMessageBytes + 1 and accepts exactly maxMessageBytes, in one chunk", () => {
      const max = 1000;
      const ok = new FrameDecoder({ maxMessageBytes: max });
      ok.push(encodeFrame(payload(max, 1)));
      assert.ok(bytesEqual(ok.next() as Uint8Array, payload(max, 1)));
      const tooBig = new FrameDecoder({ maxMessageBytes: max });
      tooBig.push(encodeFrame(payload(max + 1, 1)));
      assertTooLarge(() => tooBig.next(), BigInt(max + 1), max);
    });

    it("rejects maxMessageBytes + 1 and accepts exactly maxMessageBytes, across chunks", () => {
      const max = 1000;
      for (const length of [max, max + 1]) {
        const frame = encodeFrame(payload(length, 2));
        const decoder = new FrameDecoder({ maxMessageBytes: max });
        decoder.push(frame.slice(0, 5));
        assert.equal(decoder.next(), undefined);
        decoder.push(frame.slice(5, 500));
        if (length > max) {
          assertTooLarge(() => decoder.next(), BigInt(length), max);
          continue;
        }
        assert.equal(decoder.next(), undefined);
        decoder.push(frame.slice(500));
        assert.ok(bytesEqual(decoder.next() as Uint8Array, payload(length, 2)));
      }
    });

    it("rejects as soon as the header is complete when it arrives in pieces", () => {
      const decoder = new FrameDecoder({ maxMessageBytes: 10 });
      const frame = encodeFrames([payload(4, 1), payload(11, 2)]); // the second frame is too big
      decoder.push(frame.slice(0, 15)); // first frame + 3 header bytes
      assert.equal(decoder.next()?.length, 4);
      assert.equal(decoder.next(), undefined);
      decoder.push(frame.slice(15, 18));
      assert.equal(decoder.next(), undefined);
      decoder.push(frame.slice(18, 20)); // header now complete, no payload yet
      assertTooLarge(() => decoder.next(), 11n, 10);
      assert.equal(decoder.bufferedBytes, 8);
    });

    it("leaves the decoder intact when a permitted length cannot be allocated", () => {
      // 2^53-1 passes the limit but exceeds any engine's typed array size.
      const decoder = new FrameDecoder({ maxMessageBytes: Number.MAX_SAFE_INTEGER });
      const header = rawHeader(0xffffffff, 0x1fffff);
      decoder.push(concatBytes([header, new Uint8Array([1, 2])]));
      assert.throws(() => decoder.next(), (err: unknown) => !(err instanceof MessageTooLargeError));
      assert.equal(decoder.bufferedBytes, 10);
      assert.ok(bytesEqual(decoder.takeBuffered(), concatBytes([header, new Uint8Array([1, 2])])));
    });

    it("leaves the decoder failed: every later call throws the same error", () => {
      const decoder = new FrameDecoder({ maxMessageBytes: 10 });
      decoder.push(concatBytes([rawHeader(11, 0), new Uint8Array(11), encodeFrame(new Uint8Array(1))]));
      let first: unknown;
      try {
        decoder.next();
      } catch (err) {
        first = err;
      }
      assert.ok(first instanceof MessageTooLargeError);
      // Released, but still counted: nothing pushed was ever returned.
      assert.equal(decoder.bufferedBytes, 8 + 11 + 9);
      for (
        const call of [
          () => decoder.next(),
          () => decoder.takeBuffered(),
          () => decoder.push(new Uint8Array(1)),
        ]
      ) {
        assert.throws(call, (err: unknown) => err === first);
      }
    });
  });

  describe("takeBuffered", () => {
    it("returns nothing from an empty decoder", () => {
      const decoder = new FrameDecoder();
      assert.equal(decoder.takeBuffered().length, 0);
    });

    it("returns the raw bytes left after whole frames, zero-copy when they lie in one chunk", () => {
      const wire = concatBytes([encodeFrame(payload(3, 1)), new Uint8Array([0xaa, 0xbb, 0xcc])]);
      const decoder = new FrameDecoder();
      decoder.push(wire);
      assert.equal(decoder.next()?.length, 3);
      const rest = decoder.takeBuffered();
      assert.deepEqual([...rest], [0xaa, 0xbb, 0xcc]);
      assert.equal(rest.buffer, wire.buffer);
      assert.equal(decoder.bufferedBytes, 0);
    });

    it("returns a partly received header exactly as it arrived", () => {
      const frame = encodeFrame(payload(300, 3));
      const decoder = new FrameDecoder();
      decoder.push(frame.slice(0, 2));
      decoder.push(frame.slice(2, 5));
      assert.equal(decoder.next(), undefined);
      assert.ok(bytesEqual(decoder.takeBuffered(), frame.subarray(0, 5)));
      assert.equal(decoder.bufferedBytes, 0);
      assert.equal(decoder.next(), undefined);
    });

    it("returns a frame's header and partial payload after next() began copying it", () => {
      const first = payload(6, 1);
      const wire = concatBytes([encodeFrame(first), encodeFrame(payload(500, 2))]);
      const decoder = new FrameDecoder();
      decoder.push(wire.slice(0, 100)); // first frame, the second's header and 78 payload bytes
      assert.ok(bytesEqual(decoder.next() as Uint8Array, first));
      assert.equal(decoder.next(), undefined); // the spanning frame is now being copied
      decoder.push(wire.slice(100, 150));
      decoder.push(wire.slice(150, 160)); // queued, not yet copied
      assert.equal(decoder.bufferedBytes, 160 - 14);
      const rest = decoder.takeBuffered();
      assert.ok(bytesEqual(rest, wire.subarray(14, 160)));
      assert.equal(decoder.bufferedBytes, 0);
    });

    it("leaves a decoder that decodes fresh frames afterwards", () => {
      const decoder = new FrameDecoder();
      decoder.push(encodeFrame(payload(50, 1)).slice(0, 30));
      assert.equal(decoder.next(), undefined);
      assert.equal(decoder.takeBuffered().length, 30);
      const msg = payload(20, 7);
      const frame = encodeFrame(msg);
      decoder.push(frame.slice(0, 3));
      decoder.push(frame.slice(3));
      assert.ok(bytesEqual(decoder.next() as Uint8Array, msg));
      assert.equal(decoder.next(), undefined);
    });

    it("returns exactly the unconsumed bytes at random cut points", () => {
      const rng = new Rng(7);
      const rand = () => rng.float();
      for (let iteration = 0; iteration < 200; iteration++) {
        const batch = Array.from(
          { length: 1 + randomInt(rand, 8) },
          (_, i) => payload(randomInt(rand, 200), i),
        );
        const wire = encodeFrames(batch);
        const cut = randomInt(rand, wire.length + 1);
        const decoder = new FrameDecoder();
        const out: Uint8Array[] = [];
        for (const chunk of randomChunks(rand, wire.subarray(0, cut), 1 + randomInt(rand, 64))) {
          decoder.push(chunk);
          if (rand() < 0.5) drain(decoder, out);
        }
        drain(decoder, out);
        const consumed = framedLength(out);
        assert.ok(bytesEqual(decoder.takeBuffered(), wire.subarray(consumed, cut)), `iteration ${iteration}`);
        assert.equal(decoder.bufferedBytes, 0);
      }
    });
  });
});

/** Asserts `fn` throws a MessageTooLargeError with exactly these values, and returns it. */
function assertTooLarge(
  fn: () => unknown,
  declaredLength: bigint,
  maxMessageBytes: number,
): MessageTooLargeError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(caught instanceof MessageTooLargeError, `expected MessageTooLargeError, got ${caught}`);
  assert.equal(caught.declaredLength, declaredLength);
  assert.equal(caught.maxMessageBytes, maxMessageBytes);
  assert.equal(caught.name, "MessageTooLargeError");
  return caught;
}

/** Drains with takeWholeMessages where it can, and next() for what it leaves. */
function drainBatched(decoder: FrameDecoder, into: Uint8Array[] = []): Uint8Array[] {
  for (;;) {
    const before = into.length;
    const bytes = decoder.takeWholeMessages(into);
    assert.equal(bytes, framedLength(into.slice(before)) - FRAME_HEADER_BYTES * (into.length - before));
    const msg = decoder.next();
    if (msg === undefined) return into;
    into.push(msg);
  }
}

describe("FrameDecoder.takeWholeMessages", () => {
  it("takes the whole frames of the current chunk as views, and leaves a partial frame", () => {
    const batch = [payload(3, 1), payload(0, 2), payload(40, 3)];
    const wire = encodeFrames(batch);
    const decoder = new FrameDecoder();
    decoder.push(wire.subarray(0, wire.length - 5));
    const out: Uint8Array[] = [];
    assert.equal(decoder.takeWholeMessages(out), 3);
    assertMessages(out, batch.slice(0, 2));
    assert.equal(out[0].buffer, wire.buffer, "a view, not a copy");
    assert.equal(decoder.bufferedBytes, 8 + 40 - 5);
    assert.equal(decoder.takeWholeMessages(out), 0, "the partial frame waits");
    decoder.push(wire.subarray(wire.length - 5));
    assert.deepEqual(drainBatched(decoder, out).length, 3);
    assertMessages(out, batch);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("stops at maxMessages and at a frame over the limit, which next() then refuses", () => {
    const decoder = new FrameDecoder({ maxMessageBytes: 10 });
    decoder.push(encodeFrames([payload(1, 1), payload(2, 2), payload(11, 3)]));
    const out: Uint8Array[] = [];
    assert.equal(decoder.takeWholeMessages(out, 1), 1);
    assert.equal(decoder.takeWholeMessages(out), 2);
    assert.equal(out.length, 2);
    assert.equal(decoder.takeWholeMessages(out), 0, "never throws");
    assert.throws(() => decoder.next(), MessageTooLargeError);
    assert.equal(decoder.takeWholeMessages(out), 0, "nothing after a failure");
  });

  it("decodes random splits exactly like next(), mixed with it", () => {
    const rng = new Rng(0x7a4e);
    const rand = () => rng.float();
    for (let iteration = 0; iteration < 200; iteration++) {
      const batch = Array.from(
        { length: 1 + randomInt(rand, 40) },
        (_, i) => payload(rand() < 0.8 ? randomInt(rand, 40) : randomInt(rand, 3000), iteration * 100 + i),
      );
      const decoder = new FrameDecoder();
      const out: Uint8Array[] = [];
      for (const chunk of randomChunks(rand, encodeFrames(batch), 1 + randomInt(rand, 2000))) {
        decoder.push(chunk);
        if (rand() < 0.5) drainBatched(decoder, out);
      }
      drainBatched(decoder, out);
      assertMessages(out, batch);
      assert.equal(decoder.bufferedBytes, 0, `iteration ${iteration}`);
    }
  });
});

describe("framedRunEnd and framedRunBytes", () => {
  it("finds the decoded messages of one chunk as one run, and gives back the received bytes", () => {
    const batch = [payload(5, 1), payload(0, 2), payload(300, 3), payload(7, 4)];
    const wire = encodeFrames(batch);
    const decoder = new FrameDecoder();
    decoder.push(wire);
    const out: Uint8Array[] = [];
    decoder.takeWholeMessages(out);
    assert.equal(framedRunEnd(out, 0), 4);
    assert.equal(framedRunEnd(out, 2), 4);
    const run = framedRunBytes(out, 0, 4);
    assert.ok(bytesEqual(run, wire));
    assert.equal(run.buffer, wire.buffer, "not copied");
  });

  it("ends a run at a gap, a reordering, another buffer or a header that does not match", () => {
    const wire = encodeFrames([payload(4, 1), payload(4, 2), payload(4, 3)]);
    const views = [wire.subarray(8, 12), wire.subarray(20, 24), wire.subarray(32, 36)];
    assert.equal(framedRunEnd(views, 0), 3);
    assert.equal(framedRunEnd([views[0], views[2]], 0), 1, "gap");
    assert.equal(framedRunEnd([views[1], views[0]], 0), 1, "reordered");
    assert.equal(framedRunEnd([views[0], views[1].slice()], 0), 1, "a copy lies in another buffer");
    assert.equal(framedRunEnd([wire.subarray(8, 11)], 0), 0, "the header says 4 bytes, not 3");
    assert.equal(framedRunEnd([payload(4, 9)], 0), 0, "no room for a header before it");
    assert.equal(framedRunEnd(views, 3), 3, "from the end");
    const tampered = wire.slice();
    tampered[20 - 8 + 4] = 1; // the second frame's header now declares 2^32 + 4 bytes
    const tamperedViews = [tampered.subarray(8, 12), tampered.subarray(20, 24)];
    assert.equal(framedRunEnd(tamperedViews, 0), 1);
  });
});

describe("FrameDecoder.absorb", () => {
  it("copies chunks of a large frame being received, and refuses anything else", () => {
    const big = payload(50_000, 5);
    const wire = encodeFrames([big, payload(3, 6)]);
    const decoder = new FrameDecoder();
    const reused = new Uint8Array(4096);
    assert.equal(decoder.absorb(wire.subarray(0, 100)), false, "no frame is being received yet");
    assert.equal(decoder.partialFrameMissingBytes, 0);
    decoder.push(wire.slice(0, 100));
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.partialFrameMissingBytes, 50_000 - 92);
    const out: Uint8Array[] = [];
    let absorbed = 0;
    for (let at = 100; at < wire.length; at += reused.length) {
      const n = Math.min(reused.length, wire.length - at);
      reused.set(wire.subarray(at, at + n));
      const chunk = reused.subarray(0, n);
      if (decoder.absorb(chunk)) absorbed++;
      else decoder.push(chunk.slice());
      drain(decoder, out);
    }
    assertMessages(out, [big, payload(3, 6)]);
    assert.ok(absorbed >= 10, `absorbed ${absorbed} chunks`);
    assert.equal(decoder.partialFrameMissingBytes, 0);
    assert.equal(decoder.bufferedBytes, 0);
  });

  it("refuses a chunk that runs past the frame, and a chunk while other bytes are queued", () => {
    const wire = encodeFrames([payload(1000, 1), payload(10, 2)]);
    const decoder = new FrameDecoder();
    decoder.push(wire.slice(0, 500));
    assert.equal(decoder.next(), undefined);
    assert.equal(decoder.absorb(wire.subarray(500)), false, "past the end of the frame");
    assert.equal(decoder.bufferedBytes, 500, "nothing taken");
    decoder.push(wire.slice(500, 600));
    assert.equal(decoder.absorb(wire.subarray(600, 700)), false, "bytes are queued before it");
    decoder.push(wire.slice(600));
    assertMessages(drain(decoder), [payload(1000, 1), payload(10, 2)]);
  });
});

describe("FrameDecoder.copyLargeFrames and lentViews", () => {
  it("copies large frames out of a large read buffer, views small ones, and counts the views", () => {
    const small = payload(100, 1);
    const large = payload(20_000, 2);
    const wire = encodeFrames([large, small, large]);
    const slab = new Uint8Array(256 * 1024);
    slab.set(wire, 1000);
    const chunk = slab.subarray(1000, 1000 + wire.length);
    for (const copying of [false, true]) {
      const decoder = new FrameDecoder();
      if (copying) decoder.copyLargeFrames();
      const before = decoder.lentViews;
      decoder.push(chunk);
      assert.equal(decoder.lentViews, -1, "pushed bytes are unread");
      const out = drain(decoder);
      assertMessages(out, [large, small, large]);
      assert.deepEqual(
        out.map((m) => m.buffer === slab.buffer),
        copying ? [false, true, false] : [true, true, true],
      );
      for (const m of out) {
        assert.equal(
          new DataView(m.buffer, m.byteOffset - 8, 8).getUint32(0, true),
          m.length,
          "header in front",
        );
      }
      assert.notEqual(decoder.lentViews, before, "the small frame is a view");
    }
  });

  it("stays the same while a chunk is read without a view of it", () => {
    const large = payload(40_000, 3);
    const slab = new Uint8Array(256 * 1024);
    const wire = encodeFrames([large, large]);
    slab.set(wire);
    const decoder = new FrameDecoder();
    decoder.copyLargeFrames();
    const before = decoder.lentViews;
    decoder.push(slab.subarray(0, wire.length - 10));
    const out = drain(decoder);
    assert.equal(out.length, 1);
    assert.equal(decoder.lentViews, before, "copied whole frame, and the tail copied into its own buffer");
    assert.equal(decoder.partialFrameMissingBytes, 10);
    decoder.push(wire.slice(wire.length - 10));
    assertMessages([...out, ...drain(decoder)], [large, large]);
    const taken = new FrameDecoder();
    const mark = taken.lentViews;
    taken.push(encodeFrames([payload(10, 4), payload(10, 5)]));
    assert.ok(taken.takeWholeFrames() !== undefined);
    assert.notEqual(taken.lentViews, -1);
    assert.notEqual(taken.lentViews, mark, "a view of the frames was handed out");
  });
});
