/**
 * B6: datagram echo round trips through the core, as a ratio to a bare UDP echo on the runtime's
 * own API in the same run, with the loss rate beside it. Client and server are two processes of the
 * runtime under test; the client keeps 64 small datagrams in flight (a window the loopback receive
 * buffer holds), over 100k datagrams (10k in `--quick`, a smoke figure) after a warm-up.
 *
 * @module
 */
import { type BenchContext, runContenders, runPair, si } from "./_common.ts";
import { type Runtime, workloadCommand } from "./_runtimes.ts";

const WORKLOAD = "bench/workloads/udp_echo.ts";
/** Deno has UDP only under `--unstable-net`. */
const DENO_FLAGS = ["--unstable-net"];
/** The contender every other one is a ratio to. */
export const B6_BASELINE = "bare";

const CONTENDERS = [
  { name: "asockio ioIteration", api: "io" },
  { name: "asockio InlineProcessor", api: "inline" },
  { name: B6_BASELINE, api: "native" },
] as const;

/** Runs B6 on one runtime. */
export async function runB6(ctx: BenchContext, runtime: Runtime): Promise<void> {
  const count = ctx.quick ? 10_000 : 100_000;
  const warmup = ctx.quick ? 1_000 : 20_000;
  await runContenders(ctx, { bench: "b6", runtime, params: { count } }, CONTENDERS, async (c, label) => {
    const { result, server } = await runPair({
      label,
      server: workloadCommand(runtime, WORKLOAD, ["server", "--api", c.api], false, DENO_FLAGS),
      client: (port) =>
        workloadCommand(
          runtime,
          WORKLOAD,
          ["client", "--port", `${port}`, "--count", `${count}`, "--warmup", `${warmup}`],
          false,
          DENO_FLAGS,
        ),
      timeoutMs: 120_000,
    });
    const code = await server.stop();
    if (code !== 0) throw new Error(`${label} server exited with code ${code}\n${server.tail()}`);
    const received = Number(result.received);
    if (received === 0) throw new Error(`${label}: no datagram came back`);
    const perSecond = received / Number(result.seconds);
    const lossRate = Number(result.lost) / count;
    return {
      samples: { roundTripsPerSecond: perSecond, lossRate },
      summary: `${si(perSecond)} round trips/s, ${(lossRate * 100).toFixed(2)}% lost`,
    };
  });
}
