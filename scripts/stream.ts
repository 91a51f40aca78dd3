/**
 * One message of any length streamed from one process to another: at each size given, a sender process
 * writes one frame with `sendMessageStream` and a receiver process reads it as a `MessageStream`
 * (`streamThresholdBytes`), both of the runtime running this script. The receiver's checksum must match
 * the sent pattern, and the script prints the throughput, each side's RSS (at start and at its peak),
 * and the round trips of a small message sent on a second connection during the transfer. The same
 * bytes then go through a bare pair (the runtime's own socket API at both ends, the same checksum and
 * the same probe), so the ratio to it and the probe's latency are measured in the same run.
 *
 * Usage (any runtime; Node 24 or later, which runs TypeScript):
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/stream.ts --bytes 64MiB,1GiB,8GiB
 * node_modules/.bin/bun scripts/stream.ts --bytes 8GiB
 * node_modules/.bin/node scripts/stream.ts --bytes 8GiB --asockio-only
 * ```
 *
 * Exits with 1 when a checksum differs, a run fails, or an asockio end's RSS grew by more than
 * `--max-rss-growth`; 2 on bad arguments.
 *
 * @module
 */
import process from "node:process";
import { exitWithUsage, parseCli, parseCount } from "./_cli.mjs";

const MiB = 1024 ** 2;
const spec = {
  command: "scripts/stream.ts [options]   (with deno run -A, bun or node 24+)",
  summary:
    "One process streams one message to another at each size; checks a checksum, prints throughput,\n" +
    "each side's RSS, a probe's round trips during the transfer, and the ratio to a bare pair.",
  options: {
    bytes: { type: "list", default: ["64MiB", "1GiB"], help: "the message sizes, e.g. 64MiB,1GiB,8GiB" },
    asockioOnly: { type: "boolean", help: "skip the bare pair (no ratio)" },
    maxRssGrowth: {
      type: "number",
      default: 64 * MiB,
      help: "fail when an asockio end's peak RSS exceeds its RSS at start by more",
    },
    timeoutMs: { type: "number", default: 1_800_000, help: "the bound of each transfer" },
    reps: {
      type: "number",
      default: 1,
      help: "transfers per size and contender (order alternated); medians",
    },
    json: { type: "string", help: "also write every run and the medians to this JSON file" },
  },
  notes:
    "Exits with 1 on a checksum mismatch, a failed run or RSS growth over the bound, 2 on bad arguments.",
} as const;
const args = parseCli(process.argv.slice(2), spec);
if (!Number.isInteger(args.reps) || args.reps < 1) {
  exitWithUsage(spec, "Cannot run: --reps must be a positive integer");
}
const sizes = args.bytes.map((raw) => {
  const n = parseCount(raw);
  if (!Number.isSafeInteger(n) || n < 1) {
    exitWithUsage(spec, `Cannot parse --bytes: ${raw} is not a byte count`);
  }
  return n;
});

// Loaded once the arguments are parsed, so `--help` and a bad flag answer without loading the library.
const { formatBytes, runtimeLabel } = await import("../tests/_script_args.ts");
const { expectedChecksum } = await import("../bench/_stream_bytes.ts");
const { runStream } = await import("../bench/_stream_run.ts");
const { runtimeName } = await import("../bench/_native.ts");

const workload = new URL("../bench/workloads/stream.ts", import.meta.url).pathname;
const runtime = runtimeName();
// The children run TypeScript, which Node runs from 24 on (as the other scripts: tests/cli.test.ts).
if (runtime === "node" && Number(process.versions.node.split(".")[0]) < 24) {
  console.error(`scripts/stream.ts runs TypeScript children: use Node 24 or later, or deno or bun`);
  process.exit(2);
}
const command = (role: "receiver" | "sender", rest: string[]): string[] =>
  runtime === "deno"
    ? [process.execPath, "run", "-A", workload, role, ...rest]
    : [process.execPath, workload, role, ...rest];

const ms = (v: number | undefined) => v === undefined ? "–" : `${v.toFixed(2)} ms`;
const grew = (side: { rssBaseline: number; peakRss: number }) =>
  `${formatBytes(side.rssBaseline)} → ${formatBytes(side.peakRss)} (+${
    formatBytes(Math.max(0, side.peakRss - side.rssBaseline))
  })`;

const median = (values: number[]): number => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};
type Result = Awaited<ReturnType<typeof runStream>>;
/** The medians of one size and contender's runs (MiB/s, RSS growth in MiB, CPU s per GiB, probe ms). */
const summarize = (runs: Result[]) => ({
  runs: runs.length,
  mibPerSecond: median(runs.map((r) => r.mibPerSecond)),
  receiverRssGrowthMiB: median(runs.map((r) => (r.receiver.peakRss - r.receiver.rssBaseline) / MiB)),
  senderRssGrowthMiB: median(runs.map((r) => (r.sender.peakRss - r.sender.rssBaseline) / MiB)),
  receiverCpuSecondsPerGiB: median(runs.map((r) => r.receiver.cpuSeconds / (r.bytes / 2 ** 30))),
  senderCpuSecondsPerGiB: median(runs.map((r) => r.sender.cpuSeconds / (r.bytes / 2 ** 30))),
  probeIdleP50Ms: median(runs.map((r) => r.probeIdle?.[0] ?? NaN)),
  probeIdleP99Ms: median(runs.map((r) => r.probeIdle?.[1] ?? NaN)),
  probeBusyP50Ms: median(runs.map((r) => r.probeBusy?.[0] ?? NaN)),
  probeBusyP99Ms: median(runs.map((r) => r.probeBusy?.[1] ?? NaN)),
});
const report: { runtime: string; reps: number; sizes: Record<string, unknown>[] } = {
  runtime: runtimeLabel(),
  reps: args.reps,
  sizes: [],
};

console.log(`asockio stream on ${runtimeLabel()}: ${sizes.map(formatBytes).join(", ")}`);
const failures: string[] = [];
for (const bytes of sizes) {
  const expected = expectedChecksum(bytes);
  const contenders = args.asockioOnly ? ["asockio"] as const : ["asockio", "bare"] as const;
  const runs: Record<string, Result[]> = { asockio: [], bare: [] };
  const ratios: number[] = [];
  for (let rep = 1; rep <= args.reps; rep++) {
    const mib: Record<string, number> = {};
    for (const contender of rep % 2 ? contenders : [...contenders].reverse()) {
      let result;
      try {
        result = await runStream(command, contender, bytes, expected, args.timeoutMs);
      } catch (err) {
        failures.push(`${formatBytes(bytes)} ${contender}: ${(err as Error).message}`);
        continue;
      }
      mib[contender] = result.mibPerSecond;
      runs[contender]!.push(result);
      console.log(
        `\n${formatBytes(bytes)} ${contender}${args.reps > 1 ? ` (rep ${rep}/${args.reps})` : ""}: ${
          result.seconds.toFixed(2)
        } s, ${result.mibPerSecond.toFixed(0)} MiB/s, ` +
          `checksum ${result.checksumOk ? "OK" : "MISMATCH"}`,
      );
      console.log(`  receiver RSS ${grew(result.receiver)}, CPU ${result.receiver.cpuSeconds.toFixed(2)} s`);
      console.log(`  sender RSS   ${grew(result.sender)}, CPU ${result.sender.cpuSeconds.toFixed(2)} s`);
      if (!result.checksumOk) failures.push(`${formatBytes(bytes)} ${contender}: checksum mismatch`);
      const [idle50, idle99, idleN] = result.probeIdle ?? [];
      const [busy50, busy99, busyN] = result.probeBusy ?? [];
      console.log(
        `  probe round trips: before p50 ${ms(idle50)}, p99 ${ms(idle99)} (${idleN}); ` +
          `during p50 ${ms(busy50)}, p99 ${ms(busy99)} (${busyN})`,
      );
      if (contender === "asockio") {
        for (const [side, rss] of [["receiver", result.receiver], ["sender", result.sender]] as const) {
          if (rss.peakRss - rss.rssBaseline > args.maxRssGrowth) {
            failures.push(
              `${formatBytes(bytes)} asockio ${side}: RSS grew by ${
                formatBytes(rss.peakRss - rss.rssBaseline)
              }, over ${formatBytes(args.maxRssGrowth)}`,
            );
          }
        }
      }
    }
    if (mib.asockio !== undefined && mib.bare !== undefined) {
      ratios.push(mib.asockio / mib.bare);
      console.log(`  ratio asockio / bare: ${(mib.asockio / mib.bare).toFixed(2)}×`);
    }
  }
  const summary = {
    bytes,
    ratioMedian: median(ratios),
    ratios,
    asockio: summarize(runs.asockio!),
    bare: summarize(runs.bare!),
  };
  report.sizes.push({ ...summary, results: runs });
  if (args.reps > 1) {
    const f = (v: number) => v.toFixed(1);
    console.log(
      `\n${formatBytes(bytes)}, medians of ${args.reps}: ratio ${summary.ratioMedian.toFixed(2)}× (each: ${
        ratios.map((r) => r.toFixed(2)).join(", ")
      })`,
    );
    for (const k of contenders) {
      const m = summary[k];
      console.log(
        `  ${k}: ${f(m.mibPerSecond)} MiB/s; RSS +${f(m.receiverRssGrowthMiB)} / +${
          f(m.senderRssGrowthMiB)
        } MiB; ` +
          `CPU ${m.receiverCpuSecondsPerGiB.toFixed(2)} / ${
            m.senderCpuSecondsPerGiB.toFixed(2)
          } s/GiB (receiver / sender); ` +
          `probe p50/p99 ${f(m.probeIdleP50Ms)}/${f(m.probeIdleP99Ms)} ms before, ${f(m.probeBusyP50Ms)}/${
            f(m.probeBusyP99Ms)
          } ms during`,
      );
    }
  }
}
if (args.json) {
  const { writeFileSync } = await import("node:fs");
  writeFileSync(args.json, JSON.stringify(report, null, 1) + "\n");
}
if (failures.length) {
  console.log(`\n${failures.length} failure(s):`);
  for (const f of failures) console.log(`- ${f}`);
}
console.log(failures.length ? "\nstream: FAILED" : "\nstream: OK");
process.exit(failures.length ? 1 : 0);
