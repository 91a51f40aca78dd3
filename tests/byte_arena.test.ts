/**
 * `core/wire/_byte_arena.ts`, without sockets: reservations never overlap, only the last one gives its
 * unused end back (or is released whole), a kept view keeps its bytes, and large reservations get a
 * buffer of their own.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { releaseArena, reserveArena, trimArena } from "../core/wire/_byte_arena.ts";

describe("byte arena", () => {
  it("hands out each byte once: a kept view keeps its bytes through later reservations", () => {
    const kept: Uint8Array[] = [];
    for (let i = 0; i < 2000; i++) {
      const view = trimArena(reserveArena(300), 100 + (i % 50));
      view.fill(i & 0xff);
      kept.push(view);
    }
    kept.forEach((view, i) => assert.ok(view.every((b) => b === (i & 0xff)), `view ${i} intact`));
  });

  it("gives back the unused end of the last reservation only", () => {
    const a = reserveArena(64);
    const b = reserveArena(64);
    trimArena(a, 8); // not the last: nothing comes back, b stays where it is
    const trimmed = trimArena(b, 16);
    assert.equal(trimmed.length, 16);
    const c = reserveArena(8);
    if (c.buffer === b.buffer) assert.equal(c.byteOffset, b.byteOffset + 16, "c starts where b now ends");
    assert.equal(a.byteOffset + 64 <= b.byteOffset || a.buffer !== b.buffer, true, "a and b do not overlap");
  });

  it("releases bytes that end where the free space begins, and nothing else", () => {
    const a = trimArena(reserveArena(64), 40);
    const b = trimArena(reserveArena(64), 40);
    releaseArena(a); // b lies after it: a stays taken
    const c = reserveArena(8);
    assert.ok(c.buffer !== a.buffer || c.byteOffset >= b.byteOffset + 40, "a was not given back");
    releaseArena(c.subarray(0, 4)); // does not end at the free space: nothing happens
    const d = reserveArena(8);
    assert.ok(d.buffer !== c.buffer || d.byteOffset >= c.byteOffset + 8);
    releaseArena(d);
    const e = reserveArena(8);
    if (e.buffer === d.buffer) assert.equal(e.byteOffset, d.byteOffset, "d's bytes are reused");
    releaseArena(new Uint8Array(8)); // another buffer: ignored
    assert.equal(reserveArena(8).byteOffset, e.byteOffset + 8);
  });

  it("gives a reservation over a quarter of a block a buffer of its own", () => {
    const big = reserveArena(200 * 1024);
    assert.equal(big.byteOffset, 0);
    assert.equal(big.buffer.byteLength, 200 * 1024);
    assert.equal(trimArena(big, 10).length, 10);
  });
});
