/**
 * The churn: opens and closes connections of varied kinds (named clients closed by either side,
 * half-closes, held and refused keywords, abandoned handshakes, unknown raw clients) while a control
 * client does round trips; then checks that the process's open descriptors are back to the baseline
 * and that `core.stats()` shows 0 connections, 0 held, only the registered clients, and 0 bytes.
 *
 * Usage (any runtime):
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/churn.ts --connections 10000
 * node_modules/.bin/bun scripts/churn.ts --connections 10000
 * node_modules/.bin/node scripts/churn.ts --connections 10000
 * ```
 *
 * Options: `--connections N` (default 10k), `--concurrency C` (default 32), `--seed S`,
 * `--timeout-ms T`. Exits with 1 on any failure.
 *
 * @module
 */
import process from "node:process";
import { formatBytes, parseNumberArgs, runtimeLabel } from "../tests/_script_args.ts";
import { runChurn } from "../tests/_churn.ts";

const args = parseNumberArgs(process.argv.slice(2), {
  connections: 10_000,
  concurrency: 32,
  seed: 1,
  timeoutMs: 15_000,
});

console.log(
  `asockio churn on ${runtimeLabel()}: ${args.connections} connections, ${args.concurrency} at a time`,
);
const report = await runChurn({
  connections: args.connections,
  concurrency: args.concurrency,
  seed: args.seed,
  timeoutMs: args.timeoutMs,
  progress: (r) =>
    console.log(
      `  ${(r.durationMs / 1000).toFixed(1)}s: ${r.connections} connections, ${
        Math.round(r.perSecond)
      }/s, fd peak ${r.fdPeak}`,
    ),
});
console.log("");
console.log(`runtime:              ${report.runtime}`);
console.log(
  `connections:          ${report.connections} in ${(report.durationMs / 1000).toFixed(1)} s (${
    Math.round(report.perSecond)
  }/s)`,
);
console.log(
  `variants:             ${Object.entries(report.variants).map(([k, v]) => `${k} ${v}`).join(", ")}`,
);
console.log(
  `descriptors:          baseline ${report.fdBaseline}, peak ${report.fdPeak}, after ${report.fdAfter}`,
);
console.log(
  `RSS:                  baseline ${formatBytes(report.rssBaseline)}, peak ${formatBytes(report.rssPeak)}`,
);
console.log(`control round trips:  ${report.controlRoundTrips}`);
console.log(
  `final core stats:     ${
    JSON.stringify(report.finalStats)
  } (registered clients: ${report.registeredClients})`,
);
console.log(`crashes:              ${report.crashes}`);
console.log(`hangs:                ${report.hangs}`);
if (report.failures.length) {
  console.log(`\n${report.failures.length} failure(s):`);
  for (const f of report.failures) console.log(`- ${f}`);
}
const ok = report.failures.length === 0;
console.log(ok ? "\nchurn: OK" : "\nchurn: FAILED");
process.exit(ok ? 0 : 1);
