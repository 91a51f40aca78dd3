/**
 * TLS on every transport (the native one and `node:tls`), and UNIX socket file modes. Real sockets
 * on loopback only; certificates are made at test time by `openssl` (see `_certs.ts`).
 */
import assert from "node:assert/strict";
import { stat } from "node:fs/promises";
import { describe } from "node:test";
import { ConnectionRefusedError, ConnectionResetError, TimeoutError, TransportError } from "../mod.ts";
import type { Addr, Connection, TlsConnectOptions, TlsListenOptions, Transport } from "../mod.ts";
import { noOpensslReason, type TestCerts, testCerts } from "./_certs.ts";
import {
  assertBytesEqual,
  bytePattern,
  collect,
  type Collector,
  echoRoundTrip,
  listenForOne,
  MiB,
  pathExists,
  type Resources,
  startEchoServer,
  withTimeout,
} from "./_helpers.ts";
import { checkThrowingHandler, netTest, transportsUnderTest } from "./_net_test.ts";
import { waitFor } from "./_settle.ts";

const transports = transportsUnderTest();

/** A TLS test: skipped, with the reason, where `openssl` cannot make certificates. */
function tlsTest(
  name: string,
  ms: number,
  body: (res: Resources, certs: TestCerts) => Promise<void>,
  skip?: string,
): void {
  netTest(name, ms, async (res) => body(res, await testCerts()), noOpensslReason ?? skip);
}

function tlsPort(addr: Addr): number {
  if (addr.transport !== "tls") throw new TypeError(`Expected a TLS address, got ${JSON.stringify(addr)}`);
  return addr.port;
}

/**
 * What a client the server should refuse gets: `connect` rejects, or (TLS 1.3, where the client's
 * handshake ends before the server checks its certificate) the connection closes with nothing read.
 */
async function expectRefused(transport: Transport, options: TlsConnectOptions, label: string): Promise<void> {
  let conn: Connection;
  try {
    conn = await transport.connect(options);
  } catch (err) {
    assert.ok(
      err instanceof TransportError || err instanceof ConnectionResetError,
      `${label}: connect failed with ${err}`,
    );
    return;
  }
  const got = collect(conn, { onEnd: () => conn.close() });
  try {
    conn.write(new TextEncoder().encode("let me in"));
  } catch {
    // Already closed by the server's alert.
  }
  await withTimeout(got.closed, 5000, `${label}: the server closes the connection`);
  assert.equal(got.length, 0, `${label}: nothing may come back`);
}

function tlsListen(certs: TestCerts, extra: Partial<TlsListenOptions> = {}): TlsListenOptions {
  return { transport: "tls", cert: certs.serverCert, key: certs.serverKey, ...extra };
}

function mtlsListen(certs: TestCerts): TlsListenOptions {
  return tlsListen(certs, { ca: certs.caCert, requestClientCert: true });
}

for (const transport of transports) {
  describe(`TLS on the ${transport.name} transport`, () => {
    tlsTest(
      "echoes over TLS, with tls addresses and connection info on both sides",
      15_000,
      async (res, certs) => {
        const server = await startEchoServer(transport, tlsListen(certs), res);
        const { port } = server;
        assert.deepEqual(server.listener.addr, { transport: "tls", hostname: "127.0.0.1", port });
        const client = res.add(await transport.connect({ transport: "tls", port, ca: certs.caCert }));
        const { conn: accepted } = await server.nextAccepted();
        assert.deepEqual(client.remoteAddr, { transport: "tls", hostname: "127.0.0.1", port });
        assert.equal(client.localAddr.transport, "tls");
        assert.ok(tlsPort(client.localAddr) > 0);
        assert.deepEqual(accepted.localAddr, server.listener.addr);
        assert.deepEqual(accepted.remoteAddr, client.localAddr);
        assert.equal(client.tls?.authorized, true, "the client verified the server");
        assert.equal(accepted.tls?.authorized, false, "no client certificate was asked for");
        if (client.tls?.peerCertificateSubject !== undefined) {
          assert.match(client.tls.peerCertificateSubject, /CN=localhost/);
        }
        client.setNoDelay(true);
        client.setKeepAlive(true);
        await echoRoundTrip(client, bytePattern(100_000, 21));
      },
    );

    tlsTest("checks the certificate against serverName when one is given", 15_000, async (res, certs) => {
      const server = await startEchoServer(transport, tlsListen(certs), res);
      const good = res.add(
        await transport.connect({
          transport: "tls",
          port: server.port,
          ca: certs.caCert,
          serverName: "localhost",
        }),
      );
      await echoRoundTrip(good, bytePattern(5000, 22));
      await assert.rejects(
        transport.connect({
          transport: "tls",
          port: server.port,
          ca: certs.caCert,
          serverName: "wrong.invalid",
        }),
        (err) => {
          assert.ok(err instanceof TransportError, `got ${err}`);
          assert.match(err.message, /does not match the host name/);
          assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${server.port}`));
          assert.ok(err.cause !== undefined);
          return true;
        },
      );
    });

    tlsTest(
      "a client that does not trust the server's CA fails with a TransportError",
      15_000,
      async (res, certs) => {
        const server = await startEchoServer(transport, tlsListen(certs), res);
        await assert.rejects(transport.connect({ transport: "tls", port: server.port }), (err) => {
          assert.ok(err instanceof TransportError, `got ${err}`);
          assert.match(
            err.message,
            new RegExp(`^Cannot connect to tls:127\\.0\\.0\\.1:${server.port}: certificate`),
          );
          assert.ok(err.cause !== undefined, "the runtime's error is kept as cause");
          return true;
        });
        // The listener is unharmed, and the failed client never reached it.
        const client = res.add(
          await transport.connect({ transport: "tls", port: server.port, ca: certs.caCert }),
        );
        await echoRoundTrip(client, bytePattern(3000, 23));
        assert.equal(server.accepted.length, 1);
      },
    );

    tlsTest("a server certificate that does not name 127.0.0.1 is refused", 15_000, async (res, certs) => {
      const server = await startEchoServer(
        transport,
        tlsListen(certs, { cert: certs.elsewhereCert, key: certs.elsewhereKey }),
        res,
      );
      await assert.rejects(
        transport.connect({ transport: "tls", port: server.port, ca: certs.caCert }),
        (err) => {
          assert.ok(err instanceof TransportError, `got ${err}`);
          assert.match(err.message, /does not match the host name/);
          return true;
        },
      );
      const named = res.add(
        await transport.connect({
          transport: "tls",
          port: server.port,
          ca: certs.caCert,
          serverName: "elsewhere.invalid",
        }),
      );
      await echoRoundTrip(named, bytePattern(2000, 24));
    });

    tlsTest(
      "mutual TLS admits a client with a valid certificate, drops the others, and keeps serving",
      20_000,
      async (res, certs) => {
        const server = await startEchoServer(transport, mtlsListen(certs), res);
        const { port } = server;
        const withCert = {
          transport: "tls",
          port,
          ca: certs.caCert,
          cert: certs.clientCert,
          key: certs.clientKey,
        } as const;
        const first = res.add(await transport.connect(withCert));
        const firstGot = collect(first);
        const { conn: accepted } = await server.nextAccepted();
        assert.equal(accepted.tls?.authorized, true, "the server verified the client");
        assert.match(accepted.tls?.peerCertificateSubject ?? "", /CN=asockio test client/);
        first.write(bytePattern(1000, 25));
        await firstGot.untilLength(1000);

        await expectRefused(transport, { transport: "tls", port, ca: certs.caCert }, "no client certificate");
        await expectRefused(
          transport,
          {
            transport: "tls",
            port,
            ca: certs.caCert,
            cert: certs.rogueClientCert,
            key: certs.rogueClientKey,
          },
          "a client certificate from an unknown CA",
        );
        assert.equal(server.accepted.length, 1, "refused clients never reach onConnection");

        // The admitted connection went on undisturbed, and new valid clients still get in.
        first.write(bytePattern(1000, 26));
        await firstGot.untilLength(2000);
        assertBytesEqual(
          firstGot.bytes(),
          new Uint8Array([...bytePattern(1000, 25), ...bytePattern(1000, 26)]),
          "first client",
        );
        const second = res.add(await transport.connect({ ...withCert, serverName: "localhost" }));
        await echoRoundTrip(second, bytePattern(4000, 27));
        assert.equal(server.accepted.length, 2);
      },
    );

    tlsTest("moves 4 MiB each way over TLS byte-exact", 30_000, async (res, certs) => {
      const SIZE = 4 * MiB;
      const CHUNK = 64 * 1024;
      const toServer = bytePattern(SIZE, 31);
      const toClient = bytePattern(SIZE, 32);
      const pump = async (conn: Connection, got: Collector, payload: Uint8Array) => {
        for (let offset = 0; offset < payload.byteLength; offset += CHUNK) {
          if (!conn.write(payload.subarray(offset, offset + CHUNK))) await got.nextDrain();
        }
        conn.closeWrite();
      };
      const { listener, accepted: serverSide } = await listenForOne(transport, tlsListen(certs), res);
      const client = res.add(
        await transport.connect({ transport: "tls", port: tlsPort(listener.addr), ca: certs.caCert }),
      );
      const clientGot = collect(client);
      const server = await serverSide;
      await Promise.all([
        pump(client, clientGot, toServer),
        pump(server.conn, server.got, toClient),
        server.got.ended,
        clientGot.ended,
      ]);
      assertBytesEqual(server.got.bytes(), toServer, "client to server");
      assertBytesEqual(clientGot.bytes(), toClient, "server to client");
    });

    tlsTest(
      "a plain TCP client talking to a TLS port is dropped without disturbing a TLS client",
      15_000,
      async (res, certs) => {
        const server = await startEchoServer(transport, tlsListen(certs), res);
        const good = res.add(
          await transport.connect({ transport: "tls", port: server.port, ca: certs.caCert }),
        );
        const goodGot = collect(good);
        good.write(bytePattern(3000, 41));
        await goodGot.untilLength(3000);

        const plain = res.add(await transport.connect({ transport: "tcp", port: server.port }));
        const plainGot = collect(plain, { onEnd: () => plain.close() });
        plain.write(new TextEncoder().encode("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        plain.write(bytePattern(10_000, 42));
        await withTimeout(plainGot.closed, 5000, "the server drops the plain client");

        good.write(bytePattern(3000, 43));
        await goodGot.untilLength(6000);
        assertBytesEqual(
          goodGot.bytes(),
          new Uint8Array([...bytePattern(3000, 41), ...bytePattern(3000, 43)]),
          "TLS client",
        );
        assert.equal(server.accepted.length, 1, "the plain client never reached onConnection");
      },
    );

    tlsTest(
      "20 clients silent during the handshake each see the server end their socket after tlsHandshakeTimeoutMs; others stay",
      10_000,
      async (res, certs) => {
        const SILENT = 20;
        const TIMEOUT_MS = 300;
        const server = await startEchoServer(
          transport,
          tlsListen(certs, { tlsHandshakeTimeoutMs: TIMEOUT_MS }),
          res,
        );
        const good = res.add(
          await transport.connect({ transport: "tls", port: server.port, ca: certs.caCert }),
        );
        const goodGot = collect(good);
        good.write(bytePattern(500, 44));
        await goodGot.untilLength(500);

        // Plain TCP clients that never send a ClientHello: only the server can end their sockets
        // (each client closes its side only once it sees the server's FIN or reset).
        const started = Date.now();
        const silent = await Promise.all(
          Array.from({ length: SILENT }, async () => {
            const conn = res.add(await transport.connect({ transport: "tcp", port: server.port }));
            const got = collect(conn, { onEnd: () => conn.close() });
            return { got, endedAt: got.closed.then(() => Date.now()) };
          }),
        );
        await waitFor(
          () => silent.every(({ got }) => got.closes === 1),
          4000,
          `the server to end all ${SILENT} silent sockets`,
        );
        const endedAt = await Promise.all(silent.map((s) => s.endedAt));
        assert.ok(
          Math.min(...endedAt) - started >= TIMEOUT_MS / 2,
          "ended by the timeout, not at once",
        );
        assert.ok(silent.every(({ got }) => got.length === 0), "no silent client got a byte");

        // Idle for longer than the handshake timeout, the established connection is still served.
        good.write(bytePattern(500, 45));
        await goodGot.untilLength(1000);
        assertBytesEqual(
          goodGot.bytes(),
          new Uint8Array([...bytePattern(500, 44), ...bytePattern(500, 45)]),
          "TLS client",
        );
        assert.equal(server.accepted.length, 1);
      },
    );

    for (const callback of ["onData", "onEnd", "onDrain"] as const) {
      tlsTest(
        `a handler whose ${callback} throws over TLS: only its connection closes, onClose reports a CallbackError, nothing reaches the process`,
        10_000,
        async (res, certs) => {
          // The port is known once listening: connect options are filled in from the listener.
          const connect = { transport: "tls", port: 0, ca: certs.caCert } as TlsConnectOptions;
          await checkThrowingHandler(transport, res, "tls", callback, { listen: tlsListen(certs), connect });
        },
      );
    }

    tlsTest(
      "connect gives up with TimeoutError on a server that never answers the handshake",
      10_000,
      async (res) => {
        const mute = res.add(await transport.listen({ transport: "tcp" }, (conn) => void res.add(conn)));
        const port = (mute.addr as { port: number }).port;
        const started = Date.now();
        await assert.rejects(
          transport.connect({ transport: "tls", port, tlsHandshakeTimeoutMs: 300 }),
          (err) => {
            assert.ok(err instanceof TimeoutError, `got ${err}`);
            assert.match(err.message, /TLS handshake/);
            return true;
          },
        );
        assert.ok(Date.now() - started < 3000);
      },
    );

    tlsTest(
      "connecting over TLS where nothing listens fails with ConnectionRefusedError",
      10_000,
      async (_res, certs) => {
        const listener = await transport.listen(tlsListen(certs), () => {});
        const port = tlsPort(listener.addr);
        await listener.close();
        await assert.rejects(transport.connect({ transport: "tls", port, ca: certs.caCert }), (err) => {
          assert.ok(err instanceof ConnectionRefusedError, `got ${err}`);
          return true;
        });
      },
    );

    tlsTest(
      "unusable TLS options are refused with a TypeError or RangeError",
      10_000,
      async (_res, certs) => {
        await assert.rejects(
          transport.listen(
            { transport: "tls", cert: certs.serverCert } as unknown as TlsListenOptions,
            () => {},
          ),
          TypeError,
        );
        await assert.rejects(
          transport.listen(tlsListen(certs, { requestClientCert: true }), () => {}),
          /ca is required/,
        );
        await assert.rejects(
          transport.listen(tlsListen(certs, { tlsHandshakeTimeoutMs: -1 }), () => {}),
          RangeError,
        );
        await assert.rejects(
          transport.connect({ transport: "tls", port: 1, cert: certs.clientCert }),
          TypeError,
        );
      },
    );
  });

  describe(`UNIX socket file mode on the ${transport.name} transport`, () => {
    netTest("a UNIX listener's socket file is 0600 by default, and mode widens it", 10_000, async (res) => {
      const dir = await res.tempDir();
      const path = dir.join("default.sock");
      res.add(await transport.listen({ transport: "unix", path }, (conn) => void res.add(conn)));
      assert.equal((await stat(path)).mode & 0o777, 0o600);
      res.add(await transport.connect({ transport: "unix", path }));

      const shared = dir.join("shared.sock");
      res.add(
        await transport.listen(
          { transport: "unix", path: shared, mode: 0o660 },
          (conn) => void res.add(conn),
        ),
      );
      assert.equal((await stat(shared)).mode & 0o777, 0o660);
      res.add(await transport.connect({ transport: "unix", path: shared }));
    });

    netTest("an invalid mode is refused with a RangeError before anything is bound", 10_000, async (res) => {
      const dir = await res.tempDir();
      const path = dir.join("bad.sock");
      for (const mode of [-1, 0o1000, 1.5, Number.NaN]) {
        await assert.rejects(transport.listen({ transport: "unix", path, mode }, () => {}), RangeError);
      }
      assert.equal(await pathExists(path), false);
    });
  });
}
