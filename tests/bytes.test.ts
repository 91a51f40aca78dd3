import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { allocBytes, bytesEqual, concatBytes, toBytes } from "../core/wire/bytes.ts";
import { Rng } from "./_stream_check.ts";

const encoder = new TextEncoder();

/** Strings that exercise every UTF-8 length class, surrogate pairs and lone surrogates. */
const SAMPLES = [
  "",
  "a",
  "hello",
  "exactly16bytes!!",
  "seventeen bytes!!",
  "hé",
  "日本語",
  "😀",
  "a😀b",
  "\u007f\u0080\u07ff\u0800\uffff",
  "\ud800",
  "\udc00",
  "x\ud800y",
  "\ud800\ud800\udc00",
  "\udbff\udfff",
  "long ascii text ".repeat(20),
  "mixé 日本 😀 ".repeat(20),
];

function randomString(rand: () => number, length: number): string {
  let s = "";
  for (let i = 0; i < length; i++) {
    const kind = rand();
    if (kind < 0.5) s += String.fromCharCode(32 + Math.floor(rand() * 95));
    else if (kind < 0.7) s += String.fromCharCode(0x80 + Math.floor(rand() * 0x780));
    else if (kind < 0.85) s += String.fromCharCode(0x800 + Math.floor(rand() * 0xd000));
    else if (kind < 0.95) s += String.fromCodePoint(0x10000 + Math.floor(rand() * 0xfffff));
    else s += String.fromCharCode(0xd800 + Math.floor(rand() * 0x800)); // often a lone surrogate
  }
  return s;
}

describe("allocBytes", () => {
  it("returns zero-filled buffers of the exact size that never overlap", () => {
    const sizes = [0, 1, 7, 8, 100, 4096, 4097, 70_000];
    const buffers = sizes.map((size) => allocBytes(size));
    buffers.forEach((buf, i) => {
      assert.equal(buf.length, sizes[i]);
      assert.ok(buf.every((b) => b === 0), `size ${sizes[i]} is zero-filled`);
    });
    buffers.forEach((buf) => buf.fill(0xab));
    for (const buf of buffers) assert.ok(buf.every((b) => b === 0xab));
    // Writing one buffer in full left every other one intact, so no two share a byte.
    const fresh = allocBytes(16);
    assert.ok(fresh.every((b) => b === 0));
  });

  it("gives large buffers their own ArrayBuffer", () => {
    const big = allocBytes(5000);
    assert.equal(big.byteOffset, 0);
    assert.equal(big.buffer.byteLength, 5000);
  });

  it("keeps handing out distinct zeroed buffers across many slabs", () => {
    const seen: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const buf = allocBytes(1 + (i % 300));
      assert.ok(buf.every((b) => b === 0), `allocation ${i}`);
      buf.fill((i % 255) + 1);
      seen.push(buf);
    }
    seen.forEach((buf, i) => assert.ok(buf.every((b) => b === (i % 255) + 1), `allocation ${i}`));
  });

  it("recovers when someone transfers (detaches) the shared slab", () => {
    const victim = allocBytes(8);
    structuredClone(victim.buffer, { transfer: [victim.buffer as ArrayBuffer] });
    assert.equal(victim.length, 0);
    const after = allocBytes(8);
    assert.equal(after.length, 8);
    assert.deepEqual([...toBytes("ok")], [0x6f, 0x6b]);
  });

  it("rejects sizes that are not non-negative integers with a RangeError", () => {
    for (const bad of [-1, 1.5, NaN, Infinity, 5000.5]) {
      assert.throws(() => allocBytes(bad), RangeError, String(bad));
    }
  });
});

describe("concatBytes", () => {
  it("joins chunks in order", () => {
    const out = concatBytes([new Uint8Array([1, 2]), new Uint8Array(0), new Uint8Array([3, 4, 5])]);
    assert.deepEqual([...out], [1, 2, 3, 4, 5]);
  });

  it("returns the single chunk itself, without copying", () => {
    const only = new Uint8Array([9, 8, 7]);
    assert.equal(concatBytes([only]), only);
    assert.equal(concatBytes([only], 3), only);
  });

  it("returns an empty buffer for no chunks", () => {
    const out = concatBytes([]);
    assert.equal(out.length, 0);
    assert.ok(out instanceof Uint8Array);
  });

  it("copies chunks that are views into a larger buffer, honouring their offsets", () => {
    const backing = new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7]);
    const out = concatBytes([backing.subarray(2, 4), backing.subarray(6)]);
    assert.deepEqual([...out], [2, 3, 6, 7]);
    assert.notEqual(out.buffer, backing.buffer);
  });

  it("uses a correct totalLength", () => {
    const out = concatBytes([new Uint8Array([1]), new Uint8Array([2, 3])], 3);
    assert.deepEqual([...out], [1, 2, 3]);
  });

  it("rejects a totalLength that does not match the chunks", () => {
    const chunks = [new Uint8Array([1]), new Uint8Array([2, 3])];
    assert.throws(() => concatBytes(chunks, 2), RangeError);
    assert.throws(() => concatBytes(chunks, 4), RangeError);
    assert.throws(() => concatBytes(chunks, -1), RangeError);
    assert.throws(() => concatBytes(chunks, 1.5), RangeError);
    assert.throws(() => concatBytes([new Uint8Array([1])], 2), RangeError);
  });
});

describe("bytesEqual", () => {
  it("compares contents, not identity", () => {
    assert.equal(bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
    assert.equal(bytesEqual(new Uint8Array(0), new Uint8Array(0)), true);
    const same = new Uint8Array([4]);
    assert.equal(bytesEqual(same, same), true);
  });

  it("tells apart different lengths and different bytes", () => {
    assert.equal(bytesEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])), false);
    assert.equal(bytesEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
    assert.equal(bytesEqual(new Uint8Array([0, 2, 3]), new Uint8Array([1, 2, 3])), false);
  });

  it("compares views by their own bytes", () => {
    const backing = new Uint8Array([5, 1, 2, 5, 1, 2]);
    assert.equal(bytesEqual(backing.subarray(1, 3), backing.subarray(4, 6)), true);
    assert.equal(bytesEqual(backing.subarray(0, 2), backing.subarray(1, 3)), false);
  });
});

describe("toBytes", () => {
  it("returns bytes unchanged", () => {
    const bytes = new Uint8Array([1, 2]);
    assert.equal(toBytes(bytes), bytes);
  });

  it("encodes strings exactly as TextEncoder does", () => {
    for (const s of SAMPLES) {
      assert.deepEqual([...toBytes(s)], [...encoder.encode(s)], JSON.stringify(s));
    }
    const rng = new Rng(0x5eed);
    const rand = () => rng.float();
    for (let i = 0; i < 300; i++) {
      const s = randomString(rand, Math.floor(rand() * 40));
      assert.ok(bytesEqual(toBytes(s), encoder.encode(s)), JSON.stringify(s));
    }
  });

  it("returns a buffer of exactly the encoded size", () => {
    const out = toBytes("abc");
    assert.equal(out.length, 3);
    assert.equal(out.byteLength, 3);
    assert.equal(toBytes("x".repeat(5000)).length, 5000);
  });

  it("returns results that never overlap and leaves the next allocation zero-filled", () => {
    // Each kind: short ASCII, short text that falls back mid-loop, longer text via encodeInto.
    const texts = ["abc", "ab\u00e9cd", "def", "a longer text with é and 😀 in it", "ghi"];
    const results = texts.map((t) => toBytes(t));
    results[0].fill(0xff);
    results[2].fill(0xff);
    texts.forEach((t, i) => {
      if (i !== 0 && i !== 2) assert.ok(bytesEqual(results[i], encoder.encode(t)), t);
    });
    assert.ok(allocBytes(64).every((b) => b === 0));
  });
});
