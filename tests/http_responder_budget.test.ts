/**
 * An `HttpResponder`'s bodies in the core's memory budget, over real sockets: a body being read
 * counts in `inputBytes`, uploads over the input cap take turns instead of growing without bound,
 * and nothing is dropped. Also `holdInputBytes` misused by a processor: its connection only closes.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { MiB, TEST_TIMEOUT } from "./_helpers.ts";
import { InlineProcessor, type IoCore } from "../mod.ts";
import { type HttpRequest, HttpResponder, type HttpResponse } from "../processors/http_responder.ts";
import { startProcessorCore } from "./_core_fixture.ts";
import { NetPeer } from "./_net_client.ts";
import { waitFor } from "./_settle.ts";

const INPUT_CAP = 1 * MiB;
const BODY = 4 * MiB;
const PIECE = 64 * 1024;

/** What the responders below saw of the core's input count, at each read. */
const seen = { core: undefined as IoCore | undefined, peak: 0, paused: false };

/** Answers each body's length and checksum, and samples `inputBytes` at every read. */
class Sampler extends HttpResponder {
  static override maxBodyBytes = 8 * MiB;

  override onDataReceived(data: Uint8Array): void | Promise<void> {
    const result = super.onDataReceived(data);
    const stats = seen.core!.stats();
    seen.peak = Math.max(seen.peak, stats.inputBytes);
    seen.paused ||= stats.readingPaused;
    return result;
  }

  override handle(request: HttpRequest): HttpResponse {
    let sum = 0;
    for (const byte of request.body) sum = (sum + byte) % 65521;
    return { body: `${request.target} ${request.body.length} ${sum}\n` };
  }
}

function body(seed: number): Uint8Array {
  return new Uint8Array(BODY).map((_, i) => (i * 7 + seed) % 251);
}

function expected(target: string, bytes: Uint8Array): string {
  let sum = 0;
  for (const byte of bytes) sum = (sum + byte) % 65521;
  const text = `${target} ${bytes.length} ${sum}\n`;
  return `HTTP/1.1 200 OK\r\ncontent-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`;
}

/** Writes `bytes` in pieces, each once the previous one left for the kernel: a slow client. */
async function upload(peer: NetPeer, target: string, bytes: Uint8Array): Promise<void> {
  peer.write(
    `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: ${bytes.length}\r\nConnection: close\r\n\r\n`,
  );
  for (let i = 0; i < bytes.length; i += PIECE) {
    await new Promise<void>((resolve) => peer.socket.write(bytes.subarray(i, i + PIECE), () => resolve()));
  }
}

describe("HttpResponder in the core's memory budget", () => {
  it(
    "counts a body being read in inputBytes, makes uploads over the cap take turns, and drops nothing",
    { timeout: 120_000 },
    async () => {
      await using fx = await startProcessorCore(Sampler, { limits: { inputBytes: INPUT_CAP } });
      seen.core = fx.core;
      seen.peak = 0;
      seen.paused = false;
      const bodies = [body(1), body(2), body(3)];
      const peers = await Promise.all(bodies.map(() => NetPeer.connect(fx.port())));
      await Promise.all(peers.map((peer, i) => upload(peer, `/u${i}`, bodies[i]!)));
      const outcomes = await Promise.all(peers.map((peer) => peer.outcome(60_000)));
      assert.deepEqual(
        outcomes,
        bodies.map((bytes, i) => ({ text: expected(`/u${i}`, bytes), eof: true })),
        "every upload is read whole and answered",
      );
      assert.ok(seen.peak >= INPUT_CAP, `a body being read counts as input (peak ${seen.peak})`);
      assert.ok(seen.paused, "over the cap, some upload paused");
      // One body at a time past the cap, plus what the other two read before they paused.
      const bound = INPUT_CAP + BODY + 2 * MiB;
      assert.ok(seen.peak <= bound, `inputBytes stays bounded: peak ${seen.peak} <= ${bound}`);
      await waitFor(() => fx.core.stats().inputBytes === 0, 5000, "the bodies' bytes released");
    },
  );

  it("closes only the connection whose processor releases more than it holds", TEST_TIMEOUT, async () => {
    const errors: unknown[] = [];
    class Misuser extends InlineProcessor {
      override onDataReceived(data: Uint8Array): void {
        this.holdInputBytes(data.length);
        if (data[0] === 0x21) this.releaseInputBytes(data.length + 1); // "!" asks for the misuse
        else this.releaseInputBytes(data.length);
        this.outputMessages.push(data);
      }
    }
    await using fx = await startProcessorCore(Misuser, {
      logger: { error: (_message, ...details) => errors.push(...details) },
    });
    const bad = await NetPeer.connect(fx.port());
    const good = await NetPeer.connect(fx.port());
    bad.write("!bad");
    assert.deepEqual(await bad.outcome(), { text: "", eof: true });
    good.write("fine");
    assert.ok(await good.until(() => good.text() === "fine"), "the other connection is served");
    good.end();
    assert.equal((await good.outcome()).text, "fine");
    assert.match(String(errors[0]), /RangeError: Cannot release 5 input bytes: the processor holds 4/);
    await waitFor(() => fx.core.stats().inputBytes === 0, 5000, "nothing held is left counted");
  });
});
