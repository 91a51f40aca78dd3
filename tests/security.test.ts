import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { HandshakeRejectedError, IoCore, type IoCoreOptions, TimeoutError } from "../mod.ts";
import { AUTH_CHALLENGE_PREFIX } from "../core/auth.ts";
import { noOpensslReason, testCerts } from "./_certs.ts";
import { iterateUntil, recordingLogger, text, WireClient } from "./_core_helpers.ts";
import type { Addr, TcpAddr } from "../transports/types.ts";

const TEST_TIMEOUT = { timeout: 30_000 };

function tcp(addr: Addr | undefined): TcpAddr {
  assert.equal(addr?.transport, "tcp");
  return addr as TcpAddr;
}

function quietCore(options: IoCoreOptions = {}): IoCore {
  return new IoCore({ logger: null, ...options });
}

describe("access rules on a live core", () => {
  it(
    "refuses a named client outside its rules with a reason and a log line naming the address",
    TEST_TIMEOUT,
    async () => {
      const logger = recordingLogger();
      await using core = new IoCore({ listeners: [{ transport: "tcp", port: 0, name: "lan" }], logger });
      const [addr] = await core.listen();
      const id = core.addClient({ keyword: "lan only", allow: [{ cidr: "10.0.0.0/8" }] });
      const other = core.addClient({ keyword: "local" });
      const refused = await WireClient.connect({ transport: "tcp", port: tcp(addr).port }, "lan only");
      assert.equal(text(await refused.next()), "access denied");
      await refused.waitClosed();
      assert.ok(
        logger.lines.some((l) => l.includes("access denied") && l.includes("127.0.0.1")),
        logger.lines.join("\n"),
      );
      assert.equal(core.getClientInfo(id)?.state, "disconnected");
      // The default rules (LOCAL_ONLY) admit the loopback peer for the other keyword.
      const admitted = await WireClient.handshake({ transport: "tcp", port: tcp(addr).port }, "local");
      await iterateUntil(core, (e) => e.expected.has(other));
      admitted.close();
    },
  );

  it("restricts a named client to one listener, by name", TEST_TIMEOUT, async () => {
    const dir = await mkdtemp(join(tmpdir(), "asockio-rules-"));
    try {
      await using core = quietCore({
        listeners: [{ transport: "tcp", port: 0, name: "tcp" }, {
          transport: "unix",
          path: join(dir, "s"),
          name: "ipc",
        }],
      });
      const [tcpAddr, unixAddr] = await core.listen();
      const id = core.addClient({ keyword: "ipc only", allow: [{ listener: "ipc" }] });
      const viaTcp = await WireClient.connect({ transport: "tcp", port: tcp(tcpAddr).port }, "ipc only");
      assert.equal(text(await viaTcp.next()), "access denied");
      const viaUnix = await WireClient.handshake(
        { transport: "unix", path: (unixAddr as { path: string }).path },
        "ipc only",
      );
      await iterateUntil(core, (e) => e.expected.has(id));
      viaUnix.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it(
    "applies the core's default rules to unexpected keywords, and its own rules to unknown clients",
    TEST_TIMEOUT,
    async () => {
      await using core = quietCore({
        listeners: [{ transport: "tcp", port: 0 }],
        allow: [{ transport: "unix" }],
        rawConnection: () => false,
      });
      const [addr] = await core.listen();
      const stranger = await WireClient.connect({ transport: "tcp", port: tcp(addr).port }, "unexpected");
      assert.equal(text(await stranger.next()), "access denied");
      assert.equal(core.stats().heldConnections, 0);

      await using raw = quietCore({
        listeners: [{ transport: "tcp", port: 0 }],
        rawConnection: () => true,
        unknownClients: "allow",
        unknownClientsAllow: [{ cidr: "10.0.0.0/8" }],
      });
      const [rawAddr] = await raw.listen();
      const browser = await WireClient.connect({ transport: "tcp", port: tcp(rawAddr).port });
      await browser.waitClosed();
      assert.equal(raw.stats().clients, 0);
    },
  );
});

describe("shared-secret authentication", () => {
  it(
    "admits a client core that knows the secret, and the server sees a challenge round",
    TEST_TIMEOUT,
    async () => {
      await using server = quietCore({ listeners: [{ transport: "tcp", port: 0 }] });
      const [addr] = await server.listen();
      const onServer = server.addClient({ keyword: "secure", secret: "s3cret" });
      await using client = quietCore();
      const id = client.addClient({
        keyword: "secure",
        secret: "s3cret",
        connect: { transport: "tcp", port: tcp(addr).port },
      });
      await iterateUntil(client, (e) => e.expected.has(id));
      await iterateUntil(server, (e) => e.expected.has(onServer));
      client.sendMessageToClient(id, "authenticated hello");
      await iterateUntil(server, (e) => e.data.has(onServer));
      assert.deepEqual(server.getMessagesFromClient(onServer).map(text), ["authenticated hello"]);
    },
  );

  it("refuses a wrong secret, a missing answer and a client without a secret", TEST_TIMEOUT, async () => {
    await using server = quietCore({
      listeners: [{ transport: "tcp", port: 0 }],
      limits: { handshakeTimeoutMs: 300 },
    });
    const [addr] = await server.listen();
    const onServer = server.addClient({ keyword: "secure", secret: "right" });
    await using client = quietCore();
    const wrong = client.addClient({
      keyword: "secure",
      secret: "wrong",
      connect: { transport: "tcp", port: tcp(addr).port },
    });
    await iterateUntil(client, (e) => e.disconnected.has(wrong));
    const err = client.getClientInfo(wrong)?.lastError;
    assert.ok(err instanceof HandshakeRejectedError);
    assert.equal(err.reason, "authentication failed");

    await using bare = quietCore();
    const noSecret = bare.addClient({
      keyword: "secure",
      connect: { transport: "tcp", port: tcp(addr).port },
    });
    await iterateUntil(bare, (e) => e.disconnected.has(noSecret));
    assert.match(bare.getClientInfo(noSecret)?.lastError?.message ?? "", /requires authentication/);

    // A peer that sends the keyword, reads the challenge and then stalls is timed out.
    const stalling = await WireClient.connect({ transport: "tcp", port: tcp(addr).port }, "secure");
    const challenge = await stalling.next();
    assert.equal(text(challenge.subarray(0, AUTH_CHALLENGE_PREFIX.length)), "AUTH-HMAC-SHA256:");
    assert.equal(challenge.length, AUTH_CHALLENGE_PREFIX.length + 32);
    await stalling.waitClosed(5000);
    assert.equal(server.getClientInfo(onServer)?.state, "disconnected");
  });

  it("keeps the original handshake byte for byte when no secret is set", TEST_TIMEOUT, async () => {
    await using server = quietCore({ listeners: [{ transport: "tcp", port: 0 }] });
    const [addr] = await server.listen();
    server.addClient({ keyword: "plain" });
    const peer = await WireClient.connect({ transport: "tcp", port: tcp(addr).port }, "plain");
    assert.equal(text(await peer.next()), "OK");
    peer.close();
  });
});

describe("timeouts and caps", () => {
  it(
    "closes a connection that never sends its keyword (slowloris) with a TimeoutError log",
    TEST_TIMEOUT,
    async () => {
      const logger = recordingLogger();
      await using core = new IoCore({
        listeners: [{ transport: "tcp", port: 0 }],
        limits: { handshakeTimeoutMs: 200 },
        logger,
      });
      const [addr] = await core.listen();
      const slow = await WireClient.connect({ transport: "tcp", port: tcp(addr).port });
      slow.conn.write(new Uint8Array([5, 0, 0])); // a partial header, then nothing
      await slow.waitClosed(5000);
      assert.ok(logger.lines.some((l) => l.includes("not done within 200 ms")), logger.lines.join("\n"));
      assert.equal(core.stats().connections, 0);
    },
  );

  it("refuses keywords longer than maxKeywordBytes", TEST_TIMEOUT, async () => {
    await using core = quietCore({
      listeners: [{ transport: "tcp", port: 0 }],
      limits: { maxKeywordBytes: 16 },
    });
    const [addr] = await core.listen();
    assert.throws(() => core.addClient({ keyword: "x".repeat(17) }), RangeError);
    const peer = await WireClient.connect({ transport: "tcp", port: tcp(addr).port }, "y".repeat(17));
    await peer.waitClosed();
    assert.equal(core.stats().connections, 0);
  });

  it("parks connections over maxConnections instead of refusing them", TEST_TIMEOUT, async () => {
    await using core = quietCore({ listeners: [{ transport: "tcp", port: 0, maxConnections: 2 }] });
    const [addr] = await core.listen();
    const ids = [0, 1, 2].map((i) => core.addClient({ keyword: `c${i}` }));
    const first = await WireClient.handshake({ transport: "tcp", port: tcp(addr).port }, "c0");
    const second = await WireClient.handshake({ transport: "tcp", port: tcp(addr).port }, "c1");
    const third = await WireClient.connect({ transport: "tcp", port: tcp(addr).port }, "c2");
    await iterateUntil(core, (e) => e.expected.has(ids[0]!) && e.expected.has(ids[1]!));
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(third.messages.length, 0, "the third waits at the cap");
    assert.equal(core.stats().connections, 2);
    first.close();
    assert.equal(text(await third.next()), "OK");
    await iterateUntil(core, (e) => e.expected.has(ids[2]!));
    second.close();
    third.close();
  });

  it("closes idle connections when idleTimeoutMs is set, with a TimeoutError", TEST_TIMEOUT, async () => {
    await using core = quietCore({
      listeners: [{ transport: "tcp", port: 0 }],
      limits: { idleTimeoutMs: 150 },
    });
    const [addr] = await core.listen();
    const id = core.addClient({ keyword: "sleepy" });
    const peer = await WireClient.handshake({ transport: "tcp", port: tcp(addr).port }, "sleepy");
    await iterateUntil(core, (e) => e.disconnected.has(id), 5000);
    assert.ok(core.getClientInfo(id)?.lastError instanceof TimeoutError);
    await peer.waitClosed();
  });
});

describe("TLS through the core", () => {
  it("admits a named client only over TLS when its rule says so, with mutual TLS", {
    timeout: 30_000,
    skip: noOpensslReason,
  }, async () => {
    const certs = await testCerts();
    await using server = quietCore({
      listeners: [
        { transport: "tcp", port: 0, name: "plain" },
        {
          transport: "tls",
          port: 0,
          name: "secure",
          cert: certs.serverCert,
          key: certs.serverKey,
          ca: certs.caCert,
          requestClientCert: true,
        },
      ],
    });
    const [plainAddr, tlsAddr] = await server.listen();
    assert.equal(tlsAddr?.transport, "tls");
    const onServer = server.addClient({ keyword: "tls only", allow: [{ transport: "tls" }] });

    const plain = await WireClient.connect({ transport: "tcp", port: tcp(plainAddr).port }, "tls only");
    assert.equal(text(await plain.next()), "access denied");

    await using client = quietCore();
    const id = client.addClient({
      keyword: "tls only",
      connect: {
        transport: "tls",
        port: (tlsAddr as { port: number }).port,
        ca: certs.caCert,
        cert: certs.clientCert,
        key: certs.clientKey,
      },
    });
    await iterateUntil(client, (e) => e.expected.has(id));
    await iterateUntil(server, (e) => e.expected.has(onServer));
    assert.equal(server.getClientInfo(onServer)?.listener?.name, "secure");
    assert.equal(server.getClientInfo(onServer)?.remoteAddr?.transport, "tls");
    client.sendMessageToClient(id, "over tls");
    await iterateUntil(server, (e) => e.data.has(onServer));
    assert.deepEqual(server.getMessagesFromClient(onServer).map(text), ["over tls"]);
  });
});

describe("TLS client certificates in access rules", () => {
  it("admits a clientCertVerified client through the mutual-TLS listener and refuses it over plain TLS", {
    timeout: 30_000,
    skip: noOpensslReason,
  }, async () => {
    const certs = await testCerts();
    const tls = { transport: "tls" as const, port: 0, cert: certs.serverCert, key: certs.serverKey };
    await using server = quietCore({
      listeners: [
        { ...tls, name: "server-auth only" },
        { ...tls, name: "mutual", ca: certs.caCert, requestClientCert: true },
      ],
    });
    const [oneWay, mutual] = await server.listen();
    const onServer = server.addClient({ keyword: "cert holder", allow: [{ clientCertVerified: true }] });
    const connect = (addr: Addr | undefined) => ({
      transport: "tls" as const,
      port: (addr as { port: number }).port,
      ca: certs.caCert,
      cert: certs.clientCert,
      key: certs.clientKey,
    });

    await using refusedClient = quietCore();
    const refused = refusedClient.addClient({ keyword: "cert holder", connect: connect(oneWay) });
    await iterateUntil(refusedClient, (e) => e.disconnected.has(refused));
    const error = refusedClient.getClientInfo(refused)?.lastError;
    assert.ok(error instanceof HandshakeRejectedError, String(error));
    assert.equal(error.reason, "access denied");

    await using admittedClient = quietCore();
    const admitted = admittedClient.addClient({ keyword: "cert holder", connect: connect(mutual) });
    await iterateUntil(admittedClient, (e) => e.expected.has(admitted));
    await iterateUntil(server, (e) => e.expected.has(onServer));
    assert.equal(server.getClientInfo(onServer)?.listener?.name, "mutual");
  });
});
