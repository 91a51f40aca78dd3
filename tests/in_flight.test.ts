/** `InFlightMessages`: which written messages a broken connection left unwritten, counted from the end. */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InFlightMessages } from "../core/connection/in_flight.ts";
import { OutputKind } from "../core/connection/output.ts";
import { encodeFrames } from "../core/wire/codec.ts";

const message = (length: number, fill: number) => new Uint8Array(length).fill(fill);

describe("InFlightMessages", () => {
  const a = message(100, 1); // 108 bytes framed
  const b = message(100, 2); // 108
  const c = message(0, 3); // 8

  it("keeps every message that ends past the written bytes, the partly written one first", () => {
    const inFlight = new InFlightMessages();
    inFlight.add([a], OutputKind.framed);
    inFlight.add([b, c], OutputKind.framed);
    assert.deepEqual(inFlight.unwritten(8 + 50), [b, c], "b was cut 50 bytes before its end");
  });

  it("keeps nothing when every byte reached the kernel, and everything when none did", () => {
    const inFlight = new InFlightMessages();
    inFlight.add([a, b], OutputKind.framed);
    assert.deepEqual(inFlight.unwritten(0), []);
    inFlight.add([a, b], OutputKind.framed);
    assert.deepEqual(inFlight.unwritten(216), [a, b]);
  });

  it("a message whose last byte was written is not resent", () => {
    const inFlight = new InFlightMessages();
    inFlight.add([a, b], OutputKind.framed);
    assert.deepEqual(inFlight.unwritten(108), [b]);
  });

  it("forgets what a drain cleared, and what it handed out", () => {
    const inFlight = new InFlightMessages();
    inFlight.add([a], OutputKind.framed);
    inFlight.clear();
    inFlight.add([b], OutputKind.framed);
    assert.deepEqual(inFlight.unwritten(1000), [b], "a count over the tracked bytes keeps all of them");
    assert.deepEqual(inFlight.unwritten(1000), []);
  });

  it("cuts frames sent as received (a batch's runs) into their messages, and keeps the unwritten ones", () => {
    const inFlight = new InFlightMessages();
    inFlight.add([a], OutputKind.framed);
    inFlight.add([encodeFrames([b, c]), encodeFrames([a])], OutputKind.frames);
    const unwritten = inFlight.unwritten(108 + 4);
    assert.deepEqual(unwritten, [c, a], "c was cut 4 bytes before its end; a after it was never written");
  });

  it("resends nothing once raw bytes went out among the messages: their boundaries are unknown", () => {
    const inFlight = new InFlightMessages();
    inFlight.add([a], OutputKind.framed);
    inFlight.add([message(10, 9)], OutputKind.raw);
    assert.deepEqual(inFlight.unwritten(50), []);
  });
});
