/**
 * B7: named clients across nodes over NATS. Node `c` sends 32-byte messages to a device held by
 * node `a` (`sendMessageToKeyword`, every batch acknowledged) through one nats-server, beside the
 * same sends to a device of node `c`'s own core (same node), and the bare nats.js figures on the
 * same server in the same run: publish → subscribe, and request/reply with 64 in flight. Each
 * node is a process of the runtime under test; the nats-server is started here on a free port
 * (skipped, with a note, where `nats-server` is not installed). 200k messages per cell (20k with
 * `--quick`; `--b7-count 1000000` for the issue's 1M): the runs stay short on a shared machine. The
 * peak RSS of each sender and of the holder are recorded, to show memory stays bounded.
 *
 * @module
 */
import { addSample, type BenchContext, rotated, type Row, si } from "./_common.ts";
import { peakRss, startChild } from "./_proc.ts";
import { type Runtime, workloadCommand } from "./_runtimes.ts";
// The tests' nats-server helper: a server on a free loopback port, killed and cleaned up by `stop`.
import { noNatsServerReason, startNatsServer } from "../tests/_nats_server.ts";

const WORKLOAD = "bench/workloads/cluster_nats.ts";
/** The contender every other one is a ratio to. */
export const B7_BASELINE = "nats.js publish → subscribe";

const CONTENDERS = [
  { name: "asockio remote (node c → node a)", mode: "remote" },
  { name: "asockio same node", mode: "local" },
  { name: B7_BASELINE, mode: "pubsub" },
  { name: "nats.js request/reply, 64 in flight", mode: "request" },
] as const;

/** Runs B7 on one runtime. */
export async function runB7(ctx: BenchContext, runtime: Runtime): Promise<void> {
  if (noNatsServerReason) {
    ctx.notes.push(`B7 skipped: ${noNatsServerReason}`);
    return;
  }
  const count = ctx.b7Count;
  /** A sender's time bound: its warm-up, `count` sends at 10k/s at worst, and its latency sends. */
  const senderTimeoutMs = 120_000 + count / 10;
  const rows = new Map<string, Row>();
  for (const c of CONTENDERS) {
    const row: Row = { bench: "b7", runtime, contender: c.name, params: { count }, metrics: {}, samples: {} };
    rows.set(c.name, row);
    ctx.rows.push(row);
  }
  const nats = await startNatsServer(false); // no JetStream: B7 runs with claims off
  const holder = startChild(workloadCommand(runtime, WORKLOAD, ["holder", "--nats", nats.url]), {
    label: `b7 ${runtime} holder`,
    cpu: 0,
  });
  try {
    await holder.next("READY", 60_000);
    for (let rep = 1; rep <= ctx.reps; rep++) {
      for (const c of rotated(CONTENDERS, rep)) {
        const row = rows.get(c.name)!;
        if (row.error) continue;
        const label = `b7 ${runtime} ${si(count)} ${c.name}`;
        const sender = startChild(
          workloadCommand(runtime, WORKLOAD, [
            "sender",
            "--nats",
            nats.url,
            "--mode",
            c.mode,
            "--count",
            `${count}`,
          ]),
          { label, cpu: 1 },
        );
        try {
          const result = await sender.next("RESULT", senderTimeoutMs);
          addSample(row, "messagesPerSecond", Number(result.perSecond));
          if (result.peakRss) addSample(row, "senderPeakRss", Number(result.peakRss));
          if (result.p50Ms !== undefined) {
            addSample(row, "p50Ms", Number(result.p50Ms));
            addSample(row, "p99Ms", Number(result.p99Ms));
          }
          ctx.progress(`${label} rep ${rep}/${ctx.reps}: ${si(Number(result.perSecond))} messages/s`);
        } catch (err) {
          row.error = (err as Error).message.split("\n")[0];
          ctx.fail(label, err);
        } finally {
          await sender.stop(2000);
        }
      }
    }
    const remote = rows.get(CONTENDERS[0].name)!;
    if (!remote.error) addSample(remote, "holderPeakRss", peakRss(holder.pid));
  } finally {
    await holder.stop(2000);
    await nats.stop();
  }
}
