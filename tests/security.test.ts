import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { HandshakeRejectedError, nativeTransport, TimeoutError } from "../mod.ts";
import { noOpensslReason, testCerts } from "./_certs.ts";
import { iterateUntil, recordingLogger, startCore } from "./_core_fixture.ts";
import { type Collector, delay, listenForOne, Resources, TEST_TIMEOUT } from "./_helpers.ts";
import { targetOf, text, type WirePeer } from "./_wire_peer.ts";
import type { ConnectOptions } from "../transports/types.ts";

const encoder = new TextEncoder();
const ascii = (s: string): number[] => [...encoder.encode(s)];
const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 0 } as const;

/** A frame's bytes spelled out: the 8-byte little-endian length (below 256 here), then the payload. */
function wireFrame(payload: readonly number[]): number[] {
  return [payload.length, 0, 0, 0, 0, 0, 0, 0, ...payload];
}

/** `HMAC-SHA256(secret, nonce ‖ keyword)`, computed here with WebCrypto rather than by core/wire/auth.ts. */
async function hmacProof(secret: string, nonce: readonly number[], keyword: string): Promise<number[]> {
  const key = await crypto.subtle.importKey(
    "raw",
    encoder.encode(secret),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  return [
    ...new Uint8Array(await crypto.subtle.sign("HMAC", key, new Uint8Array([...nonce, ...ascii(keyword)]))),
  ];
}

/** Waits for `length` raw bytes from the core, then a moment more, and returns all that came. */
async function rawAnswer(peer: WirePeer, length: number): Promise<number[]> {
  await peer.until(() => peer.rawLength >= length, 5000, `${length} bytes`);
  await delay(50); // A sleep: it shows that nothing more comes.
  return [...peer.takeRaw()];
}

/** The `OK` frame, as the original handshake answers. */
const OK_FRAME = [2, 0, 0, 0, 0, 0, 0, 0, 0x4f, 0x4b];

/**
 * A client core connecting out, with `client`'s keyword and secret, to a bare listener that records
 * what arrives. Both close with `res`.
 */
async function clientOfBareServer(res: Resources, client: { keyword: string; secret?: string }) {
  const server = await listenForOne(nativeTransport(), LOOPBACK, res);
  const fx = await startCore();
  res.defer(() => fx.close());
  const id = fx.core.addClient({ ...client, connect: targetOf(server.listener.addr) });
  const { conn, got } = await server.accepted;
  return { core: fx.core, id, conn, got };
}

/** Waits for `length` bytes from the connecting core, then a moment more, and returns all that came. */
async function bytesFrom(got: Collector, length: number): Promise<number[]> {
  await got.untilLength(length);
  await delay(50); // A sleep: it shows that nothing more comes.
  const bytes = [...got.bytes()];
  got.chunks.length = 0;
  return bytes;
}

describe("access rules on a live core", () => {
  it(
    "refuses a named client outside its rules with a reason and a log line naming the address",
    TEST_TIMEOUT,
    async () => {
      const logger = recordingLogger();
      await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0, name: "lan" }], logger });
      const core = fx.core;
      const id = core.addClient({ keyword: "lan only", allow: [{ cidr: "10.0.0.0/8" }] });
      const other = core.addClient({ keyword: "local" });
      const refused = await fx.connect("lan only");
      assert.equal(text(await refused.next()), "access denied");
      await refused.waitClosed();
      assert.ok(
        logger.lines.some((l) => l.includes("access denied") && l.includes("127.0.0.1")),
        logger.lines.join("\n"),
      );
      assert.equal(core.getClientInfo(id)?.state, "disconnected");
      // The default rules (LOCAL_ONLY) admit the loopback peer for the other keyword.
      const admitted = await fx.handshake("local");
      await iterateUntil(core, (e) => e.expected.has(other));
      admitted.close();
    },
  );

  it("restricts a named client to one listener, by name", TEST_TIMEOUT, async () => {
    await using fx = await startCore({
      listeners: [{ transport: "tcp", port: 0, name: "tcp" }, { transport: "unix", path: "s", name: "ipc" }],
    });
    const id = fx.core.addClient({ keyword: "ipc only", allow: [{ listener: "ipc" }] });
    const viaTcp = await fx.connect("ipc only", 0);
    assert.equal(text(await viaTcp.next()), "access denied");
    const viaUnix = await fx.handshake("ipc only", 1);
    await iterateUntil(fx.core, (e) => e.expected.has(id));
    viaUnix.close();
  });

  it(
    "applies the core's default rules to unexpected keywords, and its own rules to unknown clients",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0 }],
        allow: [{ transport: "unix" }],
        rawConnection: () => false,
      });
      const core = fx.core;
      const stranger = await fx.connect("unexpected");
      assert.equal(text(await stranger.next()), "access denied");
      assert.equal(core.stats().heldConnections, 0);

      await using raw = await startCore({
        listeners: [{ transport: "tcp", port: 0 }],
        rawConnection: () => true,
        unknownClients: "allow",
        unknownClientsAllow: [{ cidr: "10.0.0.0/8" }],
      });
      const browser = await raw.connect();
      await browser.waitClosed();
      assert.equal(raw.core.stats().clients, 0);
    },
  );
});

describe("shared-secret authentication", () => {
  it(
    "admits a client core that knows the secret, and the server sees a challenge round",
    TEST_TIMEOUT,
    async () => {
      await using serverFx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
      const server = serverFx.core;
      const onServer = server.addClient({ keyword: "secure", secret: "s3cret" });
      await using clientFx = await startCore();
      const client = clientFx.core;
      const id = client.addClient({
        keyword: "secure",
        secret: "s3cret",
        connect: serverFx.target(),
      });
      await iterateUntil(client, (e) => e.expected.has(id));
      await iterateUntil(server, (e) => e.expected.has(onServer));
      client.sendMessageToClient(id, "authenticated hello");
      await iterateUntil(server, (e) => e.data.has(onServer));
      assert.deepEqual(server.getMessagesFromClient(onServer).map(text), ["authenticated hello"]);
    },
  );

  it("refuses a wrong secret, a missing answer and a client without a secret", TEST_TIMEOUT, async () => {
    await using serverFx = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      limits: { handshakeTimeoutMs: 300 },
    });
    const server = serverFx.core;
    const onServer = server.addClient({ keyword: "secure", secret: "right" });
    await using clientFx = await startCore();
    const client = clientFx.core;
    const wrong = client.addClient({
      keyword: "secure",
      secret: "wrong",
      connect: serverFx.target(),
    });
    await iterateUntil(client, (e) => e.disconnected.has(wrong));
    const err = client.getClientInfo(wrong)?.lastError;
    assert.ok(err instanceof HandshakeRejectedError);
    assert.equal(err.reason, "authentication failed");

    await using bareFx = await startCore();
    const bare = bareFx.core;
    const noSecret = bare.addClient({
      keyword: "secure",
      connect: serverFx.target(),
    });
    await iterateUntil(bare, (e) => e.disconnected.has(noSecret));
    assert.match(bare.getClientInfo(noSecret)?.lastError?.message ?? "", /requires authentication/);

    // A peer that sends the keyword, reads the challenge and then stalls is timed out.
    const stalling = await serverFx.connect("secure");
    const challenge = await stalling.next();
    assert.ok(challenge, "a challenge frame");
    assert.equal(text(challenge.subarray(0, 17)), "AUTH-HMAC-SHA256:");
    assert.equal(challenge.length, 17 + 32);
    await stalling.waitClosed(5000);
    assert.equal(server.getClientInfo(onServer)?.state, "disconnected");
  });
});

describe("the handshake on the wire, byte for byte", () => {
  it(
    "keeps the original handshake when no secret is set: the keyword frame in, the OK frame out",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
      const id = fx.core.addClient({ keyword: "plain" });
      const peer = await fx.connect(undefined, 0, { raw: true });
      peer.write(new Uint8Array([5, 0, 0, 0, 0, 0, 0, 0, ...ascii("plain")]));
      assert.deepEqual(await rawAnswer(peer, 10), OK_FRAME);
      await iterateUntil(fx.core, (e) => e.expected.has(id));
      peer.close();
    },
  );

  it(
    "sends the original handshake as a connecting client when no secret is set, and is connected by OK",
    TEST_TIMEOUT,
    async () => {
      await using res = new Resources();
      const { core, id, conn, got } = await clientOfBareServer(res, { keyword: "plain" });
      assert.deepEqual(await bytesFrom(got, 13), [5, 0, 0, 0, 0, 0, 0, 0, ...ascii("plain")]);
      conn.write(new Uint8Array(OK_FRAME));
      await iterateUntil(core, (e) => e.expected.has(id));
      assert.equal(core.getClientInfo(id)?.state, "connected");
      assert.deepEqual(await bytesFrom(got, 0), [], "nothing after the keyword");
    },
  );

  it(
    "answers a keyword with a secret by the challenge frame, checks the HMAC proof frame, then sends OK",
    TEST_TIMEOUT,
    async () => {
      await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0 }] });
      const id = fx.core.addClient({ keyword: "secure", secret: "s3cret" });
      const peer = await fx.connect(undefined, 0, { raw: true });
      peer.write(new Uint8Array(wireFrame(ascii("secure"))));
      const challenge = await rawAnswer(peer, 8 + 17 + 32);
      assert.equal(challenge.length, 8 + 17 + 32);
      assert.deepEqual(challenge.slice(0, 8 + 17), [49, 0, 0, 0, 0, 0, 0, 0, ...ascii("AUTH-HMAC-SHA256:")]);
      const nonce = challenge.slice(8 + 17);
      assert.notDeepEqual(nonce, new Array(32).fill(0), "the nonce is random");
      peer.write(new Uint8Array(wireFrame(await hmacProof("s3cret", nonce, "secure"))));
      assert.deepEqual(await rawAnswer(peer, 10), OK_FRAME);
      await iterateUntil(fx.core, (e) => e.expected.has(id));
      peer.close();
    },
  );

  it(
    "answers a challenge as a connecting client with a secret by the HMAC proof frame, and is connected by OK",
    TEST_TIMEOUT,
    async () => {
      await using res = new Resources();
      const { core, id, conn, got } = await clientOfBareServer(res, { keyword: "secure", secret: "s3cret" });
      assert.deepEqual(await bytesFrom(got, 14), wireFrame(ascii("secure")));
      const nonce = Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
      conn.write(new Uint8Array(wireFrame([...ascii("AUTH-HMAC-SHA256:"), ...nonce])));
      assert.deepEqual(await bytesFrom(got, 8 + 32), wireFrame(await hmacProof("s3cret", nonce, "secure")));
      conn.write(new Uint8Array(OK_FRAME));
      await iterateUntil(core, (e) => e.expected.has(id));
      assert.equal(core.getClientInfo(id)?.state, "connected");
      assert.deepEqual(await bytesFrom(got, 0), [], "nothing after the proof");
    },
  );
});

describe("timeouts and caps", () => {
  it(
    "closes a connection that never sends its keyword (slowloris) with a TimeoutError log",
    TEST_TIMEOUT,
    async () => {
      const logger = recordingLogger();
      await using fx = await startCore({
        listeners: [{ transport: "tcp", port: 0 }],
        limits: { handshakeTimeoutMs: 200 },
        logger,
      });
      const core = fx.core;
      const slow = await fx.connect();
      slow.conn.write(new Uint8Array([5, 0, 0])); // a partial header, then nothing
      await slow.waitClosed(5000);
      assert.ok(logger.lines.some((l) => l.includes("not done within 200 ms")), logger.lines.join("\n"));
      assert.equal(core.stats().connections, 0);
    },
  );

  it("refuses keywords longer than maxKeywordBytes", TEST_TIMEOUT, async () => {
    await using fx = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      limits: { maxKeywordBytes: 16 },
    });
    const core = fx.core;
    assert.throws(() => core.addClient({ keyword: "x".repeat(17) }), RangeError);
    const peer = await fx.connect("y".repeat(17));
    await peer.waitClosed();
    assert.equal(core.stats().connections, 0);
  });

  it("parks connections over maxConnections instead of refusing them", TEST_TIMEOUT, async () => {
    await using fx = await startCore({ listeners: [{ transport: "tcp", port: 0, maxConnections: 2 }] });
    const core = fx.core;
    const ids = [0, 1, 2].map((i) => core.addClient({ keyword: `c${i}` }));
    const first = await fx.handshake("c0");
    const second = await fx.handshake("c1");
    const third = await fx.connect("c2");
    await iterateUntil(core, (e) => e.expected.has(ids[0]!) && e.expected.has(ids[1]!));
    await delay(100); // A sleep: it shows that the third gets no OK at the cap.
    assert.equal(third.pending, 0, "the third waits at the cap");
    assert.equal(core.stats().connections, 2);
    first.close();
    assert.equal(text(await third.next()), "OK");
    await iterateUntil(core, (e) => e.expected.has(ids[2]!));
    second.close();
    third.close();
  });

  it("closes idle connections when idleTimeoutMs is set, with a TimeoutError", TEST_TIMEOUT, async () => {
    await using fx = await startCore({
      listeners: [{ transport: "tcp", port: 0 }],
      limits: { idleTimeoutMs: 150 },
    });
    const core = fx.core;
    const id = core.addClient({ keyword: "sleepy" });
    const peer = await fx.handshake("sleepy");
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
    await using serverFx = await startCore({
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
    const server = serverFx.core;
    const tlsAddr = serverFx.addrs[1];
    assert.equal(tlsAddr?.transport, "tls");
    const onServer = server.addClient({ keyword: "tls only", allow: [{ transport: "tls" }] });

    const plain = await serverFx.connect("tls only", 0);
    assert.equal(text(await plain.next()), "access denied");

    await using clientFx = await startCore();
    const client = clientFx.core;
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
    await using server = await startCore({
      listeners: [
        { ...tls, name: "server-auth only" },
        { ...tls, name: "mutual", ca: certs.caCert, requestClientCert: true },
      ],
    });
    const onServer = server.core.addClient({ keyword: "cert holder", allow: [{ clientCertVerified: true }] });
    const connect = (index: number): ConnectOptions => ({
      transport: "tls",
      port: (server.addrs[index] as { port: number }).port,
      ca: certs.caCert,
      cert: certs.clientCert,
      key: certs.clientKey,
    });

    await using refusedClient = await startCore();
    const refused = refusedClient.core.addClient({ keyword: "cert holder", connect: connect(0) });
    await iterateUntil(refusedClient.core, (e) => e.disconnected.has(refused));
    const error = refusedClient.core.getClientInfo(refused)?.lastError;
    assert.ok(error instanceof HandshakeRejectedError, String(error));
    assert.equal(error.reason, "access denied");

    await using admittedClient = await startCore();
    const admitted = admittedClient.core.addClient({ keyword: "cert holder", connect: connect(1) });
    await iterateUntil(admittedClient.core, (e) => e.expected.has(admitted));
    await iterateUntil(server.core, (e) => e.expected.has(onServer));
    assert.equal(server.core.getClientInfo(onServer)?.listener?.name, "mutual");
  });
});
