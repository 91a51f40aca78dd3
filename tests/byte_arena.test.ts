/**
 * `core/wire/_byte_arena.ts`, without sockets: reservations never overlap, only the last one gives its
 * unused end back, a kept view keeps its bytes, and large reservations get a buffer of their own.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { reserveArena, trimArena } from "../core/wire/_byte_arena.ts";

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

  it("gives a reservation over a quarter of a block a buffer of its own", () => {
    const big = reserveArena(200 * 1024);
    assert.equal(big.byteOffset, 0);
    assert.equal(big.buffer.byteLength, 200 * 1024);
    assert.equal(trimArena(big, 10).length, 10);
  });
});
