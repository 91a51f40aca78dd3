/**
 * Regression tests for defects found in review: each failed before its fix. Real sockets on
 * loopback, with `node:net` clients the library did not write.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { encodeFrame, InlineProcessor, type IoCoreOptions } from "../mod.ts";
import { type CoreFixture, startCore } from "./_core_fixture.ts";
import { runToEnd } from "./_child_peers.ts";
import { exchange, NetPeer, type PeerOutcome } from "./_net_client.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";

const encoder = new TextEncoder();

/** How a child scenario ended, and the result it printed. */
interface ScenarioRun {
  code: number | string;
  result: Record<string, unknown> | undefined;
  stderr: string;
}

/**
 * Runs one scenario of `_rule_child` in a child process of this same runtime (the compiled `.js`
 * beside this file under Node), killed after `timeoutMs`.
 */
async function runRuleChild(scenario: string, timeoutMs = 25_000): Promise<ScenarioRun> {
  const file = fileURLToPath(import.meta.url).replace(/regressions\.test\.(ts|js)$/, "_rule_child.$1");
  const { code, stdout, stderr } = await runToEnd(file, [scenario], timeoutMs);
  const line = stdout.split("\n").find((l) => l.startsWith("RESULT "));
  return { code, result: line ? JSON.parse(line.slice("RESULT ".length)) : undefined, stderr };
}

function assertChildRan(run: ScenarioRun): Record<string, unknown> {
  assert.equal(run.code, 0, `the scenario's process ended with ${run.code}; stderr:\n${run.stderr}`);
  assert.ok(run.result, `the scenario printed no result; stderr:\n${run.stderr}`);
  return run.result;
}

/** True when the peer saw the connection closed by the server (cleanly or by reset), not hanging. */
function closedByServer(outcome: PeerOutcome): boolean {
  return !outcome.timedOut && (outcome.eof || outcome.error !== undefined);
}

describe("a throwing access rule", () => {
  it(
    "for unknown clients closes only that connection, logs the error, and the next raw client is echoed",
    TEST_TIMEOUT,
    async () => {
      const result = assertChildRan(await runRuleChild("unknown"));
      const first = result.first as PeerOutcome;
      assert.equal(first.text, "", "the refused client received nothing");
      assert.ok(closedByServer(first), `the refused client was closed: ${JSON.stringify(first)}`);
      assert.deepEqual(result.second, { text: "second", eof: true });
      assert.equal(result.errorLogged, true, "logger.error received the rule's error");
    },
  );

  it(
    "for a parked unknown client closes only that connection when it is admitted, logs the error, " +
      "and the client parked behind it is echoed",
    TEST_TIMEOUT,
    async () => {
      const result = assertChildRan(await runRuleChild("parked"));
      assert.deepEqual(result.first, { text: "first", eof: true });
      const second = result.second as PeerOutcome;
      assert.equal(second.text, "", "the refused client received nothing");
      assert.ok(closedByServer(second), `the refused client was closed: ${JSON.stringify(second)}`);
      assert.deepEqual(result.third, { text: "third", eof: true });
      assert.equal(result.errorLogged, true, "logger.error received the rule's error");
    },
  );

  it(
    "for a named client refuses only that connection, logs the error, and its next connection gets OK",
    TEST_TIMEOUT,
    async () => {
      const result = assertChildRan(await runRuleChild("named"));
      const first = result.first as { frames: string[]; outcome: PeerOutcome };
      const second = result.second as { frames: string[]; outcome: PeerOutcome };
      assert.ok(!first.frames.includes("OK"), `the refused client got no OK: ${JSON.stringify(first)}`);
      assert.ok(closedByServer(first.outcome), `the refused client was closed: ${JSON.stringify(first)}`);
      assert.deepEqual(second.frames, ["OK"]);
      assert.equal(result.errorLogged, true, "logger.error received the rule's error");
    },
  );
});

/** Answers `bye!` to the first input (or on connect) and asks to be closed once that is written. */
class ByeOnData extends InlineProcessor {
  override onDataReceived(): void {
    this.outputMessages.push("bye!");
    this.markSocketAsReadyToBeClosed();
  }
}

class ByeOnConnect extends InlineProcessor {
  override onConnected(): void {
    this.outputMessages.push("bye!");
    this.markSocketAsReadyToBeClosed();
  }
}

/** Says `bye!` from its own timer, outside any callback, and asks to be closed once that is written. */
class ByeLater extends InlineProcessor {
  override onDataReceived(): void {
    setTimeout(() => {
      this.outputMessages.push("bye!");
      this.markSocketAsReadyToBeClosed();
    }, 1);
  }
}

/** A core listening on 127.0.0.1, port 0; closed with `await using`. */
function listenOnLoopback(options: IoCoreOptions): Promise<CoreFixture> {
  return startCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }], ...options });
}

describe("a processor that closes in a callback", () => {
  it(
    "sends what onDataReceived pushed before markSocketAsReadyToBeClosed to a raw client, then EOF",
    TEST_TIMEOUT,
    async () => {
      await using server = await listenOnLoopback({
        rawConnection: () => true,
        unknownClients: "allow",
        unknownClientProcessor: ByeOnData,
      });
      assert.deepEqual(await exchange(server.port(), ["hello"]), { text: "bye!", eof: true });
    },
  );

  it(
    "sends what a processor's own timer pushed before markSocketAsReadyToBeClosed, then EOF",
    TEST_TIMEOUT,
    async () => {
      await using server = await listenOnLoopback({
        rawConnection: () => true,
        unknownClients: "allow",
        unknownClientProcessor: ByeLater,
      });
      assert.deepEqual(await exchange(server.port(), ["hello"]), { text: "bye!", eof: true });
    },
  );

  it(
    "sends what onConnected pushed before markSocketAsReadyToBeClosed to a raw client, then EOF",
    TEST_TIMEOUT,
    async () => {
      await using server = await listenOnLoopback({
        rawConnection: () => true,
        unknownClients: "allow",
        unknownClientProcessor: ByeOnConnect,
      });
      assert.deepEqual(await exchange(server.port(), []), { text: "bye!", eof: true });
    },
  );

  it(
    "sends what onDataReceived pushed before markSocketAsReadyToBeClosed to a named client, framed, then EOF",
    TEST_TIMEOUT,
    async () => {
      await using server = await listenOnLoopback({});
      server.core.addClient({ keyword: "worker", processor: ByeOnData });
      const peer = await NetPeer.connect(server.port());
      peer.write(encodeFrame(encoder.encode("worker")));
      // After OK has been written, so nothing else of this connection is waiting to go out.
      assert.ok(await peer.until(() => peer.frames().length === 1), "OK arrives");
      peer.write(encodeFrame(encoder.encode("hello")));
      const outcome = await peer.outcome();
      assert.deepEqual(peer.frames(), ["OK", "bye!"]);
      const { text: _framed, ...end } = outcome;
      assert.deepEqual(end, { eof: true });
    },
  );

  it(
    "sends what onConnected pushed before markSocketAsReadyToBeClosed to a named client, framed, then EOF",
    TEST_TIMEOUT,
    async () => {
      await using server = await listenOnLoopback({});
      server.core.addClient({ keyword: "worker", processor: ByeOnConnect });
      const peer = await NetPeer.connect(server.port());
      peer.write(encodeFrame(encoder.encode("worker")));
      const outcome = await peer.outcome();
      assert.deepEqual(peer.frames(), ["OK", "bye!"]);
      const { text: _framed, ...end } = outcome;
      assert.deepEqual(end, { eof: true });
    },
  );
});
