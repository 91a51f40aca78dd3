/**
 * `natsCluster`'s sender without sockets: a fake NATS connection answers each request when the test
 * says so. Two batches of one keyword go out at once; a batch that found nobody is sent again only
 * when nothing was sent after it (order per sender and keyword), and never twice once delivered.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { ClientNotConnectedError } from "../mod.ts";
import { NatsSender } from "../cluster/_nats_sender.ts";
import { decodeBatch, Op, Reply } from "../cluster/_nats_wire.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor as waitForIt } from "./_settle.ts";

/** Waits up to 5 s for `condition`. */
const waitFor = (condition: () => boolean) => waitForIt(condition, 5000, "the expected requests");

/** A request the fake connection holds until the test answers it. */
interface Held {
  readonly subject: string;
  /** The request's messages, as text. */
  readonly messages: string[];
  answer(reply: Uint8Array): void;
  fail(err: unknown): void;
}

const enc = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);
const OK = new Uint8Array([Reply.ok]);
const OFFLINE = new Uint8Array([Reply.offline]);
const NO_RESPONDERS = Object.assign(new Error("503"), { code: "503" });

function fakeSender() {
  const held: Held[] = [];
  const nc = {
    request(subject: string, data: Uint8Array) {
      assert.equal(data[0], Op.messages);
      return new Promise<{ data: Uint8Array }>((resolve, reject) => {
        held.push({
          subject,
          messages: decodeBatch(data).map(text),
          answer: (reply) => resolve({ data: reply }),
          fail: reject,
        });
      });
    },
  };
  const sender = new NatsSender(nc, "asockio.t.", 5000, new Uint8Array(8), () => 1024);
  return { sender, held };
}

/** Settles `promise` into `"ok"` or the error's class name, for comparing outcomes. */
function outcome(promise: Promise<void>): Promise<string> {
  return promise.then(() => "ok", (err: Error) => err.constructor.name);
}

/** A sender with two batches of keyword `dev` in flight: messages "1" and "2". */
async function twoInFlight() {
  const { sender, held } = fakeSender();
  const kw = enc("dev");
  const first = outcome(sender.send(kw, [enc("1")]));
  await waitFor(() => held.length === 1);
  const second = outcome(sender.send(kw, [enc("2")]));
  await waitFor(() => held.length === 2);
  return { sender, held, kw, first, second };
}

describe("natsCluster sender: batches in flight per keyword", TEST_TIMEOUT, () => {
  it("sends a second batch while the first is in flight, and no third", async () => {
    const { sender, held, kw, first, second } = await twoInFlight();
    const third = outcome(sender.send(kw, [enc("3")]));
    const fourth = outcome(sender.send(kw, [enc("4")]));
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(held.length, 2, "two batches in flight at most");
    held[0]!.answer(OK);
    await waitFor(() => held.length === 3);
    assert.deepEqual(held[2]!.messages, ["3", "4"], "what waited goes in one batch");
    held[1]!.answer(OK);
    held[2]!.answer(OK);
    assert.deepEqual(await Promise.all([first, second, third, fourth]), ["ok", "ok", "ok", "ok"]);
  });

  it("does not send a batch again when a later one is in flight: it fails, in order", async () => {
    for (const refusal of ["offline", "no responders"]) {
      const { held, first, second } = await twoInFlight();
      if (refusal === "offline") held[0]!.answer(OFFLINE);
      else held[0]!.fail(NO_RESPONDERS);
      assert.equal(await first, ClientNotConnectedError.name, refusal);
      held[1]!.answer(OK);
      assert.equal(await second, "ok", refusal);
      assert.deepEqual(
        held.map((h) => h.messages),
        [["1"], ["2"]],
        `${refusal}: batch 1 never follows batch 2`,
      );
    }
  });

  it("sends the last batch again, alone, and what came meanwhile after it", async () => {
    const { sender, held } = fakeSender();
    const kw = enc("dev");
    const first = outcome(sender.send(kw, [enc("1")]));
    await waitFor(() => held.length === 1);
    held[0]!.fail(NO_RESPONDERS); // the last one sent: tried again after a pause
    const second = outcome(sender.send(kw, [enc("2")]));
    await waitFor(() => held.length === 2);
    assert.deepEqual(held[1]!.messages, ["1"], "the retry goes before anything sent after it");
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(held.length, 2, "nothing goes beside a batch sent again");
    held[1]!.answer(OFFLINE); // still the last: tried again
    await waitFor(() => held.length === 3);
    assert.deepEqual(held[2]!.messages, ["1"]);
    held[2]!.answer(OK);
    await waitFor(() => held.length === 4);
    assert.deepEqual(held[3]!.messages, ["2"]);
    held[3]!.answer(OK);
    assert.deepEqual(await Promise.all([first, second]), ["ok", "ok"]);
  });

  it("sends made while two batches are in flight share one request, each caller with its own promise", async () => {
    const { sender, held, kw } = await twoInFlight();
    const other = enc("other");
    const calls = [
      sender.send(kw, [enc("3")]),
      sender.send(other, [enc("x")]),
      sender.send(kw, [enc("4"), enc("5")]),
    ];
    assert.notEqual(calls[0], calls[2], "a promise per call, not the batch's");
    const outcomes = calls.map(outcome);
    await waitFor(() => held.length === 3);
    assert.deepEqual(held[2]!.messages, ["x"], "another keyword's send goes at once");
    held[0]!.answer(OK);
    await waitFor(() => held.length === 4);
    assert.deepEqual(
      held[3]!.messages,
      ["3", "4", "5"],
      "the waiting calls of one keyword, in order, in one request",
    );
    held[3]!.fail(new Error("lost"));
    held[1]!.answer(OK);
    held[2]!.answer(OK);
    assert.deepEqual(
      await Promise.all(outcomes),
      ["Error", "ok", "Error"],
      "each caller of the failed batch is told",
    );
    assert.equal(sender.counters.failures, 2, "failures count calls");
    assert.equal(sender.counters.sendsOut, 3, "sends out count messages");
  });
});
