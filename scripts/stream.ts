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
  },
  notes:
    "Exits with 1 on a checksum mismatch, a failed run or RSS growth over the bound, 2 on bad arguments.",
} as const;
const args = parseCli(process.argv.slice(2), spec);
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

console.log(`asockio stream on ${runtimeLabel()}: ${sizes.map(formatBytes).join(", ")}`);
const failures: string[] = [];
for (const bytes of sizes) {
  const expected = expectedChecksum(bytes);
  const contenders = args.asockioOnly ? ["asockio"] as const : ["asockio", "bare"] as const;
  const mib: Record<string, number> = {};
  for (const contender of contenders) {
    let result;
    try {
      result = await runStream(command, contender, bytes, expected, args.timeoutMs);
    } catch (err) {
      failures.push(`${formatBytes(bytes)} ${contender}: ${(err as Error).message}`);
      continue;
    }
    mib[contender] = result.mibPerSecond;
    console.log(
      `\n${formatBytes(bytes)} ${contender}: ${result.seconds.toFixed(2)} s, ${
        result.mibPerSecond.toFixed(0)
      } MiB/s, ` +
        `checksum ${result.checksumOk ? "OK" : "MISMATCH"}`,
    );
    console.log(`  receiver RSS ${grew(result.receiver)}`);
    console.log(`  sender RSS   ${grew(result.sender)}`);
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
    console.log(`  ratio asockio / bare: ${(mib.asockio / mib.bare).toFixed(2)}×`);
  }
}
if (failures.length) {
  console.log(`\n${failures.length} failure(s):`);
  for (const f of failures) console.log(`- ${f}`);
}
console.log(failures.length ? "\nstream: FAILED" : "\nstream: OK");
process.exit(failures.length ? 1 : 0);
