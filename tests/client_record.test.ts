/**
 * `ClientRecord` and its inbox, and `ClientRegistry`, without sockets: frames and raw chunks in
 * arrival order, the input cost, compaction of a long-read inbox, and adoption of a held inbox.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  ClientRecord,
  ClientRegistry,
  keywordKey,
  UNREAD_MESSAGE_OVERHEAD_BYTES,
} from "../core/clients/client_registry.ts";
import { encodeFrame, encodeFrames, FRAME_HEADER_BYTES } from "../core/wire/codec.ts";
import { frameBatchRuns, payloadViews } from "../core/wire/frame_batch.ts";
import { reserveArena, trimArena } from "../core/wire/_byte_arena.ts";

const utf8 = (text: string) => new TextEncoder().encode(text);
const text = (bytes: Uint8Array | undefined) =>
  bytes === undefined ? "(none)" : new TextDecoder().decode(bytes);

/** One message as `FrameDecoder.next` returns it: a view whose header sits in the 8 bytes before it. */
function decoded(message: string): Uint8Array {
  const frame = encodeFrame(utf8(message));
  return frame.subarray(FRAME_HEADER_BYTES);
}

function record(): ClientRecord {
  return new ClientRecord(7, "expected", utf8("worker"));
}

describe("ClientRecord's inbox", () => {
  it("keeps frames, runs and raw chunks in arrival order, and counts them", () => {
    const r = record();
    r.pushFrames(encodeFrames([utf8("a1"), utf8("a2")]), 2, 4);
    assert.equal(r.push(utf8("raw!"), true), 4 + UNREAD_MESSAGE_OVERHEAD_BYTES);
    assert.equal(r.push(decoded("b"), false), 1 + UNREAD_MESSAGE_OVERHEAD_BYTES);
    assert.equal(r.unread, 4);
    assert.equal(r.inboxBytes, 4 + 4 + 1);
    assert.equal(r.inboxCost, 9 + 4 * UNREAD_MESSAGE_OVERHEAD_BYTES);
    assert.deepEqual([r.takeOne(), r.takeOne(), r.takeOne(), r.takeOne()].map(text), [
      "a1",
      "a2",
      "raw!",
      "b",
    ]);
    assert.equal(r.takeOne(), undefined);
    assert.equal(r.unread, 0);
    assert.equal(r.inboxBytes, 0);
    assert.equal(r.inboxCost, 0);
  });

  it("takeAll goes on from a run read halfway", () => {
    const r = record();
    r.pushFrames(encodeFrames([utf8("x"), utf8("yy"), utf8("zzz")]), 3, 6);
    r.push(utf8("tail"), true);
    assert.equal(text(r.takeOne()), "x");
    assert.deepEqual(r.takeAll().map(text), ["yy", "zzz", "tail"]);
    assert.equal(r.unread, 0);
    assert.equal(r.inboxBytes, 0);
  });

  it("takeFrames stops at a raw chunk and skips what was already read", () => {
    const owner = {};
    const r = record();
    r.pushFrames(encodeFrames([utf8("f1"), utf8("f2")]), 2, 4);
    r.push(decoded("f3"), false);
    r.push(utf8("raw"), true);
    r.push(decoded("f4"), false);
    assert.equal(text(r.takeOne()), "f1");
    const batch = r.takeFrames(owner)!;
    assert.equal(batch.count, 2);
    assert.equal(batch.byteLength, 2 * (FRAME_HEADER_BYTES + 2));
    assert.deepEqual(payloadViews(frameBatchRuns(batch, owner, "test")).map(text), ["f2", "f3"]);
    assert.equal(r.takeFrames(owner), undefined, "a raw chunk comes next");
    assert.equal(text(r.takeOne()), "raw");
    assert.deepEqual(payloadViews(frameBatchRuns(r.takeFrames(owner)!, owner, "test")).map(text), ["f4"]);
    assert.equal(r.unread, 0);
    assert.equal(r.inboxBytes, 0);
  });

  it("takeAll copies the messages under copyBelow bytes and views the others, contents alike", () => {
    const r = record();
    const run = encodeFrames([utf8("abcdefg"), utf8("hi"), utf8("")]);
    r.pushFrames(run, 3, 9);
    const [long, short, empty] = r.takeAll(3);
    assert.deepEqual([long, short, empty].map(text), ["abcdefg", "hi", ""]);
    assert.equal(long!.buffer, run.buffer, "7 bytes: a view of the run");
    assert.notEqual(short!.buffer, run.buffer, "2 bytes: a copy");
    run.fill(0);
    assert.equal(text(short), "hi", "the copy does not change with the input");
  });

  it("takeAll gives an arena run back only when every message of it was read as a copy", () => {
    const frames = encodeFrames([utf8("ab"), utf8("cd")]);
    const fill = () => {
      const run = trimArena(reserveArena(frames.length + 100), frames.length);
      run.set(frames);
      const r = record();
      r.pushFrames(run, 2, 4);
      return { r, run };
    };
    const viewed = fill();
    viewed.r.takeAll(2); // "ab" and "cd" have 2 bytes: views, kept by the reader
    const after = reserveArena(8);
    assert.ok(
      after.buffer !== viewed.run.buffer || after.byteOffset >= viewed.run.byteOffset + frames.length,
    );
    const copied = fill();
    assert.deepEqual(copied.r.takeAll(3).map(text), ["ab", "cd"]);
    const reused = reserveArena(8);
    if (reused.buffer === copied.run.buffer) assert.equal(reused.byteOffset, copied.run.byteOffset);
    const halfway = fill();
    assert.equal(text(halfway.r.takeOne()), "ab"); // a view of the run is out
    halfway.r.takeAll(3);
    const next = reserveArena(8);
    assert.ok(
      next.buffer !== halfway.run.buffer || next.byteOffset >= halfway.run.byteOffset + frames.length,
    );
  });

  it("read one by one past the compaction point, stays in order and keeps its counts", () => {
    const r = record();
    const total = 5000;
    for (let i = 0; i < total; i++) r.push(decoded(`m${i}`), false);
    for (let i = 0; i < 3000; i++) assert.equal(text(r.takeOne()), `m${i}`);
    // More arrive after the inbox compacted its head away.
    for (let i = total; i < total + 10; i++) r.push(decoded(`m${i}`), false);
    assert.equal(r.unread, total + 10 - 3000);
    const rest = r.takeAll().map(text);
    assert.equal(rest[0], "m3000");
    assert.equal(rest.at(-1), `m${total + 9}`);
    assert.equal(rest.length, total + 10 - 3000);
    assert.equal(r.inboxBytes, 0);
  });

  it("adoptInbox moves a held inbox whole, and leaves the provisional one empty", () => {
    const held = new ClientRecord(0, "expected", utf8("late"));
    held.push(decoded("early-1"), false);
    held.push(utf8("early-raw"), true);
    const cost = held.inboxCost;
    const adopted = new ClientRecord(42, "expected", utf8("late"));
    adopted.adoptInbox(held);
    assert.equal(adopted.id, 42);
    assert.equal(held.id, 0);
    assert.equal(adopted.inboxCost, cost, "what it counts against the input cap does not change");
    assert.equal(held.unread, 0);
    assert.equal(held.inboxCost, 0);
    assert.deepEqual(adopted.takeAll().map(text), ["early-1", "early-raw"]);
    adopted.push(utf8("x"), true);
    assert.throws(() => adopted.adoptInbox(held), TypeError);
  });
});

describe("ClientRegistry", () => {
  it("finds named clients by id and keyword, unknown ones by id only, and gives each id once", () => {
    const registry = new ClientRegistry();
    const named = new ClientRecord(registry.nextId(), "expected", utf8("worker"));
    const unknown = new ClientRecord(registry.nextId(), "unknown", utf8("UNKNOWN CLIENT: 2"));
    assert.notEqual(named.id, unknown.id);
    registry.add(named);
    registry.add(unknown);
    assert.equal(registry.size, 2);
    assert.equal(registry.byKeyword(keywordKey(utf8("worker"))), named);
    assert.equal(registry.byKeyword(unknown.key), undefined);
    assert.equal(registry.get(unknown.id), unknown);
    assert.ok(registry.delete(named));
    assert.ok(!registry.delete(named), "a second delete reports nothing was there");
    assert.equal(registry.byKeyword(named.key), undefined);
    assert.equal(keywordKey(new Uint8Array([0, 255])), "\u0000\u00ff");
  });
});
