/**
 * The flood: a child process of the same runtime sends frames as fast as it can while the
 * application does not read them; the core must pause that connection at its input cap, keep RSS
 * under `inputBytes + 64 MiB`, and keep serving a control client's round trips. The application then
 * drains, and again, until every byte went through in order.
 *
 * Usage (any runtime):
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/flood.ts --bytes 4GiB --input-bytes 256MiB
 * node_modules/.bin/bun scripts/flood.ts --bytes 4GiB --input-bytes 256MiB
 * node_modules/.bin/node scripts/flood.ts --bytes 4GiB --input-bytes 256MiB
 * ```
 *
 * Options: `--bytes N` (default 4 GiB), `--input-bytes N` (the core's cap, default 256 MiB),
 * `--payload-bytes N` (per frame, default 64 KiB), `--hold-ms N` (each no-read phase once the
 * flooder is paused, default 300), `--gc 1` (force a collection before each no-read phase, to tell
 * garbage apart from a leak in the whole-run peak; Node needs `--expose-gc`, Deno
 * `--v8-flags=--expose-gc`), `--timeout-ms N`. Exits with 1 on any failure. The RSS bound applies to
 * the first no-read phase, before anything was read.
 *
 * @module
 */
import process from "node:process";
import { formatBytes, parseNumberArgs, runtimeLabel } from "../tests/_script_args.ts";
import { runFlood } from "../tests/_flood.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const args = parseNumberArgs(process.argv.slice(2), {
  bytes: 4 * GiB,
  inputBytes: 256 * MiB,
  payloadBytes: 64 * 1024,
  holdMs: 300,
  gc: 0,
  timeoutMs: 900_000,
});

console.log(
  `asockio flood on ${runtimeLabel()}: ${formatBytes(args.bytes)} in ${
    formatBytes(args.payloadBytes)
  } frames, ` +
    `inputBytes ${formatBytes(args.inputBytes)}`,
);
const report = await runFlood({
  bytes: args.bytes,
  inputBytes: args.inputBytes,
  payloadBytes: args.payloadBytes,
  holdMs: args.holdMs,
  collectGarbage: args.gc !== 0,
  timeoutMs: args.timeoutMs,
  progress: (r) =>
    console.log(
      `  ${(r.durationMs / 1000).toFixed(1)}s: ${formatBytes(r.bytesReceived)} read, ` +
        `${r.mibPerSecond.toFixed(0)} MiB/s, unread peak ${formatBytes(r.peakInputBytes)}, ` +
        `RSS +${
          formatBytes(r.rssPeak - r.rssBaseline)
        }, paused phases ${r.pausedPhases}, control ${r.controlRoundTrips}`,
    ),
});
const grew = (peak: number): string => `+${formatBytes(peak - report.rssBaseline)}`;
console.log("");
console.log(`runtime:               ${report.runtime}`);
console.log(
  `flood:                 ${formatBytes(report.bytesSent)} sent, ${
    formatBytes(report.bytesReceived)
  } read in order ` +
    `(${report.messages} messages)`,
);
console.log(
  `duration:              ${(report.durationMs / 1000).toFixed(1)} s (${
    report.mibPerSecond.toFixed(0)
  } MiB/s)`,
);
console.log(
  `input cap:             ${formatBytes(report.inputBytes)}; unread input peak ${
    formatBytes(report.peakInputBytes)
  }`,
);
console.log(
  `RSS, not read yet:     baseline ${formatBytes(report.rssBaseline)}, peak ${
    formatBytes(report.rssNoReadPeak)
  } ` +
    `(${grew(report.rssNoReadPeak)}; bound inputBytes + 64 MiB = ${formatBytes(report.rssBound)})`,
);
console.log(
  `RSS, whole run:        peak ${formatBytes(report.rssPeak)} (${
    grew(report.rssPeak)
  }; read messages wait for ` +
    `the GC; ${report.collectedGarbage ? "a GC was forced before each no-read phase" : "no GC forced"})`,
);
console.log(`no-read phases:        ${report.pausedPhases} (the core paused the flooder in each)`);
console.log(
  `control round trips:   ${report.controlRoundTrips} (${report.controlWhilePaused} while the flooder was paused; ` +
    `slowest ${report.controlMaxLatencyMs.toFixed(1)} ms)`,
);
console.log(`crashes:               ${report.crashes}`);
console.log(`final core stats:      ${JSON.stringify(report.finalStats)}`);
if (report.failures.length) {
  console.log(`\n${report.failures.length} failure(s):`);
  for (const f of report.failures) console.log(`- ${f}`);
}
const ok = report.failures.length === 0;
console.log(ok ? "\nflood: OK" : "\nflood: FAILED");
process.exit(ok ? 0 : 1);
