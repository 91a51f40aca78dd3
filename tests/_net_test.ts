/**
 * How the transport suites declare their tests: the transports they run on, and a bounded network
 * test that closes what it opened. Kept apart from `_helpers.ts`, which the scripts load too, so that
 * only test files import `node:test`.
 *
 * @module
 */
import { it } from "node:test";
import type { Transport } from "../mod.ts";
import { nativeTransport, nodeTransport } from "../transports/mod.ts";
import { Resources, withTimeout } from "./_helpers.ts";

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
