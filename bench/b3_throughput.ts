/**
 * B3: one-way framed throughput by message size (an asockio named client to an asockio server
 * reading through `ioIteration`, against the raw socket writing the same bytes to a server that
 * only counts them), then one streamed message (`sendMessageStream` to a `MessageStream` read with a
 * BYOB reader) against a bare pair of the same runtime writing and checksumming the same bytes, with
 * each side's RSS growth and a probe's round trips on a second connection during the transfer.
 *
 * @module
 */
import { addSample, type BenchContext, bytesLabel, rotated, type Row, runPair, si } from "./_common.ts";
import { peakRss } from "./_proc.ts";
import { type Runtime, workloadCommand } from "./_runtimes.ts";
import { expectedChecksum } from "./_stream_bytes.ts";
import { runStream, type StreamContender } from "./_stream_run.ts";

const ASOCKIO = "bench/workloads/framed_asockio.ts";
const STREAM = "bench/workloads/stream.ts";
const BARE = "bench/workloads/framed_bare.ts";
const MiB = 2 ** 20;

interface Case {
  kind: "sweep";
  size: number;
  count: number;
}

function cases(quick: boolean): Case[] {
  const total = quick ? 16 * MiB : 128 * MiB;
  const maxCount = quick ? 200_000 : 2_000_000;
  const sizes = [16, 256, 4096, 65536, MiB];
  return sizes.map((size) => ({
    kind: "sweep" as const,
    size,
    count: Math.min(maxCount, Math.ceil(total / size)),
  }));
}

/** Runs B3 on one runtime. */
export async function runB3(ctx: BenchContext, runtime: Runtime): Promise<void> {
  for (const c of cases(ctx.quick)) {
    const params = { kind: c.kind, size: c.size, count: c.count };
    const contenders = [
      {
        name: "asockio",
        server: workloadCommand(runtime, ASOCKIO, [
          "server",
          "--mode",
          "sink",
          "--api",
          "io",
          "--expect",
          `${c.count}`,
          "--max-message",
          `${c.size}`,
        ]),
        client: (port: number) =>
          workloadCommand(runtime, ASOCKIO, [
            "client",
            "--mode",
            "sink",
            "--port",
            `${port}`,
            "--count",
            `${c.count}`,
            "--size",
            `${c.size}`,
          ]),
      },
      {
        name: "raw socket",
        server: workloadCommand(runtime, BARE, [
          "server",
          "--mode",
          "sink",
          "--expect-bytes",
          `${c.count * (c.size + 8)}`,
        ]),
        client: (port: number) =>
          workloadCommand(runtime, BARE, [
            "client",
            "--mode",
            "sink",
            "--port",
            `${port}`,
            "--count",
            `${c.count}`,
            "--size",
            `${c.size}`,
          ]),
      },
    ];
    const rows = contenders.map((k): Row => ({
      bench: "b3",
      runtime,
      contender: k.name,
      params,
      metrics: {},
      samples: {},
    }));
    ctx.rows.push(...rows);
    const reps = ctx.reps;
    for (let rep = 1; rep <= reps; rep++) {
      for (const k of rotated(contenders, rep)) {
        const i = contenders.indexOf(k);
        const row = rows[i]!;
        if (row.error) continue;
        const label = `b3 ${runtime} ${bytesLabel(c.size)} ×${si(c.count)} ${k.name}`;
        try {
          const { result, server } = await runPair({
            label,
            server: k.server,
            client: k.client,
            timeoutMs: 120_000,
          });
          const serverRss = peakRss(server.pid);
          const code = await server.stop();
          if (code !== 0) throw new Error(`${label} server exited with code ${code}\n${server.tail()}`);
          const seconds = Number(result.seconds);
          const mib = (c.count * c.size) / MiB / seconds;
          addSample(row, "mibPerSecond", mib);
          addSample(row, "messagesPerSecond", c.count / seconds);
          addSample(row, "serverPeakRss", serverRss);
          addSample(row, "clientPeakRss", Number(result.rss));
          ctx.progress(`${label} rep ${rep}/${reps}: ${si(mib)} MiB/s, ${si(c.count / seconds)} msgs/s`);
        } catch (err) {
          row.error = (err as Error).message.split("\n")[0];
          ctx.fail(label, err);
        }
      }
    }
  }
  await runStreamed(ctx, runtime);
}

/** The streamed case: one message of `ctx.streamBytes`, asockio and the bare pair, interleaved. */
async function runStreamed(ctx: BenchContext, runtime: Runtime): Promise<void> {
  const bytes = ctx.streamBytes;
  const expected = expectedChecksum(bytes);
  const contenders: StreamContender[] = ["asockio", "bare"];
  const rows = contenders.map((contender): Row => ({
    bench: "b3",
    runtime,
    contender: contender === "asockio" ? "asockio stream" : "bare pair",
    params: { kind: "stream", size: bytes, count: 1 },
    metrics: {},
    samples: {},
  }));
  ctx.rows.push(...rows);
  const command = (role: string, args: string[]) => workloadCommand(runtime, STREAM, [role, ...args]);
  for (let rep = 1; rep <= ctx.reps; rep++) {
    for (const contender of rotated(contenders, rep)) {
      const row = rows[contenders.indexOf(contender)]!;
      if (row.error) continue;
      const label = `b3 ${runtime} ${bytesLabel(bytes)} stream ${row.contender}`;
      try {
        const r = await runStream(command, contender, bytes, expected, 3_600_000);
        if (!r.checksumOk) throw new Error(`${label}: the receiver's checksum differs`);
        addSample(row, "mibPerSecond", r.mibPerSecond);
        addSample(row, "messagesPerSecond", 1 / r.seconds);
        addSample(row, "serverPeakRss", r.receiver.peakRss);
        addSample(row, "clientPeakRss", r.sender.peakRss);
        addSample(row, "serverRssGrowth", r.receiver.peakRss - r.receiver.rssBaseline);
        addSample(row, "clientRssGrowth", r.sender.peakRss - r.sender.rssBaseline);
        // CPU seconds per GiB at each end: what the load on a shared machine disturbs least.
        addSample(row, "serverCpuSecondsPerGiB", r.receiver.cpuSeconds / (bytes / 2 ** 30));
        addSample(row, "clientCpuSecondsPerGiB", r.sender.cpuSeconds / (bytes / 2 ** 30));
        if (r.probeIdle && r.probeBusy) {
          addSample(row, "probeIdleP50Ms", r.probeIdle[0]);
          addSample(row, "probeIdleP99Ms", r.probeIdle[1]);
          addSample(row, "probeBusyP50Ms", r.probeBusy[0]);
          addSample(row, "probeBusyP99Ms", r.probeBusy[1]);
        }
        ctx.progress(`${label} rep ${rep}/${ctx.reps}: ${si(r.mibPerSecond)} MiB/s`);
      } catch (err) {
        row.error = (err as Error).message.split("\n")[0];
        ctx.fail(label, err);
      }
    }
  }
}
