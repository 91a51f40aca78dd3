/**
 * Datagram transport conformance: the same scenarios against the runtime's native UDP socket
 * (`Deno.listenDatagram`, `Bun.udpSocket`, `node:dgram`) and, where that is not Node's, against
 * `node:dgram` through the node transport too. Loopback only.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { networkInterfaces } from "node:os";
import process from "node:process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  AddressInUseError,
  CallbackError,
  ConnectionClosedError,
  MessageTooLargeError,
  UnsupportedError,
} from "../mod.ts";
import { detectRuntime } from "../transports/mod.ts";
import type { DatagramHandler, DatagramSocket, Transport, UdpAddr } from "../transports/mod.ts";
import {
  assertBytesEqual,
  bytePattern,
  deferred,
  delay,
  expectedRuntime,
  type Resources,
  withTimeout,
} from "./_helpers.ts";
import { netTest, transportsUnderTest, watchProcessErrors } from "./_net_test.ts";

const noIpv6Reason = Object.values(networkInterfaces()).flat().some((info) => info?.address === "::1")
  ? undefined
  : "this machine has no IPv6 loopback (::1)";

/** What a socket received, and a way to wait for a count of datagrams. */
interface Inbox {
  readonly messages: Array<{ data: Uint8Array; from: UdpAddr }>;
  readonly drains: number;
  readonly closes: Array<Error | undefined>;
  waitFor(count: number): Promise<void>;
}

function listen(socket: DatagramSocket, hooks: Partial<DatagramHandler> = {}): Inbox {
  const messages: Inbox["messages"] = [];
  const closes: Inbox["closes"] = [];
  let drains = 0;
  let waiting: { count: number; resolve: () => void } | undefined;
  socket.setHandler({
    onMessage(data, from) {
      messages.push({ data, from });
      hooks.onMessage?.(data, from);
      if (waiting && messages.length >= waiting.count) waiting.resolve();
    },
    onDrain() {
      drains++;
      hooks.onDrain?.();
    },
    onClose(error) {
      closes.push(error);
      hooks.onClose?.(error);
    },
  });
  return {
    messages,
    closes,
    get drains() {
      return drains;
    },
    waitFor(count) {
      if (messages.length >= count) return Promise.resolve();
      return new Promise((resolve) => waiting = { count, resolve });
    },
  };
}

async function bindPair(
  transport: Transport,
  res: Resources,
  hostname = "127.0.0.1",
): Promise<[DatagramSocket, DatagramSocket]> {
  const a = res.add(await transport.bindDatagram({ transport: "udp", hostname, port: 0 }));
  const b = res.add(await transport.bindDatagram({ transport: "udp", hostname, port: 0 }));
  return [a, b];
}

for (const transport of transportsUnderTest()) {
  describe(`datagram transport: ${transport.name}`, () => {
    netTest("binds port 0 and reports the address it got", 10_000, async (res) => {
      const socket = res.add(await transport.bindDatagram({ transport: "udp", port: 0 }));
      assert.equal(socket.addr.transport, "udp");
      assert.equal(socket.addr.hostname, "127.0.0.1");
      assert.ok(socket.addr.port > 0);
      assert.equal(socket.closed, false);
    });

    netTest(
      "keeps datagram boundaries, content and sender address, empty and 65,507-byte ones included",
      15_000,
      async (res) => {
        const [a, b] = await bindPair(transport, res);
        const got = listen(b);
        listen(a);
        const sizes = [0, 1, 100, 1400, 9000, 65_507, 0, 3];
        for (const [i, size] of sizes.entries()) a.send(bytePattern(size, i + 1), b.addr);
        await got.waitFor(sizes.length);
        assert.deepEqual(got.messages.map((m) => m.data.length), sizes);
        for (const [i, size] of sizes.entries()) {
          assertBytesEqual(got.messages[i]!.data, bytePattern(size, i + 1), `datagram ${i}`);
          assert.deepEqual(got.messages[i]!.from, a.addr);
        }
      },
    );

    netTest("delivers 2,000 datagrams sent in windows in order", 20_000, async (res) => {
      const [a, b] = await bindPair(transport, res);
      const got = listen(b);
      listen(a);
      for (let i = 0; i < 2000; i += 100) {
        for (let k = i; k < i + 100; k++) a.send(new TextEncoder().encode(`#${k}`), b.addr);
        await got.waitFor(i + 100);
      }
      assert.deepEqual(
        got.messages.map((m) => new TextDecoder().decode(m.data)),
        Array.from({ length: 2000 }, (_, k) => `#${k}`),
      );
    });

    netTest("reports bufferedAmount and drains asynchronously, never inside send", 10_000, async (res) => {
      const [a, b] = await bindPair(transport, res);
      listen(b);
      let inSend = false;
      let drainedInSend = false;
      const drained = deferred();
      const inbox = listen(a, {
        onDrain() {
          if (inSend) drainedInSend = true;
          drained.resolve();
        },
      });
      inSend = true;
      for (let i = 0; i < 10; i++) assert.equal(a.send(bytePattern(1000, i), b.addr), true);
      inSend = false;
      await drained.promise;
      assert.equal(drainedInSend, false);
      assert.equal(a.bufferedAmount, 0);
      assert.ok(inbox.drains >= 1);
    });

    netTest(
      "refuses a datagram over 65,507 bytes to IPv4 with MessageTooLargeError, sending nothing",
      10_000,
      async (res) => {
        const [a, b] = await bindPair(transport, res);
        const got = listen(b);
        listen(a);
        assert.throws(() => a.send(new Uint8Array(65_508), b.addr), MessageTooLargeError);
        assert.equal(a.bufferedAmount, 0);
        a.send(new Uint8Array([7]), b.addr);
        await got.waitFor(1);
        assert.deepEqual(got.messages.map((m) => m.data.length), [1]);
      },
    );

    netTest("over IPv6 loopback, carries a 65,527-byte datagram", 10_000, async (res) => {
      const [a, b] = await bindPair(transport, res, "::1");
      assert.equal(b.addr.hostname, "::1");
      const got = listen(b);
      listen(a);
      a.send(bytePattern(65_527, 5), b.addr);
      assert.throws(() => a.send(new Uint8Array(65_528), b.addr), MessageTooLargeError);
      await got.waitFor(1);
      assertBytesEqual(got.messages[0]!.data, bytePattern(65_527, 5), "IPv6 datagram");
      assert.equal(got.messages[0]!.from.hostname, "::1");
    }, noIpv6Reason);

    netTest(
      "close reports onClose once, and send after close throws ConnectionClosedError",
      10_000,
      async (res) => {
        const [a, b] = await bindPair(transport, res);
        const inbox = listen(a);
        a.close();
        a.close();
        assert.equal(a.closed, true);
        assert.throws(() => a.send(new Uint8Array(1), b.addr), ConnectionClosedError);
        // A sleep: it shows that no second onClose comes.
        await new Promise((resolve) => setTimeout(resolve, 50));
        assert.deepEqual(inbox.closes, [undefined]);
      },
    );

    for (const callback of ["onMessage", "onDrain"] as const) {
      netTest(
        `a handler whose ${callback} throws: that socket closes, onClose reports a CallbackError, nothing reaches the process`,
        10_000,
        async (res) => {
          const thrown = new Error(`${callback} bug`);
          const watch = watchProcessErrors();
          try {
            const [a, b] = await bindPair(transport, res);
            const closed = deferred<Error | undefined>();
            const failing = callback === "onMessage" ? b : a;
            const inbox = listen(failing, {
              [callback]: () => {
                throw thrown;
              },
              onClose: (error) => closed.resolve(error),
            });
            const other = listen(failing === a ? b : a);
            a.send(bytePattern(10, 61), b.addr);
            const error = await withTimeout(closed.promise, 5000, `onClose after ${callback} threw`);
            assert.ok(error instanceof CallbackError, `onClose got ${error}`);
            assert.equal(error.cause, thrown);
            assert.equal(failing.closed, true);
            // Showing that nothing surfaces needs time: an uncaught error comes a few ticks later.
            await delay(50);
            assert.equal(inbox.closes.length, 1, "onClose once");
            assert.deepEqual(other.closes, [], "the other socket stays open");
          } finally {
            watch.stop();
          }
          assert.deepEqual(watch.errors, [], "nothing reached the process");
        },
      );
    }

    netTest("binding a taken address fails with AddressInUseError", 10_000, async (res) => {
      const a = res.add(await transport.bindDatagram({ transport: "udp", port: 0 }));
      await assert.rejects(
        transport.bindDatagram({ transport: "udp", port: a.addr.port }).then((s) => {
          res.add(s);
        }),
        AddressInUseError,
      );
    });
  });
}

describe("datagram transport: feature detection", () => {
  it("knows the runtime it runs on", () => {
    assert.equal(detectRuntime(), expectedRuntime());
  });

  const denoSkip = detectRuntime() === "deno" ? undefined : "only Deno gates UDP behind a flag";
  it("Deno without --unstable-net gets UnsupportedError from bindDatagram and lives on", {
    timeout: 30_000,
    skip: denoSkip,
  }, () => {
    const mod = fileURLToPath(new URL("../mod.ts", import.meta.url));
    const code = `
      const { IoCore, UnsupportedError } = await import(${JSON.stringify(mod)});
      const core = new IoCore({ listeners: [{ transport: "udp", port: 0 }], logger: null });
      try { await core.listen(); console.log("listened"); }
      catch (err) { console.log(err instanceof UnsupportedError ? "unsupported: " + err.message : "other: " + err); }
      await core.close();
      console.log("alive");`;
    const result = spawnSync(process.execPath, ["eval", "--no-config", code], {
      encoding: "utf8",
      timeout: 25_000,
    });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^unsupported: Cannot bind udp:127\.0\.0\.1:0: .*--unstable-net/m);
    assert.match(result.stdout, /^alive$/m);
  });

  it("UnsupportedError is an AsockioError with a name", () => {
    const err = new UnsupportedError("x");
    assert.equal(err.name, "UnsupportedError");
  });
});
