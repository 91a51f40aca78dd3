/**
 * How the transport suites declare their tests: the transports they run on, and a bounded network
 * test that closes what it opened. Kept apart from `_helpers.ts`, which the scripts load too, so that
 * only test files import `node:test`.
 *
 * @module
 */
import process from "node:process";
import { it } from "node:test";
import assert from "node:assert/strict";
import { CallbackError } from "../mod.ts";
import type { ConnectOptions, ListenOptions, Transport } from "../mod.ts";
import { nativeTransport, nodeTransport } from "../transports/mod.ts";
import {
  assertBytesEqual,
  bytePattern,
  collect,
  concatBytes,
  deferred,
  delay,
  Resources,
  tcpPort,
  withTimeout,
} from "./_helpers.ts";

/**
 * The transports each network suite runs on: the runtime's native one and, where that is not Node's,
 * `nodeTransport` as well.
 */
export function transportsUnderTest(): Transport[] {
  const native = nativeTransport();
  return native.name === "node" ? [native] : [native, nodeTransport];
}

/**
 * A network test: bounded by `ms`, with the resources it registers closed afterwards whatever happens.
 *
 * @example
 * ```ts
 * netTest("echoes over TCP", 10_000, async (res) => {
 *   const server = await startEchoServer(transport, { transport: "tcp", port: 0 }, res);
 * });
 * ```
 */
export function netTest(
  name: string,
  ms: number,
  body: (res: Resources) => Promise<void>,
  skip?: string,
): void {
  const options = skip ? { timeout: ms + 2000, skip } : { timeout: ms + 2000 };
  it(name, options, async () => {
    const res = new Resources();
    try {
      await withTimeout(body(res), ms, name);
    } finally {
      await withTimeout(res.closeAll(), 2000, `${name}: cleanup`);
    }
  });
}

/** What reached the process while {@linkcode watchProcessErrors} watched. */
export interface ProcessErrors {
  /** Uncaught exceptions and unhandled rejections, in order. */
  readonly errors: unknown[];
  /** Stops watching. */
  stop(): void;
}

/**
 * Records uncaught exceptions and unhandled rejections until `stop`, to show that a failure stayed
 * inside the code that caused it.
 */
export function watchProcessErrors(): ProcessErrors {
  const errors: unknown[] = [];
  const record = (err: unknown) => void errors.push(err);
  process.on("uncaughtException", record);
  process.on("unhandledRejection", record);
  return {
    errors,
    stop() {
      process.off("uncaughtException", record);
      process.off("unhandledRejection", record);
    },
  };
}

/**
 * A server whose handler `callback` throws on its second connection: that connection closes (its
 * client sees the server end it), `onClose` reports a `CallbackError` with the thrown value as cause,
 * the first connection still echoes, and no uncaught error reaches the process. A non-Error is
 * thrown from `onData` over UNIX, an Error otherwise.
 */
export async function checkThrowingHandler(
  transport: Transport,
  res: Resources,
  kind: "tcp" | "unix" | "tls",
  callback: "onData" | "onEnd" | "onDrain",
  /** For `kind` `"tls"`: how to listen, and how to connect (its `port` is set to the listener's). */
  tls?: { listen: ListenOptions; connect: ConnectOptions },
): Promise<void> {
  const thrown = kind === "unix" && callback === "onData" ? "not an Error" : new Error(`${callback} bug`);
  const watch = watchProcessErrors();
  try {
    const failed = deferred<Error | undefined>();
    let failedCloses = 0;
    let accepted = 0;
    let options: ListenOptions = { transport: "tcp" };
    if (kind === "unix") options = { transport: "unix", path: (await res.tempDir()).join("throw.sock") };
    if (tls !== undefined) options = tls.listen;
    const listener = res.add(
      await transport.listen(options, (conn) => {
        res.add(conn);
        if (++accepted === 1) {
          collect(conn, { onData: (chunk) => void conn.write(chunk), onEnd: () => conn.closeWrite() });
          return;
        }
        const fail = (name: string) => {
          if (name === callback) throw thrown;
        };
        conn.setHandler({
          onData: () => fail("onData"),
          onEnd: () => fail("onEnd"),
          onDrain: () => fail("onDrain"),
          onClose: (error) => {
            failedCloses++;
            failed.resolve(error);
          },
        });
        if (callback === "onDrain") conn.write(bytePattern(100, 51));
      }),
    );
    const addr = listener.addr;
    const target: ConnectOptions = tls !== undefined
      ? { ...tls.connect, port: (addr as { port: number }).port } as ConnectOptions
      : addr.transport === "unix"
      ? { transport: "unix", path: addr.path }
      : { transport: "tcp", port: tcpPort(addr) };
    const bystander = res.add(await transport.connect(target));
    // Echoed once, so the bystander is the first connection the server accepted.
    const bystanderGot = collect(bystander);
    bystander.write(bytePattern(10, 52));
    await bystanderGot.untilLength(10);
    const client = res.add(await transport.connect(target));
    const got = collect(client, { onEnd: () => client.close() });
    if (callback === "onData") client.write(bytePattern(1000, 53));
    if (callback === "onEnd") client.closeWrite();
    const error = await withTimeout(failed.promise, 5000, `onClose after ${callback} threw`);
    assert.ok(error instanceof CallbackError, `onClose got ${error}`);
    assert.equal(error.cause, thrown);
    assert.match(error.message, new RegExp(`${callback} threw`));
    await withTimeout(got.closed, 5000, "the client sees the server end the connection");
    // The other connection goes on undisturbed.
    bystander.write(bytePattern(1000, 54));
    bystander.closeWrite();
    await withTimeout(bystanderGot.ended, 5000, "the bystander's echo");
    assertBytesEqual(
      bystanderGot.bytes(),
      concatBytes([bytePattern(10, 52), bytePattern(1000, 54)]),
      "the bystander's echo",
    );
    // Showing that nothing surfaces needs time: an uncaught error or rejection comes a few ticks later.
    await delay(50);
    assert.equal(failedCloses, 1, "onClose once");
  } finally {
    watch.stop();
  }
  assert.deepEqual(watch.errors, [], "nothing reached the process");
}
