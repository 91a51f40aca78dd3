/**
 * The RFC 6455 frame parser without sockets: every input is fed whole, byte by byte and in random
 * splits, and the events must be the same.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { encodeFrames } from "../core/wire/encode.ts";
import { webSocketCloseFrame, WebSocketFrameParser, webSocketHeader } from "../core/wire/websocket_frames.ts";
import { packWebSocketFrames, packWebSocketMessages } from "../core/wire/websocket_pack.ts";
import { Rng } from "./_stream_check.ts";
import { clientFrame, closePayload, concatBytes, ServerFrameReader } from "./_websocket_peer.ts";

type Event =
  | ["message", string, boolean]
  | ["ping" | "pong", string]
  | ["close", number | undefined, string]
  | ["error", number];

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

function parse(
  bytes: Uint8Array,
  split: "whole" | "bytes" | number,
  max = 1024,
  reserve = 0,
  batchBytes = 0,
): Event[] {
  const events: Event[] = [];
  const parser = new WebSocketFrameParser({ maxMessageBytes: max, reserveBytes: reserve, batchBytes }, {
    message: (p, text) => events.push(["message", hex(p.subarray(reserve)), text]),
    ping: (p) => events.push(["ping", hex(p)]),
    pong: (p) => events.push(["pong", hex(p)]),
    close: (code, reason) => events.push(["close", code, reason]),
    error: (code) => events.push(["error", code]),
    frames: (f) => {
      for (let at = 0; at < f.length;) {
        const n = f[at]! | (f[at + 1]! << 8) | (f[at + 2]! << 16);
        assert.deepEqual([...f.subarray(at + 3, at + 8)], [0, 0, 0, 0, 0], "an 8-byte little-endian length");
        assert.ok(n <= batchBytes, "only small messages are batched");
        events.push(["message", hex(f.subarray(at + 8, at + 8 + n)), false]);
        at += 8 + n;
      }
    },
  });
  if (split === "whole") parser.push(bytes);
  else if (split === "bytes") { for (const b of bytes) parser.push(new Uint8Array([b])); }
  else {
    const rng = new Rng(split);
    let at = 0;
    while (at < bytes.length) {
      const n = 1 + rng.int(Math.min(64, bytes.length - at));
      // A fresh copy each time: the parser must not keep references to what it was given.
      parser.push(bytes.slice(at, at + n));
      at += n;
    }
  }
  return events;
}

/** The same events whatever the split. */
function events(bytes: Uint8Array, max = 1024, reserve = 0): Event[] {
  const whole = parse(bytes, "whole", max, reserve);
  assert.deepEqual(parse(bytes, "bytes", max, reserve), whole, "byte by byte");
  for (const seed of [1, 2, 3]) assert.deepEqual(parse(bytes, seed, max, reserve), whole, `split ${seed}`);
  return whole;
}

const cat = concatBytes;
const enc = (s: string) => new TextEncoder().encode(s);

describe("WebSocketFrameParser", () => {
  it("delivers text and binary messages of each length form", () => {
    const big = new Uint8Array(70_000).map((_, i) => i * 7);
    const mid = new Uint8Array(300).map((_, i) => i);
    assert.deepEqual(
      events(
        cat(clientFrame(1, "Hi"), clientFrame(2, mid), clientFrame(2, big), clientFrame(1, "")),
        100_000,
      ),
      [["message", hex(enc("Hi")), true], ["message", hex(mid), false], ["message", hex(big), false], [
        "message",
        "",
        true,
      ]],
    );
  });

  it("reads a small payload sent with the 64-bit length form", () => {
    assert.deepEqual(events(clientFrame(2, "abc", { longLength: true })), [[
      "message",
      hex(enc("abc")),
      false,
    ]]);
  });

  it("leaves reserveBytes free in front of whole and reassembled messages", () => {
    const input = cat(clientFrame(2, "one"), clientFrame(2, "tw", { fin: false }), clientFrame(0, "o"));
    assert.deepEqual(events(input, 1024, 8), [["message", hex(enc("one")), false], [
      "message",
      hex(enc("two")),
      false,
    ]]);
  });

  it("leaves reserveBytes once in front of a message whose first fragments are empty", () => {
    // Found by the live fuzz (seed 5, round 340): the last fragment took the prefix as if it were whole.
    const bytes = cat(
      clientFrame(1, "", { fin: false }),
      clientFrame(0, "", { fin: false }),
      clientFrame(0, "ab"),
    );
    assert.deepEqual(events(bytes, 1024, 8), [["message", hex(enc("ab")), true]]);
    const parser = new WebSocketFrameParser({ maxMessageBytes: 64, reserveBytes: 8 }, {
      message: (p) => assert.equal(p.length, 8 + 2),
      ping: () => {},
      pong: () => {},
      close: () => {},
      error: () => assert.fail("no error"),
    });
    parser.push(bytes);
  });

  it("reassembles fragments with control frames between them", () => {
    const input = cat(
      clientFrame(1, "Hel", { fin: false }),
      clientFrame(9, "p1"),
      clientFrame(0, "lo ", { fin: false }),
      clientFrame(10, "p2"),
      clientFrame(0, "world"),
    );
    assert.deepEqual(events(input), [
      ["ping", hex(enc("p1"))],
      ["pong", hex(enc("p2"))],
      ["message", hex(enc("Hello world")), true],
    ]);
  });

  it("reports a close frame with its code and reason, and parses nothing after it", () => {
    assert.deepEqual(events(cat(clientFrame(8, closePayload(1000, "bye")), clientFrame(1, "late"))), [[
      "close",
      1000,
      "bye",
    ]]);
    assert.deepEqual(events(clientFrame(8, new Uint8Array(0))), [["close", undefined, ""]]);
  });

  const protocolErrors: [string, Uint8Array][] = [
    ["an unmasked frame", clientFrame(2, "x", { masked: false })],
    ["reserved bits", clientFrame(2, "x", { rsv: 4 })],
    ["RSV3", clientFrame(2, "x", { rsv: 1 })],
    ["unknown data opcode", clientFrame(3, "x")],
    ["unknown control opcode", clientFrame(11, "x")],
    ["a fragmented control frame", clientFrame(9, "x", { fin: false })],
    ["a control frame over 125 bytes", clientFrame(9, new Uint8Array(126))],
    ["a continuation without a message", clientFrame(0, "x")],
    ["a new message inside a fragmented one", cat(clientFrame(1, "a", { fin: false }), clientFrame(1, "b"))],
    ["a close frame with one byte", clientFrame(8, new Uint8Array([3]))],
    ["a close frame with code 1005", clientFrame(8, closePayload(1005))],
    ["a close frame with code 999", clientFrame(8, closePayload(999))],
    ["a close frame with code 5000", clientFrame(8, closePayload(5000))],
  ];
  for (const [name, input] of protocolErrors) {
    it(`closes with 1002 on ${name}`, () => {
      const got = events(cat(input, clientFrame(1, "after")));
      assert.deepEqual(got.at(-1), ["error", 1002]);
      assert.equal(got.filter((e) => e[0] === "error").length, 1);
      assert.ok(!got.some((e) => e[0] === "message" && e[1] === hex(enc("after"))));
    });
  }

  it("closes with 1007 on invalid UTF-8 in a text message, in fragments, or in a close reason", () => {
    assert.deepEqual(events(clientFrame(1, new Uint8Array([0xc3, 0x28]))), [["error", 1007]]);
    const split = cat(
      clientFrame(1, new Uint8Array([0xe2, 0x82]), { fin: false }),
      clientFrame(0, new Uint8Array([0x28])),
    );
    assert.deepEqual(events(split), [["error", 1007]]);
    assert.deepEqual(events(clientFrame(8, cat(closePayload(1000), new Uint8Array([0xff])))), [[
      "error",
      1007,
    ]]);
    // A character split across fragments is fine.
    const euro = enc("€");
    const ok = cat(clientFrame(1, euro.subarray(0, 1), { fin: false }), clientFrame(0, euro.subarray(1)));
    assert.deepEqual(events(ok), [["message", hex(euro), true]]);
    // Binary messages are not checked.
    assert.deepEqual(events(clientFrame(2, new Uint8Array([0xff]))), [["message", "ff", false]]);
  });

  it("closes with 1009 on a message over maxMessageBytes, counted across fragments before buffering", () => {
    assert.deepEqual(events(clientFrame(2, new Uint8Array(11)), 10), [["error", 1009]]);
    assert.deepEqual(events(clientFrame(2, new Uint8Array(10)), 10), [[
      "message",
      hex(new Uint8Array(10)),
      false,
    ]]);
    const fragments = cat(
      clientFrame(2, new Uint8Array(6), { fin: false }),
      clientFrame(9, "p"),
      clientFrame(0, new Uint8Array(6)),
    );
    assert.deepEqual(events(fragments, 10), [["ping", hex(enc("p"))], ["error", 1009]]);
    // Only a header declaring 2^40 bytes: refused before any payload arrives or is allocated.
    const head = clientFrame(2, new Uint8Array(0), { longLength: true });
    new DataView(head.buffer).setBigUint64(2, 1n << 40n);
    const parser = new WebSocketFrameParser({ maxMessageBytes: 1 << 20 }, {
      message: () => assert.fail("no message"),
      ping: () => {},
      pong: () => {},
      close: () => {},
      error: (code) => assert.equal(code, 1009),
    });
    parser.push(head);
    assert.ok(parser.done);
    assert.equal(parser.bufferedBytes, 0);
  });

  it("with batchBytes, pushes the same messages and events in order, the small ones framed", () => {
    const rng = new Rng(7);
    for (let round = 0; round < 100; round++) {
      const parts: Uint8Array[] = [];
      for (let k = 0; k < 12; k++) {
        const pick = rng.int(6);
        if (pick === 0) parts.push(clientFrame(9, "p"));
        else if (pick === 1) parts.push(clientFrame(2, "fr", { fin: false }), clientFrame(0, "ag"));
        else if (pick === 2) parts.push(clientFrame(1, "texté"));
        else parts.push(clientFrame(2, rng.bytes(rng.int(pick === 3 ? 200 : 40))));
      }
      if (rng.int(4) === 0) parts.push(clientFrame(1, new Uint8Array([0xc3, 0x28])), clientFrame(2, "after"));
      const bytes = cat(...parts);
      const plain = parse(bytes, "whole", 1024, 8).map((e): Event =>
        e[0] === "message" ? [e[0], e[1], false] : e
      );
      for (const split of ["whole", "bytes", 1, 2, round] as const) {
        const got = parse(bytes, split, 1024, 8, 100).map((e): Event =>
          e[0] === "message" ? [e[0], e[1], false] : e
        );
        assert.deepEqual(got, plain, `round ${round}, split ${split}`);
      }
    }
  });

  it("survives random mutations of valid frames: the same events whatever the split, batched or not", () => {
    const rng = new Rng(22);
    for (let round = 0; round < 300; round++) {
      const frames = cat(
        clientFrame(1, "hello", { fin: rng.int(2) === 0 }),
        clientFrame(9, "ping"),
        clientFrame(0, new Uint8Array(rng.int(300))),
        clientFrame(2, new Uint8Array(rng.int(70))),
      );
      for (let k = 0; k < 1 + rng.int(4); k++) frames[rng.int(frames.length)] = rng.int(256);
      const got = events(frames, 256);
      assert.ok(got.filter((e) => e[0] === "error" || e[0] === "close").length <= 1);
      // Batching (and its one-loop path for whole small frames) changes nothing but how messages arrive.
      const plain = (e: Event): Event => (e[0] === "message" ? [e[0], e[1], false] : e);
      for (const split of ["whole", round] as const) {
        assert.deepEqual(
          parse(frames, split, 256, 8, 100).map(plain),
          parse(frames, split, 256, 8).map(plain),
          `round ${round}, batched, split ${split}`,
        );
      }
    }
  });
});

describe("server frames", () => {
  it("encodes the three length forms and close frames the reader reads back", () => {
    const reader = new ServerFrameReader();
    for (const n of [0, 125, 126, 65535, 65536]) {
      const [f] = reader.push(cat(webSocketHeader(2, n), new Uint8Array(n)));
      assert.equal(f!.payload.length, n);
      assert.equal(f!.opcode, 2);
    }
    const [close] = reader.push(webSocketCloseFrame(1008, "x".repeat(200)));
    assert.equal(close!.opcode, 8);
    assert.equal(close!.payload.length, 125);
    assert.equal((close!.payload[0]! << 8) | close!.payload[1]!, 1008);
  });

  it("packs whole session frames under maxPayload into one buffer, stopping where it must", () => {
    const rng = new Rng(22);
    const sizes = [0, 1, 2, 64, 65, 125, 126, 300, 16383];
    const payloads = sizes.map((n) => rng.bytes(n));
    const big = rng.bytes(16384);
    const session = encodeFrames([...payloads, big, payloads[1]!]);
    const packed = packWebSocketFrames(session, 0, 16384)!;
    assert.equal(packed.end, encodeFrames(payloads).length, "stops before the frame at maxPayload");
    const read = new ServerFrameReader().push(packed.frames);
    assert.deepEqual(read.map((f) => f.payload), payloads);
    assert.ok(read.every((f) => f.fin && f.opcode === 2));
    // From an offset; a frame cut short, and one of the stopAt length, are left for the caller.
    const cut = session.subarray(0, session.length - 1);
    const from = packWebSocketFrames(cut, packed.end + 8 + big.length, 16384);
    assert.equal(from, undefined, "the last frame is not whole");
    const stop = packWebSocketFrames(session, 0, 16384, 2)!;
    assert.deepEqual(new ServerFrameReader().push(stop.frames).map((f) => f.payload), payloads.slice(0, 2));
    assert.equal(packWebSocketFrames(new Uint8Array(5), 0, 16384), undefined, "a header cut short");
    // Into a buffer of the caller's when the rest of the chunk fits, else into one of its own.
    const into = new Uint8Array(session.length);
    const mine = packWebSocketFrames(session, 0, 16384, -1, into)!;
    assert.equal(mine.frames.buffer, into.buffer);
    assert.deepEqual(mine.frames, packed.frames);
    const small = packWebSocketFrames(session, 0, 16384, -1, new Uint8Array(session.length - 1))!;
    assert.notEqual(small.frames.buffer, into.buffer);
    assert.deepEqual(small.frames, packed.frames);
  });

  it("packs payloads under maxPayload together and sends larger ones as they are, in order", () => {
    const rng = new Rng(23);
    const small = [0, 1, 3, 64, 65, 125, 126, 300, 16383].map((n) => rng.bytes(n));
    const big = rng.bytes(16384);
    const huge = rng.bytes(70_000);
    const payloads = [...small.slice(0, 4), big, ...small.slice(4), huge, huge, small[1]!];
    const pieces = packWebSocketMessages(payloads, 16384);
    // Packed run, header + big, packed run, (header + huge) twice, packed run.
    assert.equal(pieces.length, 9);
    assert.equal(pieces[2], big, "a large payload is written as it is, not copied");
    assert.equal(pieces[5], huge);
    assert.equal(pieces[7], huge);
    const read = new ServerFrameReader().push(concatBytes(...pieces));
    assert.deepEqual(read.map((f) => f.payload), payloads);
    assert.ok(read.every((f) => f.fin && f.opcode === 2));
    const into = new Uint8Array(64 * 1024);
    const packedInto = packWebSocketMessages(payloads, 16384, into);
    assert.equal(packedInto[0]!.buffer, into.buffer, "packed into the caller's buffer");
    assert.deepEqual(
      new ServerFrameReader().push(concatBytes(...packedInto)).map((f) => f.payload),
      payloads,
    );
    assert.notEqual(packWebSocketMessages(payloads, 16384, new Uint8Array(10))[0]!.buffer, into.buffer);
    assert.deepEqual(packWebSocketMessages([], 16384), []);
    assert.deepEqual(packWebSocketMessages([huge], 16384).length, 2, "no empty packed piece");
  });
});
