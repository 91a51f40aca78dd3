/**
 * Half-close: a raw unknown client that sends its request and then ends its side (`socket.end()`,
 * `nc -N`, Python's `shutdown(SHUT_WR)`) can still be answered by an application that takes its
 * time, on every runtime, every transport and every stream listener kind (TCP, UNIX, TLS).
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { describe, it } from "node:test";
import { InlineProcessor } from "../mod.ts";
import type { Addr, ClientId, IoCore, IoCoreLimits, IoCoreListenerOptions, Transport } from "../mod.ts";
import { noOpensslReason, testCerts } from "./_certs.ts";
import { startCore } from "./_core_fixture.ts";
import { delay, missingTool, TEST_TIMEOUT, withTimeout } from "./_helpers.ts";
import { transportsUnderTest } from "./_net_test.ts";
import { waitFor } from "./_settle.ts";

const decoder = new TextDecoder();

/** A peer socket that keeps what it received and knows when the server ended and closed. */
class HalfClosingPeer {
  readonly #chunks: Uint8Array[] = [];
  ended = false;
  closed = false;

  constructor(readonly socket: Socket) {
    socket.on("data", (chunk: Uint8Array) => this.#chunks.push(new Uint8Array(chunk)));
    socket.on("end", () => this.ended = true);
    socket.on("close", () => this.closed = true);
    socket.on("error", () => {});
  }

  get text(): string {
    return this.#chunks.map((c) => decoder.decode(c)).join("");
  }
}

/** Connects a `node:net` or `node:tls` socket to `addr`, writes `request` and ends its side. */
async function halfClosingPeer(addr: Addr, request: string, ca?: string): Promise<HalfClosingPeer> {
  const socket = await new Promise<Socket>((resolve, reject) => {
    let s: Socket;
    if (addr.transport === "unix") s = netConnect({ path: addr.path }, () => resolve(s));
    else if (addr.transport === "tls") {
      s = tlsConnect({ host: addr.hostname, port: addr.port, ca, servername: "localhost" }, () => resolve(s));
    } else if (addr.transport === "tcp") {
      s = netConnect({ host: addr.hostname, port: addr.port }, () => resolve(s));
    } else throw new TypeError(`Cannot connect a stream peer to ${addr.transport}`);
    s.once("error", reject);
  });
  const peer = new HalfClosingPeer(socket);
  socket.end(request); // writes the request, then FIN
  return peer;
}

/** Runs `ioIteration` until an unknown client has sent data; returns its id. */
async function firstUnknownWithData(core: IoCore): Promise<ClientId> {
  const deadline = Date.now() + 10_000;
  let id: ClientId | undefined;
  while (Date.now() < deadline) {
    const events = await core.ioIteration(500);
    id ??= [...events.newlyConnectedUnknownClients][0];
    if (id !== undefined && core.getClientInfo(id)?.unreadMessages) return id;
  }
  throw new Error("No unknown client sent data within 10 s");
}

/** A core that takes every connection as a raw unknown client, on one listener of `kind`. */
async function rawCore(
  transport: Transport | undefined,
  kind: "tcp" | "unix" | "tls",
  limits?: IoCoreLimits,
  processor?: typeof InlineProcessor,
) {
  return startCore({
    ...(transport ? { transport } : {}),
    ...(processor ? { unknownClientProcessor: processor } : {}),
    unknownClients: "allow",
    rawConnection: () => true,
    listeners: [await listenerFor(kind)],
    ...(limits ? { limits } : {}),
  });
}

async function listenerFor(kind: "tcp" | "unix" | "tls"): Promise<IoCoreListenerOptions> {
  if (kind === "tcp") return { transport: "tcp", hostname: "127.0.0.1", port: 0 };
  if (kind === "unix") return { transport: "unix", path: "half.sock" };
  const certs = await testCerts();
  return { transport: "tls", hostname: "127.0.0.1", port: 0, cert: certs.serverCert, key: certs.serverKey };
}

for (const transport of transportsUnderTest()) {
  describe(`half-close on the ${transport.name} transport`, () => {
    for (const kind of ["tcp", "unix", "tls"] as const) {
      const skip = kind === "tls" ? noOpensslReason : undefined;
      it(
        `a raw client that half-closes over ${kind} gets an answer sent 300 ms later`,
        { ...TEST_TIMEOUT, skip },
        async () => {
          await using fx = await rawCore(transport, kind);
          const ca = kind === "tls" ? (await testCerts()).caCert : undefined;
          const peer = await halfClosingPeer(fx.addrs[0]!, "hello raw\n", ca);
          const id = await firstUnknownWithData(fx.core);
          // The application is slow on purpose: the answer must not depend on beating the FIN.
          await delay(300);
          assert.equal(fx.core.getClientInfo(id)?.peerEnded, true);
          const request = fx.core.getMessagesFromClient(id).map((m) => decoder.decode(m)).join("");
          assert.equal(request, "hello raw\n");
          fx.core.sendMessageToClient(id, `answer to ${request}`);
          fx.core.markClientConnectionAsReadyToBeClosed(id);
          await waitFor(() => peer.closed, 10_000, "the peer's socket to close");
          assert.equal(peer.text, "answer to hello raw\n");
          assert.ok(peer.ended, "the core ended its side cleanly");
        },
      );
    }

    it("an idle half-open connection closes after limits.halfOpenTimeoutMs", {
      ...TEST_TIMEOUT,
    }, async () => {
      await using fx = await rawCore(transport, "tcp", { halfOpenTimeoutMs: 300 });
      const peer = await halfClosingPeer(fx.addrs[0]!, "hello raw\n");
      const id = await firstUnknownWithData(fx.core);
      const readAt = Date.now();
      assert.equal(fx.core.getMessagesFromClient(id).length, 1);
      await waitFor(() => peer.closed, 5_000, "the half-open connection to close");
      assert.equal(peer.text, "", "nothing was sent");
      assert.ok(peer.ended, "closed with a FIN");
      await waitFor(() => fx.core.stats().connections === 0, 5_000, "the core to drop the connection");
      // Read at once, it still waited out (most of) the timeout, counted from the FIN before the read.
      assert.ok(Date.now() - readAt >= 100, `closed ${Date.now() - readAt} ms after the read`);
    });

    it("a processor answers 300 ms after the peer's FIN, then the connection closes without the wait", {
      ...TEST_TIMEOUT,
    }, async () => {
      class SlowEcho extends InlineProcessor {
        override async onDataReceived(data: Uint8Array): Promise<void> {
          await delay(300); // a slow answer, on purpose: it must not depend on beating the FIN
          this.outputMessages.push(data);
        }
      }
      // A half-open time longer than the test may wait: a processor's connection must not wait for it.
      await using fx = await rawCore(transport, "tcp", { halfOpenTimeoutMs: 60_000 }, SlowEcho);
      const peer = await halfClosingPeer(fx.addrs[0]!, "hello raw\n");
      await waitFor(() => peer.closed, 10_000, "the connection to close once answered");
      assert.equal(peer.text, "hello raw\n");
      assert.ok(peer.ended, "closed with a FIN after the answer");
    });

    it("a half-open connection with unread input stays open past limits.halfOpenTimeoutMs", {
      ...TEST_TIMEOUT,
    }, async () => {
      await using fx = await rawCore(transport, "tcp", { halfOpenTimeoutMs: 50 });
      const peer = await halfClosingPeer(fx.addrs[0]!, "hello raw\n");
      const id = await firstUnknownWithData(fx.core);
      // Nothing can show that a close does not happen except time passing: 4x the timeout.
      await delay(200);
      assert.equal(peer.closed, false, "the unread request keeps the connection");
      assert.equal(fx.core.getClientInfo(id)?.state, "connected");
      fx.core.getMessagesFromClient(id);
      fx.core.sendMessageToClient(id, "late");
      await waitFor(() => peer.closed, 5_000, "the connection to close once read and answered");
      assert.equal(peer.text, "late");
    });
  });
}

const noNc = missingTool("nc", "-h", "apt-get install -y netcat-openbsd");

it("nc -N gets an answer sent 300 ms after its FIN", { ...TEST_TIMEOUT, skip: noNc }, async () => {
  await using fx = await rawCore(undefined, "tcp");
  const addr = fx.addrs[0]!;
  if (addr.transport !== "tcp") throw new TypeError("expected a TCP listener");
  const nc = spawn("nc", ["-N", "127.0.0.1", String(addr.port)], { stdio: ["pipe", "pipe", "ignore"] });
  let out = "";
  nc.stdout!.on("data", (chunk: Uint8Array) => out += decoder.decode(chunk));
  const exited = new Promise<void>((resolve) => nc.on("close", () => resolve()));
  nc.stdin!.end("hello raw\n");
  try {
    const id = await firstUnknownWithData(fx.core);
    await delay(300); // a slow application, on purpose
    fx.core.getMessagesFromClient(id);
    fx.core.sendMessageToClient(id, "hello back\n");
    fx.core.markClientConnectionAsReadyToBeClosed(id);
    await withTimeout(exited, 10_000, "nc to exit");
    assert.equal(out, "hello back\n");
  } finally {
    nc.kill();
  }
});
