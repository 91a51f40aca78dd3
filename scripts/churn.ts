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
 * Options: `--help` lists them. It prints a progress line a second on a terminal, and exits with 1 on any
 * failure, 2 on bad arguments.
 *
 * @module
 */
import process from "node:process";
import { parseCli } from "./_cli.mjs";
import { Progress } from "./_progress.ts";

const args = parseCli(process.argv.slice(2), {
  command: "scripts/churn.ts [options]   (with deno run -A, bun or node)",
  summary:
    "Opens and closes connections of varied kinds, then checks that descriptors and core.stats() are\n" +
    "back to the baseline.",
  options: {
    connections: { type: "number", default: 10_000, help: "how many connections" },
    concurrency: { type: "number", default: 32, value: "C", help: "connections at a time" },
    seed: { type: "number", default: 1, min: 0, value: "S", help: "the random seed" },
    timeoutMs: { type: "number", default: 15_000, value: "T", help: "the bound of each wait" },
  },
  notes: "Exits with 1 on any failure, 2 on bad arguments.",
});
const progress = new Progress(args.connections);
// Loaded once the arguments are parsed, so `--help` and a bad flag answer without loading the library.
const { formatBytes, runtimeLabel } = await import("../tests/_script_args.ts");
const { runChurn } = await import("../tests/_churn.ts");

console.log(
  `asockio churn on ${runtimeLabel()}: ${args.connections} connections, ${args.concurrency} at a time`,
);
const report = await runChurn({
  connections: args.connections,
  concurrency: args.concurrency,
  seed: args.seed,
  timeoutMs: args.timeoutMs,
  progress: (r) =>
    progress.step(
      r.connections,
      `${r.connections} connections, ${Math.round(r.perSecond)}/s, fd peak ${r.fdPeak}`,
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
