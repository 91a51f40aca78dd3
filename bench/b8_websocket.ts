/**
 * B8: WebSocket echo round trips of 32-byte messages through asockio's `websocket` listener, as a ratio
 * to the runtime's own WebSocket server in the same run (`Deno.serve` with `Deno.upgradeWebSocket`,
 * `Bun.serve` with `websocket`, `ws` on Node), through the classic API (a view per message) and the batch
 * API (`takeFrames`/`sendFrames`). One client, written once on the runtime's native socket
 * API, keeps 1,000 messages in flight: 1M round trips after a 500k warm-up (20k, after 5k, in `--quick`).
 * A 100k warm-up lasted about 35 ms on Bun, so the servers' JIT compiles fell inside the timed million.
 *
 * @module
 */
import { type BenchContext, runContenders, runPair, si } from "./_common.ts";
import { type Runtime, workloadCommand } from "./_runtimes.ts";

const WORKLOAD = "bench/workloads/websocket_echo.ts";
/** The contender every other one is a ratio to. */
export const B8_BASELINE = "runtime's own server";

const CONTENDERS = [
  { name: "asockio websocket", api: "asockio" },
  { name: "asockio websocket, batch API", api: "frames" },
  { name: B8_BASELINE, api: "native" },
] as const;

/** Runs B8 on one runtime. */
export async function runB8(ctx: BenchContext, runtime: Runtime): Promise<void> {
  const count = ctx.quick ? 20_000 : 1_000_000;
  const warmup = ctx.quick ? 5_000 : 500_000;
  await runContenders(ctx, { bench: "b8", runtime, params: { count } }, CONTENDERS, async (c, label) => {
    const { result, server } = await runPair({
      label,
      server: workloadCommand(runtime, WORKLOAD, ["server", "--api", c.api]),
      client: (port) =>
        workloadCommand(runtime, WORKLOAD, [
          "client",
          "--port",
          `${port}`,
          "--count",
          `${count}`,
          "--warmup",
          `${warmup}`,
        ]),
      timeoutMs: 180_000,
    });
    const code = await server.stop();
    if (code !== 0) throw new Error(`${label} server exited with code ${code}\n${server.tail()}`);
    const perSecond = count / Number(result.seconds);
    return { samples: { roundTripsPerSecond: perSecond }, summary: `${si(perSecond)} round trips/s` };
  });
}
