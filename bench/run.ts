/**
 * `npm run bench`: the asockio benchmark suite (see `bench/README.md`).
 *
 * ```sh
 * npm run bench -- --quick                    # smoke run on every runtime, under 2 minutes
 * npm run bench -- --runtime bun --only b1,b2 # some benchmarks on one runtime
 * npm run bench                               # the full run (about 20 minutes)
 * ```
 *
 * Options: `--runtime deno|bun|node|all` (default `all`), `--only b1,b2,b3,b4,b5,b6`, `--quick`,
 * `--reps N`, `--matrix full` (B1's whole size × concurrency cross product), `--no-peers`,
 * `--no-wrk` (B1 uses its built-in load client, as `--quick` does when `wrk` is missing),
 * `--name NAME` (results go to `bench/results/NAME.{json,md,svg}`).
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
import { writeReport } from "./_report.ts";
import { runB1 } from "./b1_http.ts";
import { runB2 } from "./b2_roundtrips.ts";
import { runB3 } from "./b3_throughput.ts";
import { runB4 } from "./b4_scale.ts";
import { runB5 } from "./b5_scale_out.ts";
import { runB6 } from "./b6_udp.ts";

const BENCHES = {
  b1: { title: "B1 HTTP over a raw connection", run: runB1 },
  b2: { title: "B2 commands round trips", run: runB2 },
  b3: { title: "B3 message size sweep and bulk", run: runB3 },
  b4: { title: "B4 connection scale", run: runB4 },
  b5: { title: "B5 scale out: 1 vs 2 processes on one port", run: runB5 },
  b6: { title: "B6 datagram echo round trips (UDP)", run: runB6 },
} as const;
type BenchId = keyof typeof BENCHES;

/** Workloads that Node runs from the tsc build. */
const NODE_WORKLOADS = [
  "bench/workloads/http_asockio.ts",
  "bench/workloads/http_bare.ts",
  "bench/workloads/http_native.ts",
  "bench/workloads/framed_asockio.ts",
  "bench/workloads/framed_bare.ts",
  "bench/workloads/udp_echo.ts",
];

const USAGE =
  `Usage: npm run bench -- [--runtime deno|bun|node|all] [--only b1,b2,b3,b4,b5,b6] [--quick] [--reps N]
                        [--matrix full] [--no-peers] [--no-wrk] [--name NAME] [--help]`;

function usage(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

function parse(argv: string[]) {
  let runtimes: Runtime[] = [...RUNTIMES];
  let only: BenchId[] = Object.keys(BENCHES) as BenchId[];
  let quick = false;
  let reps: number | undefined;
  let fullMatrix = false;
  let peers = true;
  let noWrk = false;
  let name: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = () => argv[++i] ?? usage(`Missing value for ${arg}`);
    if (arg === "--help" || arg === "-h") {
      console.log(USAGE);
      process.exit(0);
    }
    if (arg === "--quick") quick = true;
    else if (arg === "--no-peers") peers = false;
    else if (arg === "--no-wrk") noWrk = true;
    else if (arg === "--runtime") {
      const v = value();
      if (v === "all") runtimes = [...RUNTIMES];
      else {
        runtimes = v.split(",") as Runtime[];
        for (const r of runtimes) if (!RUNTIMES.includes(r)) usage(`Unknown runtime ${r}`);
      }
    } else if (arg === "--only") {
      only = value().split(",") as BenchId[];
      for (const b of only) if (!(b in BENCHES)) usage(`Unknown benchmark ${b}`);
    } else if (arg === "--reps") {
      reps = Number(value());
      if (!Number.isInteger(reps) || reps < 1) usage("--reps must be a positive integer");
    } else if (arg === "--matrix") {
      const v = value();
      if (v !== "full" && v !== "sweep") usage("--matrix must be full or sweep");
      fullMatrix = v === "full";
    } else if (arg === "--name") {
      name = value();
      if (!/^[\w.-]+$/.test(name)) usage("--name may hold letters, digits, '.', '_' and '-' only");
    } else usage(`Unknown option ${arg}`);
  }
  const runtimeTag = runtimes.length === RUNTIMES.length ? "" : `-${runtimes.join("-")}`;
  name ??= `${quick ? "quick" : "full"}${runtimeTag}`;
  return { runtimes, only, quick, reps: reps ?? (quick ? 1 : 3), fullMatrix, peers, noWrk, name };
}

const options = parse(process.argv.slice(2));
const started = performance.now();
const failures: string[] = [];
const rows: Row[] = [];
const clock = () => {
  const s = Math.round((performance.now() - started) / 1000);
  return `${String(Math.floor(s / 60)).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`;
};
const ctx: BenchContext = {
  quick: options.quick,
  fullMatrix: options.fullMatrix,
  reps: options.reps,
  peers: options.peers,
  noWrk: options.noWrk,
  rows,
  notes: [],
  progress: (message) => console.log(`[${clock()}] ${message}`),
  fail(where, err) {
    const text = err instanceof Error ? err.message : String(err);
    failures.push(`${where}: ${text}`);
    console.log(`[${clock()}] FAILED ${where}: ${text}`);
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
      ctx.progress(`${BENCHES[id].title} on ${runtime}`);
      const failuresBefore = failures.length;
      try {
        await BENCHES[id].run(ctx, runtime);
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

const seconds = (performance.now() - started) / 1000;
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
console.log(`\nWrote ${written.join(", ")} in ${clock()}`);
if (failures.length) {
  console.log(`${failures.length} failure(s):\n- ${failures.map((f) => f.split("\n")[0]).join("\n- ")}`);
} else console.log("All benchmarks ran.");
console.log(`BENCH-SUMMARY ${JSON.stringify(summary)}`);
process.exit(failures.length ? 1 : 0);
