/**
 * A trusted balancer's health check (connect, then close or reset before any PROXY header) is a
 * debug line naming the real peer, never a warning about an untrusted source.
 */
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { describe, it } from "node:test";
import type { Transport } from "../mod.ts";
import { recordingLogger, startCore } from "./_core_fixture.ts";
import { transportsUnderTest } from "./_net_test.ts";
import { waitFor } from "./_settle.ts";
import { TEST_TIMEOUT } from "./_helpers.ts";

/** Connects to `port` and, once connected, ends (FIN) or resets (RST) at once; resolves with its local port. */
function healthCheck(port: number, how: "end" | "reset"): Promise<number> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: "127.0.0.1", port }, () => {
      const localPort = socket.localPort!;
      socket.once("close", () => resolve(localPort));
      if (how === "end") socket.end();
      else if (typeof socket.resetAndDestroy === "function") socket.resetAndDestroy();
      else socket.destroy();
    });
    socket.on("error", () => {});
  });
}

for (const transport of transportsUnderTest()) {
  describe(`a trusted balancer's health check on the ${transport.name} transport`, () => {
    for (const how of ["end", "reset"] as const) {
      it(
        `that connects and ${how === "end" ? "ends" : "resets"} before its header logs no warning`,
        TEST_TIMEOUT,
        async () => {
          const logger = recordingLogger();
          await using fx = await startCore({
            transport: transport as Transport,
            logger,
            listeners: [{
              transport: "tcp",
              hostname: "127.0.0.1",
              port: 0,
              proxyProtocol: { trusted: ["127.0.0.1/32"] },
            }],
          });
          const ports: number[] = [];
          for (let i = 0; i < 10; i++) ports.push(await healthCheck(fx.port(), how));
          await waitFor(() => fx.core.stats().connections === 0, 5_000, "the checks' connections to close");
          assert.deepEqual(logger.lines.filter((l) => !l.startsWith("debug: ")), [], "only debug lines");
          assert.ok(!logger.lines.some((l) => l.includes("tcp::0")), `no made-up address in ${logger.lines}`);
          if (how === "end") {
            // A FIN leaves the address readable: each check is named by its real port.
            await waitFor(() => logger.lines.length >= ports.length, 5_000, "a debug line per check");
            for (const port of ports) {
              assert.ok(
                logger.lines.some((l) => l.includes(`tcp:127.0.0.1:${port} `) && l.includes("PROXY header")),
                `no debug line for port ${port} in ${logger.lines}`,
              );
            }
          }
        },
      );
    }
  });
}
