/**
 * Transport conformance: the same scenarios against the runtime's native transport and, where that is
 * not `node:net`, against the `node:net` transport too. Real sockets on loopback only.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { lstat, readFile, writeFile } from "node:fs/promises";
import { networkInterfaces } from "node:os";
import { setImmediate } from "node:timers";
import process from "node:process";
import { describe, it } from "node:test";
import {
  AddressInUseError,
  ConnectionClosedError,
  ConnectionRefusedError,
  ConnectionResetError,
  UnsupportedError,
} from "../mod.ts";
import { detectRuntime, nativeTransport } from "../transports/mod.ts";
import type { Connection, ConnectOptions, Transport } from "../transports/mod.ts";
import {
  assertBytesEqual,
  bytePattern,
  collect,
  type Collector,
  concatBytes,
  deferred,
  delay,
  echoRoundTrip as checkEcho,
  expectedRuntime,
  listenForOne,
  MiB,
  pathExists,
  type Resources,
  startEchoServer,
  tcpPort,
  withTimeout,
} from "./_helpers.ts";
import { checkThrowingHandler, netTest, transportsUnderTest } from "./_net_test.ts";

const transports = transportsUnderTest();

// Checked apart from any transport, so a broken transport cannot skip its own IPv6 test.
const noIpv6Reason = Object.values(networkInterfaces()).flat().some((info) => info?.address === "::1")
  ? undefined
  : "this machine has no IPv6 loopback (::1)";

/** Connects, sends `payload` in 1000-byte writes, half-closes, and checks the echo byte by byte. */
async function echoRoundTrip(
  transport: Transport,
  options: ConnectOptions,
  payload: Uint8Array,
  res: Resources,
): Promise<Connection> {
  const client = res.add(await transport.connect(options));
  await checkEcho(client, payload);
  return client;
}

/**
 * A TCP client connected to a listener of `transport`, and the server side's connection (its handler
 * not set yet, so it holds what arrives).
 */
async function tcpPair(
  transport: Transport,
  res: Resources,
): Promise<{ client: Connection; accepted: Promise<Connection> }> {
  const accepted = deferred<Connection>();
  const listener = res.add(
    await transport.listen({ transport: "tcp" }, (conn) => accepted.resolve(res.add(conn))),
  );
  const client = res.add(await transport.connect({ transport: "tcp", port: tcpPort(listener.addr) }));
  return { client, accepted: accepted.promise };
}

/** Leaves a socket file with no listener: a child of this runtime listens on `path` and is SIGKILLed. */
async function leaveStaleSocket(path: string): Promise<void> {
  const code = `import("node:net").then(({ createServer }) => createServer().listen(${
    JSON.stringify(path)
  }, () => console.log("listening")))`;
  const args = expectedRuntime() === "deno" ? ["eval", code] : ["-e", code];
  const child = spawn(process.execPath, args, { stdio: ["ignore", "pipe", "inherit"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  try {
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        let out = "";
        child.stdout.on("data", (data: Uint8Array) => {
          out += new TextDecoder().decode(data);
          if (out.includes("listening")) resolve();
        });
        child.once("exit", (status) => reject(new Error(`Child exited with ${status} before listening`)));
      }),
      15_000,
      "child process listening on the UNIX socket",
    );
  } finally {
    child.kill("SIGKILL");
    await withTimeout(exited, 5000, "child process exit");
  }
}

it("runs on the expected runtime, with that runtime's native transport", () => {
  const runtime = expectedRuntime();
  assert.equal(detectRuntime(), runtime);
  assert.equal(nativeTransport().name, runtime);
});

for (const transport of transports) {
  describe(`${transport.name} transport`, () => {
    netTest("echoes 256 KiB over TCP on 127.0.0.1", 10_000, async (res) => {
      const server = await startEchoServer(transport, { transport: "tcp" }, res);
      const port = tcpPort(server.listener.addr);
      const client = await echoRoundTrip(
        transport,
        { transport: "tcp", port },
        bytePattern(256 * 1024, 1),
        res,
      );
      client.close();
    });

    netTest("echoes over TCP on ::1", 10_000, async (res) => {
      const server = await startEchoServer(transport, { transport: "tcp", hostname: "::1" }, res);
      assert.equal(server.listener.addr.transport === "tcp" && server.listener.addr.hostname, "::1");
      const port = tcpPort(server.listener.addr);
      const client = await echoRoundTrip(
        transport,
        { transport: "tcp", hostname: "::1", port },
        bytePattern(64 * 1024, 2),
        res,
      );
      assert.deepEqual(client.remoteAddr, { transport: "tcp", hostname: "::1", port });
      client.close();
    }, noIpv6Reason);

    netTest("echoes over a UNIX socket in a temp dir", 10_000, async (res) => {
      const dir = await res.tempDir();
      const path = dir.join("echo.sock");
      await startEchoServer(transport, { transport: "unix", path }, res);
      const client = await echoRoundTrip(
        transport,
        { transport: "unix", path },
        bytePattern(256 * 1024, 3),
        res,
      );
      client.close();
    });

    netTest(
      "writeBatch() writes in order after earlier writes and never reports onDrain from inside it",
      10_000,
      async (res) => {
        const server = await startEchoServer(transport, { transport: "tcp" }, res);
        const client = res.add(await transport.connect({ transport: "tcp", port: server.port }));
        let inBatch = false;
        let drainsInBatch = 0;
        const got = collect(client, { onDrain: () => inBatch && drainsInBatch++ });
        const batch = (chunks: Uint8Array[]) => {
          inBatch = true;
          try {
            return client.writeBatch(chunks);
          } finally {
            inBatch = false;
          }
        };
        assert.equal(batch([]), true, "nothing to write: a no-op");
        const parts = [
          bytePattern(100, 1),
          bytePattern(10_000, 2),
          bytePattern(2 * MiB, 3),
          bytePattern(7, 4),
        ];
        client.write(parts[0]!);
        assert.equal(batch([parts[1]!, new Uint8Array(0)]), true);
        batch([parts[2]!]); // over the high-water mark: may return false
        client.write(parts[3]!);
        const total = parts.reduce((n, p) => n + p.length, 0);
        await got.untilLength(total);
        assertBytesEqual(got.bytes(), concatBytes(parts), "echo after writeBatch()");
        assert.equal(drainsInBatch, 0, "onDrain came from inside writeBatch()");
        assert.ok(got.drains >= 1, "onDrain reported after the writes");
        client.close();
        assert.throws(() => client.writeBatch([parts[0]!]), ConnectionClosedError);
      },
    );

    netTest(
      "discardedBytes counts what a close kept from the kernel: exactly natively, a lower bound on node:net elsewhere",
      20_000,
      async (res) => {
        const { client, accepted } = await tcpPair(transport, res);
        const sent = collect(client);
        const got = collect(await accepted);
        assert.equal(client.discardedBytes, 0, "nothing discarded while open");
        const total = 64 * MiB;
        client.write(bytePattern(total, 11));
        await got.untilLength(MiB);
        client.close();
        await sent.closed;
        await got.ended;
        const discarded = client.discardedBytes;
        if (transport.name === detectRuntime()) {
          assert.ok(discarded > 0 && discarded < total, `discarded ${discarded} of ${total}`);
          assert.equal(got.length, total - discarded, "the peer got every byte not discarded");
        } else {
          // Deno's and Bun's node:net do not expose what they still hold: never more than the truth.
          assert.ok(got.length <= total - discarded, `discarded ${discarded}, the peer got ${got.length}`);
        }
      },
    );

    netTest("an empty write before closeWrite still lets the FIN through", 10_000, async (res) => {
      const { client, accepted } = await tcpPair(transport, res);
      collect(client);
      const got = collect(await accepted);
      client.write(new Uint8Array(0));
      client.closeWrite();
      await got.ended;
      assert.equal(got.bytes().byteLength, 0);
    });

    netTest("holds incoming bytes until setHandler is called, losing none", 10_000, async (res) => {
      const { client, accepted } = await tcpPair(transport, res);
      collect(client);
      const payload = bytePattern(256 * 1024, 10);
      client.write(payload);
      client.closeWrite();
      const conn = await accepted;
      await delay(100); // A sleep: the bytes must arrive while no handler is set.
      const got = collect(conn);
      await got.ended;
      assertBytesEqual(got.bytes(), payload, "bytes sent before setHandler");
    });

    netTest(
      "a receiver that gives every chunk back still gets every byte in order, through pauses",
      20_000,
      async (res) => {
        const { client, accepted } = await tcpPair(transport, res);
        collect(client);
        const conn = await accepted;
        const payload = bytePattern(8 * MiB, 12);
        const received = new Uint8Array(payload.byteLength);
        let at = 0;
        let calls = 0;
        const ended = deferred();
        conn.setHandler({
          onData(chunk) {
            assert.ok(at + chunk.byteLength <= received.byteLength, "no more bytes than were sent");
            // Copied, as a receiver that gives the chunk back must: its memory may be read into again.
            received.set(chunk, at);
            at += chunk.byteLength;
            if (++calls % 7 === 0) {
              conn.pauseReading();
              setTimeout(() => conn.resumeReading(), 1); // Not a wait: a reader's pause.
            }
            // As if assembling 300 KB messages: how much of the current one is still to come.
            return 300_000 - (at % 300_000);
          },
          onDrain() {},
          onEnd: () => ended.resolve(),
          onClose() {},
        });
        client.write(payload);
        client.closeWrite();
        await ended.promise;
        assert.equal(at, payload.byteLength);
        assertBytesEqual(received, payload, "bytes given back");
      },
    );

    if (transport.name === "node") {
      netTest(
        "reads into reused memory on Node's own node:net only (plain TCP, both ends)",
        10_000,
        async (res) => {
          const { client, accepted } = await tcpPair(transport, res);
          const conn = await accepted;
          // Switched on through node:net's internals (transports/_node_read_memory.ts): a Node release
          // that renames them fails here instead of silently losing the reuse.
          const expected = detectRuntime() === "node";
          assert.equal(conn.reusesReadMemory === true, expected, "accepted connection");
          assert.equal(client.reusesReadMemory === true, expected, "connected client");
        },
      );
    }

    netTest(
      "moves 16 MiB each way through slow readers, with backpressure, byte-exact",
      60_000,
      async (res) => {
        const SIZE = 16 * MiB;
        const CHUNK = 64 * 1024;
        const STALL_MS = 400;

        /** One end: a writer that waits for onDrain when write returns false, and a slow reader. */
        interface Side {
          conn: Connection;
          got: Collector;
          writeReturnedFalse: number;
          waitingForDrain: boolean;
          sent: boolean;
          heldBackDuringPeerStall: boolean | undefined;
          writesSinceDrain: number;
          drainFaults: string[];
        }

        // Each side stalls reading for STALL_MS at its first chunk, then pauses briefly every MiB.
        const makeSide = (conn: Connection, peer: () => Side): Side => {
          let sincePause = 0;
          let stalled = false;
          const side: Side = {
            conn,
            got: undefined as unknown as Collector,
            writeReturnedFalse: 0,
            waitingForDrain: false,
            sent: false,
            heldBackDuringPeerStall: undefined,
            writesSinceDrain: 0,
            drainFaults: [],
          };
          side.got = collect(conn, {
            onData: (chunk) => {
              sincePause += chunk.byteLength;
              if (!stalled) {
                stalled = true;
                conn.pauseReading();
                // Not a wait: the peer stalls for STALL_MS.
                setTimeout(() => {
                  const writer = peer();
                  writer.heldBackDuringPeerStall = writer.waitingForDrain && !writer.sent;
                  conn.resumeReading();
                }, STALL_MS);
              } else if (sincePause >= MiB) {
                sincePause = 0;
                conn.pauseReading();
                setTimeout(() => conn.resumeReading(), 5); // Not a wait: a reader's pause.
              }
            },
            onDrain: () => {
              // onDrain means "all handed to the kernel", once per time that becomes true after writes.
              if (conn.bufferedAmount !== 0) side.drainFaults.push(`bufferedAmount ${conn.bufferedAmount}`);
              if (side.writesSinceDrain === 0) side.drainFaults.push("no write since the previous onDrain");
              side.writesSinceDrain = 0;
            },
          });
          return side;
        };

        const pump = async (side: Side, payload: Uint8Array) => {
          for (let offset = 0; offset < payload.byteLength; offset += CHUNK) {
            // Yielding now and then puts several batches in flight at once, which onDrain must wait for.
            if (offset % (4 * CHUNK) === 0) await new Promise((resolve) => setImmediate(resolve));
            side.writesSinceDrain++;
            if (!side.conn.write(payload.subarray(offset, offset + CHUNK))) {
              side.writeReturnedFalse++;
              side.waitingForDrain = true;
              await side.got.nextDrain();
              side.waitingForDrain = false;
            }
          }
          side.sent = true;
        };

        const toServer = bytePattern(SIZE, 11);
        const toClient = bytePattern(SIZE, 12);
        const serverReady = deferred<Side>();
        const listener = res.add(
          await transport.listen({ transport: "tcp" }, (conn) => {
            res.add(conn);
            serverReady.resolve(makeSide(conn, () => clientSide));
          }),
        );
        const client = res.add(await transport.connect({ transport: "tcp", port: tcpPort(listener.addr) }));
        const clientSide = makeSide(client, () => serverSide);
        const serverSide = await serverReady.promise;
        await Promise.all([
          pump(clientSide, toServer),
          pump(serverSide, toClient),
          serverSide.got.untilLength(SIZE),
          clientSide.got.untilLength(SIZE),
        ]);
        // The last batch's onDrain may still be on its way.
        await withTimeout(
          Promise.all(
            [clientSide, serverSide].map((side) => side.conn.bufferedAmount ? side.got.nextDrain() : 0),
          ),
          5000,
          "final onDrain",
        );
        for (const [label, side] of [["client", clientSide], ["server", serverSide]] as const) {
          assert.ok(side.writeReturnedFalse > 0, `${label}: write never returned false`);
          assert.ok(side.got.drains > 0, `${label}: onDrain never fired`);
          assert.deepEqual(side.drainFaults, [], `${label}: onDrain fired wrongly`);
          assert.equal(
            side.heldBackDuringPeerStall,
            true,
            `${label}: the peer's stalled reader did not hold it back`,
          );
        }
        assertBytesEqual(serverSide.got.bytes(), toServer, "client to server");
        assertBytesEqual(clientSide.got.bytes(), toClient, "server to client");
        assert.equal(client.bufferedAmount, 0);
        assert.equal(serverSide.conn.bufferedAmount, 0);
      },
    );

    netTest("serves 200 concurrent connections, each echoing a round trip", 30_000, async (res) => {
      const COUNT = 200;
      const server = await startEchoServer(transport, { transport: "tcp" }, res);
      const port = tcpPort(server.listener.addr);
      await Promise.all(
        Array.from({ length: COUNT }, async (_, i) => {
          const client = res.add(await transport.connect({ transport: "tcp", port }));
          const got = collect(client);
          const payload = bytePattern(1000 + i, 100 + i);
          client.write(payload);
          await got.untilLength(payload.byteLength);
          assertBytesEqual(got.bytes(), payload, `connection ${i}`);
          client.close();
          assert.equal(await got.closed, undefined);
        }),
      );
      assert.equal(server.accepted.length, COUNT);
    });

    netTest(
      "a peer closing while the other side writes is seen as a close, and nothing throws",
      10_000,
      async (res) => {
        const { listener, accepted } = await listenForOne(transport, { transport: "tcp" }, res);
        const client = res.add(await transport.connect({ transport: "tcp", port: tcpPort(listener.addr) }));
        const { conn: writer, got: writerGot } = await accepted;
        // The server side streams at the client, which closes after 64 KiB.
        const escaped: unknown[] = [];
        const chunk = bytePattern(16 * 1024, 5);
        const timer = setInterval(() => {
          if (writer.closed) return clearInterval(timer);
          try {
            writer.write(chunk);
          } catch (err) {
            escaped.push(err);
          }
        }, 1);
        res.defer(() => clearInterval(timer));
        const got = collect(client, {
          onData: () => {
            if (got.length >= 64 * 1024) client.close();
          },
        });
        assert.equal(await got.closed, undefined, "a locally closed connection reports no error");
        const error = await writerGot.closed;
        assert.ok(
          error === undefined || error instanceof ConnectionResetError,
          `the writer closed with ${error?.name}: ${error?.message}`,
        );
        assert.ok(writer.closed);
        assert.deepEqual(escaped, []);
        assert.throws(() => writer.write(chunk), ConnectionClosedError);
        writer.close();
        writer.close();
        client.close();
        await delay(50); // A sleep: it shows that no second onClose comes.
        assert.equal(got.closes, 1);
        assert.equal(writerGot.closes, 1);
      },
    );

    netTest(
      "a peer closing mid-stream is seen as an end, and unwritten bytes are discarded",
      10_000,
      async (res) => {
        const { listener, accepted } = await listenForOne(
          transport,
          { transport: "tcp" },
          res,
          ({ conn }) => ({ onEnd: () => conn.close() }),
        );
        const client = res.add(await transport.connect({ transport: "tcp", port: tcpPort(listener.addr) }));
        const clientGot = collect(client);
        const payload = bytePattern(MiB, 6);
        client.write(payload);
        client.close();
        assert.equal(client.closed, true);
        assert.throws(() => client.write(payload), ConnectionClosedError);
        const { got: reader } = await accepted;
        const error = await reader.closed;
        assert.ok(
          error === undefined || error instanceof ConnectionResetError,
          `the reader closed with ${error?.name}: ${error?.message}`,
        );
        const received = reader.bytes();
        assertBytesEqual(received, payload.subarray(0, received.byteLength), "bytes before the close");
        assert.equal(await clientGot.closed, undefined);
        assert.ok(reader.ends <= 1 && reader.closes === 1 && clientGot.closes === 1);
      },
    );

    netTest(
      "half-close: the peer sees the end, still answers, and both sides then close",
      10_000,
      async (res) => {
        const { listener, accepted } = await listenForOne(transport, { transport: "tcp" }, res, (entry) => ({
          onEnd: () => {
            entry.conn.write(new TextEncoder().encode(`pong after ${entry.got.text()}`));
            entry.conn.closeWrite();
          },
        }));
        const client = res.add(await transport.connect({ transport: "tcp", port: tcpPort(listener.addr) }));
        const got = collect(client);
        client.write(new TextEncoder().encode("ping"));
        client.closeWrite();
        const { got: server } = await accepted;
        await server.ended;
        assert.equal(server.text(), "ping");
        await got.ended;
        assert.equal(got.text(), "pong after ping");
        assert.equal(await withTimeout(got.closed, 3000, "client close after both halves closed"), undefined);
        assert.equal(
          await withTimeout(server.closed, 3000, "server close after both halves closed"),
          undefined,
        );
        assert.equal(got.ends, 1);
        assert.equal(server.ends, 1);
      },
    );

    netTest("connecting where nothing listens fails with ConnectionRefusedError", 10_000, async (res) => {
      const listener = await transport.listen({ transport: "tcp" }, () => {});
      const port = tcpPort(listener.addr);
      await listener.close();
      const tcpError = await transport.connect({ transport: "tcp", port }).then(
        (conn) => void conn.close(),
        (err: unknown) => err,
      );
      assert.ok(tcpError instanceof ConnectionRefusedError, `got ${tcpError}`);
      assert.ok(tcpError.cause !== undefined, "the runtime's error is kept as cause");
      assert.match(tcpError.message, new RegExp(`${port}`));

      const dir = await res.tempDir();
      await assert.rejects(
        transport.connect({ transport: "unix", path: dir.join("missing.sock") }),
        (err) => {
          assert.ok(err instanceof ConnectionRefusedError, `got ${err}`);
          assert.ok(err.cause !== undefined);
          return true;
        },
      );
    });

    netTest(
      "refused connections and a taken port read the same on every runtime, for TCP and UNIX",
      30_000,
      async (res) => {
        const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        const message = async (attempt: Promise<{ close(): unknown }>) => {
          const err = await attempt.then((done) => void done.close(), (failure: unknown) => failure);
          assert.ok(err instanceof Error, `got ${err}`);
          return err.message;
        };
        const listener = res.add(await transport.listen({ transport: "tcp" }, () => {}));
        const taken = tcpPort(listener.addr);
        assert.match(
          await message(transport.listen({ transport: "tcp", port: taken }, () => {})),
          new RegExp(`^Cannot listen on tcp:127\\.0\\.0\\.1:${taken}: address already in use$`),
        );
        await listener.close();
        assert.match(
          await message(transport.connect({ transport: "tcp", port: taken })),
          new RegExp(`^Cannot connect to tcp:127\\.0\\.0\\.1:${taken}: connection refused$`),
        );

        const dir = await res.tempDir();
        const missing = dir.join("missing.sock");
        assert.match(
          await message(transport.connect({ transport: "unix", path: missing })),
          new RegExp(
            `^Cannot connect to unix:${escape(missing)}: connection refused \\(no socket file there\\)$`,
          ),
        );
        const stale = dir.join("stale.sock");
        await leaveStaleSocket(stale);
        assert.match(
          await message(transport.connect({ transport: "unix", path: stale })),
          new RegExp(`^Cannot connect to unix:${escape(stale)}: connection refused$`),
        );
      },
    );

    netTest("listening on a TCP port in use fails with AddressInUseError", 10_000, async (res) => {
      const listener = res.add(await transport.listen({ transport: "tcp" }, () => {}));
      await assert.rejects(
        transport.listen({ transport: "tcp", port: tcpPort(listener.addr) }, () => {}),
        (err) => {
          assert.ok(err instanceof AddressInUseError, `got ${err}`);
          assert.ok(err.cause !== undefined);
          return true;
        },
      );
    });

    netTest(
      "reusePort shares a port, or rejects with UnsupportedError where unsupported",
      10_000,
      async (res) => {
        let first;
        try {
          first = res.add(await transport.listen({ transport: "tcp", reusePort: true }, () => {}));
        } catch (err) {
          assert.ok(err instanceof UnsupportedError, `got ${err}`);
          return;
        }
        const port = tcpPort(first.addr);
        const second = res.add(await transport.listen({ transport: "tcp", port, reusePort: true }, () => {}));
        assert.equal(tcpPort(second.addr), port);
      },
    );

    netTest("replaces a stale UNIX socket file left by a killed process", 30_000, async (res) => {
      const dir = await res.tempDir();
      const path = dir.join("stale.sock");
      await leaveStaleSocket(path);
      assert.ok((await lstat(path)).isSocket(), "the killed process left its socket file");
      await assert.rejects(transport.connect({ transport: "unix", path }), ConnectionRefusedError);
      await startEchoServer(transport, { transport: "unix", path }, res);
      const client = await echoRoundTrip(transport, { transport: "unix", path }, bytePattern(1000, 7), res);
      client.close();
    });

    netTest("refuses a regular file at the UNIX path and leaves it untouched", 10_000, async (res) => {
      const dir = await res.tempDir();
      const path = dir.join("not-a-socket");
      await writeFile(path, "keep me");
      await assert.rejects(transport.listen({ transport: "unix", path }, () => {}), AddressInUseError);
      assert.equal(await readFile(path, "utf8"), "keep me");
    });

    netTest("refuses a live UNIX socket path, and the live listener keeps working", 10_000, async (res) => {
      const dir = await res.tempDir();
      const path = dir.join("live.sock");
      const live = await startEchoServer(transport, { transport: "unix", path }, res);
      await assert.rejects(transport.listen({ transport: "unix", path }, () => {}), AddressInUseError);
      assert.ok((await lstat(path)).isSocket());
      const client = await echoRoundTrip(transport, { transport: "unix", path }, bytePattern(4096, 8), res);
      client.close();
      await live.listener.close();
      assert.equal(await pathExists(path), false);
    });

    netTest(
      "closing a UNIX listener removes its file and keeps accepted connections",
      10_000,
      async (res) => {
        const dir = await res.tempDir();
        const path = dir.join("close.sock");
        const server = await startEchoServer(transport, { transport: "unix", path }, res);
        const client = res.add(await transport.connect({ transport: "unix", path }));
        const got = collect(client);
        await server.nextAccepted();
        await server.listener.close();
        assert.equal(await pathExists(path), false, "the socket file is removed on close");
        await server.listener.close();
        const payload = bytePattern(2048, 9);
        client.write(payload);
        await got.untilLength(payload.byteLength);
        assertBytesEqual(got.bytes(), payload, "echo after the listener closed");
        await assert.rejects(transport.connect({ transport: "unix", path }), ConnectionRefusedError);
      },
    );

    for (const kind of ["tcp", "unix"] as const) {
      for (const callback of ["onData", "onEnd", "onDrain"] as const) {
        netTest(
          `a handler whose ${callback} throws over ${kind}: only its connection closes, onClose reports a CallbackError, nothing reaches the process`,
          10_000,
          (res) => checkThrowingHandler(transport, res, kind, callback),
        );
      }
    }

    netTest("reports local and remote addresses, with port 0 resolved", 10_000, async (res) => {
      const tcp = await startEchoServer(transport, { transport: "tcp", port: 0 }, res);
      const port = tcpPort(tcp.listener.addr);
      assert.ok(port > 0);
      assert.deepEqual(tcp.listener.addr, { transport: "tcp", hostname: "127.0.0.1", port });
      const client = res.add(await transport.connect({ transport: "tcp", port }));
      const { conn: accepted } = await tcp.nextAccepted();
      assert.deepEqual(client.remoteAddr, { transport: "tcp", hostname: "127.0.0.1", port });
      assert.equal(client.localAddr.transport === "tcp" && client.localAddr.hostname, "127.0.0.1");
      assert.ok(tcpPort(client.localAddr) > 0);
      assert.deepEqual(accepted.localAddr, tcp.listener.addr);
      assert.deepEqual(accepted.remoteAddr, client.localAddr);

      // A listener on every interface: each accepted socket names the address it came in on.
      const wild = await startEchoServer(transport, { transport: "tcp", hostname: "0.0.0.0", port: 0 }, res);
      const wildPort = tcpPort(wild.listener.addr);
      res.add(await transport.connect({ transport: "tcp", hostname: "127.0.0.1", port: wildPort }));
      const { conn: wildAccepted } = await wild.nextAccepted();
      assert.deepEqual(wildAccepted.localAddr, { transport: "tcp", hostname: "127.0.0.1", port: wildPort });

      const dir = await res.tempDir();
      const path = dir.join("addr.sock");
      const unix = await startEchoServer(transport, { transport: "unix", path }, res);
      assert.deepEqual(unix.listener.addr, { transport: "unix", path });
      const unixClient = res.add(await transport.connect({ transport: "unix", path }));
      const { conn: unixAccepted } = await unix.nextAccepted();
      assert.deepEqual(unixClient.remoteAddr, { transport: "unix", path });
      assert.deepEqual(unixClient.localAddr, { transport: "unix", path: "" });
      assert.deepEqual(unixAccepted.localAddr, { transport: "unix", path });
      assert.deepEqual(unixAccepted.remoteAddr, { transport: "unix", path: "" });
    });
  });
}
