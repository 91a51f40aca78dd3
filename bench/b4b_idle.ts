/**
 * B4b: memory per idle connection. For asockio with named clients, asockio with raw connections (unknown
 * clients) and the runtime's bare server, one server process per repetition: a baseline reading, then the
 * load client (Node, another process, on CPU 1, from 8 `127.0.0.x` source addresses) opens connections up
 * to each count (each exchanges one message, then idles), and the server reports its RSS and JS heap after a
 * forced GC at each, read again until RSS stops falling (see `settle`). The figure is the
 * growth since the baseline ÷ connections. At the largest count one extra client measures round-trip
 * latency (8-byte messages, one at a time).
 *
 * The sandbox's descriptor limit is 20,000 per process: the server holds the connections plus a few, and
 * so does the client process.
 *
 * @module
 */
import { addSample, type BenchContext, rotated, type Row } from "./_common.ts";
import { type Child, startChild } from "./_proc.ts";
import { buildForNode, type Runtime, workloadCommand } from "./_runtimes.ts";

const NOFILE = 65536;
const KINDS = ["bare", "named", "raw"] as const;
type Kind = typeof KINDS[number];

/** The counts at which memory is read (`--quick`: a smoke subset). */
export function b4bCounts(quick: boolean): number[] {
  return quick ? [1000] : [10_000, 19_000];
}

/** Runs B4b on one runtime. */
export async function runB4b(ctx: BenchContext, runtime: Runtime): Promise<void> {
  await buildForNode(["bench/workloads/idle_clients.ts"]);
  const counts = b4bCounts(ctx.quick);
  const rows = new Map<string, Row>();
  const rowFor = (kind: Kind, clients: number) => {
    const key = `${kind} ${clients}`;
    let row = rows.get(key);
    if (!row) {
      row = { bench: "b4b", runtime, contender: kind, params: { clients }, metrics: {}, samples: {} };
      rows.set(key, row);
      ctx.rows.push(row);
    }
    return row;
  };
  for (let rep = 1; rep <= ctx.reps; rep++) {
    for (const kind of rotated(KINDS, rep)) {
      const label = `b4b ${runtime} ${kind} rep ${rep}`;
      try {
        await oneRun(ctx, runtime, kind, counts, label, rowFor);
      } catch (err) {
        for (const clients of counts) rowFor(kind, clients).error = (err as Error).message.split("\n")[0];
        ctx.fail(label, err);
      }
    }
  }
}

async function oneRun(
  ctx: BenchContext,
  runtime: Runtime,
  kind: Kind,
  counts: number[],
  label: string,
  rowFor: (kind: Kind, clients: number) => Row,
): Promise<void> {
  const max = counts[counts.length - 1]!;
  const server = startChild(
    workloadCommand(runtime, "bench/workloads/idle_server.ts", [
      "server",
      "--kind",
      kind,
      "--clients",
      `${max}`,
    ], true),
    { label: `${label} server`, cpu: 0, nofile: NOFILE },
  );
  let client: Child | undefined;
  try {
    const ready = await server.next("READY", 60_000);
    await new Promise((r) => setTimeout(r, 300));
    const before = await stats(server);
    client = startChild(
      workloadCommand("node", "bench/workloads/idle_clients.ts", [
        "client",
        "--kind",
        kind,
        "--port",
        `${ready.port}`,
      ]),
      { label: `${label} client`, cpu: 1, nofile: NOFILE },
    );
    await client.next("READY", 30_000);
    for (const clients of counts) {
      client.send(`open ${clients}`);
      const opened = await client.next("RESULT", 180_000);
      if (Number(opened.open) !== clients) throw new Error(`${label}: opened ${opened.open} of ${clients}`);
      let after = await stats(server);
      // The server counts a connection once its loop has seen it.
      for (let i = 0; i < 100 && Number(after.connected) < clients; i++) {
        await new Promise((r) => setTimeout(r, 100));
        after = await stats(server);
      }
      if (Number(after.connected) < clients) {
        throw new Error(`${label}: the server counted ${after.connected} of ${clients} connections`);
      }
      const settled = await settle(server, after, clients);
      after = settled.after;
      const row = rowFor(kind, clients);
      addSample(row, "settleSeconds", settled.seconds);
      addSample(row, "rssPerConnection", (Number(after.rss) - Number(before.rss)) / clients);
      addSample(row, "heapPerConnection", (Number(after.heapUsed) - Number(before.heapUsed)) / clients);
      row.metrics.gc = after.gc ? 1 : 0;
      ctx.progress(
        `${label} ${clients}: ${Math.round((Number(after.rss) - Number(before.rss)) / clients)} B RSS, ${
          Math.round((Number(after.heapUsed) - Number(before.heapUsed)) / clients)
        } B heap per idle connection`,
      );
    }
    client.send(`ping ${ctx.quick ? 300 : 2000}`);
    const latency = await client.next("RESULT", 60_000);
    const row = rowFor(kind, max);
    addSample(row, "p50Us", Number(latency.p50Us));
    addSample(row, "p99Us", Number(latency.p99Us));
  } finally {
    await client?.stop(5000);
    const code = await server.stop(10_000);
    if (code !== 0) ctx.notes.push(`${label}: the server exited with ${code}`);
  }
}

/** Between readings while RSS settles; and the longest wait. */
const SETTLE_STEP_MS = 2000;
const SETTLE_MAX_MS = 20_000;
/** RSS "still falls" while it drops by more than this per connection between two readings. */
const SETTLE_BYTES_PER_CONNECTION = 16;

/**
 * Reads again every 2 s until RSS stops falling (20 s at most): the figure is the idle state, not
 * what the opening burst left. Bun hands freed pages back over 10-30 s, and neither `Bun.gc(true)` nor
 * `Bun.shrink()` does it at once: at 19,000 connections it returned 0.4-1 KiB per connection
 * (`results/s8-b4b.md`). Every server, bare included, gets the same wait.
 */
async function settle(
  server: Child,
  first: Record<string, unknown>,
  clients: number,
): Promise<{ after: Record<string, unknown>; seconds: number }> {
  let after = first;
  let waited = 0;
  while (waited < SETTLE_MAX_MS) {
    await new Promise((r) => setTimeout(r, SETTLE_STEP_MS));
    waited += SETTLE_STEP_MS;
    const again = await stats(server);
    const fell = Number(after.rss) - Number(again.rss);
    after = again;
    if (fell <= clients * SETTLE_BYTES_PER_CONNECTION) break;
  }
  return { after, seconds: waited / 1000 };
}

async function stats(server: Child): Promise<Record<string, unknown>> {
  server.send("stats");
  return await server.next("STATS", 60_000);
}
