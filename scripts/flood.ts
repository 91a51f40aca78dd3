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
 * Options: `--help` lists them; `--gc` forces a collection before each no-read phase, to tell garbage
 * apart from a leak in the whole-run peak (Node needs `--expose-gc`, Deno `--v8-flags=--expose-gc`). It
 * prints a progress line a second on a terminal, and exits with 1 on any failure, 2 on bad arguments.
 * The RSS bound applies to the first no-read phase, before anything was read.
 *
 * @module
 */
import process from "node:process";
import { parseCli } from "./_cli.mjs";
import { Progress } from "./_progress.ts";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;
const args = parseCli(process.argv.slice(2), {
  command: "scripts/flood.ts [options]   (with deno run -A, bun or node)",
  summary: "A child process floods a connection the application does not read; the core must pause it at\n" +
    "its input cap, keep RSS under inputBytes + 64 MiB and keep serving a control client.",
  options: {
    bytes: { type: "number", default: 4 * GiB, help: "how many bytes to send" },
    inputBytes: { type: "number", default: 256 * MiB, help: "the core's input cap" },
    payloadBytes: { type: "number", default: 64 * 1024, help: "bytes per frame" },
    holdMs: {
      type: "number",
      default: 300,
      min: 0,
      help: "each no-read phase once the flooder is paused, in ms",
    },
    gc: { type: "boolean", help: "force a collection before each no-read phase (needs --expose-gc)" },
    timeoutMs: { type: "number", default: 900_000, help: "the bound of the whole run" },
  },
  notes: "Exits with 1 on any failure, 2 on bad arguments.",
});
const progress = new Progress(args.bytes);
// Loaded once the arguments are parsed, so `--help` and a bad flag answer without loading the library.
const { formatBytes, runtimeLabel } = await import("../tests/_script_args.ts");
const { runFlood } = await import("../tests/_flood.ts");

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
  collectGarbage: args.gc,
  timeoutMs: args.timeoutMs,
  progress: (r) =>
    progress.step(
      r.bytesReceived,
      `${formatBytes(r.bytesReceived)} read, ${r.mibPerSecond.toFixed(0)} MiB/s, unread peak ${
        formatBytes(r.peakInputBytes)
      }, RSS +${
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
