/**
 * A live, seeded, bounded fuzz of a `websocket` listener over real sockets, against `ws`'s own frame
 * parser as the independent decoder (`tests/_websocket_fuzz.ts`). `ASOCKIO_FUZZ_SEED` picks another seed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import process from "node:process";
import { TEST_TIMEOUT } from "./_helpers.ts";
import { runWebSocketFuzz, wsDecode } from "./_websocket_fuzz.ts";
import { clientFrame, closePayload } from "./_websocket_peer.ts";

const SEED = Number(process.env.ASOCKIO_FUZZ_SEED ?? 22);
const ROUNDS = 100;

describe("websocket listener, live frame fuzz", () => {
  it("the independent decoder reads what it must (ws's Receiver, both sides)", async () => {
    const ok = await wsDecode(clientFrame(1, "hi"), 100);
    assert.deepEqual([ok.end, ok.messages.length], ["open", 1]);
    assert.deepEqual((await wsDecode(clientFrame(2, "x", { masked: false }), 100)).code, 1002);
    assert.deepEqual((await wsDecode(clientFrame(2, new Uint8Array(101)), 100)).code, 1009);
    assert.deepEqual((await wsDecode(clientFrame(1, new Uint8Array([0xff])), 100)).code, 1007);
    const closed = await wsDecode(clientFrame(8, closePayload(4000)), 100);
    assert.deepEqual([closed.end, closed.code], ["close", 4000]);
  });

  it(
    `${ROUNDS} rounds of mutated frames: messages, pongs and close codes as ws reads them`,
    TEST_TIMEOUT,
    async () => {
      const report = await runWebSocketFuzz({ rounds: ROUNDS, seed: SEED });
      assert.deepEqual(report.failures, []);
      assert.equal(report.rounds, ROUNDS);
      // The seed reaches each ending: clean, the peer's close, and each protocol error.
      for (const outcome of ["open", "close", "error 1002", "error 1007", "error 1009"]) {
        assert.ok(
          report.outcomes[outcome]! > 0,
          `no round ended ${outcome}: ${JSON.stringify(report.outcomes)}`,
        );
      }
    },
  );
});
