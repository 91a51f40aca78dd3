/**
 * B4: many concurrent named clients on one core. A load client on the native socket API opens the
 * connections (256 handshakes in flight) and keeps them idle; the server reports its heap after a
 * forced GC before and after, so the delta per connection is the core's cost of an idle one.
 *
 * @module
 */
import { addSample, type BenchContext, type Row, si } from "./_common.ts";
import { startChild } from "./_proc.ts";
import { type Runtime, workloadCommand } from "./_runtimes.ts";

const NOFILE = 65536;

/** Runs B4 on one runtime. */
export async function runB4(ctx: BenchContext, runtime: Runtime): Promise<void> {
  const clients = ctx.quick ? 1000 : 10_000;
  const row: Row = {
    bench: "b4",
    runtime,
    contender: "asockio",
    params: { clients },
    metrics: {},
    samples: {},
  };
  ctx.rows.push(row);
  const label = `b4 ${runtime} ${si(clients)} clients`;
  const server = startChild(
    workloadCommand(runtime, "bench/workloads/framed_asockio.ts", [
      "server",
      "--mode",
      "scale",
      "--clients",
      `${clients}`,
    ], true),
    { label: `${label} server`, cpu: 0, nofile: NOFILE },
  );
  try {
    const ready = await server.next("READY", 60_000);
    // Let start-up garbage settle before the baseline.
    await new Promise((r) => setTimeout(r, 300));
    server.send("stats");
    const before = await server.next("STATS", 30_000);
    const client = startChild(
      workloadCommand(runtime, "bench/workloads/framed_bare.ts", [
        "client",
        "--mode",
        "scale",
        "--port",
        `${ready.port}`,
        "--clients",
        `${clients}`,
      ]),
      { label: `${label} load client`, cpu: 1, nofile: NOFILE },
    );
    try {
      const result = await client.next("RESULT", 180_000);
      let after: Record<string, unknown> = {};
      // The core reports a connection once its loop has seen it: wait until all are counted.
      for (let i = 0; i < 50; i++) {
        server.send("stats");
        after = await server.next("STATS", 30_000);
        if (Number(after.connected) >= clients) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      if (Number(after.connected) < clients) {
        throw new Error(`${label}: the server counted ${after.connected} of ${clients} connections`);
      }
      const handshakes = clients / Number(result.seconds);
      addSample(row, "handshakesPerSecond", handshakes);
      addSample(row, "heapPerConnection", (Number(after.heapUsed) - Number(before.heapUsed)) / clients);
      addSample(row, "rssPerConnection", (Number(after.rss) - Number(before.rss)) / clients);
      row.metrics.gc = after.gc ? 1 : 0;
      ctx.progress(
        `${label}: ${si(handshakes)} handshakes/s, ${
          Math.round(row.metrics.heapPerConnection!)
        } B heap per idle connection`,
      );
    } finally {
      await client.stop(5000);
    }
    const code = await server.stop(5000);
    if (code !== 0) throw new Error(`${label} server exited with code ${code}\n${server.tail()}`);
  } catch (err) {
    row.error = (err as Error).message.split("\n")[0];
    ctx.fail(label, err);
    await server.stop(500);
  }
}
