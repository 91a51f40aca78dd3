/**
 * A live, seeded, bounded fuzz of a `websocket` listener over real sockets, against `ws`'s own frame
 * parser as the independent decoder (`tests/_websocket_fuzz.ts`). `ASOCKIO_FUZZ_SEED` picks another seed.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import process from "node:process";
import { startCore } from "./_core_fixture.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";
import { Rng } from "./_stream_check.ts";
import { fuzzRound, wsDecode } from "./_websocket_fuzz.ts";
import { clientFrame, closePayload } from "./_websocket_peer.ts";

const SEED = Number(process.env.ASOCKIO_FUZZ_SEED ?? 22);
const ROUNDS = 100;
const MAX = 70_000;

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
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0, websocket: { path: "/ws", pingIntervalMs: 0 } }],
        limits: { maxMessageBytes: MAX },
      });
      const problems: string[] = [];
      for (let round = 0; round < ROUNDS && problems.length < 5; round++) {
        const id = fx.core.addClient({ keyword: `fuzz-${round}` });
        const problem = await fuzzRound(fx.core, fx.port(), `fuzz-${round}`, id, new Rng(SEED, round), MAX);
        if (problem) problems.push(`seed ${SEED} round ${round}: ${problem}`);
      }
      assert.deepEqual(problems, []);
    },
  );
});
