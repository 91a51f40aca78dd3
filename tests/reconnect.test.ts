/**
 * Outgoing clients that reconnect by themselves: a server process killed with SIGKILL and restarted,
 * refusals, maxAttempts, jitter, the send buffer, and cancellation.
 */
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  HandshakeRejectedError,
  IoCore,
  nativeTransport,
  type ReconnectOptions,
  SendBufferFullError,
} from "../mod.ts";
import { backoffDelay, DEFAULT_RECONNECT, resolveReconnect } from "../core/clients/reconnect.ts";
import type { ConnectOptions } from "../transports/types.ts";
import { type ChildPeer, spawnChildPeer, startEchoServerChild } from "./_child_peers.ts";
import { iterateUntil, recordingLogger, startCore } from "./_core_fixture.ts";
import { bytePattern, delay, MiB, Resources, tempDir, TEST_TIMEOUT } from "./_helpers.ts";
import { waitFor } from "./_settle.ts";
import { text } from "./_wire_peer.ts";

const FAST: ReconnectOptions = { initialDelayMs: 20, maxDelayMs: 200 };

async function killed(child: ChildPeer): Promise<void> {
  child.kill("SIGKILL");
  await child.exited;
}

for (const transport of ["tcp", "unix"] as const) {
  describe(`reconnecting over ${transport}`, () => {
    it(
      "comes back by itself after the server is killed and restarted, and sends what waited in order, once",
      TEST_TIMEOUT,
      async () => {
        await using dir = await tempDir("asockio-reconnect-");
        const where = transport === "unix" ? dir.join("server.sock") : "0";
        let server = await startEchoServerChild(dir.path, transport, where);
        const target: ConnectOptions = transport === "unix"
          ? { transport, path: where }
          : { transport, hostname: "127.0.0.1", port: server.port };
        await using client = await startCore();
        const core = client.core;
        const id = core.addClient({ keyword: "worker", connect: target, reconnect: FAST });
        const echoes: string[] = [];
        const reading = (async () => {
          for await (const message of core.messages(id)) echoes.push(text(message));
        })();
        try {
          const first = await iterateUntil(core, (e) => e.expected.has(id), 20_000);
          assert.ok(first.expected.has(id));
          core.sendMessagesToClient(id, Array.from({ length: 100 }, (_, i) => `a${i}`));
          await waitFor(() => echoes.includes("a99"), 20_000, "the a messages echoed");

          // Mid-stream: the server dies while messages keep coming.
          for (let i = 0; i < 50; i++) core.sendMessageToClient(id, `b${i}`);
          await killed(server.child);
          const down = await iterateUntil(core, (e) => e.disconnected.has(id), 20_000);
          assert.ok(down.disconnected.has(id));
          for (let i = 0; i < 100; i++) core.sendMessageToClient(id, `c${i}`); // buffered while away
          assert.ok(["reconnecting", "connecting", "handshake"].includes(core.getClientInfo(id)!.state));

          server = await startEchoServerChild(
            dir.path,
            transport,
            transport === "unix" ? where : String(server.port),
          );
          const back = await iterateUntil(core, (e) => e.expected.has(id), 20_000);
          assert.ok(back.expected.has(id), "the reconnect shows in newlyConnectedExpectedClients");
          await waitFor(() => echoes.includes("c99"), 20_000, "the c messages echoed");

          const cs = echoes.filter((e) => e.startsWith("c"));
          assert.deepEqual(
            cs,
            Array.from({ length: 100 }, (_, i) => `c${i}`),
            "buffered messages: in order, each once",
          );
          const bs = echoes.filter((e) => e.startsWith("b")).map((e) => Number(e.slice(1)));
          assert.ok(
            bs.every((n, i) => i === 0 || n > bs[i - 1]!),
            `b messages at most once, in order: ${bs}`,
          );
          assert.ok(echoes.indexOf("c0") > echoes.findLastIndex((e) => e.startsWith("b")));
          assert.equal(core.getClientInfo(id)?.reconnectAttempts, 0);
        } finally {
          await killed(server.child);
          await client.close();
          await reading;
        }
      },
    );
  });
}

/**
 * A server that admits one keyword (answers `OK`) and then stops reading, so that what the client
 * writes next piles up in the kernel and in the client's transport. Prints `ready <port>`, then
 * `admitted` once it answered.
 */
const STALLED_SERVER_PEER = `
import net from "node:net";
import process from "node:process";
const server = net.createServer((socket) => {
  let got = Buffer.alloc(0);
  const onData = (chunk) => {
    got = Buffer.concat([got, chunk]);
    if (got.length < 8 || got.length < 8 + Number(got.readBigUInt64LE(0))) return;
    socket.off("data", onData);
    socket.pause();
    const ok = Buffer.alloc(10);
    ok.writeBigUInt64LE(2n);
    ok.write("OK", 8);
    socket.write(ok, () => console.log("admitted"));
  };
  socket.on("data", onData);
  socket.on("error", () => {});
});
server.listen(Number(process.argv[2]), "127.0.0.1", () => console.log("ready " + server.address().port));
setInterval(() => {}, 1 << 30);
`;

describe("what a lost connection keeps", () => {
  it(
    "sends a message that was partly written when the connection broke again, whole, once",
    TEST_TIMEOUT,
    async () => {
      await using dir = await tempDir("asockio-partial-");
      const stalled = await spawnChildPeer(dir.path, "stalled_server", STALLED_SERVER_PEER, ["0"]);
      let server: ChildPeer | undefined;
      await using client = await startCore();
      const core = client.core;
      const echoes: Uint8Array[] = [];
      let reading: Promise<void> | undefined;
      try {
        const port = Number((await stalled.waitForLine((l) => l.startsWith("ready "), 20_000)).split(" ")[1]);
        const id = core.addClient({
          keyword: "worker",
          connect: { transport: "tcp", hostname: "127.0.0.1", port },
          reconnect: FAST,
        });
        reading = (async () => {
          for await (const message of core.messages(id)) echoes.push(message.slice());
        })();
        await iterateUntil(core, (e) => e.expected.has(id), 20_000);
        await stalled.waitForLine((l) => l === "admitted", 20_000);
        // The peer reads nothing more and the kernel holds a few MiB at most: the big message is cut.
        const big = bytePattern(16 * MiB, 7);
        core.sendMessagesToClient(id, ["first", big, "last"]);
        await delay(300); // A sleep: it shows that the big message stays stuck in the peer's full buffers.
        assert.ok(core.stats().outputBytes > 0, "the big message is still being written");
        stalled.kill("SIGKILL");
        await stalled.exited;
        await iterateUntil(core, (e) => e.disconnected.has(id), 20_000);

        server = (await startEchoServerChild(dir.path, "tcp", String(port))).child;
        await iterateUntil(core, (e) => e.expected.has(id), 20_000);
        await waitFor(() => echoes.some((m) => text(m) === "last"), 30_000, "the last message echoed");

        const names = echoes.map((m) => (m.length === big.length ? "big" : text(m)));
        assert.ok(
          names.join() === "big,last" || names.join() === "first,big,last",
          `after the reconnect: ${names.join()}`,
        );
        const echoed = echoes.find((m) => m.length === big.length)!;
        assert.ok(Buffer.compare(echoed, big) === 0, "the big message arrives whole and unchanged");
      } finally {
        stalled.kill("SIGKILL");
        if (server) await killed(server);
        await client.close();
        await reading;
      }
    },
  );
});

describe("reconnect policy", () => {
  it("stops retrying when the server refuses the keyword with a reason", TEST_TIMEOUT, async () => {
    const logger = recordingLogger();
    await using server = await startCore({
      listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }],
      acceptUnexpectedKeywords: false,
      logger,
    });
    await using client = await startCore();
    const id = client.core.addClient({ keyword: "stranger", connect: server.target(), reconnect: FAST });
    await iterateUntil(client.core, (e) => e.disconnected.has(id));
    await delay(300); // A sleep: it shows that no new attempt comes.
    const info = client.core.getClientInfo(id)!;
    assert.equal(info.state, "disconnected");
    assert.equal(info.nextAttemptInMs, undefined);
    assert.ok(info.lastError instanceof HandshakeRejectedError);
    assert.equal(info.lastError.reason, "unexpected keyword");
    assert.equal(
      logger.lines.filter((l) => l.includes("Refused connection")).length,
      1,
      logger.lines.join("\n"),
    );
    assert.throws(() => client.core.sendMessageToClient(id, "x"), /no open connection/);
  });

  it(
    "gives up after maxAttempts consecutive failures, and reconnectClient starts again",
    TEST_TIMEOUT,
    async () => {
      const probe = await startCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }] });
      const target = probe.target();
      await probe.close();
      await using client = await startCore();
      const core = client.core;
      const id = core.addClient({
        keyword: "k",
        connect: target,
        reconnect: { initialDelayMs: 5, maxAttempts: 3 },
      });
      let failures = 0;
      await iterateUntil(core, () => core.getClientInfo(id)!.reconnectAttempts === 3, 10_000, (r) => {
        if (r.clientsWithDisconnectedConnection.has(id)) failures++;
      });
      await delay(200); // A sleep: it shows that no fourth attempt comes.
      assert.equal(core.getClientInfo(id)!.reconnectAttempts, 3);
      assert.equal(core.getClientInfo(id)!.state, "disconnected");
      assert.ok(failures >= 1 && failures <= 3);
      core.reconnectClient(id);
      assert.equal(core.getClientInfo(id)!.reconnectAttempts, 0);
      await iterateUntil(core, () => core.getClientInfo(id)!.reconnectAttempts === 3, 10_000);
      await waitFor(() => core.getClientInfo(id)!.state === "disconnected", 5000, "the last attempt to fail");
    },
  );

  it("spreads the delays with jitter, within the bounds, doubling up to maxDelayMs", () => {
    const delays = Array.from({ length: 1000 }, () => backoffDelay(DEFAULT_RECONNECT, 3));
    assert.ok(new Set(delays).size > 1, "not all equal");
    assert.ok(delays.every((d) => d >= 640 && d <= 960), "800 ms ± 20 %");
    assert.equal(backoffDelay(DEFAULT_RECONNECT, 0, () => 0.5), 100);
    assert.equal(backoffDelay(DEFAULT_RECONNECT, 1, () => 0.5), 200);
    assert.equal(backoffDelay(DEFAULT_RECONNECT, 40, () => 0.5), 10_000);
    assert.equal(backoffDelay(DEFAULT_RECONNECT, 40, () => 1), 12_000);
    assert.throws(() => resolveReconnect({ jitter: 2 }), RangeError);
    assert.throws(() => resolveReconnect({ bogus: 1 } as ReconnectOptions), TypeError);
    assert.equal(resolveReconnect(false), undefined);
  });

  it(
    "throws SendBufferFullError past bufferBytes and queues nothing of that batch",
    TEST_TIMEOUT,
    async () => {
      const probe = await startCore({ listeners: [{ transport: "tcp", hostname: "127.0.0.1", port: 0 }] });
      const port = probe.port();
      await probe.close();
      await using client = await startCore();
      const core = client.core;
      const id = core.addClient({
        keyword: "buffered",
        connect: { transport: "tcp", hostname: "127.0.0.1", port },
        reconnect: { initialDelayMs: 20, maxDelayMs: 50, bufferBytes: 100 },
      });
      core.sendMessageToClient(id, "x".repeat(50)); // 58 bytes with its header
      assert.equal(core.stats().outputBytes, 58, "buffered bytes count toward outputBytes");
      assert.throws(
        () => core.sendMessagesToClient(id, ["y".repeat(20), "z".repeat(20)]),
        SendBufferFullError,
      );
      assert.throws(() => core.sendMessageToClient(id, "w".repeat(40)), SendBufferFullError);
      await using server = await startCore({
        listeners: [{ transport: "tcp", hostname: "127.0.0.1", port }],
      });
      const onServer = server.core.addClient({ keyword: "buffered" });
      await iterateUntil(server.core, (e) => e.data.has(onServer), 20_000);
      await delay(50); // A sleep: it shows that nothing past the buffer arrives.
      assert.deepEqual(server.core.getMessagesFromClient(onServer).map(text), ["x".repeat(50)]);
    },
  );

  for (const how of ["removeClient", "close"] as const) {
    it(`${how}() during backoff cancels the pending attempt`, TEST_TIMEOUT, async () => {
      await using res = new Resources();
      let accepted = 0;
      // Accepts and hangs up at once: each attempt fails mid-handshake, so it is retried.
      const listener = res.add(
        await nativeTransport().listen({ transport: "tcp", hostname: "127.0.0.1", port: 0 }, (conn) => {
          accepted++;
          conn.close();
        }),
      );
      const core = new IoCore({ logger: null });
      try {
        const id = core.addClient({
          keyword: "k",
          connect: { ...listener.addr, transport: "tcp" } as ConnectOptions,
          reconnect: { initialDelayMs: 100, maxDelayMs: 100, jitter: 0 },
        });
        await iterateUntil(core, (e) => e.disconnected.has(id), 10_000);
        assert.equal(core.getClientInfo(id)?.state, "reconnecting");
        if (how === "removeClient") core.removeClient(id);
        else await core.close();
        const before = accepted;
        await delay(400); // A sleep: it shows that no attempt comes after the cancel.
        assert.equal(accepted, before, "no attempt after the cancel");
        assert.equal(core.stats().connections, 0);
      } finally {
        await core.close();
      }
    });
  }
});
