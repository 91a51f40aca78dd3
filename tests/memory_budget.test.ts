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

  it("starts no new turn over the input cap while the last message finished over it waits unread", () => {
    // Seen on Deno under load: a connection whose first chunks came after the finished message took a
    // turn of its own, and three 6 MiB messages were held at once under a 4 MiB cap.
    const budget = new MemoryBudget(100, 1000, () => {});
    const [a, late] = [new StubSession(), new StubSession()];
    budget.received(120);
    budget.pressure(asSession(a), 30);
    assert.equal(budget.finishing, asSession(a));
    budget.received(30);
    a.client!.inboxBytes = 150;
    budget.pressure(asSession(a), 0); // whole, and unread
    assert.equal(budget.finishing, undefined);
    budget.received(110);
    budget.pressure(asSession(late), 500);
    assert.equal(late.pausedFor(Pause.budget), true, "a late assembler waits while a's message is unread");
    assert.equal(budget.finishing, undefined);
    budget.relieve();
    assert.equal(late.pausedFor(Pause.budget), true, "a relief elsewhere starts no turn either");
    a.client!.inboxBytes = 0;
    budget.consumed(asSession(a), 150, 0); // 110 left, still over the cap: the waiting one takes its turn
    assert.equal(budget.finishing, asSession(late));
    assert.equal(late.pausedFor(Pause.budget), false);
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

  it("counts what processors hold as input; over the cap one holder finishes its body and the others wait", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const first = new StubSession();
    const second = new StubSession();
    budget.processorHeld(asSession(first), 80);
    assert.equal(budget.inputBytes, 80);
    assert.equal(budget.processorHeld(asSession(second), 40), 40);
    assert.equal(budget.inputBytes, 120);
    assert.equal(budget.finishing, asSession(second), "the holder that went over the cap finishes its body");
    assert.equal(second.pausedFor(Pause.budget), false);
    budget.processorHeld(asSession(first), 10);
    assert.equal(first.pausedFor(Pause.budget), true, "another holder waits its turn");
    assert.equal(budget.heldBy(asSession(first)), 90);
    budget.processorHeld(asSession(second), -40);
    assert.equal(budget.inputBytes, 90);
    assert.equal(budget.heldBy(asSession(second)), 0);
    assert.equal(first.pausedFor(Pause.budget), false, "under the cap again, the waiting holder resumes");
  });

  it("hands the turn to the longest waiting holder when the finishing one releases and input stays over", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const [reader, first, second, third] = [1, 2, 3, 4].map(() => new StubSession());
    budget.received(200); // unread messages elsewhere keep input over the cap
    reader.client!.inboxBytes = 200;
    budget.pressure(asSession(reader));
    budget.processorHeld(asSession(first), 10);
    budget.processorHeld(asSession(second), 10);
    budget.processorHeld(asSession(third), 10);
    assert.deepEqual([first, second, third].map((s) => s.pausedFor(Pause.budget)), [false, true, true]);
    budget.processorHeld(asSession(first), -10);
    assert.equal(budget.finishing, asSession(second), "or no waiting holder would ever finish and release");
    assert.deepEqual([second, third].map((s) => s.pausedFor(Pause.budget)), [false, true]);
    assert.equal(reader.pausedFor(Pause.budget), true, "the reader with unread input stays paused");
  });

  it("gives one turn across kinds: a held body and a framed message being assembled", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const holder = new StubSession();
    const assembler = new StubSession();
    budget.received(90);
    budget.processorHeld(asSession(holder), 20);
    budget.afterInput(asSession(assembler), 500); // a framed message with 500 bytes still to come
    assert.equal(budget.finishing, asSession(holder));
    assert.equal(assembler.pausedFor(Pause.budget), true, "the assembler waits for the body to finish");
    budget.processorHeld(asSession(holder), -20);
    assert.equal(budget.inputBytes, 90, "under the cap: every connection reads");
    assert.equal(assembler.pausedFor(Pause.budget), false);
  });

  it("makes WebSocket messages being assembled take turns over the input cap", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const [a, b] = [new StubSession(), new StubSession()];
    budget.assembling(70, asSession(a));
    budget.assembling(70, asSession(b));
    assert.equal(budget.finishing, asSession(b));
    budget.assembling(10, asSession(a));
    assert.equal(a.pausedFor(Pause.budget), true, "a waits while b finishes its message");
    budget.received(70); // other input keeps the cap exceeded
    budget.assembling(-70, asSession(b));
    assert.equal(budget.finishing, asSession(a), "over the cap still: a's turn");
    assert.equal(a.pausedFor(Pause.budget), false);
  });

  it("resumes the finishing connection once the output congestion that paused it clears", () => {
    const budget = new MemoryBudget(100, 100, () => {});
    const a = new StubSession();
    budget.received(150);
    a.queuedOutputBytes = 128 * 1024;
    budget.queued(200);
    budget.afterInput(asSession(a), 50);
    assert.equal(budget.finishing, asSession(a));
    assert.equal(a.pausedFor(Pause.budget), true, "its own output is congested");
    a.queuedOutputBytes = 0;
    budget.written(200);
    budget.relieve();
    assert.equal(a.pausedFor(Pause.budget), false, "it finishes its message: nothing else would free input");
  });

  it("releases what a closed connection's processor held", () => {
    const budget = new MemoryBudget(100, 1000, () => {});
    const first = new StubSession();
    const second = new StubSession();
    budget.processorHeld(asSession(first), 90);
    budget.processorHeld(asSession(second), 90);
    budget.processorHeld(asSession(first), 5);
    assert.equal(first.pausedFor(Pause.budget), true);
    second.closed = true;
    budget.forget(asSession(second));
    assert.equal(budget.inputBytes, 95);
    assert.equal(budget.heldBy(asSession(second)), 0);
    assert.equal(first.pausedFor(Pause.budget), false);
  });
});
