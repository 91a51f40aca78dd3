/**
 * `Session` without sockets: a stub connection (an object implementing the transport's
 * `Connection`, recording what the session asks of it) and a stub core around it. Covers decoding
 * into the inbox, the once-per-tick write and its accounting, and the half-close rules.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { describe, it } from "node:test";
import type { Addr, Connection, ConnectionHandler } from "../transports/types.ts";
import { ClientRecord } from "../core/clients/client_registry.ts";
import { FlushScheduler } from "../core/connection/output.ts";
import { OutputQueue } from "../core/connection/output_queue.ts";
import { Session, type SessionHost } from "../core/connection/session.ts";
import { Phase } from "../core/connection/session_phase.ts";
import { EventBoard } from "../core/engine/event_board.ts";
import { MemoryBudget } from "../core/engine/memory_budget.ts";
import { ProcessorHost } from "../core/engine/processor_host.ts";
import type { IoCoreLimits } from "../core/options.ts";
import { resolveLimits } from "../core/option_tables.ts";
import type { ListenerInfo } from "../core/types.ts";
import { encodeFrame, FrameDecoder } from "../core/wire/codec.ts";
import { waitFor } from "./_settle.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A connection that records writes and closes instead of touching a socket. */
class StubConnection implements Connection {
  readonly localAddr: Addr = { transport: "tcp", hostname: "127.0.0.1", port: 1 };
  readonly remoteAddr: Addr = { transport: "tcp", hostname: "127.0.0.1", port: 2 };
  readonly bufferedAmount = 0;
  readonly discardedBytes = 0;
  closed = false;
  wroteEnd = false;
  readonly written: Uint8Array[] = [];
  handler: ConnectionHandler | undefined;
  setHandler(handler: ConnectionHandler): void {
    this.handler = handler;
  }
  write(data: Uint8Array): boolean {
    this.written.push(data);
    return true;
  }
  writeBatch(chunks: readonly Uint8Array[]): boolean {
    for (const chunk of chunks) this.written.push(chunk);
    return true;
  }
  pauseReading(): void {}
  resumeReading(): void {}
  closeWrite(): void {
    this.wroteEnd = true;
  }
  close(): void {
    this.closed = true;
  }
  setNoDelay(): void {}
  setKeepAlive(): void {}
  /** Everything written, as one buffer. */
  bytes(): Uint8Array {
    const out = new Uint8Array(this.written.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of this.written) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }
}

/** The core around a session, reduced to what it needs, recording the closes. */
function stubHost(limits: IoCoreLimits = {}): SessionHost & { closedSessions: Session[] } {
  const closedSessions: Session[] = [];
  const refuse = () => {
    throw new Error("not used by these tests");
  };
  const budget = new MemoryBudget(1 << 20, 1 << 20, () => {});
  return {
    closedSessions,
    limits: resolveLimits(limits),
    logger: {},
    budget,
    board: new EventBoard(() => false),
    processors: new ProcessorHost({}, budget),
    flusher: new FlushScheduler(),
    tracksIdle: false,
    proxied: refuse,
    keywordVerdict: refuse,
    router: { admit: refuse, admitting: refuse, admitted: refuse },
    admitNamed: refuse,
    hold: refuse,
    bind: refuse,
    verifyProof: refuse,
    proofFor: refuse,
    sessionClosed: (session) => void closedSessions.push(session),
  };
}

const LISTENER: ListenerInfo = {
  id: 0,
  name: "stub",
  addr: { transport: "tcp", hostname: "127.0.0.1", port: 1 },
};

/** The payloads of the frames in `bytes`. */
function framesIn(bytes: Uint8Array): string[] {
  const frames = new FrameDecoder({ maxMessageBytes: 1024 });
  frames.push(bytes);
  const out: string[] = [];
  for (let m = frames.next(); m !== undefined; m = frames.next()) out.push(decoder.decode(m));
  return out;
}

/** An accepted raw session bound to a fresh unknown client's record. */
function rawSession(host: SessionHost) {
  const conn = new StubConnection();
  const session = new Session(host, conn, LISTENER, "raw");
  const record = new ClientRecord(1, "unknown", encoder.encode("raw"));
  session.attach(record);
  conn.setHandler(session);
  return { conn, session, record };
}

const microtasks = () => new Promise<void>((resolve) => setTimeout(resolve, 0));

describe("Session (stub connection)", () => {
  it("decodes frames split at every byte into the client's inbox, counted as input", () => {
    const host = stubHost();
    const { session, record } = rawSession(host);
    session.setRaw(false);
    const wire = new Uint8Array([
      ...encodeFrame(encoder.encode("one")),
      ...encodeFrame(encoder.encode("two")),
    ]);
    for (let i = 0; i < wire.length; i++) session.onData(wire.subarray(i, i + 1));
    assert.deepEqual(record.takeAll().map((m) => decoder.decode(m)), ["one", "two"]);
    assert.equal(host.budget.inputBytes, 2 * (3 + 64), "two unread messages with their overhead");
  });

  it("writes what was queued in one batch at the end of the tick, and releases it on drain", async () => {
    const host = stubHost();
    const { conn, session } = rawSession(host);
    session.setRaw(false);
    session.queueOutput(encoder.encode("a"));
    session.queueOutputs([encoder.encode("b"), "c"]);
    assert.equal(conn.written.length, 0, "nothing is written before the tick ends");
    assert.equal(host.budget.outputBytes, 3 * 9);
    assert.equal(session.queuedOutputBytes, 27);
    await microtasks();
    assert.deepEqual(framesIn(conn.bytes()), ["a", "b", "c"]);
    assert.equal(session.output.inflightBytes, 27);
    session.onDrain();
    assert.equal(host.budget.outputBytes, 0);
    assert.equal(session.queuedOutputBytes, 0);
  });

  it("after the peer's end stays open while input is unread, then closes once read and the time is up", async () => {
    const host = stubHost({ halfOpenTimeoutMs: 20 });
    const { conn, session, record } = rawSession(host);
    session.onData(encoder.encode("request"));
    session.onEnd();
    assert.equal(session.peerEnded, true);
    assert.equal(session.phase, Phase.open, "still open: its input is unread");
    // Only time passing can show that the unread input keeps it: 5x the half-open time.
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(conn.closed, false);
    session.queueOutput(encoder.encode("answer"));
    // As the scheduler reads an inbox: take, release the cost, tell the session.
    const cost = record.inboxCost;
    assert.equal(decoder.decode(record.takeOne()!), "request");
    host.budget.consumed(session, cost, record.inboxBytes);
    session.inputRead();
    await microtasks();
    session.onDrain();
    await waitFor(() => conn.closed, 2000, "the half-open session to close");
    assert.equal(decoder.decode(conn.bytes()), "answer", "the answer was written before the close");
    assert.deepEqual(host.closedSessions, [session]);
    assert.equal(host.budget.inputBytes, 0);
    assert.equal(host.budget.outputBytes, 0);
  });

  it("an outgoing session whose server ends its side closes at once", () => {
    const host = stubHost();
    const conn = new StubConnection();
    const record = new ClientRecord(1, "expected", encoder.encode("out"));
    const session = new Session(host, conn, undefined, record);
    conn.setHandler(session);
    session.onEnd();
    assert.equal(session.closed, true);
    assert.equal(conn.closed, true);
  });
});

describe("OutputQueue.pushMany (stub connection)", () => {
  it("refuses a list with an item that is not a message, queuing none of it", () => {
    const conn = new StubConnection();
    const queue = new OutputQueue(conn, false, { close: (error: Error) => assert.fail(error) });
    const bad = [encoder.encode("a"), "b", 5, encoder.encode("d")] as unknown[];
    assert.equal(queue.pushMany(bad, true), -1 - 2, "the index of the refused item");
    assert.equal(queue.queuedBytes, 0);
    queue.write();
    assert.equal(conn.written.length, 0, "nothing of the refused list was written");
  });

  it("refuses look-alikes of bytes: null, undefined, an array, an object with a length, other views", () => {
    const conn = new StubConnection();
    const queue = new OutputQueue(conn, false, { close: (error: Error) => assert.fail(error) });
    const lookAlikes = [
      null,
      undefined,
      [1, 2],
      { length: 3 },
      new Uint16Array(2),
      new DataView(new ArrayBuffer(2)),
    ];
    for (const item of lookAlikes) {
      assert.equal(queue.pushMany([encoder.encode("a"), item], true), -1 - 1, String(item));
    }
    assert.equal(queue.queuedBytes, 0);
    assert.equal(
      queue.pushMany([Buffer.from("ab"), encoder.encode("c")], true),
      2 * 8 + 3,
      "a Buffer is bytes",
    );
  });

  it("queues bytes and text, framed, counting each message's header and its encoded length", () => {
    const conn = new StubConnection();
    const queue = new OutputQueue(conn, false, { close: (error: Error) => assert.fail(error) });
    const bytes = queue.pushMany([encoder.encode("ab"), "é", encoder.encode("")], true);
    assert.equal(bytes, 3 * 8 + 2 + 2 + 0);
    assert.equal(queue.queuedBytes, bytes);
    queue.write();
    const out = new FrameDecoder();
    out.push(conn.bytes());
    const got: Uint8Array[] = [];
    out.takeWholeMessages(got);
    assert.deepEqual(got.map((m) => decoder.decode(m)), ["ab", "é", ""]);
  });
});
