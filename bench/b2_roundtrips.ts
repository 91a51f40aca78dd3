/**
 * B2: pipelined round trips of ~30-byte framed messages, client and server in two processes.
 * Contenders on each runtime: asockio through `ioIteration`, asockio through an `InlineProcessor`,
 * asockio's batch API at both ends (`takeFrames`/`sendFrames`), asockio forwarding each batch from
 * one of the client's connections to its other one, and a bare framed echo on the native socket
 * API; on Node also zeromq (DEALER/ROUTER) and node-ipc, when `bench/peers` installs.
 *
 * Two more bare echoes set the bars of the P2 targets:
 * - `bare, plain`: what a user of the raw socket API writes, one view per received frame, each
 *   re-encoded and written back on its own (the classic API's bar);
 * - `bare, deep pipeline`: the optimised echo with {@linkcode DEEP_WINDOW} frames in flight (64 blocks
 *   of 1,024), against `asockio batch API, deep pipeline` under the same load (the batch API's bar).
 *
 * Every client first runs {@linkcode WARMUP_ROUND_TRIPS} round trips untimed (the JIT's tiers settle
 * well after 50k), then times the measured ones.
 *
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { addSample, type BenchContext, rotated, type Row, runPair, si } from "./_common.ts";
import { binary, ROOT, type Runtime, workloadCommand } from "./_runtimes.ts";

const ASOCKIO = "bench/workloads/framed_asockio.ts";
const BARE = "bench/workloads/framed_bare.ts";
const PEERS = join(ROOT, "bench", "peers");
/** Untimed round trips before the timed ones, in a full run (a quick run warms up 20k). */
const WARMUP_ROUND_TRIPS = 1_000_000;

/** Frames in flight in the deep-pipeline rows: 64 blocks of 1,024 (the others keep 16 blocks). */
const DEEP_WINDOW = 64 * 1024;

/** The bare row each contender is measured against ("vs bare"), by contender name. */
export function b2Baseline(contender: string): string {
  return contender.endsWith(", deep pipeline") ? "bare, deep pipeline" : "bare";
}

interface Contender {
  name: string;
  server: string[];
  client: (port: number, count: number, warmup: number) => string[];
}

let peersState: "unknown" | "ready" | "failed" = "unknown";

/** Installs the peers with `npm ci` (no install scripts: zeromq's prebuilt binary is in its tarball). */
function ensurePeers(ctx: BenchContext): boolean {
  if (peersState !== "unknown") return peersState === "ready";
  const installed = existsSync(join(PEERS, "node_modules", "zeromq")) &&
    existsSync(join(PEERS, "node_modules", "node-ipc"));
  if (!installed) {
    ctx.progress("b2: installing peers (npm ci --ignore-scripts --prefix bench/peers)");
    const r = spawnSync("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund", "--prefix", PEERS], {
      encoding: "utf8",
      timeout: 180_000,
    });
    if (r.status !== 0) {
      peersState = "failed";
      ctx.notes.push(
        `B2 peers skipped: npm ci --prefix bench/peers failed (${
          (r.stderr || r.error?.message || "").trim().split("\n").pop()
        })`,
      );
      return false;
    }
  }
  // zeromq loads a native addon: check it really loads before benchmarking it.
  const probe = spawnSync(binary("node"), ["-e", "import('zeromq').then(() => process.exit(0))"], {
    cwd: PEERS,
    encoding: "utf8",
    timeout: 30_000,
  });
  if (probe.status !== 0) {
    peersState = "failed";
    const why = `${probe.stderr ?? ""}${probe.error?.message ?? ""}`.trim().split("\n").pop();
    ctx.notes.push(`B2 peers skipped: zeromq does not load here (${why})`);
    return false;
  }
  peersState = "ready";
  return true;
}

/** What every round-trip client is told: where to connect, how many to time, and how many to warm up. */
function roundTrips(port: number, count: number, warmup: number): string[] {
  return ["--port", `${port}`, "--count", `${count}`, "--warmup", `${warmup}`];
}

function contenders(ctx: BenchContext, runtime: Runtime): Contender[] {
  const asockioClient = (...extra: string[]) => (port: number, count: number, warmup: number) =>
    workloadCommand(runtime, ASOCKIO, [
      "client",
      "--mode",
      "echo",
      ...roundTrips(port, count, warmup),
      ...extra,
    ]);
  const bareClient = (...extra: string[]) => (port: number, count: number, warmup: number) =>
    workloadCommand(runtime, BARE, [
      "client",
      "--mode",
      "echo",
      ...roundTrips(port, count, warmup),
      ...extra,
    ]);
  const list: Contender[] = [
    {
      name: "asockio ioIteration",
      server: workloadCommand(runtime, ASOCKIO, ["server", "--mode", "echo", "--api", "io"]),
      client: asockioClient(),
    },
    {
      name: "asockio InlineProcessor",
      server: workloadCommand(runtime, ASOCKIO, ["server", "--mode", "echo", "--api", "inline"]),
      client: asockioClient(),
    },
    {
      name: "asockio batch API, both ends",
      server: workloadCommand(runtime, ASOCKIO, ["server", "--mode", "echo", "--api", "frames"]),
      client: asockioClient("--api", "frames"),
    },
    {
      name: "asockio forwarding",
      server: workloadCommand(runtime, ASOCKIO, ["server", "--mode", "echo", "--api", "forward"]),
      client: asockioClient("--api", "frames", "--forward"),
    },
    {
      name: "asockio batch API, deep pipeline",
      server: workloadCommand(runtime, ASOCKIO, ["server", "--mode", "echo", "--api", "frames"]),
      client: asockioClient("--api", "frames", "--window", `${DEEP_WINDOW}`),
    },
    {
      name: "bare",
      server: workloadCommand(runtime, BARE, ["server", "--mode", "echo"]),
      client: bareClient(),
    },
    {
      name: "bare, plain",
      server: workloadCommand(runtime, BARE, ["server", "--mode", "echo-plain"]),
      client: bareClient(),
    },
    {
      name: "bare, deep pipeline",
      server: workloadCommand(runtime, BARE, ["server", "--mode", "echo"]),
      client: bareClient("--window", `${DEEP_WINDOW}`),
    },
  ];
  if (runtime === "node" && ctx.peers && ensurePeers(ctx)) {
    for (const [name, file] of [["zeromq", "zeromq.mjs"], ["node-ipc", "node_ipc.mjs"]] as const) {
      const script = join(PEERS, file);
      list.push({
        name,
        server: [binary("node"), script, "server"],
        client: (
          port,
          count,
          warmup,
        ) => [binary("node"), script, "client", ...roundTrips(port, count, warmup)],
      });
    }
  }
  return list;
}

/** Runs B2 on one runtime. */
export async function runB2(ctx: BenchContext, runtime: Runtime): Promise<void> {
  const counts = ctx.quick ? [100_000] : [1_000_000];
  const warmup = ctx.quick ? 20_000 : WARMUP_ROUND_TRIPS;
  const list = contenders(ctx, runtime);
  for (const count of counts) {
    const rows = new Map<string, Row>();
    for (const c of list) {
      const row: Row = {
        bench: "b2",
        runtime,
        contender: c.name,
        params: { count },
        metrics: {},
        samples: {},
      };
      rows.set(c.name, row);
      ctx.rows.push(row);
    }
    for (let rep = 1; rep <= ctx.reps; rep++) {
      for (const c of rotated(list, rep)) {
        const row = rows.get(c.name)!;
        if (row.error) continue;
        const label = `b2 ${runtime} ${si(count)} ${c.name}`;
        try {
          const { result, server } = await runPair({
            label,
            server: c.server,
            client: (port) => c.client(port, count, warmup),
            timeoutMs: 60_000 + (count + warmup) / 2,
          });
          const code = await server.stop();
          if (code !== 0) throw new Error(`${label} server exited with code ${code}\n${server.tail()}`);
          const perSecond = count / Number(result.seconds);
          addSample(row, "roundTripsPerSecond", perSecond);
          ctx.progress(`${label} rep ${rep}/${ctx.reps}: ${si(perSecond)} round trips/s`);
        } catch (err) {
          row.error = (err as Error).message.split("\n")[0];
          ctx.fail(label, err);
        }
      }
    }
  }
}
