/**
 * The soak: a client IoCore sends sequence-numbered, checksummed messages to a server IoCore that
 * checks and echoes them; then each side queues a tail and closes gracefully
 * (`markClientConnectionAsReadyToBeClosed`), and the other must get all of it before the disconnection.
 *
 * Usage (any runtime):
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/soak.ts --messages 10000000
 * node_modules/.bin/bun scripts/soak.ts --messages 10000000
 * node_modules/.bin/node scripts/soak.ts --messages 10000000
 * ```
 *
 * Options: `--help` lists them. It prints a progress line a second on a terminal, and exits with 1 on any
 * loss, duplicate, reorder, corruption, unclean close or crash, 2 on bad arguments.
 *
 * @module
 */
import process from "node:process";
import type { SoakDirection } from "../tests/_soak.ts";
import { parseCli } from "./_cli.mjs";
import { Progress } from "./_progress.ts";

const args = parseCli(process.argv.slice(2), {
  command: "scripts/soak.ts [options]   (with deno run -A, bun or node)",
  summary:
    "Sequence-numbered, checksummed messages through a client core and an echoing server core, then\n" +
    "a graceful close from each side that must deliver its whole tail.",
  options: {
    messages: { type: "number", default: 10_000_000, help: "how many round trips" },
    window: { type: "number", default: 20_000, value: "W", help: "messages in flight" },
    batch: { type: "number", default: 2000, value: "B", help: "messages sent at a time" },
    tail: {
      type: "number",
      default: 100_000,
      value: "T",
      help: "messages queued before each graceful close",
    },
    timeoutMs: { type: "number", default: 900_000, help: "the bound of the whole run" },
  },
  notes:
    "Exits with 1 on any loss, duplicate, reorder, corruption, unclean close or crash, 2 on bad arguments.",
});
const progress = new Progress(args.messages);
// Loaded once the arguments are parsed, so `--help` and a bad flag answer without loading the library.
const { formatBytes, runtimeLabel } = await import("../tests/_script_args.ts");
const { runSoak } = await import("../tests/_soak.ts");

const dir = (d: SoakDirection): string =>
  `${d.received} received, ${d.lost} lost, ${d.duplicatedOrLate} duplicated or late, ${d.corrupt} corrupt`;

console.log(
  `asockio soak on ${runtimeLabel()}: ${args.messages} messages, window ${args.window}, tail ${args.tail}`,
);
const report = await runSoak({
  messages: args.messages,
  window: args.window,
  batch: args.batch,
  tail: args.tail,
  timeoutMs: args.timeoutMs,
  progress: (r) =>
    progress.step(
      r.messages,
      `${r.messages} echoed, ${Math.round(r.perSecond)} msg/s, RSS ${formatBytes(r.rssPeak)}`,
    ),
});
console.log("");
console.log(`runtime:            ${report.runtime}`);
console.log(`messages:           ${report.messages} round trips, ${formatBytes(report.bytes)} each way`);
console.log(
  `duration:           ${(report.durationMs / 1000).toFixed(1)} s (${
    Math.round(report.perSecond)
  } round-tripped msg/s)`,
);
console.log(`client -> server:   ${dir(report.toServer)}`);
console.log(`echoes:             ${dir(report.echoes)}`);
console.log(
  `server tail:        ${report.serverTail.sent} sent; ${
    dir(report.serverTail)
  }; clean close: ${report.serverTail.cleanClose}`,
);
console.log(
  `client tail:        ${report.clientTail.sent} sent; ${
    dir(report.clientTail)
  }; clean close: ${report.clientTail.cleanClose}`,
);
console.log(
  `RSS:                baseline ${formatBytes(report.rssBaseline)}, peak ${formatBytes(report.rssPeak)}`,
);
console.log(`crashes:            ${report.crashes}`);
if (report.failures.length) {
  console.log(`\n${report.failures.length} failure(s):`);
  for (const f of report.failures) console.log(`- ${f}`);
}
const ok = report.failures.length === 0 && report.serverTail.cleanClose && report.clientTail.cleanClose;
console.log(ok ? "\nsoak: OK" : "\nsoak: FAILED");
process.exit(ok ? 0 : 1);
