/**
 * `MemoryBudget` without sockets: the counts change only through its methods, and over a cap it
 * pauses the right connection and resumes it once there is room. The connections are stubs with the
 * few members the budget reads.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Session } from "../core/connection/session.ts";
import { Pause } from "../core/connection/session_phase.ts";
import { MemoryBudget } from "../core/engine/memory_budget.ts";

/** A connection as the budget sees it: pause reasons, its client's unread bytes, its queued output. */
class StubSession {
  paused = 0;
  closed = false;
  queuedOutputBytes = 0;
  client: { inboxBytes: number } | undefined = { inboxBytes: 0 };
  held: { inboxBytes: number } | undefined = undefined;
  pausedFor(reason: number): boolean {
    return (this.paused & reason) !== 0;
  }
  pauseReading(reason: number): void {
    this.paused |= reason;
  }
  resumeReading(reason: number): void {
    this.paused &= ~reason;
  }
  readonly remoteAddr = { transport: "tcp", hostname: "127.0.0.1", port: 2 };
  failedWith: Error | undefined = undefined;
  fail(error: Error): void {
    this.failedWith = error;
  }
}

const asSession = (stub: StubSession) => stub as unknown as Session;

describe("MemoryBudget", () => {
  it("counts input and output only through the methods that say what happened", () => {
    const budget = new MemoryBudget(100, 100, () => {});
    budget.received(80);
    budget.stored(30, 30 + 64); // a 30-byte message moved into an inbox with its overhead
    assert.equal(budget.inputBytes, 144);
    assert.equal(budget.overInput, true);
    assert.equal(budget.overCap, true);
    budget.released(100);
    assert.equal(budget.inputBytes, 44);
    assert.equal(budget.overCap, false);
    budget.queued(150);
    assert.equal(budget.outputBytes, 150);
    assert.equal(budget.overInput, false);
    assert.equal(budget.overCap, true);
    budget.written(150);
    assert.equal(budget.outputBytes, 0);
    assert.equal(
      Object.getOwnPropertyDescriptor(MemoryBudget.prototype, "inputBytes")?.set,
      undefined,
      "inputBytes cannot be assigned",
    );
  });

  it("over the input cap pauses a connection whose client holds unread input, and resumes it when read", () => {
    let reliefs = 0;
    const budget = new MemoryBudget(100, 1000, () => reliefs++);
    const reader = new StubSession();
    const idle = new StubSession();
    budget.received(150);
    reader.client!.inboxBytes = 150;
    budget.pressure(asSession(reader));
    budget.pressure(asSession(idle));
    assert.equal(reader.pausedFor(Pause.budget), true, "the connection with unread input pauses");
    assert.equal(idle.pausedFor(Pause.budget), false, "a connection whose input is read keeps going");
    assert.equal(budget.readingPaused, true);
    reader.client!.inboxBytes = 0;
    budget.consumed(asSession(reader), 150, 0);
    assert.equal(budget.inputBytes, 0);
    assert.equal(reader.pausedFor(Pause.budget), false);
    assert.equal(budget.readingPaused, false);
    assert.ok(reliefs > 0, "parked connections are told there may be room");
  });

  it("over the input cap lets one connection finish a whole message and pauses the others assembling", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const [a, b, c] = [new StubSession(), new StubSession(), new StubSession()];
    budget.received(60);
    budget.received(60); // a and b each hold 60 bytes of a whole message still arriving
    budget.pressure(asSession(a), 40);
    budget.pressure(asSession(b), 40);
    budget.received(10);
    budget.pressure(asSession(c), 90);
    assert.equal(a.pausedFor(Pause.budget), false, "the first one over the cap finishes its message");
    assert.equal(b.pausedFor(Pause.budget), true);
    assert.equal(c.pausedFor(Pause.budget), true);
    // a's message is whole and waits unread: nobody else goes on until it is read.
    budget.received(40);
    a.client!.inboxBytes = 100;
    budget.pressure(asSession(a), 0);
    assert.equal(a.pausedFor(Pause.budget), true, "a now holds unread input");
    assert.equal(b.pausedFor(Pause.budget), true);
    assert.equal(c.pausedFor(Pause.budget), true);
    // Read: under the cap again (70 bytes of partial messages), so everyone reads.
    a.client!.inboxBytes = 0;
    budget.consumed(asSession(a), 100, 0);
    assert.equal(budget.inputBytes, 70);
    assert.equal(budget.readingPaused, false, "under the cap again: everyone reads");
    assert.equal(b.pausedFor(Pause.budget) || c.pausedFor(Pause.budget), false);
  });

  it("over the input cap with only paused assemblers left, resumes one of them", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const [a, b, c] = [new StubSession(), new StubSession(), new StubSession()];
    budget.received(200);
    budget.pressure(asSession(a), 10);
    budget.pressure(asSession(b), 10);
    budget.pressure(asSession(c), 10);
    assert.deepEqual([a, b, c].map((s) => s.pausedFor(Pause.budget)), [false, true, true]);
    // a's message went to a processor (nothing unread): b or c goes on, not both.
    budget.released(20);
    budget.pressure(asSession(a), 0);
    assert.equal([b, c].filter((s) => s.pausedFor(Pause.budget)).length, 1);
    assert.ok(budget.finishing === asSession(b) || budget.finishing === asSession(c));
    budget.forget(budget.finishing!);
    assert.deepEqual([b, c].map((s) => s.pausedFor(Pause.budget)), [false, false], "a close hands over too");
  });

  it("closes a held connection whose unread input fills the input cap instead of pausing it", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const held = new StubSession();
    held.client = undefined;
    held.held = { inboxBytes: 120 };
    budget.received(120);
    budget.pressure(asSession(held));
    assert.match(
      String(held.failedWith),
      /ProtocolError: Closing held connection from tcp:127\.0\.0\.1:2: its unread input filled the input cap/,
    );
    assert.equal(held.pausedFor(Pause.budget), false);
  });

  it("over the output cap pauses the producer of output for a congested connection, until relieved", () => {
    const budget = new MemoryBudget(1000, 100, () => {});
    const producer = new StubSession();
    const target = new StubSession();
    target.queuedOutputBytes = 128 * 1024;
    budget.handling(asSession(producer));
    budget.queued(200, asSession(target));
    assert.equal(producer.pausedFor(Pause.budget), true);
    budget.written(200);
    budget.relieve();
    assert.equal(producer.pausedFor(Pause.budget), false);
  });

  it("forgets a closed connection: no longer the producer, no longer paused", () => {
    const budget = new MemoryBudget(1000, 100, () => {});
    const producer = new StubSession();
    const target = new StubSession();
    target.queuedOutputBytes = 128 * 1024;
    budget.handling(asSession(producer));
    budget.forget(asSession(producer));
    budget.queued(200, asSession(target));
    assert.equal(producer.pausedFor(Pause.budget), false, "a forgotten producer is not paused");
    assert.equal(budget.readingPaused, false);
  });

  it("counts what processors hold as input; over the cap one holder reads on and the others pause", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const first = new StubSession();
    const second = new StubSession();
    budget.processorHeld(asSession(first), 80);
    assert.equal(budget.inputBytes, 80);
    assert.equal(budget.processorHeld(asSession(second), 40), 40);
    assert.equal(budget.inputBytes, 120);
    assert.equal(second.pausedFor(Pause.budget), true, "the later holder pauses over the cap");
    budget.processorHeld(asSession(first), 50);
    assert.equal(first.pausedFor(Pause.budget), false, "one holder keeps reading, so that it can finish");
    assert.equal(budget.heldBy(asSession(first)), 130);
    budget.processorHeld(asSession(first), -130);
    assert.equal(budget.inputBytes, 40);
    assert.equal(budget.heldBy(asSession(first)), 0);
    assert.equal(second.pausedFor(Pause.budget), false, "under the cap again, the paused holder resumes");
  });

  it("resumes the oldest paused holder when every holder is paused and input stays over the cap", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const reader = new StubSession();
    const first = new StubSession();
    const second = new StubSession();
    budget.processorHeld(asSession(first), 60);
    budget.processorHeld(asSession(second), 60);
    assert.equal(second.pausedFor(Pause.budget), true);
    budget.received(200); // unread messages elsewhere keep input over the cap
    reader.client!.inboxBytes = 200;
    budget.pressure(asSession(reader));
    budget.processorHeld(asSession(first), -60);
    assert.equal(second.pausedFor(Pause.budget), false, "or no holder would ever finish and release");
    assert.equal(reader.pausedFor(Pause.budget), true, "the reader with unread input stays paused");
  });

  it("releases what a closed connection's processor held", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const first = new StubSession();
    const second = new StubSession();
    budget.processorHeld(asSession(first), 90);
    budget.processorHeld(asSession(second), 90);
    assert.equal(second.pausedFor(Pause.budget), true);
    first.closed = true;
    budget.forget(asSession(first));
    assert.equal(budget.inputBytes, 90);
    assert.equal(budget.heldBy(asSession(first)), 0);
    assert.equal(second.pausedFor(Pause.budget), false);
  });
});
