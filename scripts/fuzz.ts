/**
 * The fuzzer: mutated frame streams, handshakes and PROXY headers through real sockets into a running
 * IoCore.
 *
 * Usage (any runtime):
 *
 * ```sh
 * node_modules/.bin/deno run -A scripts/fuzz.ts --cases 1000000 --seed 1
 * node_modules/.bin/bun scripts/fuzz.ts --cases 1000000 --seed 1
 * node_modules/.bin/node scripts/fuzz.ts --cases 1000000 --seed 1
 * node_modules/.bin/deno run -A scripts/fuzz.ts --websocket --cases 5000 --seed 1
 * ```
 *
 * `--websocket` fuzzes a `websocket` listener instead: each round is one connection, admitted by keyword,
 * that sends valid, broken and mutated client frames; `ws`'s own `Receiver`, fed the same bytes, says which
 * messages, pongs and close code must follow (`tests/_websocket_fuzz.ts`).
 *
 * Options: `--help` lists them. It prints a progress line a second on a terminal, then a summary
 * (cases/s, crashes, hangs, mismatches, control round trips, peak RSS), and exits with 1 on any failure,
 * 2 on bad arguments.
 *
 * @module
 */
import process from "node:process";
import type { FuzzReport } from "../tests/_fuzz.ts";
import { parseCli } from "./_cli.mjs";
import { Progress } from "./_progress.ts";

const args = parseCli(process.argv.slice(2), {
  command: "scripts/fuzz.ts [options]   (with deno run -A, bun or node)",
  summary:
    "Mutated frame streams, raw chunks, handshakes and PROXY headers through real sockets into a core.",
  options: {
    cases: { type: "number", default: 1_000_000, help: "how many cases" },
    seed: { type: "number", default: 1, min: 0, value: "S", help: "the random seed" },
    concurrency: { type: "number", default: 12, value: "C", help: "connections at a time" },
    only: { type: "number", min: 0, value: "I", help: "replay connection I of the seed alone" },
    timeoutMs: { type: "number", default: 15_000, value: "T", help: "the bound of each connection" },
    maxRssMib: { type: "number", default: 512, value: "M", help: "the most RSS may grow, in MiB" },
    websocket: {
      type: "boolean",
      help: "fuzz a websocket listener instead: --cases rounds, each checked against ws's own Receiver",
    },
  },
  notes: "Exits with 1 on any crash, hang, mismatch or failure, 2 on bad arguments.",
});
const progress = new Progress(args.only === undefined ? args.cases : 1);
if (args.websocket) {
  const { runtimeLabel } = await import("../tests/_script_args.ts");
  const { runWebSocketFuzz } = await import("../tests/_websocket_fuzz.ts");
  console.log(`asockio websocket fuzz on ${runtimeLabel()}: seed ${args.seed}, ${args.cases} rounds`);
  const report = await runWebSocketFuzz({
    rounds: args.cases,
    seed: args.seed,
    progress: (done) => progress.step(done, `${done} rounds`),
  });
  console.log(
    `\nrounds: ${report.rounds} in ${(report.durationMs / 1000).toFixed(1)} s; endings (as ws read them): ${
      JSON.stringify(report.outcomes)
    }`,
  );
  for (const f of report.failures) console.log(`- ${f}`);
  console.log(report.failures.length === 0 ? "\nfuzz: OK" : "\nfuzz: FAILED");
  process.exit(report.failures.length === 0 ? 0 : 1);
}
// Loaded once the arguments are parsed, so `--help` and a bad flag answer without loading the library.
const { formatBytes, runtimeLabel } = await import("../tests/_script_args.ts");
const { runFuzz } = await import("../tests/_fuzz.ts");

function line(r: FuzzReport): string {
  return `${r.cases} cases (${r.frameCases} frame, ${r.rawCases} raw, ${r.handshakeCases} handshake, ${r.proxyCases} PROXY) on ${r.connections} connections, ${
    Math.round(r.casesPerSecond)
  } cases/s, crashes ${r.crashes}, hangs ${r.hangs}, mismatches ${r.mismatches}, control round trips ${r.controlRoundTrips}, peak RSS ${
    formatBytes(r.peakRss)
  }`;
}

console.log(
  `asockio fuzz on ${runtimeLabel()}: seed ${args.seed}, ${
    args.only !== undefined ? `connection ${args.only} only` : `${args.cases} cases`
  }`,
);
const report = await runFuzz({
  cases: args.cases,
  seed: args.seed,
  concurrency: args.concurrency,
  only: args.only,
  connectionTimeoutMs: args.timeoutMs,
  maxRssGrowth: args.maxRssMib * 1024 * 1024,
  progress: (r) => progress.step(r.cases, line(r)),
});
console.log("");
console.log(`runtime:              ${report.runtime}`);
console.log(`seed:                 ${report.seed}`);
console.log(
  `cases:                ${report.cases} (frame ${report.frameCases}, raw chunks ${report.rawCases}, handshakes ${report.handshakeCases}, of which ${report.handshakeLateCases} written too slowly and closed by the handshake timeout, PROXY headers ${report.proxyCases})`,
);
console.log(
  `PROXY headers:        ${report.proxyCases} (${
    report.proxyCases - report.proxyRefusedCases
  } valid or harmlessly mutated, ${report.proxyRefusedCases} mutated or cut short: refused or unanswered; ${report.proxyLateCases} written too slowly, closed by the handshake timeout)`,
);
console.log(`connections:          ${report.connections}`);
console.log(`bytes sent:           ${formatBytes(report.bytesSent)}`);
console.log(`duration:             ${(report.durationMs / 1000).toFixed(1)} s`);
console.log(`cases/s:              ${Math.round(report.casesPerSecond)}`);
console.log(`crashes:              ${report.crashes}`);
console.log(`hangs:                ${report.hangs}`);
console.log(`mismatches:           ${report.mismatches}`);
console.log(
  `control round trips:  ${report.controlRoundTrips} (slowest ${report.controlMaxLatencyMs.toFixed(1)} ms)`,
);
console.log(
  `RSS:                  baseline ${formatBytes(report.baselineRss)}, peak ${formatBytes(report.peakRss)}`,
);
console.log(`final core stats:     ${JSON.stringify(report.finalStats)}`);
console.log(
  "(a case: one valid or mutated frame written into a live connection, one raw chunk to a raw connection, one mutated handshake or one valid or mutated PROXY header on its own connection)",
);
if (report.failures.length) {
  console.log(`\n${report.failures.length} failure(s):`);
  for (const f of report.failures) console.log(`- ${f}`);
}
const ok = report.failures.length === 0 && report.crashes === 0 && report.hangs === 0 &&
  report.mismatches === 0;
console.log(ok ? "\nfuzz: OK" : "\nfuzz: FAILED");
process.exit(ok ? 0 : 1);
