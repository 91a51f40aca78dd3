/**
 * `npm run bench`: the asockio benchmark suite (see `bench/README.md`).
 *
 * ```sh
 * npm run bench -- --quick                    # smoke run on every runtime, under 2 minutes
 * npm run bench -- --runtime bun --only b1,b2 # some benchmarks on one runtime
 * npm run bench                               # the full run (about 20 minutes)
 * ```
 *
 * Options: `--help` lists them; `bench/README.md` explains them. On a terminal each benchmark × runtime
 * prints a progress line with the elapsed time and the estimated time left; redirected, the run prints only
 * its header, its failures and its summary.
 *
 * Exit code: 0 when every benchmark ran; 1 when one crashed, hung, answered wrongly or could not
 * start (a slow machine alone never fails the run: there are no speed thresholds here). The last
 * line is `BENCH-SUMMARY {"passed":N,"failed":N,"skipped":N}`, one count per benchmark × runtime
 * (a failed setup counts as one failure, and the pairs it kept from running as skipped), for
 * `scripts/test_all.mjs`.
 *
 * @module
 */
import process from "node:process";
import type { BenchContext, Row } from "./_common.ts";
import { killAll } from "./_proc.ts";
import { buildForNode, machineInfo, type Runtime, RUNTIMES } from "./_runtimes.ts";
import { exitWithUsage, parseCli } from "../scripts/_cli.mjs";
import { formatElapsed, Progress } from "../scripts/_progress.ts";

/** The benchmarks, each loaded when it runs, so `--help` and a bad flag answer at once. */
const BENCHES = {
  b1: { title: "B1 HTTP over a raw connection", load: async () => (await import("./b1_http.ts")).runB1 },
  b2: { title: "B2 commands round trips", load: async () => (await import("./b2_roundtrips.ts")).runB2 },
  b3: {
    title: "B3 message size sweep and one streamed message",
    load: async () => (await import("./b3_throughput.ts")).runB3,
  },
  b4: { title: "B4 connection scale", load: async () => (await import("./b4_scale.ts")).runB4 },
  b4b: {
    title: "B4b memory per idle connection: named, raw, bare",
    load: async () => (await import("./b4b_idle.ts")).runB4b,
  },
  b5: {
    title: "B5 scale out: 1 vs 2 processes on one port",
    load: async () => (await import("./b5_scale_out.ts")).runB5,
  },
  b6: { title: "B6 datagram echo round trips (UDP)", load: async () => (await import("./b6_udp.ts")).runB6 },
  b7: {
    title: "B7 named clients across nodes over NATS",
    load: async () => (await import("./b7_cluster.ts")).runB7,
  },
  b8: {
    title: "B8 WebSocket echo round trips",
    load: async () => (await import("./b8_websocket.ts")).runB8,
  },
} as const;
type BenchId = keyof typeof BENCHES;

/** Workloads that Node runs from the tsc build. */
const NODE_WORKLOADS = [
  "bench/workloads/http_asockio.ts",
  "bench/workloads/http_bare.ts",
  "bench/workloads/http_native.ts",
  "bench/workloads/framed_asockio.ts",
  "bench/workloads/framed_bare.ts",
  "bench/workloads/idle_server.ts",
  "bench/workloads/idle_clients.ts",
  "bench/workloads/udp_echo.ts",
  "bench/workloads/stream.ts",
  "bench/workloads/cluster_nats.ts",
  "bench/workloads/websocket_echo.ts",
];

const CLI = {
  command: "npm run bench -- [options]   (or deno run -A bench/run.ts [options])",
  summary: "The asockio benchmark suite: see bench/README.md.",
  options: {
    runtime: {
      type: "list",
      default: ["all"],
      choices: [...RUNTIMES, "all"],
      help: "the runtimes to measure, comma-separated",
    },
    only: {
      type: "list",
      default: Object.keys(BENCHES),
      choices: Object.keys(BENCHES),
      help: "the benchmarks to run, comma-separated",
    },
    quick: { type: "boolean", help: "smoke mode: small counts, 1 repetition" },
    reps: { type: "number", help: "repetitions per cell (default 3, or 1 with --quick)" },
    streamBytes: {
      type: "number",
      help: "B3's streamed message, e.g. 8GiB (default 1GiB, or 64MiB with --quick)",
    },
    b7Count: {
      type: "number",
      help: "B7's messages per cell, e.g. 1000000 (default 200000, or 20000 with --quick)",
    },
    matrix: {
      type: "string",
      default: "sweep",
      value: "full|sweep",
      choices: ["full", "sweep"],
      help: "B1's whole size × concurrency cross product, or two sweeps",
    },
    noPeers: { type: "boolean", help: "skip zeromq and node-ipc in B2" },
    noWrk: { type: "boolean", help: "B1 and B5 use the built-in load client even where wrk is installed" },
    b1: {
      type: "string",
      default: "all",
      value: "get|upload|all",
      choices: ["get", "upload", "all"],
      help: "B1's GET cells, its 64 MiB upload row, or both",
    },
    uploadProbeMs: {
      type: "number",
      help: "during B1's uploads, a GET every N ms on a second connection, timed (default 5; 0: none)",
    },
    tls: {
      type: "boolean",
      help: "B1 over TLS: asockio on the native transport and on node:tls, and the runtime's HTTPS server",
    },
    name: {
      type: "string",
      value: "NAME",
      help: "write bench/results/NAME.{json,md,svg} (default full or quick)",
    },
  },
  notes:
    "Progress lines (elapsed, time left) go to a terminal only. Exits with 1 when a benchmark crashed,\n" +
    "hung, answered wrongly or could not start, 2 on bad arguments; the last line is BENCH-SUMMARY {...}.",
} as const;

function parse(argv: string[]) {
  const args = parseCli(argv, CLI);
  const runtimes = args.runtime.includes("all") ? [...RUNTIMES] : args.runtime as Runtime[];
  const only = args.only as BenchId[];
  if (args.reps !== undefined && (!Number.isInteger(args.reps) || args.reps < 1)) {
    exitWithUsage(CLI, "Cannot run: --reps must be a positive integer");
  }
  if (args.uploadProbeMs !== undefined && !(args.uploadProbeMs >= 0)) {
    exitWithUsage(CLI, "Cannot run: --upload-probe-ms must be 0 or more");
  }
  if (args.b7Count !== undefined && (!Number.isInteger(args.b7Count) || args.b7Count < 1)) {
    exitWithUsage(CLI, "Cannot run: --b7-count must be a positive integer");
  }
  if (args.name !== undefined && !/^[\w.-]+$/.test(args.name)) {
    exitWithUsage(CLI, "Cannot run: --name may hold letters, digits, '.', '_' and '-' only");
  }
  const runtimeTag = runtimes.length === RUNTIMES.length ? "" : `-${runtimes.join("-")}`;
  return {
    runtimes,
    only,
    quick: args.quick,
    reps: args.reps ?? (args.quick ? 1 : 3),
    streamBytes: args.streamBytes ?? (args.quick ? 64 : 1024) * 2 ** 20,
    b7Count: args.b7Count ?? (args.quick ? 20_000 : 200_000),
    fullMatrix: args.matrix === "full",
    peers: !args.noPeers,
    noWrk: args.noWrk,
    tls: args.tls,
    b1Rows: args.b1 as "get" | "upload" | "all",
    uploadProbeMs: args.uploadProbeMs ?? 5,
    name: args.name ?? `${args.quick ? "quick" : "full"}${runtimeTag}`,
  };
}

const options = parse(process.argv.slice(2));
const failures: string[] = [];
const rows: Row[] = [];
/** One step per benchmark × runtime. */
const progress = new Progress(options.only.length * options.runtimes.length);
const ctx: BenchContext = {
  quick: options.quick,
  fullMatrix: options.fullMatrix,
  reps: options.reps,
  streamBytes: options.streamBytes,
  b7Count: options.b7Count,
  peers: options.peers,
  noWrk: options.noWrk,
  tls: options.tls,
  b1Rows: options.b1Rows,
  uploadProbeMs: options.uploadProbeMs,
  rows,
  notes: [],
  progress: (message) => progress.note(message),
  fail(where, err) {
    const text = err instanceof Error ? err.message : String(err);
    failures.push(`${where}: ${text}`);
    console.log(`[${formatElapsed(progress.elapsedMs)}] FAILED ${where}: ${text}`);
  },
};

/** One count per benchmark × runtime, for the `BENCH-SUMMARY` line. */
const summary = { passed: 0, failed: 0, skipped: options.only.length * options.runtimes.length };
const machine = machineInfo();
console.log(
  `asockio bench "${options.name}": ${options.only.join(", ")} on ${options.runtimes.join(", ")}; ` +
    `${options.quick ? "quick" : "full"}, ${options.reps} rep(s); ${machine.note}, ${machine.cpuModel}; ` +
    machine.pinning,
);

try {
  if (options.runtimes.includes("node")) {
    ctx.progress("building the workloads for Node (tsc)");
    await buildForNode(NODE_WORKLOADS);
  }
  for (const id of options.only) {
    for (const runtime of options.runtimes) {
      progress.step(summary.passed + summary.failed, `${BENCHES[id].title} on ${runtime}`);
      const failuresBefore = failures.length;
      try {
        const run = await BENCHES[id].load();
        await run(ctx, runtime);
      } catch (err) {
        ctx.fail(`${id} ${runtime}`, err);
      }
      summary.skipped--;
      if (failures.length > failuresBefore) summary.failed++;
      else summary.passed++;
    }
  }
} catch (err) {
  ctx.fail("setup", err);
  summary.failed++;
} finally {
  killAll();
}

const seconds = progress.elapsedMs / 1000;
const { writeReport } = await import("./_report.ts");
const written = await writeReport({
  name: options.name,
  command: `npm run bench -- ${process.argv.slice(2).join(" ")}`.trim(),
  date: new Date().toISOString(),
  seconds,
  quick: options.quick,
  reps: options.reps,
  fullMatrix: options.fullMatrix,
  runtimes: options.runtimes,
  benches: options.only,
  machine,
  rows,
  notes: ctx.notes,
  failures,
});
console.log(`\nWrote ${written.join(", ")} in ${formatElapsed(progress.elapsedMs)}`);
if (failures.length) {
  console.log(`${failures.length} failure(s):\n- ${failures.map((f) => f.split("\n")[0]).join("\n- ")}`);
} else console.log("All benchmarks ran.");
console.log(`BENCH-SUMMARY ${JSON.stringify(summary)}`);
process.exit(failures.length ? 1 : 0);
