/**
 * Streamed messages at the edges: raw mode asked for mid-stream, held connections, what a close does
 * to the messages after an unread stream, and connections assembling whole messages over the input
 * cap (paused, one finishing at a time, nothing dropped).
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { encodeFrame } from "../core/wire/codec.ts";
import { type ClientId, UnsupportedError } from "../mod.ts";
import { startCore } from "./_core_fixture.ts";
import { STREAM_OPTIONS, untilClientIn } from "./_stream_helpers.ts";
import { bytePattern, bytesEqual, concatBytes, MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { frameHeader, text, type WirePeer } from "./_wire_peer.ts";

async function drain(readable: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  for await (const chunk of readable) parts.push(chunk);
  return concatBytes(parts);
}

describe("streamed messages at the edges", () => {
  it(
    "raw mode is refused with UnsupportedError while a stream is received, and applies once it is read",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(STREAM_OPTIONS);
      const { id, peer } = await fx.connectNamed("switch");
      const payload = bytePattern(3 * MiB, 4);
      peer.write(encodeFrame(payload));
      await untilClientIn(fx.core, "clientsHaveMessageStream", id);
      assert.throws(() => fx.core.switchClientRawConnectionMode(id, true), (err) => {
        assert.ok(err instanceof UnsupportedError);
        assert.match(
          String(err),
          /Cannot switch the connection from .* to raw mode: a 3145728-byte message stream/,
        );
        return true;
      });
      const stream = fx.core.takeMessageStream(id)!;
      assert.throws(
        () => fx.core.switchClientRawConnectionMode(id, true),
        UnsupportedError,
        "taken, not read",
      );
      assert.ok(bytesEqual(await drain(stream.readable), payload), "the refused switch changed nothing");
      await waitFor(
        () => {
          try {
            fx.core.switchClientRawConnectionMode(id, true);
            return true;
          } catch {
            return false;
          }
        },
        10_000,
        "the switch once the stream ended",
      );
      peer.write(new TextEncoder().encode("raw bytes"));
      await untilClientIn(fx.core, "clientsHaveDataToRead", id);
      assert.equal(text(fx.core.getMessagesFromClient(id)[0]), "raw bytes");
    },
  );

  it(
    "raw mode is refused while sendMessageStream writes, and applies after it settles",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(STREAM_OPTIONS);
      const { id, peer } = await fx.connectNamed("sending");
      let release!: () => void;
      const gate = new Promise<void>((resolve) => release = resolve);
      const sending = fx.core.sendMessageStream(
        id,
        (async function* () {
          yield new Uint8Array(10);
          await gate;
          yield new Uint8Array(10);
        })(),
        20,
      );
      // It has the connection from the call on (nothing queued before it).
      assert.throws(() => fx.core.switchClientRawConnectionMode(id, true), /a message stream is being sent/);
      release();
      await sending;
      fx.core.switchClientRawConnectionMode(id, true);
      await peer.until(() => peer.pending >= 1);
      assert.equal(peer.take()!.length, 20);
    },
  );

  it(
    "a held connection's messages stay whole; once adopted, its frames over the threshold stream",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(STREAM_OPTIONS);
      const peer = await fx.handshake("later");
      const first = bytePattern(2 * MiB, 1);
      peer.write(encodeFrame(first));
      await waitFor(() => fx.core.stats().inputBytes >= first.length, 10_000, "the held message");
      const id = fx.core.addClient({ keyword: "later" });
      await untilClientIn(fx.core, "clientsHaveDataToRead", id);
      const [whole] = fx.core.getMessagesFromClient(id);
      assert.ok(bytesEqual(whole!, first), "held: whole, as it arrived");
      const second = bytePattern(2 * MiB, 2);
      peer.write(encodeFrame(second));
      await untilClientIn(fx.core, "clientsHaveMessageStream", id);
      const stream = fx.core.takeMessageStream(id)!;
      assert.ok(bytesEqual(await drain(stream.readable), second));
    },
  );

  it(
    "closing a connection loses the messages after a stream nobody finished reading; the stream stays readable",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore(STREAM_OPTIONS);
      const { id, peer } = await fx.connectNamed("lost");
      const payload = bytePattern(1 * MiB + 100, 6);
      peer.write(encodeFrame(payload));
      peer.write(encodeFrame(new TextEncoder().encode("after")));
      await untilClientIn(fx.core, "clientsHaveMessageStream", id);
      await waitFor(() => fx.core.stats().inputBytes >= payload.length, 10_000, "every byte");
      const stream = fx.core.takeMessageStream(id)!;
      fx.core.closeClientConnection(id);
      let gone = false;
      for (let i = 0; i < 200 && !gone; i++) {
        gone = (await fx.core.ioIteration(50)).clientsWithDisconnectedConnection.has(id);
      }
      assert.ok(gone, "the disconnect is reported");
      assert.ok(bytesEqual(await drain(stream.readable), payload), "it had arrived whole: it is read");
      await fx.core.ioIteration(50);
      assert.deepEqual(fx.core.getMessagesFromClient(id), [], "the message after it was lost");
      await waitFor(() => fx.core.stats().inputBytes === 0, 10_000, "input released");
    },
  );

  it(
    "connections assembling whole messages over the input cap pause, one finishes at a time, none is lost",
    TEST_TIMEOUT,
    async () => {
      const cap = 4 * MiB;
      const size = 6 * MiB;
      await using fx = await startCore({
        listeners: STREAM_OPTIONS.listeners,
        limits: { inputBytes: cap, maxMessageBytes: 8 * MiB },
      });
      const peers: Array<{ id: ClientId; peer: WirePeer }> = [];
      for (let i = 0; i < 3; i++) peers.push(await fx.connectNamed(`whole ${i}`));
      const payloads = peers.map((_, i) => bytePattern(size, 20 + i));
      peers.forEach(({ peer }, i) => {
        peer.write(frameHeader(size));
        peer.write(payloads[i]!);
      });
      let peak = 0;
      await waitFor(
        () => {
          peak = Math.max(peak, fx.core.stats().inputBytes);
          return fx.core.stats().readingPaused;
        },
        10_000,
        "a pause",
      );
      for (let i = 0; i < 30; i++) {
        await fx.core.ioIteration(10);
        peak = Math.max(peak, fx.core.stats().inputBytes);
      }
      // The cap, one message finishing over it, and a read chunk or two per paused connection.
      assert.ok(peak < cap + size + 3 * MiB, `inputBytes peaked at ${peak}`);
      const got = new Map<ClientId, Uint8Array>();
      for (let i = 0; i < 400 && got.size < peers.length; i++) {
        await fx.core.ioIteration(50);
        peak = Math.max(peak, fx.core.stats().inputBytes);
        for (const { id } of peers) {
          for (const m of fx.core.getMessagesFromClient(id)) got.set(id, m);
        }
      }
      assert.equal(got.size, peers.length, "every message arrived");
      peers.forEach(({ id }, i) => assert.ok(bytesEqual(got.get(id)!, payloads[i]!), `message ${i} intact`));
      assert.ok(peak < cap + size + 3 * MiB, `inputBytes peaked at ${peak}`);
    },
  );
});
