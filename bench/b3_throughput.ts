/**
 * B3: one-way framed throughput by message size (an asockio named client to an asockio server
 * reading through `ioIteration`, against the raw socket writing the same bytes to a server that
 * only counts them), then one large message with the server's and client's peak RSS.
 *
 * @module
 */
import { addSample, type BenchContext, bytesLabel, rotated, type Row, runPair, si } from "./_common.ts";
import { peakRss } from "./_proc.ts";
import { type Runtime, workloadCommand } from "./_runtimes.ts";

const ASOCKIO = "bench/workloads/framed_asockio.ts";
const BARE = "bench/workloads/framed_bare.ts";
const MiB = 2 ** 20;

interface Case {
  kind: "sweep" | "bulk";
  size: number;
  count: number;
}

function cases(quick: boolean): Case[] {
  const total = quick ? 16 * MiB : 128 * MiB;
  const maxCount = quick ? 200_000 : 2_000_000;
  const sizes = [16, 256, 4096, 65536, MiB];
  const out: Case[] = sizes.map((size) => ({
    kind: "sweep" as const,
    size,
    count: Math.min(maxCount, Math.ceil(total / size)),
  }));
  out.push({ kind: "bulk", size: quick ? 64 * MiB : 1024 * MiB, count: 1 });
  return out;
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
    if (c.kind === "bulk") {
      // The raw socket above only counts bytes; a receiver of one message must also hold it whole.
      const raw = contenders[1]!;
      contenders.push({
        name: "raw socket, assembled",
        server: [...raw.server, "--assemble"],
        client: raw.client,
      });
    }
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
        const label = `b3 ${runtime} ${bytesLabel(c.size)}${c.kind === "bulk" ? " bulk" : ""} ×${
          si(c.count)
        } ${k.name}`;
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
}
